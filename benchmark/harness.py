"""The benchmark harness: train every model on every cell for every seed, score it, report.

A *cell* is one row group of the paper's table: a training dataset (e.g. "Mixed") with its
train/test split and whether training augments. The harness takes cells holding ready
``DatasetDict``s (splits "train" and "test", CheXMix features), so it never needs to know how
they were built; :mod:`benchmark.cli` is the thin layer that calls ``load_chexmix``.

Layout of ``out_dir``::

    results.json  results.md  figures/*.png
    runs/init.json                                   initial weights of the whole grid (name or checkpoint path)
    runs/<cell>/<model>/seed<k>/last.pt, best.pt        see benchmark.checkpoints
    runs/<cell>/<model>/seed<k>/model/                  the scored model for predict (benchmark.run_export)

Seeds vary the model initialisation, the batch order and the augmentation; the split stays the
one the cell was built with, so every model and seed is scored on the same test images. Each
run trains on its training split less a patient-level validation part, which chooses the
threshold of the lesion area and the epoch whose weights are scored (see
:mod:`benchmark.validation`; results.json records the threshold and the rule that chose it).
Weights: "imagenet", "coco" or "none" initialise every run; a checkpoint PATH initialises from
its weights (the model's architecture must match) and trains ``epochs`` more; "last" resumes
each run from its last.pt in ``out_dir`` (refused if the run's settings changed) (runs not yet started begin from the initial
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
from chexmix_dataset.atomic import check_replaceable, write_json
from chexmix_dataset.composition import split_composition
from chexmix_dataset.errors import ChexmixInputError

from benchmark.checkpoints import (BEST, LAST, check_settings, checkpoint_state, estimated_sizes_mb, load_model_state,
                          read_checkpoint, write_checkpoint)
from benchmark.data import LesionDataset, default_workers, make_loader
from benchmark.evaluate import evaluate_split
from benchmark.model_files import is_model_reference, model_checkpoint
from benchmark.run_export import write_run_model
from benchmark.train import load_scaler_state, make_scaler, make_scheduler, resolve_device, train_one_epoch
from benchmark.validation import (DEFAULT_THRESHOLD, MIN_TRAIN_IMAGES, THRESHOLDS, VALIDATION_FRACTION, TrainValidation,
                         best_threshold, split_validation, validation_ious)


#: what a benchmark writes at the top of --out (see the module docstring).
BENCH_OUTPUTS = ("runs", "results.json", "results.md", "figures")


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
    downloads: tuple[dict, ...] = field(default=(), compare=False)  # what the builder downloaded, with sha256

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
    # --out holds a benchmark's own outputs (resumed with --weights last) or nothing else.
    check_replaceable(out_dir, BENCH_OUTPUTS)
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
        if is_model_reference(weights):  # a model folder or hub:ORG/NAME (benchmark.model_files)
            name = weights if weights.startswith("hub:") else str(Path(weights).absolute())
            return InitialWeights(name, model_checkpoint(weights))
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
    if recorded.startswith("hub:") or Path(recorded).is_dir():
        return InitialWeights(recorded, model_checkpoint(recorded))
    if not Path(recorded).is_file():
        raise ChexmixInputError(f"the runs to resume started from checkpoint {recorded}, which no longer exists; "
                                "put it back or start again with another --weights", record_path)
    return InitialWeights(recorded, read_checkpoint(recorded))


def _model_slug(spec: str) -> str:
    return spec.replace(":", "-")


def run_settings(cell: Cell, seed: int, options: BenchOptions, parts: TrainValidation) -> dict:
    """What a run's checkpoints must agree on to be resumed (sizes in px)."""
    return {"image_size": options.image_size, "batch_size": options.batch_size, "epochs": options.epochs,
            "augment": cell.augment, "config": cell.config, "split": cell.split, "seed": seed,
            "train_images": len(parts.train), "validation_images": len(parts.validation)}


@dataclass
class TrainedRun:
    """A trained model, set to the weights and threshold to score, and how they were chosen.

    ``history`` holds per epoch "train_loss" and, with a validation part, "validation_iou" (at
    that epoch's best threshold) and "validation_threshold"; ``best`` the chosen epoch, its
    validation IoU (None without a validation part), threshold and IoU at every threshold.
    """

    model: LesionModel
    history: dict
    best: dict
    parts: TrainValidation


def train_run(cell: Cell, spec: str, seed: int, options: BenchOptions, run_dir: Path, device: torch.device,
              initial: InitialWeights) -> TrainedRun:
    """Train one (cell, model, seed) run to ``options.epochs``, resuming where asked; the model
    returned holds the best weights by validation IoU and the threshold chosen with them."""
    train = cell.dataset["train"]
    parts = split_validation(train)
    settings = run_settings(cell, seed, options, parts)
    last_path = run_dir / LAST
    resume = read_checkpoint(last_path) if options.weights == "last" and last_path.is_file() else None
    if resume:
        check_settings(resume, settings, last_path)
    start = resume or initial.checkpoint  # the checkpoint whose weights the run starts from, if any
    structure = start.get("init_weights", initial.structure)
    torch.manual_seed(seed)
    model = build_model(spec, image_size=options.image_size, weights=structure, download=not start)
    if start:
        load_model_state(model, start, last_path if resume else initial.name)
    model.to(device)
    workers = options.workers if options.workers is not None else default_workers(device)
    dataset = LesionDataset(train.select(parts.train), options.image_size, augment=cell.augment, seed=seed,
                            progress=options.progress)
    loader = make_loader(dataset, options.batch_size, shuffle=True, seed=seed, workers=workers,
                         pin_memory=device.type == "cuda")
    validation_loader = make_loader(LesionDataset(train.select(parts.validation), options.image_size),
                                    options.batch_size, shuffle=False, seed=0, workers=0) if parts.validation else None
    optimizer = model.make_optimizer()
    scaler = make_scaler(device)
    scheduler = make_scheduler(optimizer, options.epochs * len(loader))
    history: dict = {"train_loss": [], "validation_iou": [], "validation_threshold": []}
    best: dict = {"epoch": 0, "validation_iou": None, "threshold": DEFAULT_THRESHOLD, "iou_by_threshold": None}
    if resume:
        optimizer.load_state_dict(resume["optimizer"])  # moves the moments to the parameters' device
        load_scaler_state(scaler, resume["scaler"])
        scheduler.load_state_dict(resume["scheduler"])
        history, best = resume["history"], resume["best"]
    common = {"init_weights": structure, "settings": settings}
    for epoch in range(len(history["train_loss"]), options.epochs):
        torch.manual_seed(seed * 100_003 + epoch)  # sampling inside the models (RPN) resumes identically
        loader.sampler.set_epoch(epoch)
        steps = train_one_epoch(model, optimizer, scaler, loader, device, scheduler=scheduler,
                                progress=options.progress,
                                description=f"{cell.slug} {spec} seed {seed} epoch {epoch + 1}/{options.epochs}")
        history["train_loss"].append(float(np.mean(steps)))
        improved = validation_loader is None
        if validation_loader is not None:
            ious = validation_ious(model, validation_loader, device)
            threshold, validation_iou = best_threshold(ious)
            history["validation_iou"].append(validation_iou)
            history["validation_threshold"].append(threshold)
            improved = best["validation_iou"] is None or validation_iou > best["validation_iou"]
            if improved:
                best = {"epoch": epoch + 1, "validation_iou": validation_iou, "threshold": threshold,
                        "iou_by_threshold": ious}
        else:
            best = {**best, "epoch": epoch + 1}
        if improved:
            model.threshold = best["threshold"]
            write_checkpoint(run_dir / BEST, checkpoint_state(model, epoch=epoch + 1, **common))
        write_checkpoint(last_path, checkpoint_state(
            model, epoch=epoch + 1, optimizer=optimizer.state_dict(), scaler=scaler.state_dict(),
            scheduler=scheduler.state_dict(), history=history, best=best, **common))
    if best["epoch"] != len(history["train_loss"]):
        load_model_state(model, read_checkpoint(run_dir / BEST), run_dir / BEST)
    model.threshold = best["threshold"]
    return TrainedRun(model, history, best, parts)


def run_one(cell: Cell, spec: str, seed: int, options: BenchOptions, out_dir: Path, device: torch.device,
            initial: InitialWeights) -> RunOutcome:
    run_dir = run_directory(out_dir, cell, spec, seed)
    run_dir.mkdir(parents=True, exist_ok=True)
    trained = train_run(cell, spec, seed, options, run_dir, device, initial)
    model = trained.model
    test = cell.dataset["test"]
    evaluation = evaluate_split(model, test, options.image_size, device, options.batch_size, options.progress)
    result = {
        "training_dataset": cell.training_dataset, "config": cell.config, "split": cell.split,
        "augment": cell.augment, "model": spec, "architecture": model.architecture, "seed": seed,
        "epochs": len(trained.history["train_loss"]), "weights": options.weights, "initial_weights": initial.name,
        "init_weights": initial.structure, "image_size": options.image_size, "batch_size": options.batch_size,
        "device": str(device), "train_images": len(trained.parts.train),
        "validation_images": len(trained.parts.validation), "test_images": len(test),
        "ct_fraction": cell.ct_fraction,
        "train_ct_projections": sum(source == "ct_projection" for source in cell.dataset["train"]["source"]),
        "train_loss": trained.history["train_loss"], "validation_iou": trained.history["validation_iou"],
        "threshold": model.threshold, "threshold_kind": model.threshold_kind, "threshold_rule": trained.parts.rule,
        "best_epoch": trained.best["epoch"], "validation_iou_by_threshold": (
            None if trained.best["iou_by_threshold"] is None
            else dict(zip(map(str, THRESHOLDS), trained.best["iou_by_threshold"]))),
        "train_composition": split_composition(cell.dataset["train"]),
        "test_composition": split_composition(test), "downloads": list(cell.downloads),
        **evaluation.scores,
    }
    outcome = RunOutcome(result, evaluation.lesion_areas)
    write_run_model(run_dir, cell, outcome, model)
    return outcome


def run_directory(out_dir: Path, cell: Cell, spec: str, seed: int) -> Path:
    return out_dir / "runs" / cell.slug / _model_slug(spec) / f"seed{seed}"


def check_resumable(cells: list[Cell], models: list[str], options: BenchOptions, out_dir: Path) -> None:
    """With ``--weights last``, refuse before any training if a run's last.pt has other settings."""
    if options.weights != "last":
        return
    for cell in cells:
        parts = split_validation(cell.dataset["train"])
        for spec in models:
            for seed in range(options.seeds):
                path = run_directory(out_dir, cell, spec, seed) / LAST
                if path.is_file():
                    check_settings(read_checkpoint(path), run_settings(cell, seed, options, parts), path)


def describe_plan(cells: list[Cell], models: list[str], options: BenchOptions, device: torch.device,
                  initial: InitialWeights, out_dir: Path) -> str:
    """What a grid will do and write, printed before it starts (sizes in px and MB)."""
    runs = len(cells) * len(models) * options.seeds
    lines = [f"plan: {len(cells)} cell(s) x {len(models)} model(s) x {options.seeds} seed(s) = {runs} run(s); "
             f"{options.epochs} epoch(s) each at {options.image_size} px, batch {options.batch_size}, on {device}; "
             f"weights {initial.name}",
             f"validation: each run holds out {VALIDATION_FRACTION:.0%} of its training images (patient-level) "
             f"to choose its threshold and best epoch, if it has at least {MIN_TRAIN_IMAGES}"]
    total = 0.0
    for spec in models:
        with torch.device("meta"):  # sizes only: no memory, no initialisation
            last_mb, best_mb = estimated_sizes_mb(build_model(spec, image_size=options.image_size,
                                                              weights=initial.structure, download=False))
        # model/model.safetensors holds the scored weights once more, at about best.pt's size.
        total += (last_mb + 2 * best_mb) * len(cells) * options.seeds
        lines.append(f"checkpoints of {spec}: last.pt about {last_mb:,.0f} MB (with optimizer state) + "
                     f"best.pt and model/model.safetensors about {best_mb:,.0f} MB each, per run")
    lines.append(f"about {total / 1000:,.2f} GB of checkpoints and model files in all under {out_dir / 'runs'}")
    for cell in cells:
        lines.append(f"  cell {cell.slug}: {len(cell.dataset['train'])} training, {len(cell.dataset['test'])} test images")
    return "\n".join(lines)


def run_grid(cells: list[Cell], models: list[str], options: BenchOptions, out_dir: str | Path, *,
             initial: InitialWeights | None = None, engine: str = "local", address: str | None = None) -> dict:
    """Train and score ``models`` on every cell and seed; writes results and figures to ``out_dir``.

    ``initial`` is what :func:`check_options` returned for these options, if the caller checked
    them already. ``engine`` "ray" runs each (cell, model, seed) as a Ray task on the cluster at
    ``address`` (None: a local instance; see :mod:`.ray_grid`). Returns the content of results.json.
    """
    from benchmark.report import write_outputs  # matplotlib only once there is something to draw

    out_dir = Path(out_dir)
    check_cells(cells)
    if initial is None:
        initial = check_options(options, models, out_dir)
    device = resolve_device(options.device)
    check_resumable(cells, models, options, out_dir)
    if options.progress:
        print(describe_plan(cells, models, options, device, initial, out_dir), flush=True)
    if options.weights != "last":
        write_json(out_dir / "runs" / "init.json", {"weights": initial.name})
    plan = [(cell, spec, seed) for cell in cells for spec in models for seed in range(options.seeds)]
    if engine == "ray":
        from benchmark.ray_grid import run_plan_on_ray

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
