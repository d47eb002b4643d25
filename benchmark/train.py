"""One training epoch, the same for every baseline: CUDA runs in mixed precision, CPU in fp32."""

from __future__ import annotations

import math

import torch
from tqdm import tqdm

from baselines import LesionModel
from chexmix_dataset.errors import ChexmixInputError


def resolve_device(name: str) -> torch.device:
    """"auto" picks CUDA when available, else CPU; "cuda" without a GPU is bad input."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ChexmixInputError("--device cuda asked for, but torch sees no CUDA GPU; use --device cpu or auto")
    if name not in ("cpu", "cuda"):
        raise ChexmixInputError(f"unknown --device {name!r}; choose auto, cpu or cuda")
    return torch.device(name)


def make_scaler(device: torch.device) -> torch.amp.GradScaler:
    return torch.amp.GradScaler(device.type, enabled=device.type == "cuda")


def move_batch(images: torch.Tensor, targets: list[dict[str, torch.Tensor]], device: torch.device
               ) -> tuple[torch.Tensor, list[dict[str, torch.Tensor]]]:
    non_blocking = device.type == "cuda"
    return (images.to(device, non_blocking=non_blocking),
            [{k: v.to(device, non_blocking=non_blocking) for k, v in t.items()} for t in targets])


def train_step(model: LesionModel, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler,
               images: torch.Tensor, targets: list[dict[str, torch.Tensor]]) -> float:
    """One optimizer step on a batch already on the model's device; returns the summed loss."""
    with torch.autocast(images.device.type, dtype=torch.float16, enabled=scaler.is_enabled()):
        losses = model.training_losses(images, targets)
        loss = sum(losses.values())
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
    return float(loss.detach())


def train_one_epoch(model: LesionModel, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler,
                    loader: torch.utils.data.DataLoader, device: torch.device, *, description: str = "",
                    progress: bool = True) -> list[float]:
    """Train over ``loader`` once; returns the loss of every step."""
    model.train()
    step_losses = []
    for images, targets in tqdm(loader, desc=description, leave=False, disable=not progress):
        images, targets = move_batch(images, targets, device)
        loss = train_step(model, optimizer, scaler, images, targets)
        if not math.isfinite(loss):
            raise ChexmixInputError(
                f"{description}: training loss became {loss} (training diverged); check the training images "
                "and lesion masks, or lower the model's learning rate (make_optimizer in baselines/)")
        step_losses.append(loss)
    return step_losses
