"""Building the network: a timm backbone by name, or a `module:function` factory.

Weight sources: `pretrained` (timm's hub download), `pretrained_file` (a local file, through
timm's `pretrained_cfg_overlay=dict(file=...)`), or none (random init).
"""

from __future__ import annotations

import importlib
import inspect
import logging
import os
from difflib import get_close_matches
from pathlib import Path
from urllib.parse import urlparse

import torch
from torch import nn

from rockopt.errors import ConfigError, first_line

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _custom_factory(spec: str):
    import sys

    module_name, _, fn_name = spec.partition(":")
    if "" not in sys.path and str(Path.cwd()) not in sys.path:
        sys.path.append(str(Path.cwd()))  # a models.py beside the data works as it would with `python -m`
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise ConfigError(f"backbone '{spec}': cannot import module '{module_name}' ({e})") from None
    fn = getattr(module, fn_name, None)
    if not callable(fn):
        raise ConfigError(f"backbone '{spec}': module '{module_name}' has no function '{fn_name}'")
    return fn


def _call_factory(spec: str, num_classes: int, pretrained: bool, pretrained_file: str | None) -> nn.Module:
    """Call a `module:function` backbone; anything but a model factory is a ConfigError naming it."""
    fn = _custom_factory(spec)
    kwargs: dict = {"num_classes": num_classes}
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):  # some builtins have no signature: pass num_classes only
        params = {}
    if "pretrained_file" in params:
        kwargs["pretrained_file"] = pretrained_file
    if "pretrained" in params:
        kwargs["pretrained"] = pretrained
    try:
        model = fn(**kwargs)
    except TypeError as e:
        raise ConfigError(f"backbone '{spec}' is not a model factory: calling it with num_classes failed ({first_line(e)})") from None
    if not isinstance(model, nn.Module):
        raise ConfigError(f"backbone '{spec}' is not a model factory: it returned {type(model).__name__}, not a torch nn.Module")
    return model


def check_backbone(name: str) -> None:
    """Raise ConfigError for a timm name that does not exist, suggesting close names."""
    import timm

    if ":" in name or timm.is_model(name):
        return
    close = get_close_matches(name, timm.list_models(), n=3, cutoff=0.6)
    hint = f"; close timm names: {', '.join(close)}" if close else "; see timm.list_models()"
    raise ConfigError(f"unknown backbone '{name}'{hint}")


_HUB_REACHABLE: dict[str, bool] = {}  # endpoint -> answer, once a process


def _hub_endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co")


def _hub_reachable() -> bool:
    """One short request (proxies as configured): the hub client would retry for about a minute."""
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        return False
    endpoint = _hub_endpoint()
    if endpoint not in _HUB_REACHABLE:
        import requests

        try:
            requests.head(endpoint, timeout=5)
            _HUB_REACHABLE[endpoint] = True
        except requests.RequestException:
            _HUB_REACHABLE[endpoint] = False
    return _HUB_REACHABLE[endpoint]


def _hub_weights_cached(backbone: str) -> bool:
    """Whether timm would find BACKBONE's pretrained weights without the network."""
    import timm

    cfg = timm.models.get_pretrained_cfg(backbone)
    if cfg is None:
        return True  # no weights to fetch: timm says what is wrong
    if cfg.hf_hub_id:  # where timm looks first
        from huggingface_hub import try_to_load_from_cache

        repo, _, revision = cfg.hf_hub_id.partition("@")
        names = (cfg.hf_hub_filename, "model.safetensors", "pytorch_model.bin")
        return any(isinstance(try_to_load_from_cache(repo, n, revision=revision or None), str) for n in names if n)
    if cfg.url:
        return (Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(cfg.url).path).name).is_file()
    return True


def hub_weights_problem(backbone: str) -> str | None:
    """Why BACKBONE's hub weights cannot be had here (not cached and the hub unreachable), or None."""
    if ":" in backbone or _hub_weights_cached(backbone) or _hub_reachable():
        return None
    return (
        f"pretrained weights for '{backbone}' are not in the local caches and the hub ({_hub_endpoint()}) cannot be reached; "
        "give a local file with --set pretrained_file=PATH, or --set pretrained=false"
    )


def _check_file_matches(model: nn.Module, file: Path, backbone: str) -> None:
    """timm loads non-strictly when the classifier changes, so a file for another architecture
    would leave layers at random init without a word. Compare names and shapes ourselves."""
    from timm.models import load_state_dict

    try:
        state = load_state_dict(str(file))
    except (RuntimeError, OSError, ValueError, KeyError) as e:
        raise ConfigError(f"weights file {file} could not be read: {first_line(e)}") from None
    classifier = getattr(model, "pretrained_cfg", {}).get("classifier") or ()
    classifier = (classifier,) if isinstance(classifier, str) else tuple(classifier)
    expected = {
        k: v.shape
        for k, v in model.state_dict().items()
        if not k.endswith("num_batches_tracked") and not any(k.startswith(c + ".") for c in classifier)
    }
    missing = [k for k in expected if k not in state]
    wrong = [k for k in expected if k in state and tuple(state[k].shape) != tuple(expected[k])]
    # e.g. a deeper sibling's file (lite1's into lite0): every layer fits, and the extra ones are dropped
    extra = [
        k for k in state
        if k not in expected and not k.endswith("num_batches_tracked") and not any(k.startswith(c + ".") for c in classifier)
    ]  # fmt: skip
    if missing or wrong or extra:
        bad = (missing + wrong + extra)[0]
        raise ConfigError(
            f"weights file {file} does not match backbone '{backbone}': "
            f"{len(missing)} tensors missing, {len(wrong)} of another shape, {len(extra)} not in the model (first: {bad})"
        )


def create_model(
    backbone: str,
    num_classes: int,
    *,
    pretrained: bool = True,
    pretrained_file: str | None = None,
    drop_rate: float = 0.0,
) -> nn.Module:
    """The network with a fresh `num_classes` head. Errors name the backbone or file."""
    if ":" in backbone:
        return _call_factory(backbone, num_classes, pretrained, pretrained_file)

    import timm

    check_backbone(backbone)
    kwargs: dict = {"num_classes": num_classes, "drop_rate": drop_rate}
    if pretrained_file:
        file = Path(pretrained_file).expanduser()
        if not file.is_file():
            raise ConfigError(f"pretrained_file not found: {file}")
        kwargs.update(pretrained=True, pretrained_cfg_overlay={"file": str(file.resolve())})
    else:
        kwargs["pretrained"] = pretrained
        problem = hub_weights_problem(backbone) if pretrained else None
        if problem:  # at once, not after the hub client's retries
            raise ConfigError(problem)
    # timm warns of a file's unexpected keys in one line of every key name; rockopt checks the file itself
    builder_log = logging.getLogger("timm.models._builder")
    level = builder_log.level
    if pretrained_file:
        builder_log.setLevel(logging.ERROR)
    try:
        model = timm.create_model(backbone, **kwargs)
    except RuntimeError as e:  # state-dict mismatch or unreadable checkpoint
        src = f"weights file {pretrained_file}" if pretrained_file else "pretrained weights"
        raise ConfigError(f"{src} do not fit backbone '{backbone}': {first_line(e)}") from None
    except OSError as e:  # hub unreachable or file problem
        if pretrained_file:
            raise ConfigError(f"weights file {pretrained_file}: {first_line(e)}") from None
        raise ConfigError(
            f"could not fetch pretrained weights for '{backbone}' ({type(e).__name__}); "
            "give a local file with --set pretrained_file=PATH, or --set pretrained=false"
        ) from None
    finally:
        builder_log.setLevel(level)
    if pretrained_file:
        _check_file_matches(model, Path(pretrained_file), backbone)
    if kwargs["pretrained"]:
        _zero_head(model)
    return model


def _zero_head(model: nn.Module) -> None:
    """Start a new head at zero. timm's random head init (e.g. EfficientNet's +-1/sqrt(classes))
    gives logits of several units on pretrained features: the first epochs are spent undoing it."""
    head = model.get_classifier() if hasattr(model, "get_classifier") else None
    if isinstance(head, nn.Linear):
        nn.init.zeros_(head.weight)
        if head.bias is not None:
            nn.init.zeros_(head.bias)


def normalization(model: nn.Module) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Mean and std the backbone was pretrained with (ImageNet's when unknown)."""
    cfg = getattr(model, "pretrained_cfg", None) or {}
    return tuple(cfg.get("mean", IMAGENET_MEAN)), tuple(cfg.get("std", IMAGENET_STD))


def to_device(model: nn.Module, device: torch.device, channels_last: bool) -> nn.Module:
    if channels_last and device.type == "cuda":
        return model.to(device, memory_format=torch.channels_last)
    return model.to(device)
