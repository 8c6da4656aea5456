"""What every trial of a search shares: its settings before the trial's parameters, the data
set, the study's folds file and, when asked, the image cache."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rockopt.config import TrainConfig, build_config
from rockopt.data.folds import Folds
from rockopt.data.layout import TrainSet
from rockopt.data.readers import image_reader
from rockopt.outputs import ensure_dir
from rockopt.search.request import SearchRequest
from rockopt.search.storage import STUDIES_DIR
from rockopt.search.study_file import StudySpec, base_settings
from rockopt.tracked_run import check_fold, prepare_data


@dataclass
class TrialInputs:
    base: dict[str, Any]  # every trial's settings before its parameters
    resolved: TrainConfig  # the study's and this invocation's settings, as validated
    dataset: TrainSet
    folds: Folds
    out: Path  # the trials' run folders go here


def prepare_inputs(spec: StudySpec, request: SearchRequest, note: Callable[[str], None], show_cache_build: bool) -> TrialInputs:
    """The trials' shared settings, the data set, the study's folds file and, if asked, the image cache."""
    base = base_settings(spec)
    if request.data is not None:
        base["data"] = str(request.data)
    drop_missing_optional_files(base, spec, note)
    base_cfg = build_config(base, f"{request.source}")
    out = ensure_dir(Path(base_cfg.out_dir) / request.name, "out_dir")
    STUDIES_DIR.mkdir(exist_ok=True)
    dataset, folds = prepare_data(base_cfg, folds_file=STUDIES_DIR / f"{request.name}.folds.csv")
    check_fold(folds, base_cfg.fold)
    if base_cfg.cache == "build":  # once, with its own progress bar, before the trials ask for it
        image_reader(base_cfg, dataset.abs_paths(), str(dataset.root), progress=show_cache_build)
    base["folds_file"] = str(folds.path.resolve())  # exported configs and `cv` reuse the study's folds
    base["experiment"] = request.name
    return TrialInputs(base, base_cfg, dataset, folds, out)


def drop_missing_optional_files(base: dict[str, Any], spec: StudySpec, note: Callable[[str], None]) -> None:
    """The study's optional files that are not here leave BASE, with a note."""
    for key in spec.optional_files:
        value = base.get(key)
        if value and not Path(value).expanduser().exists():
            fix = " (--set pretrained_file=PATH for a weights file)" if key == "pretrained_file" else ""
            note(f"{key} {value} is not there; trials run without it{fix}")
            base.pop(key)
