"""The benchmark harness: train every model on every cell for every seed, score it, report.

A *cell* is one row group of the paper's table: a training dataset (e.g. "Mixed") with its
train/test split and whether training augments. The harness takes cells holding ready
``DatasetDict``s (splits "train" and "test", CheXMix features), so it never needs to know how
they were built; :mod:`benchmark.cli` is the thin layer that calls ``load_chexmix``.

Layout of ``out_dir``::

    results.json  results.md  figures/*.png
    runs/init.json                                   initial weights of the whole grid
    runs/<cell>/<model>/seed<k>/checkpoint_epoch_NNN.pt

Seeds vary the model initialisation, the batch order and the augmentation; the split stays the
one the cell was built with, so every model and seed is scored on the same test images.
Weights: "imagenet", "coco" or "none" initialise every run; a checkpoint PATH initialises from
its weights (the model's architecture must match) and trains ``epochs`` more; "last" resumes
each run from its newest checkpoint in ``out_dir`` (runs not yet started begin as first asked).
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

import datasets
import numpy as np
import torch
from tqdm import tqdm

from baselines import LesionModel, build_model
from chexmix_dataset.atomic import write_json
from chexmix_dataset.errors import ChexmixInputError

from .checkpoints import load_model_state, newest_checkpoint, read_checkpoint, save_checkpoint
from .data import LesionDataset, make_loader
from .evaluate import ImagePrediction, predict_split, score_split
from .train import make_scaler, resolve_device, train_one_epoch

PRETRAINED_CHOICES = ("imagenet", "coco", "none")


@dataclass(frozen=True)
class BenchOptions:
    """Training options shared by every run (sizes in px)."""

    epochs: int = 10
    image_size: int = 512
    batch_size: int = 2
    seeds: int = 1
    weights: str = "none"  # imagenet | coco | none | last | PATH of a chexmix checkpoint
    device: str = "auto"  # auto | cpu | cuda
    workers: int | None = None  # DataLoader workers; None: 0 on CPU, up to 8 on CUDA
    progress: bool = True


@dataclass(frozen=True)
class Cell:
    """One training setting of the paper's table and the data it trains and tests on."""

    training_dataset: str  # "X-rays only", "Mixed", or a config name
    config: str
    split: str  # "60/40"
    augment: bool
    dataset: datasets.DatasetDict = field(compare=False, repr=False)

    @property
    def slug(self) -> str:
        names = self.training_dataset if self.training_dataset == self.config else f"{self.training_dataset} {self.config}"
        name = re.sub(r"[^a-z0-9]+", "-", names.lower()).strip("-")
        return f"{name}-{self.split.replace('/', '-')}-{'aug' if self.augment else 'noaug'}"


@dataclass
class RunOutcome:
    """A trained and scored run: its results.json entry and its test predictions."""

    result: dict
    predictions: list[ImagePrediction]


def check_cells(cells: list[Cell]) -> None:
    for cell in cells:
        for split in ("train", "test"):
            if split not in cell.dataset or len(cell.dataset[split]) == 0:
                raise ChexmixInputError(
                    f"config {cell.config} ({cell.training_dataset}) with split {cell.split} leaves the "
                    f"{split} split empty; use more data or another --split")


def check_options(options: BenchOptions, models: list[str], out_dir: Path) -> dict:
    """Validate everything before any output is written; returns the checkpoint state for PATH."""
    for name, value in (("--epochs", options.epochs), ("--seeds", options.seeds), ("--batch-size", options.batch_size)):
        if value < 1:
            raise ChexmixInputError(f"{name} must be at least 1, got {value}")
    if options.image_size < 32:
        raise ChexmixInputError(f"--image-size must be at least 32 px, got {options.image_size}")
    if not models:
        raise ChexmixInputError("--models names no model")
    resolve_device(options.device)
    path_state = {}
    if options.weights == "last":
        if not (out_dir / "runs" / "init.json").is_file():
            raise ChexmixInputError("--weights last found no earlier run to resume (runs/init.json is missing); "
                                    "start with --weights imagenet, coco or none", out_dir)
    elif options.weights not in PRETRAINED_CHOICES:
        path_state = read_checkpoint(options.weights)
    for spec in models:
        # Building without downloads checks variant, weights and image size for every model now.
        model = build_model(spec, image_size=options.image_size, download=False,
                            weights=path_state.get("init_weights", _first_weights(options, out_dir)))
        if path_state:
            load_model_state(model, path_state, options.weights)
    return path_state


def _first_weights(options: BenchOptions, out_dir: Path) -> str:
    if options.weights == "last":
        return json.loads((out_dir / "runs" / "init.json").read_text())["weights"]
    return options.weights if options.weights in PRETRAINED_CHOICES else "none"


def _model_slug(spec: str) -> str:
    return spec.replace(":", "-")


def train_run(cell: Cell, spec: str, seed: int, options: BenchOptions, run_dir: Path, device: torch.device,
              init_weights: str, path_state: dict) -> tuple[LesionModel, list[float]]:
    """Train one (cell, model, seed) run to ``options.epochs``, resuming where asked."""
    newest = newest_checkpoint(run_dir) if options.weights == "last" else None
    resume = read_checkpoint(newest) if newest else None
    start = resume or path_state  # the checkpoint whose weights the run starts from, if any
    structure = start.get("init_weights", init_weights)
    torch.manual_seed(seed)
    model = build_model(spec, image_size=options.image_size, weights=structure, download=not start)
    if start:
        load_model_state(model, start, newest if resume else options.weights)
    model.to(device)
    optimizer = model.make_optimizer()
    scaler = make_scaler(device)
    epoch_losses: list[float] = []
    if resume:
        optimizer.load_state_dict(resume["optimizer"])
        scaler.load_state_dict(resume["scaler"])
        epoch_losses = list(resume["epoch_losses"])
    workers = options.workers if options.workers is not None else (min(8, torch.get_num_threads()) if device.type == "cuda" else 0)
    dataset = LesionDataset(cell.dataset["train"], options.image_size, augment=cell.augment, seed=seed)
    loader = make_loader(dataset, options.batch_size, shuffle=True, seed=seed, workers=workers,
                         pin_memory=device.type == "cuda")
    for epoch in range(len(epoch_losses), options.epochs):
        torch.manual_seed(seed * 100_003 + epoch)  # sampling inside the models (RPN) resumes identically
        loader.sampler.set_epoch(epoch)
        steps = train_one_epoch(model, optimizer, scaler, loader, device, progress=options.progress,
                                description=f"{cell.slug} {spec} seed {seed} epoch {epoch + 1}/{options.epochs}")
        epoch_losses.append(float(np.mean(steps)))
        save_checkpoint(run_dir, model=model, optimizer=optimizer, scaler=scaler, epoch=epoch + 1,
                        epoch_losses=epoch_losses, init_weights=structure)
    return model, epoch_losses


def run_one(cell: Cell, spec: str, seed: int, options: BenchOptions, out_dir: Path, device: torch.device,
            init_weights: str, path_state: dict) -> RunOutcome:
    run_dir = out_dir / "runs" / cell.slug / _model_slug(spec) / f"seed{seed}"
    run_dir.mkdir(parents=True, exist_ok=True)
    model, epoch_losses = train_run(cell, spec, seed, options, run_dir, device, init_weights, path_state)
    test = cell.dataset["test"]
    predictions = predict_split(model, test, options.image_size, device, options.batch_size, options.progress)
    result = {
        "training_dataset": cell.training_dataset, "config": cell.config, "split": cell.split,
        "augment": cell.augment, "model": spec, "architecture": model.architecture, "seed": seed,
        "epochs": len(epoch_losses), "weights": options.weights, "init_weights": init_weights,
        "image_size": options.image_size, "batch_size": options.batch_size, "device": str(device),
        "train_images": len(cell.dataset["train"]), "test_images": len(test),
        "train_loss": epoch_losses, **score_split(test, predictions),
    }
    return RunOutcome(result, predictions)


def run_grid(cells: list[Cell], models: list[str], options: BenchOptions, out_dir: str | Path) -> dict:
    """Train and score ``models`` on every cell and seed; writes results and figures to ``out_dir``.

    Returns the content of results.json.
    """
    from .report import write_outputs  # matplotlib only once there is something to draw

    out_dir = Path(out_dir)
    check_cells(cells)
    path_state = check_options(options, models, out_dir)
    device = resolve_device(options.device)
    init_weights = _first_weights(options, out_dir)
    if options.weights != "last":
        write_json(out_dir / "runs" / "init.json", {"weights": init_weights})
    outcomes: list[tuple[Cell, RunOutcome]] = []
    plan = [(cell, spec, seed) for cell in cells for spec in models for seed in range(options.seeds)]
    for cell, spec, seed in tqdm(plan, desc="runs", disable=not options.progress):
        outcomes.append((cell, run_one(cell, spec, seed, options, out_dir, device, init_weights, path_state)))
    return write_outputs(out_dir, outcomes, options=asdict(options))


def run_benchmark(dataset_dict: datasets.DatasetDict, models: list[str], options: BenchOptions,
                  out_dir: str | Path, *, training_dataset: str = "custom", config: str = "custom",
                  split: str = "custom", augment: bool = True) -> dict:
    """:func:`run_grid` on a single cell."""
    cell = Cell(training_dataset, config, split, augment, dataset_dict)
    return run_grid([cell], models, options, out_dir)
