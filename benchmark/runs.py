"""One run of a grid: train a model on a cell's training split for one seed, then score it on the test split.

Used by the local harness and, as the body of each Ray task, by :mod:`benchmark.ray_grid`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from baselines import LesionModel, build_model
from benchmark import ddp
from benchmark.checkpoints import (
    BEST,
    LAST,
    check_settings,
    checkpoint_state,
    load_model_state,
    read_checkpoint,
    write_checkpoint,
)
from benchmark.data import LesionDataset, default_workers, make_loader
from benchmark.evaluate import evaluate_split
from benchmark.grid import BenchOptions, Cell, InitialWeights, RunOutcome
from benchmark.run_export import write_run_model
from benchmark.train import load_scaler_state, make_scaler, make_scheduler, train_one_epoch
from benchmark.validation import (
    DEFAULT_THRESHOLD,
    THRESHOLDS,
    TrainValidation,
    best_threshold,
    split_validation,
    validation_ious,
)
from chexmix_dataset.dataset.composition import split_composition


def _model_slug(spec: str) -> str:
    return spec.replace(":", "-")


def run_settings(cell: Cell, seed: int, options: BenchOptions, parts: TrainValidation) -> dict:
    """What a run's checkpoints must agree on to be resumed (sizes in px)."""
    return {"image_size": options.image_size, "batch_size": options.batch_size, "epochs": options.epochs,
            "augment": cell.augment, "config": cell.config, "split": cell.split, "seed": seed,
            "train_images": len(parts.train), "validation_images": len(parts.validation),
            "dataset_options": dict(cell.dataset_options), "processes": ddp.world_size()}


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
    ddp.broadcast_from_main(model)
    main = ddp.is_main()  # with torchrun, process 0 alone validates and writes (benchmark.ddp)
    workers = options.workers if options.workers is not None else default_workers(device)
    dataset = LesionDataset(train.select(parts.train), options.image_size, augment=cell.augment, seed=seed,
                            progress=options.progress and main)
    loader = make_loader(dataset, ddp.per_process_batch(options.batch_size), shuffle=True, seed=seed,
                         workers=workers, pin_memory=device.type == "cuda", rank=ddp.rank(),
                         world_size=ddp.world_size())
    validation_loader = make_loader(LesionDataset(train.select(parts.validation), options.image_size),
                                    options.batch_size, shuffle=False, seed=0,
                                    workers=0) if parts.validation and main else None
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
        # Sampling inside the models (RPN) resumes identically, and differs between data-parallel processes.
        torch.manual_seed(seed * 100_003 + epoch + 1_000_003 * ddp.rank())
        loader.sampler.set_epoch(epoch)
        steps = train_one_epoch(model, optimizer, scaler, loader, device, scheduler=scheduler,
                                progress=options.progress and main,
                                description=f"{cell.slug} {spec} seed {seed} epoch {epoch + 1}/{options.epochs}")
        history["train_loss"].append(float(np.mean(steps)))
        if not main:
            continue
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
    if main and best["epoch"] != len(history["train_loss"]):
        load_model_state(model, read_checkpoint(run_dir / BEST), run_dir / BEST)
    model.threshold = best["threshold"]
    return TrainedRun(model, history, best, parts)


def run_one(cell: Cell, spec: str, seed: int, options: BenchOptions, out_dir: Path, device: torch.device,
            initial: InitialWeights) -> RunOutcome | None:
    """Train and score one run; None in the data-parallel processes other than process 0, which
    only train (see :mod:`benchmark.ddp`)."""
    run_dir = run_directory(out_dir, cell, spec, seed)
    if ddp.is_main():
        run_dir.mkdir(parents=True, exist_ok=True)
    trained = train_run(cell, spec, seed, options, run_dir, device, initial)
    if not ddp.is_main():
        return None
    model = trained.model
    test = cell.dataset["test"]
    # The images that trained (the training split less its validation part), as train_images counts them.
    fit = cell.dataset["train"].select(trained.parts.train)
    evaluation = evaluate_split(model, test, options.image_size, device, options.batch_size, options.progress)
    result = {
        "training_dataset": cell.training_dataset, "config": cell.config, "split": cell.split,
        "augment": cell.augment, "model": spec, "architecture": model.architecture, "seed": seed,
        "epochs": len(trained.history["train_loss"]), "weights": options.weights, "initial_weights": initial.name,
        "init_weights": initial.structure, "image_size": options.image_size, "batch_size": options.batch_size,
        "device": str(device), "processes": ddp.world_size(), "train_images": len(trained.parts.train),
        "validation_images": len(trained.parts.validation), "test_images": len(test),
        "ct_fraction": cell.ct_fraction, "dataset_options": dict(cell.dataset_options),
        "train_ct_projections": sum(source == "ct_projection" for source in fit["source"]),
        "train_loss": trained.history["train_loss"], "validation_iou": trained.history["validation_iou"],
        "threshold": model.threshold, "threshold_kind": model.threshold_kind, "threshold_rule": trained.parts.rule,
        "best_epoch": trained.best["epoch"], "validation_iou_by_threshold": (
            None if trained.best["iou_by_threshold"] is None
            else dict(zip(map(str, THRESHOLDS), trained.best["iou_by_threshold"]))),
        "train_composition": split_composition(fit),
        "validation_composition": (split_composition(cell.dataset["train"].select(trained.parts.validation))
                                   if trained.parts.validation else None),
        "test_composition": split_composition(test), "downloads": list(cell.downloads),
        **evaluation.scores,
    }
    outcome = RunOutcome(result, evaluation.lesion_areas)
    write_run_model(run_dir, cell, outcome, model)
    return outcome


def run_directory(out_dir: Path, cell: Cell, spec: str, seed: int) -> Path:
    return out_dir / "runs" / cell.slug / _model_slug(spec) / f"seed{seed}"

