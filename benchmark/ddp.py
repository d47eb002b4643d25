"""Data-parallel training over the processes torchrun starts (``torchrun --nproc-per-node N -m benchmark``).

torchrun sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` and the rendezvous address; without them
(``WORLD_SIZE`` unset or 1) everything here is a no-op and a run is the single process it always
was. With N processes:

- every global batch of ``--batch-size`` images is split over the processes, each taking every
  N-th image of the epoch's shuffled order (:class:`benchmark.data.EpochSampler`), so that the
  N shares of step k are exactly the images of step k of a single process;
- after each backward pass the gradients are averaged over the processes (all-reduce), which is
  what ``DistributedDataParallel``'s reducer does; the baselines train through
  ``training_losses`` rather than ``forward``, so the averaging is explicit here;
- after each optimizer step, process 0's buffers (batch-norm running statistics) are broadcast,
  as ``DistributedDataParallel(broadcast_buffers=True)`` does at each forward;
- process 0 alone validates, writes checkpoints, scores the test split and writes the results.

Losses that average over images (Mask R-CNN's, the U-Net's cross-entropy) then give the
single-process gradient, except on an epoch's last step when N does not divide the training
images (the order is padded with its first images so that every process steps equally often);
batch statistics (batch norm, the U-Net's batch soft Dice) are taken over each process's share,
as with ``DistributedDataParallel`` without ``SyncBatchNorm``. Each process draws its own
random numbers inside the models (RPN sampling), seeded by (seed, epoch, rank).

The backend is NCCL on CUDA and gloo on CPU. Processes wait for process 0 while it builds the
datasets' cache (hours for a first build of ``mixed``), validates and scores, so the collective
timeout is long: ``CHEXMIX_DDP_TIMEOUT_S`` seconds (default 43200, 12 h).
"""

from __future__ import annotations

import contextlib
import os
from datetime import timedelta
from typing import Iterable, Iterator

import torch
import torch.distributed as dist

from chexmix_dataset.errors import ChexmixInputError

DEFAULT_TIMEOUT_S = 12 * 3600


def requested_world_size() -> int:
    """The number of processes torchrun started (1 when not started by torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1") or 1)


def init_from_env(device: str = "auto") -> None:
    """Join torchrun's process group when there is one (idempotent); pins each CUDA process to
    its ``LOCAL_RANK`` GPU. ``device``: the run's ``--device`` (cpu forces gloo)."""
    if requested_world_size() <= 1 or dist.is_initialized():
        return
    cuda = torch.cuda.is_available() and device != "cpu"
    if cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    timeout_s = collective_timeout_s()
    dist.init_process_group(backend="nccl" if cuda else "gloo", timeout=timedelta(seconds=timeout_s))


def collective_timeout_s() -> float:
    """``CHEXMIX_DDP_TIMEOUT_S`` (a positive number of seconds), else :data:`DEFAULT_TIMEOUT_S`."""
    text = os.environ.get("CHEXMIX_DDP_TIMEOUT_S", "").strip()
    if not text:
        return float(DEFAULT_TIMEOUT_S)
    try:
        seconds = float(text)
    except ValueError:
        seconds = float("nan")
    if not seconds > 0 or seconds == float("inf"):
        raise ChexmixInputError(f"CHEXMIX_DDP_TIMEOUT_S={text!r} must be a positive number of seconds")
    return seconds


def world_size() -> int:
    return dist.get_world_size() if dist.is_initialized() else 1


def rank() -> int:
    return dist.get_rank() if dist.is_initialized() else 0


def is_main() -> bool:
    """True in the process that validates, writes and reports (process 0, or the only one)."""
    return rank() == 0


def per_process_batch(batch_size: int, processes: int | None = None) -> int:
    """Images per process and step for a global ``batch_size``; it must divide evenly.
    ``processes``: the number of processes (default: the group's)."""
    processes = world_size() if processes is None else processes
    if batch_size % processes:
        raise ChexmixInputError(f"--batch-size {batch_size} must be a multiple of the {processes} processes "
                                "torchrun started (each takes an equal share of every batch)")
    return batch_size // processes


def check_launch(engine: str, batch_size: int, processes: int | None = None) -> None:
    """Refuse what cannot run under torchrun: Ray runs (each a Ray task of its own), and a global
    ``--batch-size`` that ``processes`` (default: torchrun's) cannot share evenly."""
    processes = requested_world_size() if processes is None else processes
    if processes <= 1:
        return
    if engine == "ray":
        raise ChexmixInputError("--engine ray runs each run as a Ray task; do not start it under torchrun")
    per_process_batch(batch_size, processes)


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


@contextlib.contextmanager
def main_process_first() -> Iterator[None]:
    """Process 0 runs the block first (e.g. builds the dataset into the shared cache), then the
    others run it (and find the cache built), so that no two processes write one cache."""
    if not is_main():
        barrier()
    yield
    if is_main():
        barrier()


def mean_over_processes(value: torch.Tensor) -> torch.Tensor:
    """The mean of a tensor over the processes (the tensor itself in a single process)."""
    if not dist.is_initialized():
        return value
    value = value.clone()
    dist.all_reduce(value, op=dist.ReduceOp.SUM)
    return value / dist.get_world_size()


def average_gradients(parameters: Iterable[torch.nn.Parameter]) -> None:
    """Replace every gradient by its mean over the processes (one flat all-reduce).

    A trainable parameter without a gradient in this process (a branch its images did not use)
    counts as a zero gradient, as in ``DistributedDataParallel``: every process then reduces
    tensors of the same size, in the same order.
    """
    if not dist.is_initialized():
        return
    trainable = [p for p in parameters if p.requires_grad]
    for p in trainable:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    grads = [p.grad for p in trainable]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    flat /= dist.get_world_size()
    offset = 0
    for g in grads:
        g.copy_(flat[offset:offset + g.numel()].view_as(g))
        offset += g.numel()


def broadcast_from_main(module: torch.nn.Module, *, buffers_only: bool = False) -> None:
    """Give every process process 0's buffers (batch-norm running statistics) and, unless
    ``buffers_only``, its parameters (same start even if a model's initialisation drew
    differently in one process)."""
    if not dist.is_initialized():
        return
    tensors = [*module.buffers(), *([] if buffers_only else module.parameters())]
    with torch.no_grad():
        for dtype in sorted({t.dtype for t in tensors}, key=str):  # one broadcast per dtype, not per tensor
            group = [t for t in tensors if t.dtype == dtype]
            flat = torch.cat([t.data.reshape(-1) for t in group])
            dist.broadcast(flat, src=0)
            offset = 0
            for t in group:
                t.data.copy_(flat[offset:offset + t.numel()].view_as(t))
                offset += t.numel()
