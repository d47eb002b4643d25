"""Training throughput through the harness against the model's ceiling (called by
``python -m benchmark.speed train``).

*Harness*: images/s of :func:`benchmark.train.train_step` fed by the harness's DataLoader (decoding
rows, resizing, augmenting, batching, host-to-device copies). *Ceiling*: images/s of the same
steps on one batch already in device memory. Their ratio says how much the input pipeline
costs; the target on a GPU is at least 0.9.
"""

from __future__ import annotations

import argparse
import itertools
import time

import datasets
import torch

from baselines import build_model
from benchmark.data import LesionDataset, default_workers, make_loader
from benchmark.train import make_scaler, move_batch, resolve_device, train_step


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _images_per_second(steps: int, warmup: int, step, batch_size: int, device: torch.device) -> float:
    for _ in range(warmup):
        step()
    _synchronize(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    _synchronize(device)
    return steps * batch_size / (time.perf_counter() - start)


def run_train_speed(dataset_dict: datasets.DatasetDict | None = None, models: tuple[str, ...] = ("mask_rcnn", "unet"),
                    *, image_size: int = 512, batch_size: int = 4, steps: int = 20, warmup: int = 3,
                    device: str = "auto", workers: int | None = None, augment: bool = True) -> list[dict]:
    """Measure training images/s per model, through the harness and on in-memory tensors.

    Args:
        dataset_dict: data whose "train" split feeds the harness; None loads the ``sample``
            config at 80/20.
        models: model specs, NAME[:VARIANT].
        image_size: square training size in px.
        steps, warmup: timed and untimed optimizer steps for each measurement.
        workers: DataLoader workers; None as in the harness (:func:`benchmark.data.default_workers`).

    Returns:
        One dict per model: model, device, image_size, batch_size, workers, harness_images_per_s,
        ceiling_images_per_s, ratio (harness / ceiling).
    """
    if dataset_dict is None:
        from benchmark.cli import load_config

        dataset_dict, _ = load_config("sample", None, "80/20")
    target_device = resolve_device(device)
    if workers is None:
        workers = default_workers(target_device)
    dataset = LesionDataset(dataset_dict["train"], image_size, augment=augment, seed=0)
    rows = []
    for spec in models:
        torch.manual_seed(0)
        model = build_model(spec, image_size=image_size, weights="none").to(target_device).train()
        optimizer = model.make_optimizer()
        scaler = make_scaler(target_device)

        loader = make_loader(dataset, batch_size, shuffle=True, seed=0, workers=workers,
                             pin_memory=target_device.type == "cuda")

        def batches():
            for epoch in itertools.count():
                loader.sampler.set_epoch(epoch)
                yield from loader

        stream = batches()

        def harness_step() -> None:
            images, targets = move_batch(*next(stream), target_device)
            train_step(model, optimizer, scaler, None, images, targets)

        resident = move_batch(*next(iter(loader)), target_device)

        def ceiling_step() -> None:
            train_step(model, optimizer, scaler, None, *resident)

        ceiling = _images_per_second(steps, warmup, ceiling_step, batch_size, target_device)
        harness = _images_per_second(steps, warmup, harness_step, batch_size, target_device)
        rows.append({"model": spec, "device": str(target_device), "image_size": image_size,
                     "batch_size": batch_size, "workers": workers, "harness_images_per_s": harness,
                     "ceiling_images_per_s": ceiling, "ratio": harness / ceiling})
    return rows


def format_train_speed_table(rows: list[dict]) -> str:
    """The rows of :func:`run_train_speed` as a Markdown table."""
    lines = ["| model | device | size px | batch | workers | harness img/s | ceiling img/s | ratio |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['device']} | {r['image_size']} | {r['batch_size']} | {r['workers']} | "
                     f"{r['harness_images_per_s']:.2f} | {r['ceiling_images_per_s']:.2f} | {r['ratio']:.2f} |")
    return "\n".join(lines)


def print_train_speed_table(rows: list[dict]) -> None:
    print(format_train_speed_table(rows))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default="sample", help="CheXMix config whose train split feeds the harness")
    parser.add_argument("--data-dir", help="the builder's source folder (not needed for sample)")
    parser.add_argument("--models", default="mask_rcnn,unet")
    parser.add_argument("--image-size", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--workers", type=int)


def run(args: argparse.Namespace) -> int:
    from benchmark.cli import load_config

    dataset_dict, _ = load_config(args.config, args.data_dir, "80/20")  # (rows, download records)
    rows = run_train_speed(dataset_dict,
                           tuple(m.strip() for m in args.models.split(",") if m.strip()),
                           image_size=args.image_size, batch_size=args.batch_size, steps=args.steps,
                           warmup=args.warmup, device=args.device, workers=args.workers)
    print_train_speed_table(rows)
    return 0
