"""Turning a study's search space into one trial's settings, conditions included."""

from __future__ import annotations

from typing import Any

import optuna

from rockopt.search.study_file import Param


def _active(param: Param, chosen: dict[str, Any]) -> bool:
    """A parameter with `when` exists only if every named parameter exists and took an allowed value."""
    for other, allowed in (param.when or {}).items():
        if other not in chosen:
            return False
        allowed = allowed if isinstance(allowed, list) else [allowed]
        if chosen[other] not in allowed:
            return False
    return True


def suggest(trial: optuna.Trial, space: dict[str, Param]) -> dict[str, Any]:
    """The trial's parameters, under the space's names; inactive conditional ones are absent."""
    chosen: dict[str, Any] = {}
    for name, p in space.items():
        if not _active(p, chosen):
            continue
        if p.type == "categorical":
            chosen[name] = trial.suggest_categorical(name, p.choices)
        elif p.type == "int":
            chosen[name] = trial.suggest_int(name, int(p.low), int(p.high), step=int(p.step or 1), log=p.log)
        else:
            chosen[name] = trial.suggest_float(name, p.low, p.high, step=p.step, log=p.log)
    return chosen


def _allows(p: Param, value: Any) -> bool:
    if p.type == "categorical":
        return value in p.choices
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not p.low <= value <= p.high:
        return False
    if p.type == "int" and int(value) != value:
        return False
    return not p.step or abs((value - p.low) / p.step - round((value - p.low) / p.step)) < 1e-9


def baseline_params(space: dict[str, Param], settings: dict[str, Any]) -> dict[str, Any]:
    """The space's parameters at the values SETTINGS give them (the default recipe), where the
    space allows that value; the others are left to the sampler."""
    chosen: dict[str, Any] = {}
    for name, p in space.items():
        if _active(p, chosen) and name in settings and _allows(p, settings[name]):
            chosen[name] = settings[name]
    return chosen
