"""The benchmark harness: train every model on every cell for every seed, score it, report.

A *cell* is one row group of the paper's table: a training dataset (e.g. "Mixed") with its
train/test split and whether training augments. The harness takes cells holding ready
``DatasetDict``s (splits "train" and "test", CheXMix features), so it never needs to know how
they were built; :mod:`benchmark.cli` is the thin layer that calls ``load_chexmix``.

Layout of ``out_dir``::

    results.json  results.md  figures/*.png
    runs/init.json                                   initial weights of the whole grid (name or checkpoint path)
    runs/<cell>/<model>/seed<k>/checkpoint_epoch_NNN.pt

Seeds vary the model initialisation, the batch order and the augmentation; the split stays the
one the cell was built with, so every model and seed is scored on the same test images.
Weights: "imagenet", "coco" or "none" initialise every run; a checkpoint PATH initialises from
its weights (the model's architecture must match) and trains ``epochs`` more; "last" resumes
each run from its newest checkpoint in ``out_dir`` (runs not yet started begin from the initial
weights runs/init.json records, a checkpoint path included).
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
from baselines.base import WEIGHT_CHOICES
from chexmix_dataset.atomic import write_json
from chexmix_dataset.errors import ChexmixInputError

from .checkpoints import load_model_state, newest_checkpoint, read_checkpoint, save_checkpoint
from .data import LesionDataset, default_workers, make_loader
from .evaluate import evaluate_split
from .train import make_scaler, resolve_device, train_one_epoch


@dataclass(frozen=True)
class BenchOptions:
    """Training options shared by every run (sizes in px)."""

    epochs: int = 10
    image_size: int = 512
    batch_size: int = 2
    seeds: int = 1
    weights: str = "none"  # imagenet | coco | none | last | PATH of a chexmix checkpoint
    device: str = "auto"  # auto | cpu | cuda
    workers: int | None = None  # DataLoader workers; None: benchmark.data.default_workers
    progress: bool = True


@dataclass(frozen=True)
class Cell:
    """One training setting of the paper's table and the data it trains and tests on."""

    training_dataset: str  # "X-rays only", "Mixed", or a config name
    config: str
    split: str  # "60/40"
    augment: bool
    dataset: datasets.DatasetDict = field(compare=False, repr=False)
    ct_fraction: float | None = None  # the share of training CXRs asked to be replaced (a sweep's x); None: default

    @property
    def slug(self) -> str:
        names = self.training_dataset if self.training_dataset == self.config else f"{self.training_dataset} {self.config}"
        name = re.sub(r"[^a-z0-9]+", "-", names.lower()).strip("-")
        return f"{name}-{self.split.replace('/', '-')}-{'aug' if self.augment else 'noaug'}"


@dataclass
class RunOutcome:
    """A trained and scored run: its results.json entry and the lesion areas its overlay shows.

    ``lesion_areas`` maps test row index -> (H, W) bool predicted lesion area at the image's size.
    """

    result: dict
    lesion_areas: dict[int, np.ndarray]


@dataclass(frozen=True)
class InitialWeights:
    """What every run of a grid starts from, unless it resumes from its own checkpoint.

    ``name`` is "imagenet", "coco", "none" or the absolute path of a chexmix checkpoint, whose
    loaded state is ``checkpoint`` (empty otherwise).
    """

    name: str
    checkpoint: dict = field(default_factory=dict, compare=False, repr=False)

    @property
    def structure(self) -> str:
        """The pretrained structure the networks are built with: "imagenet", "coco" or "none"."""
        return self.checkpoint.get("init_weights", self.name)


def check_cells(cells: list[Cell]) -> None:
    for cell in cells:
        for split in ("train", "test"):
            if split not in cell.dataset or len(cell.dataset[split]) == 0:
                raise ChexmixInputError(
                    f"config {cell.config} ({cell.training_dataset}) with split {cell.split} leaves the "
                    f"{split} split empty; use more data or another --split")


def check_options(options: BenchOptions, models: list[str], out_dir: Path) -> InitialWeights:
    """Validate everything before any data is loaded or output written; returns the initial weights."""
    for name, value in (("--epochs", options.epochs), ("--seeds", options.seeds), ("--batch-size", options.batch_size)):
        if value < 1:
            raise ChexmixInputError(f"{name} must be at least 1, got {value}")
    if options.image_size < 32:
        raise ChexmixInputError(f"--image-size must be at least 32 px, got {options.image_size}")
    if options.workers is not None and options.workers < 0:
        raise ChexmixInputError(f"--workers must be 0 or more, got {options.workers}")
    if not models:
        raise ChexmixInputError("--models names no model")
    resolve_device(options.device)
    initial = initial_weights(options.weights, out_dir)
    for spec in models:
        # Building without downloads checks variant, weights and image size for every model now.
        model = build_model(spec, image_size=options.image_size, download=False, weights=initial.structure)
        if initial.checkpoint:
            load_model_state(model, initial.checkpoint, initial.name)
    return initial


def initial_weights(weights: str, out_dir: Path) -> InitialWeights:
    """The grid's initial weights for ``--weights``; "last" reads those recorded in runs/init.json."""
    if weights in WEIGHT_CHOICES:
        return InitialWeights(weights)
    if weights != "last":
        path = Path(weights).absolute()
        return InitialWeights(str(path), read_checkpoint(path))
    record_path = out_dir / "runs" / "init.json"
    if not record_path.is_file():
        raise ChexmixInputError("--weights last found no earlier run to resume (runs/init.json is missing); "
                                "start with --weights imagenet, coco, none or PATH", out_dir)
    try:
        recorded = json.loads(record_path.read_text())["weights"]
        if not isinstance(recorded, str):
            raise TypeError
    except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError):
        raise ChexmixInputError("is not the record of a benchmark's initial weights (expected JSON "
                                '{"weights": NAME or PATH}); start again with --weights imagenet, coco, none or PATH',
                                record_path) from None
    if recorded in WEIGHT_CHOICES:
        return InitialWeights(recorded)
    if not Path(recorded).is_file():
        raise ChexmixInputError(f"the runs to resume started from checkpoint {recorded}, which no longer exists; "
                                "put it back or start again with another --weights", record_path)
    return InitialWeights(recorded, read_checkpoint(recorded))


def _model_slug(spec: str) -> str:
    return spec.replace(":", "-")


def train_run(cell: Cell, spec: str, seed: int, options: BenchOptions, run_dir: Path, device: torch.device,
              initial: InitialWeights) -> tuple[LesionModel, list[float]]:
    """Train one (cell, model, seed) run to ``options.epochs``, resuming where asked."""
    newest = newest_checkpoint(run_dir) if options.weights == "last" else None
    resume = read_checkpoint(newest) if newest else None
    start = resume or initial.checkpoint  # the checkpoint whose weights the run starts from, if any
    structure = start.get("init_weights", initial.structure)
    torch.manual_seed(seed)
    model = build_model(spec, image_size=options.image_size, weights=structure, download=not start)
    if start:
        load_model_state(model, start, newest if resume else initial.name)
    model.to(device)
    optimizer = model.make_optimizer()
    scaler = make_scaler(device)
    epoch_losses: list[float] = []
    if resume:
        optimizer.load_state_dict(resume["optimizer"])
        scaler.load_state_dict(resume["scaler"])
        epoch_losses = list(resume["epoch_losses"])
    workers = options.workers if options.workers is not None else default_workers(device)
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
            initial: InitialWeights) -> RunOutcome:
    run_dir = out_dir / "runs" / cell.slug / _model_slug(spec) / f"seed{seed}"
    run_dir.mkdir(parents=True, exist_ok=True)
    model, epoch_losses = train_run(cell, spec, seed, options, run_dir, device, initial)
    test = cell.dataset["test"]
    evaluation = evaluate_split(model, test, options.image_size, device, options.batch_size, options.progress)
    result = {
        "training_dataset": cell.training_dataset, "config": cell.config, "split": cell.split,
        "augment": cell.augment, "model": spec, "architecture": model.architecture, "seed": seed,
        "epochs": len(epoch_losses), "weights": options.weights, "initial_weights": initial.name,
        "init_weights": initial.structure, "image_size": options.image_size, "batch_size": options.batch_size,
        "device": str(device), "train_images": len(cell.dataset["train"]), "test_images": len(test),
        "ct_fraction": cell.ct_fraction,
        "train_ct_projections": sum(source == "ct_projection" for source in cell.dataset["train"]["source"]),
        "train_loss": epoch_losses, **evaluation.scores,
    }
    return RunOutcome(result, evaluation.lesion_areas)


def run_grid(cells: list[Cell], models: list[str], options: BenchOptions, out_dir: str | Path, *,
             initial: InitialWeights | None = None, engine: str = "local", address: str | None = None) -> dict:
    """Train and score ``models`` on every cell and seed; writes results and figures to ``out_dir``.

    ``initial`` is what :func:`check_options` returned for these options, if the caller checked
    them already. ``engine`` "ray" runs each (cell, model, seed) as a Ray task on the cluster at
    ``address`` (None: a local instance; see :mod:`.ray_grid`). Returns the content of results.json.
    """
    from .report import write_outputs  # matplotlib only once there is something to draw

    out_dir = Path(out_dir)
    check_cells(cells)
    if initial is None:
        initial = check_options(options, models, out_dir)
    device = resolve_device(options.device)
    if options.weights != "last":
        write_json(out_dir / "runs" / "init.json", {"weights": initial.name})
    plan = [(cell, spec, seed) for cell in cells for spec in models for seed in range(options.seeds)]
    if engine == "ray":
        from .ray_grid import run_plan_on_ray

        runs = run_plan_on_ray(plan, options, out_dir, initial, address)
    else:
        runs = [run_one(cell, spec, seed, options, out_dir, device, initial)
                for cell, spec, seed in tqdm(plan, desc="runs", disable=not options.progress)]
    outcomes: list[tuple[Cell, RunOutcome]] = [(cell, outcome) for (cell, _, _), outcome in zip(plan, runs)]
    return write_outputs(out_dir, outcomes, options={**asdict(options), "initial_weights": initial.name})


def run_benchmark(dataset_dict: datasets.DatasetDict, models: list[str], options: BenchOptions,
                  out_dir: str | Path, *, training_dataset: str = "custom", config: str = "custom",
                  split: str = "custom", augment: bool = True) -> dict:
    """:func:`run_grid` on a single cell."""
    cell = Cell(training_dataset, config, split, augment, dataset_dict)
    return run_grid([cell], models, options, out_dir)
