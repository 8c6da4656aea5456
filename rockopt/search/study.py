"""The Optuna study as stored: created or resumed with the settings it was created with, its
sampler and pruner for this invocation, how its trials stand."""

from __future__ import annotations

import socket
import warnings
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna

from rockopt.config import RUNTIME_KEYS, build_config
from rockopt.errors import ConfigError
from rockopt.report import short
from rockopt.search import factories
from rockopt.search.locks import study_lock
from rockopt.search.request import SearchRequest
from rockopt.search.space import baseline_params
from rockopt.search.storage import describe_storage, exists_in, open_storage, resolve_storage, storage_kind
from rockopt.search.study_file import StudySpec, base_settings

# resumed studies may take new values of these: they change how a trial runs, or where the
# (fingerprinted) data set lies, not what the trial means
RESUMABLE = RUNTIME_KEYS | {"data"}


@dataclass
class StoredStudy:
    study: optuna.Study
    spec: StudySpec  # what this invocation's trials run with
    invocation: int  # this invocation's number in the study: 0 for the first
    algorithms: dict[str, str] = field(default_factory=dict)  # sampler and pruner, described for tags


def quiet_optuna() -> None:
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # rockopt reports trials itself, one line each
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


def create_tables(url: str, name: str) -> None:
    """The storage's tables, created once under the study's lock, before processes race for them."""
    with study_lock(url, name):
        open_storage(url)


def open_study(request: SearchRequest, note: Callable[[str], None]) -> StoredStudy:
    """Create the study, or load it with the settings it was created with, and give it this
    invocation's sampler and pruner.

    The spec this invocation's trials run with: stored settings, the file's budget and runtime
    settings, this invocation's --set. Runs under the study's lock: processes starting together
    create the tables and the study once, and each claims its own number.
    """
    name, url, file_spec = request.name, request.url, request.spec
    with study_lock(url, name):
        study = optuna.create_study(storage=open_storage(url), study_name=name, direction=file_spec.objective.direction, load_if_exists=True)
        if study.direction.name.lower() != file_spec.objective.direction:
            raise ConfigError(f"study '{name}' exists with direction {study.direction.name.lower()}; the file says {file_spec.objective.direction}")
        stored = study.user_attrs.get("rockopt.spec")
        spec = _create(study, request) if stored is None else _resume(StudySpec(**stored), study, request, note)
        # an older study without the counter: its trials so far stand for the invocations
        number = int(study.user_attrs.get("rockopt.searches", 0 if stored is None else len(study.trials)))
        study.set_user_attr("rockopt.searches", number + 1)
    opened = StoredStudy(study, spec, number)
    opened.algorithms = set_algorithms(opened, url)
    return opened


def _meaning(spec: StudySpec) -> StudySpec:
    """The spec as stored with the study: runtime settings come from each invocation instead."""
    return spec.model_copy(update={"fixed": {k: v for k, v in spec.fixed.items() if k not in RUNTIME_KEYS}})


def _create(study: optuna.Study, request: SearchRequest) -> StudySpec:
    """A new study keeps what its trials mean; the default recipe is queued first when asked."""
    file_spec, source = request.spec, request.source
    spec = file_spec.model_copy(update={"fixed": {**file_spec.fixed, **request.overrides}})
    study.set_user_attr("rockopt.spec", _meaning(spec).model_dump(mode="json"))
    study.set_user_attr("rockopt.spec_fingerprint", spec.fingerprint())
    study.set_user_attr("rockopt.file_fingerprint", file_spec.fingerprint())
    study.set_user_attr("rockopt.study_file", str(source))
    if spec.baseline_first:
        defaults = build_config(base_settings(spec), str(source)).flat()
        study.enqueue_trial(baseline_params(spec.space, defaults), user_attrs={"rockopt.baseline": True})
    return spec


def _resume(kept: StudySpec, study: optuna.Study, request: SearchRequest, note: Callable[[str], None]) -> StudySpec:
    """A resumed study runs with its stored settings, the file's budget and runtime settings,
    and this invocation's runtime --set."""
    file_spec, overrides, name = request.spec, request.overrides, request.name
    if file_spec.fingerprint() != study.user_attrs.get("rockopt.file_fingerprint", kept.fingerprint()):
        note(
            f"{request.source} changed since study '{name}' was created; it continues with the settings it was "
            "created with (use --study-name to start a new study with the new file)"
        )
    refuse_changes(kept, overrides, name)
    runtime = {k: v for k, v in file_spec.fixed.items() if k in RUNTIME_KEYS}
    runtime.update({k: v for k, v in overrides.items() if k in RESUMABLE})
    budget = kept.budget.model_copy(update=file_spec.budget.model_dump(exclude={"max_epochs"}))
    spec = _meaning(kept).model_copy(update={"budget": budget})
    return spec.model_copy(update={"fixed": {**spec.fixed, **runtime}})


def refuse_changes(kept: StudySpec, overrides: dict[str, Any], name: str) -> None:
    """A resumed study's trials must stay comparable: refuse a --set that changes what they mean."""
    base = base_settings(kept)
    was = build_config(base, f"study '{name}'")
    changed = []
    for key, value in overrides.items():
        if key in RESUMABLE:
            continue
        if getattr(build_config({**base, key: value}, "--set"), key) != getattr(was, key):
            changed.append(key)
    if changed:
        old = ", ".join(f"{k}={short(getattr(was, k))}" for k in changed)
        new = " ".join(f"{k}={short(overrides[k])}" for k in changed)
        raise ConfigError(
            f"study '{name}' was created with {old}: a resumed study keeps what its trials mean, so --set {new} is refused "
            f"(only runtime settings may change: {', '.join(sorted(RESUMABLE))}); start a new study with --study-name"
        )


def sampler_seed(seed: int, invocation: int, kind: str) -> int:
    """The study's sampler seed, moved by this invocation's number, so that searches started
    together, workers and resumed searches do not propose the very same trials again; the
    first search of a study keeps the seed. On a database server the host name moves it too:
    processes on several hosts claim their numbers without a shared lock."""
    offset = invocation
    if kind not in ("sqlite", "journal"):
        offset += zlib.crc32(socket.gethostname().encode()) % 10007
    return seed + offset


def set_algorithms(stored: StoredStudy, url: str) -> dict[str, str]:
    """Give the study its Optuna sampler and pruner, as the study file names them; their descriptions."""
    spec = stored.spec
    sampler_settings = dict(spec.sampler.model_extra or {})
    if sampler_settings.get("seed") is not None:
        sampler_settings["seed"] = sampler_seed(int(sampler_settings["seed"]), stored.invocation, storage_kind(url))
    pruner_settings = dict(spec.pruner.model_extra or {})
    stored.study.sampler = factories.create_optuna_sampler(spec.sampler.name, sampler_settings)
    stored.study.pruner = factories.create_pruner(spec.pruner.name, pruner_settings)
    return {
        "rockopt.sampler": factories.describe(spec.sampler.name, sampler_settings),
        "rockopt.pruner": factories.describe(spec.pruner.name, pruner_settings),
    }


def counts(study: optuna.Study) -> dict[str, int]:
    """The study's trials by state, over the whole study."""
    c = Counter(t.state.name for t in study.get_trials(deepcopy=False))
    return {s: c.get(s, 0) for s in ("COMPLETE", "PRUNED", "FAIL", "RUNNING", "WAITING")}


def best_trial(study: optuna.Study) -> optuna.trial.FrozenTrial | None:
    try:
        return study.best_trial
    except ValueError:  # no complete trial yet
        return None


def study_name_of(ref: str | Path) -> str:
    """`quick`, `studies/quick.yaml` and `/x/quick.yml` all name the study `quick`."""
    p = Path(ref)
    return p.stem if p.suffix in (".yaml", ".yml") else str(ref)


def load_existing(ref: str | Path, storage: str | None = None, study_name: str | None = None) -> tuple[optuna.Study, str]:
    """A study that exists (for `best`, `doctor`, `blend`), and its storage URL."""
    name = study_name or study_name_of(ref)
    url = resolve_storage(storage, name)
    if not exists_in(url, name):
        raise ConfigError(f"no study '{name}' in {describe_storage(url)}; start it with: rockopt search --study {ref}")
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    return optuna.load_study(study_name=name, storage=open_storage(url)), url
