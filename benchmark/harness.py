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
from dataclasses import asdict
from pathlib import Path

import datasets
import torch
from tqdm import tqdm

from baselines import build_model
from baselines.base import WEIGHT_CHOICES
from benchmark import ddp
from benchmark.checkpoints import LAST, check_settings, estimated_sizes_mb, load_model_state, read_checkpoint
from benchmark.grid import BenchOptions, Cell, InitialWeights, RunOutcome
from benchmark.model_files import HUB_PREFIX, is_model_reference, model_checkpoint
from benchmark.runs import run_directory, run_one, run_settings
from benchmark.train import resolve_device
from benchmark.validation import MIN_TRAIN_IMAGES, VALIDATION_FRACTION, split_validation
from chexmix_dataset.atomic import check_replaceable, write_json
from chexmix_dataset.errors import ChexmixInputError

#: what a benchmark writes at the top of --out (see the module docstring).
BENCH_OUTPUTS = ("runs", "results.json", "results.md", "figures")


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
    if weights != "last":
        return _initial_from(weights if weights in WEIGHT_CHOICES or weights.startswith(HUB_PREFIX)
                             else str(Path(weights).absolute()))
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
    if recorded not in WEIGHT_CHOICES and not recorded.startswith(HUB_PREFIX) and not Path(recorded).exists():
        raise ChexmixInputError(f"the runs to resume started from checkpoint {recorded}, which no longer exists; "
                                "put it back or start again with another --weights", record_path)
    return _initial_from(recorded)


def _initial_from(name: str) -> InitialWeights:
    """``name``: a pretrained structure, model files (hub:ORG/NAME, a model folder or its
    safetensors: benchmark.model_files) or a chexmix checkpoint path, as init.json records it."""
    if name in WEIGHT_CHOICES:
        return InitialWeights(name)
    if is_model_reference(name):
        return InitialWeights(name, model_checkpoint(name))
    return InitialWeights(name, read_checkpoint(name))


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
             f"{options.epochs} epoch(s) each at {options.image_size} px, batch {options.batch_size}, on {device}"
             f"{f' x {ddp.world_size()} processes (torchrun)' if ddp.world_size() > 1 else ''}; "
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
    main = ddp.is_main()
    ddp.check_launch(engine, options.batch_size, ddp.world_size())  # before any training
    if options.progress and main:
        print(describe_plan(cells, models, options, device, initial, out_dir), flush=True)
    if options.weights != "last" and main:
        write_json(out_dir / "runs" / "init.json", {"weights": initial.name})
    plan = [(cell, spec, seed) for cell in cells for spec in models for seed in range(options.seeds)]
    if engine == "ray":
        from benchmark.ray_grid import run_plan_on_ray

        runs = run_plan_on_ray(plan, options, out_dir, initial, address)
    else:
        runs = [run_one(cell, spec, seed, options, out_dir, device, initial)
                for cell, spec, seed in tqdm(plan, desc="runs", disable=not (options.progress and main))]
    if not main:
        return {}  # process 0 of a data-parallel grid writes the results
    outcomes: list[tuple[Cell, RunOutcome]] = [(cell, outcome) for (cell, _, _), outcome in zip(plan, runs)]
    return write_outputs(out_dir, outcomes, options={**asdict(options), "initial_weights": initial.name})


def run_benchmark(dataset_dict: datasets.DatasetDict, models: list[str], options: BenchOptions,
                  out_dir: str | Path, *, training_dataset: str = "custom", config: str = "custom",
                  split: str = "custom", augment: bool = True) -> dict:
    """:func:`run_grid` on a single cell."""
    cell = Cell(training_dataset, config, split, augment, dataset_dict)
    return run_grid([cell], models, options, out_dir)
