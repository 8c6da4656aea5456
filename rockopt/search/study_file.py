"""Study files: `studies/NAME.yaml`, validated as a whole before the first trial.

```yaml
data:      {path: DIR, folds: 5, fold: 0, image_size: 224, folds_seed: 42}
budget:    {n_trials: 20, timeout: null, max_epochs: 10, keep_checkpoints: 3}
objective: {metric: val_f1, direction: maximize}
sampler:   {name: tpe, seed: 42, n_startup_trials: 5}    # any keyword of Optuna's sampler class
pruner:    {name: median, n_warmup_steps: 1}              # any keyword of Optuna's pruner class
fixed:     {backbone: tf_efficientnet_lite0, ...}         # training settings every trial shares
optional_files: [pretrained_file]                         # dropped, with a note, when the file is missing
space:                                                    # searched training settings
  sampler_mode: [uniform, balanced, hnm]                  # a list is a categorical parameter
  hnm_ratio: {type: float, low: 0.1, high: 0.5, when: {sampler_mode: hnm}}
  lr: {type: float, low: 1.0e-4, high: 3.0e-3, log: true}
```
"""

from __future__ import annotations

import hashlib
import inspect
import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from rockopt.config import FIELDS, RUNTIME_KEYS, build_config, read_yaml
from rockopt.errors import ConfigError
from rockopt.registry import lookup


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DataSection(_Strict):
    path: str | None = None
    folds: int = Field(5, ge=2)
    fold: int = Field(0, ge=0)
    image_size: int | None = Field(None, ge=16)
    folds_seed: int = 42


class BudgetSection(_Strict):
    n_trials: int | None = Field(20, ge=1)
    timeout: float | None = Field(None, gt=0)
    max_epochs: int = Field(10, ge=1)
    keep_checkpoints: int = Field(3, ge=0)  # best.pt kept for the top K trials only (0: none)


class ObjectiveSection(_Strict):
    metric: Literal["val_f1", "val_loss"] = "val_f1"
    direction: Literal["maximize", "minimize"] = "maximize"

    @model_validator(mode="after")
    def _sense(self) -> ObjectiveSection:
        want = "maximize" if self.metric == "val_f1" else "minimize"
        if self.direction != want:
            raise ValueError(f"{self.metric} should be {want}d, but got direction={self.direction}")
        return self


class NamedSection(BaseModel):
    """`name` picks the Optuna class; every other key is a keyword argument of it."""

    model_config = ConfigDict(extra="allow")
    name: str


class Param(_Strict):
    type: Literal["categorical", "int", "float"]
    choices: list[Any] | None = None
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    when: dict[str, Any] | None = None  # {other_param: value or [values]}: exists only then

    @model_validator(mode="after")
    def _shape(self) -> Param:
        if self.type == "categorical":
            if not self.choices:
                raise ValueError("a categorical parameter needs a non-empty 'choices' list")
            if self.low is not None or self.high is not None:
                raise ValueError("a categorical parameter takes 'choices', not 'low'/'high'")
            bad = [c for c in self.choices if c is not None and not isinstance(c, (bool, int, float, str))]
            if bad:
                raise ValueError(f"choices must be numbers, strings or booleans, but got {bad[0]!r}")
        else:
            if self.low is None or self.high is None:
                raise ValueError(f"an {self.type} parameter needs 'low' and 'high'")
            if self.low > self.high:
                raise ValueError(f"low must not exceed high, but got low={self.low}, high={self.high}")
            if self.log and self.low <= 0:
                raise ValueError(f"a log-scale range must be positive, but got low={self.low}")
            if self.log and self.step is not None:
                raise ValueError("'log' and 'step' exclude each other")
            if self.type == "int" and (self.low != int(self.low) or self.high != int(self.high)):
                raise ValueError(f"an int parameter needs whole bounds, but got low={self.low}, high={self.high}")
        return self

    def values_to_check(self) -> list[Any]:
        """Values a trial may draw, enough to tell whether a training setting takes them all:
        each choice; the bounds; for a float, a value between them as a trial draws one (with
        a fraction unless its step keeps to whole numbers), which an int setting refuses."""
        if self.type == "categorical":
            return list(self.choices or [])
        if self.type == "int":
            return [int(self.low), int(self.high)]
        between = self.low + (self.high - self.low) * 0.4142135623730951  # irrational: never whole by chance
        if self.step is not None:
            between = min(self.low + self.step, self.high)
        return [float(self.low), float(self.high), between]


class StudySpec(_Strict):
    description: str = ""
    data: DataSection = DataSection()
    budget: BudgetSection = BudgetSection()
    objective: ObjectiveSection = ObjectiveSection()
    sampler: NamedSection = NamedSection(name="tpe")
    pruner: NamedSection = NamedSection(name="median")
    fixed: dict[str, Any] = {}
    optional_files: list[str] = []
    # trial 0 is the default recipe (defaults and `fixed`, where the space allows them): a search
    # that starts from the baseline cannot end below it
    baseline_first: bool = False
    space: dict[str, Param] = {}

    @field_validator("space", mode="before")
    @classmethod
    def _lists_are_categorical(cls, v: Any) -> Any:
        if isinstance(v, dict):
            return {k: ({"type": "categorical", "choices": p} if isinstance(p, list) else p) for k, p in v.items()}
        return v

    def fingerprint(self) -> str:
        """What the study's trials mean. Left out: the description, how many trials to run and for
        how long, how many checkpoints to keep, and the runtime settings in `fixed` (device,
        loader workers, cache...): a resumed study may change those."""
        doc = self.model_dump(exclude={"description"})
        doc["budget"] = {"max_epochs": self.budget.max_epochs}
        doc["fixed"] = {k: v for k, v in self.fixed.items() if k not in RUNTIME_KEYS}
        return hashlib.sha1(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()[:16]


def shipped_studies() -> Path:
    """The study files rockopt ships (quick, cpu, hnm, balanced, backbones): the repository's
    studies/, installed as the package rockopt.studies."""
    from importlib.resources import files

    return Path(str(files("rockopt.studies")))


def find_study_file(name: str | Path) -> Path:
    """A path, or a name looked up in ./studies/ and then among the studies rockopt ships."""
    p = Path(name).expanduser()
    if p.suffix in (".yaml", ".yml") or p.is_file():
        if not p.is_file():
            raise ConfigError(f"study file not found: {p}")
        return p
    candidates = [Path("studies") / f"{name}.yaml", shipped_studies() / f"{name}.yaml"]
    for c in candidates:
        if c.is_file():
            return c
    known = sorted({f.stem for c in candidates if c.parent.is_dir() for f in c.parent.glob("*.yaml")})
    raise ConfigError(f"no study named '{name}' (looked in ./studies/ and rockopt's own studies); known: {', '.join(known) or 'none'}")


def load_study_file(name: str | Path) -> tuple[StudySpec, Path]:
    """Read and validate a study file."""
    path = find_study_file(name)
    doc = read_yaml(path)
    if not doc:
        raise ConfigError(f"{path}: an empty study file; a study names at least what it searches (space:)")
    raw = _paths_relative_to(doc, path.parent)
    try:
        spec = StudySpec(**raw)
    except ValidationError as e:
        raise ConfigError(_describe(e, path)) from None
    validate_against_config(spec, str(path))
    return spec, path


def with_overrides(spec: StudySpec, overrides: dict[str, Any], path: Path) -> StudySpec:
    """SPEC (read from PATH) with `--set` values fixed, validated as a whole again."""
    if not overrides:
        return spec
    _check_overrides(spec, overrides, path.stem)
    spec = spec.model_copy(update={"fixed": {**spec.fixed, **overrides}})
    validate_against_config(spec, str(path))
    return spec


def _check_overrides(spec: StudySpec, overrides: dict[str, Any], study: str) -> None:
    """`--set` on a study may fix a setting, never one the study searches (the trial's value would win)."""
    searched = [k for k in overrides if k in spec.space]
    if searched:
        keys = ", ".join(searched)
        raise ConfigError(f"--set {keys}: searched by study '{study}' (space.{searched[0]}); fix it in a copy of the study file instead")
    if "experiment" in overrides:
        raise ConfigError("--set experiment: a study logs to the MLflow experiment named after it; use --study-name to name it")


_PATH_KEYS = (("data", "path"), ("fixed", "data"), ("fixed", "pretrained_file"), ("fixed", "folds_file"))


def _paths_relative_to(raw: dict[str, Any], base: Path) -> dict[str, Any]:
    """Relative paths in a study file mean: relative to the file, so it works from any directory."""
    for section, key in _PATH_KEYS:
        sect = raw.get(section)
        value = sect.get(key) if isinstance(sect, dict) else None
        if isinstance(value, str) and value and not Path(value).expanduser().is_absolute():
            sect[key] = str((base / value).resolve())
    return raw


def _describe(e: ValidationError, path: Path) -> str:
    err = e.errors()[0]
    key = ".".join(str(p) for p in err["loc"] if not str(p).startswith("function-after"))
    if err["type"] == "extra_forbidden":
        return f"{path}: unknown key '{key}'"
    msg = err["msg"].removeprefix("Value error, ")
    return f"{path}: key '{key}': {msg}" + (f", got {err['input']!r}" if err["type"] != "value_error" else "")


def validate_against_config(spec: StudySpec, source: str) -> None:
    """Check every name and value against the training settings, and the Optuna classes' keywords."""
    from rockopt.search.factories import PRUNERS, OPTUNA_SAMPLERS

    for section, registry in (("sampler", OPTUNA_SAMPLERS), ("pruner", PRUNERS)):
        named: NamedSection = getattr(spec, section)
        try:
            kind = lookup(registry, named.name, f"{section}.name")
        except ConfigError as e:
            raise ConfigError(f"{source}: {e}") from None
        accepted = set(inspect.signature(kind).parameters) - {"self"}
        for key in named.model_extra or {}:
            if key not in accepted:
                raise ConfigError(f"{source}: key '{section}.{key}': not a setting of the {named.name} {section}; it takes {sorted(accepted)}")
    for key in spec.fixed:
        if key not in FIELDS:
            build_config({key: spec.fixed[key]}, f"{source}: fixed")
    for key in spec.optional_files:
        if key not in FIELDS:
            raise ConfigError(f"{source}: key 'optional_files': '{key}' is not a training setting")
    base = base_settings(spec)
    build_config(base, f"{source}: fixed")
    seen: list[str] = []
    for key, param in spec.space.items():
        if key not in FIELDS:
            build_config({key: None}, f"{source}: space")
        if key in ("epochs",):
            raise ConfigError(f"{source}: key 'space.{key}': set budget.max_epochs instead")
        for cond, wanted in (param.when or {}).items():
            if cond not in seen:
                raise ConfigError(f"{source}: key 'space.{key}.when': '{cond}' must be a parameter listed above '{key}'")
            _check_when_values(source, key, cond, wanted, spec.space[cond])
        _check_values(base, key, param, source)
        seen.append(key)


def _check_values(base: dict[str, Any], key: str, param: Param, source: str) -> None:
    """Refuse a space whose trials would draw a value the setting cannot take: each would fail."""
    for value in param.values_to_check():
        try:
            build_config({**base, key: value}, f"{source}: space.{key}")
        except ConfigError as e:
            between = param.type == "float" and value not in (param.low, param.high)
            raise ConfigError(f"{e}, which a float range draws between low and high" if between else str(e)) from None


def _check_when_values(source: str, key: str, cond: str, wanted: Any, parent: Param) -> None:
    """Refuse every value of `when: {COND: value or [values]}` that COND can never take.

    Each listed value is checked, not only whether one of them can occur: a typo among good
    values would otherwise pass silently. Categorical: one of the choices (compared as the
    trials compare them, with ==). Int or float: a number within [low, high], whole for int.
    """
    values = wanted if isinstance(wanted, list) else [wanted]
    where = f"{source}: key 'space.{key}.when'"
    if not values:
        raise ConfigError(f"{where}: {cond}: an empty list, so '{key}' would never be searched")
    for value in values:
        if not _can_take(parent, value):
            raise ConfigError(f"{where}: {cond} can never be {value!r}; {_domain(parent)}")


def _can_take(p: Param, value: Any) -> bool:
    if p.type == "categorical":
        return value in (p.choices or [])
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    if p.type == "int" and not float(value).is_integer():
        return False
    return p.low <= value <= p.high


def _domain(p: Param) -> str:
    if p.type == "categorical":
        return f"its choices are {p.choices}"
    article = "an" if p.type == "int" else "a"
    return f"it is {article} {p.type} in [{p.low:g}, {p.high:g}]"


def _data_settings(spec: StudySpec) -> dict[str, Any]:
    d = spec.data
    out = {"folds": d.folds, "fold": d.fold, "folds_seed": d.folds_seed, "epochs": spec.budget.max_epochs}
    if d.image_size is not None:
        out["image_size"] = d.image_size
    if d.path is not None:
        out["data"] = d.path
    return out


def base_settings(spec: StudySpec) -> dict[str, Any]:
    """The settings every trial starts from: data section, fixed settings, budget's epochs."""
    return {**_data_settings(spec), **spec.fixed}  # a fixed `epochs` (e.g. from --set) wins over the budget
