"""Training checkpoints: two files per run, written atomically, read back with clean errors.

- ``last.pt``, rewritten after every epoch: weights, optimizer, AMP scaler and learning-rate
  schedule, the losses and validation scores so far; what ``--weights last`` resumes from. A
  run killed at any moment loses at most the epoch in progress.
- ``best.pt``, rewritten when an epoch beats the best validation IoU so far: weights only, with
  the threshold chosen at that epoch (no validation part: the last epoch's weights).

Both record the run's settings (image size, batch size, epochs, augmentation, split, seed,
validation part); resuming with other settings is refused, since the run would silently
become a mix of two. Either file serves as ``--weights PATH`` (weights only are taken).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from baselines import LesionModel
from chexmix_dataset.atomic import atomic_file
from chexmix_dataset.errors import ChexmixInputError, first_line

FORMAT = "chexmix-bench-checkpoint/2"
LAST = "last.pt"
BEST = "best.pt"
BYTES_PER_MB = 1e6


def write_checkpoint(path: Path, state: dict) -> Path:
    """Write ``state`` (see :func:`checkpoint_state`) to ``path`` atomically."""
    with atomic_file(path, "wb") as handle:
        torch.save({"format": FORMAT, **state}, handle)
    return path


def checkpoint_state(model: LesionModel, *, init_weights: str, settings: dict, epoch: int, **extra) -> dict:
    """The common part of both checkpoints: weights, architecture, structure and settings."""
    return {"architecture": model.architecture, "init_weights": init_weights,  # fixes frozen norm or not
            "settings": dict(settings), "epoch": epoch, "threshold": model.threshold,
            "model": model.state_dict(), **extra}


def read_checkpoint(path: str | os.PathLike) -> dict:
    """Load a checkpoint onto the CPU (memory-mapped: reading its settings costs little)."""
    path = Path(path)
    if not path.is_file():
        raise ChexmixInputError("checkpoint file does not exist (--weights takes imagenet, coco, none, last or "
                                "the path of a chexmix checkpoint)", path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as exc:  # torch raises many types for truncated or foreign files
        detail = first_line(exc)
        raise ChexmixInputError(f"cannot read checkpoint (truncated or not a torch file?): {detail}", path) from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ChexmixInputError(f"not a chexmix bench checkpoint (expected format {FORMAT})", path)
    return state


def check_settings(state: dict, settings: dict, path: str | os.PathLike) -> None:
    """Refuse to resume ``state`` under settings other than those it was trained with."""
    # Older checkpoints: the builder's defaults, one process.
    recorded = {"dataset_options": {}, "processes": 1, **state.get("settings", {})}
    differ = [f"{name} {recorded.get(name)!r} (now {value!r})" for name, value in settings.items()
              if recorded.get(name) != value]
    if differ:
        raise ChexmixInputError(
            f"--weights last cannot resume this run with other settings: it was trained with {'; '.join(differ)}; "
            "repeat the original options, use another --out, or --weights PATH to train on from its weights", path)


def load_model_state(model: LesionModel, state: dict, path: str | os.PathLike) -> None:
    """Load ``state``'s weights into ``model``, refusing a checkpoint of another architecture."""
    if state["architecture"] != model.architecture:
        raise ChexmixInputError(
            f"checkpoint holds a {state['architecture']} model, not {model.architecture}; "
            "pick the matching --models or another checkpoint", path)
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as exc:
        raise ChexmixInputError(f"checkpoint weights do not fit {model.architecture}: "
                                f"{first_line(exc)}", path) from None


def estimated_sizes_mb(model: LesionModel) -> tuple[float, float]:
    """(last.pt, best.pt) sizes in MB for ``model`` trained with an Adam-type optimizer: weights
    and buffers, plus two moment tensors per trainable parameter in last.pt (fp32, 4 bytes)."""
    weights = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    moments = 2 * sum(p.numel() * 4 for p in model.parameters() if p.requires_grad)
    return (weights + moments) / BYTES_PER_MB, weights / BYTES_PER_MB
