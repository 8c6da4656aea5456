"""One shape for every "choose it by name" table: a module-level dict, in capitals, from the
name a user writes to the class or function that builds the thing (BATCH_SAMPLERS, LOSSES,
SCHEDULES, OPTIMIZERS, RATIO_SCHEDULES, OPTUNA_SAMPLERS, PRUNERS, blend METHODS). Adding a choice is one
entry; `lookup` gives every table the same error for a name it lacks."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

from rockopt.errors import ConfigError

T = TypeVar("T")


def lookup(registry: Mapping[str, T], name: str, key: str) -> T:
    """REGISTRY[NAME]; an unknown name is a ConfigError naming the setting KEY and the choices."""
    try:
        return registry[name]
    except (KeyError, TypeError):
        raise ConfigError(f"key '{key}': unknown value '{name}'; choose from {', '.join(sorted(registry))}") from None
