"""rockopt's models in MLflow: the pyfunc (rockopt.pyfunc) logged as a model linked to the run
that made it, registered as a new version of a name with an alias moved onto it, and loaded
back by URI (`models:/NAME@ALIAS`, `models:/NAME/VERSION`, `runs:/RUN/classifier`, `models:/m-ID`).

The run is addressed by id and is not reopened: it keeps its status and end time. Bad names
and aliases are refused before anything is logged.
"""

from __future__ import annotations

import base64
import importlib.metadata
import io
import json
import os
import re
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rockopt.errors import ConfigError, RockoptError, first_line
from rockopt.tracking import client, mask_url, temp_dir, tracking_uri

DEFAULT_ALIAS = "champion"
ARTIFACT_NAME = "classifier"  # the logged model's name, and its path under a run (runs:/RUN/classifier)
# pinned from this environment: MLflow infers nothing (a subprocess that imports torch), and a
# server made with --env-manager virtualenv/uv installs what this one ran
REQUIREMENTS = ("mlflow", "torch", "torchvision", "timm", "numpy", "pandas", "pillow", "opencv-python-headless", "albumentations", "pydantic", "pyyaml")
_ALIAS = re.compile(r"^[\w\-]+$")
SPEC_FORMAT = 1
# what a prediction needs of a checkpoint: the optimizer and sampler states stay behind (2-3x smaller)
CHECKPOINT_KEYS = ("model", "config", "classes", "epoch", "best_f1", "fold", "data_fingerprint", "folds_fingerprint")


def pip_requirements() -> list[str]:
    pins = []
    for dist in REQUIREMENTS:
        try:
            pins.append(f"{dist}=={importlib.metadata.version(dist)}")
        except importlib.metadata.PackageNotFoundError:
            pass  # e.g. torchvision: not every setup has it
    return pins


@dataclass
class MemberSpec:
    name: str
    tta: str
    weight: float
    checkpoints: list[Path]  # its fold models' best.pt, in fold order


def write_spec(path: Path, classes: list[str], members: list[MemberSpec], offsets: np.ndarray | None) -> dict[str, str]:
    """spec.json at PATH and slim copies of the checkpoints beside it; returns the artifacts (key -> file) to log."""
    import torch

    from rockopt.train.checkpoints import load_checkpoint

    artifacts, doc_members = {"spec": str(path)}, []
    for i, m in enumerate(members):
        keys = []
        for k, ckpt in enumerate(m.checkpoints):
            key = f"m{i}_f{k}"
            state = load_checkpoint(ckpt)  # a numpy sampler state inside: torch's full unpickler
            slim = path.parent / f"{key}.pt"
            torch.save({k2: state[k2] for k2 in CHECKPOINT_KEYS if k2 in state}, slim)
            artifacts[key] = str(slim)
            keys.append(key)
        doc_members.append({"name": m.name, "tta": m.tta, "weight": float(m.weight), "checkpoints": keys})
    has_offsets = offsets is not None and bool(np.any(offsets))
    doc = {"format": SPEC_FORMAT, "classes": list(classes), "members": doc_members, "offsets": [float(b) for b in offsets] if has_offsets else None}
    path.write_text(json.dumps(doc, indent=2))
    return artifacts


def check_registration(name: str | None, alias: str = DEFAULT_ALIAS) -> None:
    """Refuse, before any work, a model name or alias the MLflow registry would refuse."""
    if name is None:
        return
    if not name.strip() or "/" in name or ":" in name:
        raise ConfigError(f"--register '{name}': not a model name MLflow takes (not empty; no '/' or ':')")
    if not _ALIAS.match(alias or ""):
        raise ConfigError(f"--alias '{alias}': an alias has only letters, digits, '_' and '-'")
    if alias.lower() == "latest" or re.fullmatch(r"[vV]\d+", alias):
        raise ConfigError(f"--alias '{alias}': reserved by MLflow (latest, v<number>)")
    check_registry()


def check_registry() -> None:
    """Refuse, before any work, a store whose model registry cannot be used (MLFLOW_REGISTRY_URI
    on a file store, a server without one): one line naming it."""
    from mlflow.exceptions import MlflowException

    try:
        client().search_registered_models(max_results=1)
    except (MlflowException, OSError) as e:
        where = os.environ.get("MLFLOW_REGISTRY_URI") or tracking_uri()
        raise ConfigError(f"--register: the MLflow store {mask_url(where)} offers no model registry: {mask_url(_mlflow_message(e))[:300]}") from None


def use_store() -> str:
    """The store rockopt uses, for MLflow's process-wide calls too (load_model has no URI argument):
    through MLflow's own environment variable, so nothing global outlives a change of it."""
    uri = tracking_uri()
    os.environ.setdefault("MLFLOW_TRACKING_URI", uri)
    client()  # a new SQLite store gets its tables, a server that does not answer is one line
    return uri


@dataclass
class LoggedModel:
    model_id: str
    model_uri: str  # models:/m-...
    run_id: str
    name: str | None = None  # registered as
    version: str | None = None
    alias: str | None = None
    size_bytes: int = 0  # the checkpoints and spec logged

    @property
    def registered_uri(self) -> str | None:
        return f"models:/{self.name}@{self.alias}" if self.name else None


def log_model(run_id: str, classes: list[str], members: list, offsets: np.ndarray | None = None, step: int = 0) -> LoggedModel:
    """Log the pyfunc of MEMBERS (rockopt.pyfunc.MemberSpec) as a model linked to run RUN_ID, at STEP
    (the run's metrics at that step are copied onto the model). The run stays as it is."""
    import mlflow
    from mlflow.models import Model

    from rockopt.pyfunc import RockoptClassifier

    use_store()
    run = client().get_run(run_id)
    with temp_dir() as tmp:
        artifacts = write_spec(Path(tmp) / "spec.json", classes, members, offsets)
        size = sum(Path(f).stat().st_size for f in artifacts.values())
        lm = mlflow.initialize_logged_model(  # in the run's experiment (Model.log alone would use the default one)
            name=ARTIFACT_NAME, source_run_id=run_id, experiment_id=run.info.experiment_id, model_type="image-classifier",
            params={"members": str(len(members)), "checkpoints": str(len(artifacts) - 1)},
        )  # fmt: skip
        with _quiet("mlflow.pyfunc", "mlflow.models.model"):
            info = Model.log(
                None, name=ARTIFACT_NAME, flavor=mlflow.pyfunc, run_id=run_id, model_id=lm.model_id, step=step,
                python_model=RockoptClassifier(), artifacts=artifacts, signature=signature(classes),
                input_example=input_example(), pip_requirements=pip_requirements(),
            )  # fmt: skip
    return LoggedModel(info.model_id, info.model_uri, run_id, size_bytes=size)


@contextmanager
def _quiet(*loggers: str):
    """MLflow's notes while it logs a model (cloudpickle caution, validating the example): not ours to show."""
    import logging

    saved = [(logging.getLogger(n), logging.getLogger(n).level) for n in loggers]
    for logger, _ in saved:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for logger, level in saved:
            logger.setLevel(level)


def signature(classes: list[str]):
    """A string image column: base64 and paths both reach the model as sent (a binary column
    would base64-decode every value over HTTP, paths too)."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    outputs = Schema([ColSpec("string", "label"), *(ColSpec("double", c) for c in classes)])
    return ModelSignature(inputs=Schema([ColSpec("string", "image")]), outputs=outputs)


def input_example():
    """One real 8x8 PNG, base64: what a request carries."""
    import pandas as pd
    from PIL import Image

    ramp = np.linspace(0, 255, 8 * 8 * 3).astype(np.uint8).reshape(8, 8, 3)
    buf = io.BytesIO()
    Image.fromarray(ramp).save(buf, format="PNG")
    return pd.DataFrame({"image": [base64.b64encode(buf.getvalue()).decode()]})


def _register(model: LoggedModel, name: str, alias: str) -> LoggedModel:
    """MODEL as a new version of NAME (made if missing); ALIAS moves onto it (both checked by the caller)."""
    from mlflow.exceptions import MlflowException

    c = client()
    created = False
    try:
        c.create_registered_model(name)
        created = True
    except MlflowException as e:
        if e.error_code != "RESOURCE_ALREADY_EXISTS":
            raise ConfigError(f"--register '{name}': {_mlflow_message(e)}") from None
    version = None
    try:
        # the model's own artifact location: a models:/ source would be looked up through the global store on SQLite
        location = c.get_logged_model(model.model_id).artifact_location
        tags = {"rockopt.model_id": model.model_id}
        version = c.create_model_version(name, source=location, run_id=model.run_id, model_id=model.model_id, tags=tags).version
        c.set_registered_model_alias(name, alias, version)
    except BaseException as e:
        # undo this call's entries: the alias stays where it was, no version points nowhere
        with suppress(Exception):
            if created:
                c.delete_registered_model(name)
            elif version is not None:
                c.delete_model_version(name, version)
        if isinstance(e, MlflowException):
            raise ConfigError(f"--register '{name}': {_mlflow_message(e)}") from None
        raise
    model.name, model.version, model.alias = name, str(version), alias
    return model


def log_and_register(
    run_id: str, classes: list[str], members: list, *, offsets: np.ndarray | None = None, step: int = 0, name: str | None = None, alias: str = DEFAULT_ALIAS
) -> LoggedModel:
    """log_model, then register when NAME is given (name and alias checked first)."""
    check_registration(name, alias)
    model = log_model(run_id, classes, members, offsets, step)
    if not name:
        return model
    try:
        return _register(model, name, alias)
    except BaseException:
        _forget(model)  # nothing half-done: no logged model without the version it was logged for
        raise


def _forget(model: LoggedModel) -> None:
    """Delete a logged model whose registration failed (best effort: the first error is the one to show)."""
    with suppress(Exception):
        client().delete_logged_model(model.model_id)


def load_model(uri: str):
    """The pyfunc at URI; an unknown name, alias, version or run is one line naming it."""
    import mlflow.pyfunc
    from mlflow.exceptions import MlflowException

    use_store()
    try:
        return mlflow.pyfunc.load_model(uri)
    except (MlflowException, OSError) as e:
        raise ConfigError(f"--model {uri}: {_mlflow_message(e)} (store {mask_url(tracking_uri())})") from None


def _mlflow_message(e: Exception) -> str:
    return re.sub(r"^[A-Z_]+: ", "", first_line(e))  # RestException prefixes its code


def is_model_uri(text: str) -> bool:
    return str(text).startswith(("models:/", "runs:/"))


def write_uri_predictions(uri: str, data_root: str | Path, out: str | Path, save_probs: bool = False) -> tuple[Path, int]:
    """`rockopt predict --model models:/...`: the model at URI on the test images -> the submission
    OUT (and, with SAVE_PROBS, the probabilities beside it: the model gives no logits)."""
    import pandas as pd
    from mlflow.exceptions import MlflowException

    from rockopt.data.layout import write_submission
    from rockopt.outputs import ensure_parent
    from rockopt.predict import test_images

    out = ensure_parent(out, "--out")
    ids, paths = test_images(data_root)
    model = load_model(uri)
    try:
        pred = model.predict(pd.DataFrame({"image": paths}))
    except MlflowException as e:
        raise RockoptError(f"{uri} refused the test images of {data_root}: {_mlflow_message(e)}") from None
    path = write_submission(data_root, ids, list(pred["label"]), out)
    if save_probs:
        classes = [c for c in pred.columns if c != "label"]
        np.savez_compressed(path.with_suffix(".npz"), ids=np.asarray(ids), probs=pred[classes].to_numpy(np.float32), classes=np.asarray(classes))
    return path, len(ids)


def log_run_checkpoint(run_id: str, checkpoint: str | Path, step: int = 0, name: str | None = None, alias: str = DEFAULT_ALIAS, tta: str = "none") -> LoggedModel:
    """One training run's CHECKPOINT as a model of the run (at STEP, its best epoch); registered as NAME when given."""
    from rockopt.train.checkpoints import load_checkpoint

    checkpoint = Path(checkpoint)
    if not checkpoint.is_file():
        raise ConfigError(f"{checkpoint}: no checkpoint to log as a model")
    classes = load_checkpoint(checkpoint)["classes"]
    member = MemberSpec(checkpoint.parent.name, tta, 1.0, [checkpoint])
    return log_and_register(run_id, classes, [member], step=step, name=name, alias=alias)
