"""Training checkpoints: written atomically after every epoch, read back with clean errors.

A run's folder keeps its newest checkpoint, ``checkpoint_epoch_NNN.pt`` (NNN = epochs done); the
previous one is deleted only once the new one is in place, so a run killed at any moment loses at
most the epoch in progress.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import torch

from baselines import LesionModel
from chexmix_dataset.atomic import atomic_file
from chexmix_dataset.errors import ChexmixInputError

FORMAT = "chexmix-bench-checkpoint/1"
_NAME = re.compile(r"checkpoint_epoch_(\d+)\.pt$")


def save_checkpoint(run_dir: Path, *, model: LesionModel, optimizer: torch.optim.Optimizer,
                    scaler: torch.amp.GradScaler, epoch: int, epoch_losses: list[float],
                    init_weights: str) -> Path:
    """Write the state after ``epoch`` finished epochs; returns the checkpoint's path."""
    state = {
        "format": FORMAT,
        "architecture": model.architecture,
        "init_weights": init_weights,  # fixes the network's structure (frozen norm or not)
        "epoch": epoch,
        "epoch_losses": list(epoch_losses),
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scaler": scaler.state_dict(),
    }
    path = run_dir / f"checkpoint_epoch_{epoch:03d}.pt"
    with atomic_file(path, "wb") as handle:
        torch.save(state, handle)
    for older in run_dir.glob("checkpoint_epoch_*.pt"):
        if older != path:
            older.unlink(missing_ok=True)
    return path


def newest_checkpoint(run_dir: Path) -> Path | None:
    """The checkpoint with the most finished epochs in ``run_dir``, or None."""
    found = [(int(m.group(1)), p) for p in run_dir.glob("checkpoint_epoch_*.pt") if (m := _NAME.search(p.name))]
    return max(found)[1] if found else None


def read_checkpoint(path: str | os.PathLike) -> dict:
    """Load a checkpoint written by :func:`save_checkpoint` onto the CPU."""
    path = Path(path)
    if not path.is_file():
        raise ChexmixInputError("checkpoint file does not exist (--weights takes imagenet, coco, none, last or "
                                "the path of a chexmix checkpoint)", path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for truncated or foreign files
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ChexmixInputError(f"cannot read checkpoint (truncated or not a torch file?): {detail}", path) from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ChexmixInputError(f"not a chexmix bench checkpoint (expected format {FORMAT})", path)
    return state


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
                                f"{str(exc).splitlines()[0]}", path) from None
