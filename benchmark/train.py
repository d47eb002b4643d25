"""Optimizer steps, the same for every baseline: CUDA runs in mixed precision, CPU in fp32.

Schedule (per optimizer step): the learning rate rises linearly from 1 % to the model's rate
over the first 10 % of the steps (at most 500), then falls along a cosine to 0 at the last step.
Gradients are clipped to a global L2 norm of 10 (after unscaling, under AMP) so that one bad
batch early in a from-scratch run cannot throw the weights far. A loss that is not finite stops
the run before it touches the weights. Under torchrun the step is data-parallel (:mod:`benchmark.ddp`).
"""

from __future__ import annotations

import math

import torch
from tqdm import tqdm

from baselines import LesionModel
from benchmark import ddp
from chexmix_dataset.errors import ChexmixInputError

WARMUP_FRACTION = 0.1
MAX_WARMUP_STEPS = 500
WARMUP_START_FACTOR = 0.01
GRADIENT_CLIP_NORM = 10.0


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


def load_scaler_state(scaler: torch.amp.GradScaler, state: dict) -> None:
    """Restore a scaler saved by a run on any device: a CPU run's (disabled, empty) state leaves
    a CUDA scaler at its initial scale, and a CUDA run's state is ignored by a CPU scaler."""
    if state and scaler.is_enabled():
        scaler.load_state_dict(state)


def lr_factor(step: int, total_steps: int) -> float:
    """Multiplier of the model's learning rate at optimizer step ``step`` (0-based) of ``total_steps``."""
    warmup = min(MAX_WARMUP_STEPS, max(1, round(WARMUP_FRACTION * total_steps)))
    if step < warmup:
        return WARMUP_START_FACTOR + (1 - WARMUP_START_FACTOR) * step / warmup
    progress = (step - warmup) / max(1, total_steps - warmup)
    return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def make_scheduler(optimizer: torch.optim.Optimizer, total_steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    """Warm-up then cosine decay over ``total_steps`` optimizer steps (see the module docstring)."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, total_steps))


def move_batch(images: torch.Tensor, targets: list[dict[str, torch.Tensor]], device: torch.device
               ) -> tuple[torch.Tensor, list[dict[str, torch.Tensor]]]:
    non_blocking = device.type == "cuda"
    return (images.to(device, non_blocking=non_blocking),
            [{k: v.to(device, non_blocking=non_blocking) for k, v in t.items()} for t in targets])


def train_step(model: LesionModel, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler,
               scheduler: torch.optim.lr_scheduler.LRScheduler | None, images: torch.Tensor,
               targets: list[dict[str, torch.Tensor]], description: str = "") -> float:
    """One optimizer step on a batch already on the model's device; returns the summed loss."""
    with torch.autocast(images.device.type, dtype=torch.float16, enabled=scaler.is_enabled()):
        losses = model.training_losses(images, targets)
        loss = sum(losses.values())
    # Over all data-parallel processes, so that all of them stop together on a non-finite loss.
    value = float(ddp.mean_over_processes(loss.detach().float()))
    if not math.isfinite(value):
        parts = ", ".join(f"{name} {float(part.detach()):.4g}" for name, part in losses.items())
        raise ChexmixInputError(
            f"{description}: training loss became {value} ({parts}; training diverged); check the training "
            "images and lesion masks, or lower the model's learning rate (make_optimizer in baselines/)")
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    parameters = [p for group in optimizer.param_groups for p in group["params"]]
    ddp.average_gradients(parameters)
    scaler.unscale_(optimizer)
    torch.nn.utils.clip_grad_norm_(parameters, GRADIENT_CLIP_NORM)
    scaler.step(optimizer)
    scaler.update()
    ddp.broadcast_from_main(model, buffers_only=True)
    if scheduler is not None:
        scheduler.step()
    return value


def train_one_epoch(model: LesionModel, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler,
                    loader: torch.utils.data.DataLoader, device: torch.device, *,
                    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None, description: str = "",
                    progress: bool = True) -> list[float]:
    """Train over ``loader`` once, stepping ``scheduler`` after every optimizer step; returns the
    loss of every step."""
    model.train()
    step_losses = []
    for images, targets in tqdm(loader, desc=description, leave=False, disable=not progress):
        images, targets = move_batch(images, targets, device)
        step_losses.append(train_step(model, optimizer, scaler, scheduler, images, targets, description))
    return step_losses
