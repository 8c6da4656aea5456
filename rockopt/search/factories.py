"""Optuna samplers and pruners by name. A study file's other keys are passed as keywords."""

from __future__ import annotations

from typing import Any

import optuna

from rockopt.registry import lookup

OPTUNA_SAMPLERS: dict[str, type[optuna.samplers.BaseSampler]] = {
    "tpe": optuna.samplers.TPESampler,
    "random": optuna.samplers.RandomSampler,
}

PRUNERS: dict[str, type[optuna.pruners.BasePruner]] = {
    "median": optuna.pruners.MedianPruner,
    "successive_halving": optuna.pruners.SuccessiveHalvingPruner,
    "hyperband": optuna.pruners.HyperbandPruner,
    "none": optuna.pruners.NopPruner,
}


def create_optuna_sampler(name: str, settings: dict[str, Any]) -> optuna.samplers.BaseSampler:
    return lookup(OPTUNA_SAMPLERS, name, "sampler.name")(**settings)


def create_pruner(name: str, settings: dict[str, Any]) -> optuna.pruners.BasePruner:
    return lookup(PRUNERS, name, "pruner.name")(**settings)


def describe(name: str, settings: dict[str, Any]) -> str:
    """`median(n_warmup_steps=1)`: for tags and messages."""
    args = ", ".join(f"{k}={v}" for k, v in sorted(settings.items()))
    return f"{name}({args})"
