"""A trained model as shareable files: ``model.safetensors`` (weights) + ``config.json``.

This is what ``chexmix predict`` and ``chexmix publish-model`` read, and what a Hugging Face
model repository of CheXMix holds. Training state for resuming (optimizer, AMP scaler) stays in
the run folder's checkpoint (:mod:`benchmark.checkpoints`), never here.

``config.json`` carries everything needed to rebuild and use the model::

    {"format": "chexmix-model/1", "architecture": "mask_rcnn:resnet101", "init_weights": "none",
     "image_size": 512, "threshold": 0.42, "threshold_kind": "instance score", ...}

plus free-form provenance (training settings, dataset composition, test scores) that
:mod:`benchmark.publish_model` writes into the model card.

``--weights`` forms: a folder holding both files, the ``model.safetensors`` file itself (its
``config.json`` beside it), or ``hub:ORG/NAME`` (optionally ``hub:ORG/NAME@REVISION``),
downloaded through ``huggingface_hub`` into its cache.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from safetensors.torch import load_file, save

from baselines import LesionModel, build_model
from chexmix_dataset.atomic import atomic_file
from chexmix_dataset.errors import ChexmixInputError, first_line

FORMAT = "chexmix-model/1"
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
HUB_PREFIX = "hub:"
REQUIRED_KEYS = ("architecture", "init_weights", "image_size", "threshold")


def save_model_files(folder: str | os.PathLike, model: LesionModel, config: dict) -> None:
    """Write ``model``'s weights and ``config`` (plus format and architecture) into ``folder``."""
    folder = Path(folder)
    state = {name: tensor.detach().cpu().contiguous() for name, tensor in model.state_dict().items()}
    full = {"format": FORMAT, "architecture": model.architecture, **config}
    missing = [key for key in REQUIRED_KEYS if key not in full]
    if missing:
        raise ValueError(f"model config lacks {', '.join(missing)}")
    with atomic_file(folder / WEIGHTS_FILE, "wb") as handle:
        handle.write(save(state, metadata={"format": "pt"}))
    with atomic_file(folder / CONFIG_FILE, "w") as handle:
        json.dump(full, handle, indent=2)
        handle.write("\n")


def resolve_model_folder(weights: str) -> Path:
    """The local folder holding ``model.safetensors`` and ``config.json`` for ``--weights``."""
    if weights.startswith(HUB_PREFIX):
        return _download_from_hub(weights[len(HUB_PREFIX):])
    path = Path(weights)
    if path.is_file() and path.name == WEIGHTS_FILE:
        path = path.parent
    if not path.is_dir():
        raise ChexmixInputError(f"--weights must be a folder with {WEIGHTS_FILE} and {CONFIG_FILE} (a chexmix bench "
                                "run's model folder or a publish-model tree), that model.safetensors file, or "
                                "hub:ORG/NAME", path)
    for name in (WEIGHTS_FILE, CONFIG_FILE):
        if not (path / name).is_file():
            raise ChexmixInputError(f"model folder lacks {name} (written by chexmix bench for each run, and by "
                                    "chexmix publish-model)", path)
    return path


def _download_from_hub(repo: str) -> Path:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HFValidationError

    repo_id, _, revision = repo.partition("@")
    try:
        folder = snapshot_download(repo_id, revision=revision or None, allow_patterns=[WEIGHTS_FILE, CONFIG_FILE])
    except HFValidationError as exc:
        raise ChexmixInputError(f"--weights hub:{repo}: not a Hub repository id ({exc})") from None
    except Exception as exc:  # noqa: BLE001 - offline, missing repo, HTTP errors: all one message
        detail = first_line(exc)
        raise ChexmixInputError(
            f"cannot download model hub:{repo} ({type(exc).__name__}: {detail}); offline, pass --weights DIR with a "
            f"local copy of the repository (a folder holding {WEIGHTS_FILE} and {CONFIG_FILE})") from None
    return Path(folder)


def read_model_config(folder: Path) -> dict:
    path = folder / CONFIG_FILE
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ChexmixInputError(f"cannot read model config as JSON: {exc}", path) from None
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise ChexmixInputError(f"not a chexmix model config (expected format {FORMAT})", path)
    missing = [key for key in REQUIRED_KEYS if key not in config]
    if missing:
        raise ChexmixInputError(f"model config lacks {', '.join(missing)}", path)
    return config


def load_model(weights: str) -> tuple[LesionModel, dict]:
    """The model ``--weights`` names, in eval mode on the CPU, with its threshold set; and its config."""
    folder = resolve_model_folder(weights)
    config = read_model_config(folder)
    try:
        model = build_model(config["architecture"], image_size=int(config["image_size"]),
                            weights=str(config["init_weights"]), download=False)
    except ChexmixInputError as exc:
        raise ChexmixInputError(f"cannot rebuild the model this config describes: {exc}", folder / CONFIG_FILE) from None
    try:
        state = load_file(str(folder / WEIGHTS_FILE))
        model.load_state_dict(state)
    except Exception as exc:  # noqa: BLE001 - safetensors and torch raise several types for bad files
        detail = first_line(exc)
        raise ChexmixInputError(f"weights do not load into {config['architecture']}: {detail}",
                                folder / WEIGHTS_FILE) from None
    model.threshold = float(config["threshold"])
    return model.eval(), config


def is_model_reference(weights: str) -> bool:
    """Whether ``--weights`` names model files (hub:ORG/NAME, a model folder or its safetensors)."""
    path = Path(weights)
    return weights.startswith(HUB_PREFIX) or path.is_dir() or path.name == WEIGHTS_FILE


def model_checkpoint(weights: str) -> dict:
    """Model files as the initial-weights checkpoint the benchmark harness starts runs from."""
    folder = resolve_model_folder(weights)
    config = read_model_config(folder)
    try:
        state = load_file(str(folder / WEIGHTS_FILE))
    except Exception as exc:  # noqa: BLE001 - safetensors raises several types for bad files
        detail = first_line(exc)
        raise ChexmixInputError(f"cannot read model weights: {detail}", folder / WEIGHTS_FILE) from None
    return {"architecture": config["architecture"], "init_weights": config["init_weights"], "model": state}

