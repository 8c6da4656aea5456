"""Training settings: one flat, validated record.

Flat on purpose: the same names are MLflow params, study search-space parameters and
keys of exported YAML files, so a value can be followed from a study to a checkpoint.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from rockopt.errors import ConfigError


class TrainConfig(BaseModel):
    """Every setting of one training run, with a default for each."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    # data and folds
    data: str | None = None
    image_size: int = Field(224, ge=16)
    folds: int = Field(5, ge=2)
    fold: int = Field(0, ge=0)
    folds_file: str | None = None
    folds_seed: int = 42  # apart from `seed`: members trained with other seeds still share their folds
    seed: int = 42

    # model
    backbone: str = "tf_efficientnet_lite0"
    pretrained: bool = True
    pretrained_file: str | None = None
    drop_rate: float = Field(0.0, ge=0.0, lt=1.0)

    # sampling
    sampler_mode: Literal["uniform", "balanced", "hnm"] = "uniform"
    hnm_memory: int = Field(1024, ge=1)
    hnm_ratio: float = Field(0.25, ge=0.0, le=1.0)
    hnm_lookahead: int = Field(1, ge=0)
    # progressively harder batches: the pool's share of a batch per epoch (constant: hnm_ratio)
    hnm_ratio_schedule: Literal["constant", "linear", "step"] = "constant"
    hnm_ratio_start: float = Field(0.0, ge=0.0, le=1.0)  # linear: at epoch 1; step: until the warm-up ends
    hnm_ratio_warmup_epochs: int = Field(1, ge=0)  # step: epochs at hnm_ratio_start

    # optimisation
    epochs: int = Field(10, ge=1)
    batch_size: int = Field(32, ge=1)
    accumulation_steps: int = Field(1, ge=1)
    optimizer: Literal["adamw", "adam"] = "adamw"
    lr: float = Field(1e-3, gt=0.0)
    weight_decay: float = Field(0.01, ge=0.0)
    scheduler: Literal["cosine", "step", "onecycle"] = "cosine"
    warmup_epochs: float = Field(0.5, ge=0.0)
    min_lr: float = Field(1e-6, ge=0.0)
    step_epochs: int = Field(3, ge=1)
    step_gamma: float = Field(0.1, gt=0.0, le=1.0)
    label_smoothing: float = Field(0.0, ge=0.0, lt=1.0)
    # for imbalanced classes; all take label smoothing. The hnm pool ranks by plain cross-entropy.
    loss: Literal["ce", "weighted_ce", "focal"] = "ce"
    class_weight_power: float = Field(0.5, ge=0.0, le=1.0)  # weighted_ce: (inverse class frequency) ** power
    focal_gamma: float = Field(2.0, ge=0.0)
    grad_clip: float = Field(1.0, ge=0.0)  # max gradient norm; 0 turns clipping off

    # augmentation
    augment: Literal["seed", "light", "none"] = "seed"
    crop_scale: tuple[float, float] = (0.5, 1.0)
    val_tta: Literal["none", "flip", "d4"] = "none"
    gpu_flips: bool = False  # random h/v flips on the device instead of in the loader workers

    # image cache (`rockopt data cache`)
    cache: Literal["auto", "build", "off"] = "auto"
    cache_size: int | None = Field(None, ge=16)  # shorter side of cached images; None: any cache >= image_size
    cache_dir: str | None = None  # default: $ROCKOPT_CACHE_DIR or ~/.cache/rockopt

    # runtime
    device: str = "auto"
    amp: Literal["auto", "bf16", "fp16", "off"] = "auto"
    channels_last: bool = True
    compile: bool = False  # torch.compile the model (pays off on a GPU for long trials)
    num_workers: int | None = Field(None, ge=0)
    deterministic: bool = False
    save_checkpoint: bool = True
    experiment: str = "rockopt-train"
    out_dir: str = "runs"

    @field_validator("amp", "cache", mode="before")
    @classmethod
    def _off(cls, v: Any) -> Any:
        # YAML 1.1 reads a bare `off` as false; the user meant the choice "off"
        return "off" if v is False else v

    @model_validator(mode="after")
    def _check_ranges(self) -> TrainConfig:
        lo, hi = self.crop_scale
        if not 0 < lo <= hi:
            raise ValueError(f"crop_scale must be 0 < low <= high, but got {list(self.crop_scale)}")
        if self.fold >= self.folds:
            raise ValueError(f"fold must be below folds={self.folds}, but got fold={self.fold}")
        return self

    def flat(self) -> dict[str, Any]:
        """The settings as MLflow params: scalars only, None as the string 'None'."""
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.model_dump().items()}


FIELDS = tuple(TrainConfig.model_fields)

# Settings that change how a run runs, not what it learns: a resumed study takes new values
# of these; any other setting would make its new trials incomparable with the old ones.
RUNTIME_KEYS = frozenset(
    {
        "device", "amp", "channels_last", "compile", "num_workers", "deterministic", "gpu_flips",
        "hnm_lookahead", "cache", "cache_size", "cache_dir", "save_checkpoint", "out_dir",
    }
)  # fmt: skip


def parse_sets(items: list[str] | None) -> dict[str, Any]:
    """`key=value` strings from the command line, in the order typed (the last value of a key wins);
    values are read as YAML (3, 0.1, true, [1, 2])."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set expects key=value, but got '{item}'")
        try:
            value = yaml.safe_load(raw) if raw != "" else None
        except yaml.YAMLError:
            value = raw
        out.pop(key.strip(), None)  # keep the order of the last mention
        out[key.strip()] = _number(value)
    return out


def _number(value: Any) -> Any:
    """YAML 1.1 reads `1e-3` as a string; a user means the number."""
    if isinstance(value, str):
        try:
            return float(value) if any(c in value for c in ".eE") else value
        except ValueError:
            return value
    return value


def read_yaml(path: str | Path) -> dict[str, Any]:
    """A YAML mapping from a file, with the file named in any error."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: file not found")
    try:
        doc = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        raise ConfigError(f"{path}: not valid YAML{where}") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"{path}: expected a mapping of settings, got {type(doc).__name__}")
    return doc


def build_config(values: dict[str, Any], source: str = "settings") -> TrainConfig:
    """Validate `values` into a TrainConfig; `source` names where they came from in errors."""
    try:
        return TrainConfig(**values)
    except ValidationError as e:
        raise ConfigError(describe_validation_error(e, source)) from None


def describe_validation_error(e: ValidationError, source: str) -> str:
    """The first problem of a pydantic error as one line naming the key."""
    err = e.errors()[0]
    key = ".".join(str(p) for p in err["loc"]) or "(settings)"
    if err["type"] == "extra_forbidden":
        from difflib import get_close_matches

        close = get_close_matches(key, FIELDS, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        return f"{source}: unknown key '{key}'{hint}"
    msg = err["msg"].removeprefix("Value error, ")
    if key == "(settings)":
        return f"{source}: {msg}"
    return f"{source}: key '{key}': {msg}, got {err.get('input')!r}"


def load_config(
    path: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
) -> TrainConfig:
    """Defaults, then the YAML file, then overrides (the command line)."""
    values: dict[str, Any] = {}
    source = "--set"
    if path is not None:
        values.update(read_yaml(path))
        source = str(path)
    overrides = overrides or {}
    unknown = [k for k in overrides if k not in FIELDS]
    if unknown:
        build_config({unknown[0]: overrides[unknown[0]]}, "--set")
    cfg = build_config(values, source)
    if overrides:
        cfg = build_config({**cfg.model_dump(), **overrides}, "--set")
    return cfg


def dump_config(cfg: TrainConfig, path: str | Path) -> Path:
    """Write the resolved settings as YAML that `load_config` reads back unchanged."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(cfg.flat(), sort_keys=False))
    return path
