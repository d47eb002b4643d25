"""Benchmark grids on Ray (``chexmix bench --engine ray``): one Ray task per (cell, model, seed).

Each task runs :func:`benchmark.runs.run_one`, the very function a local grid runs, and writes its
checkpoints under ``out_dir/runs/...`` as locally; the driver gathers the outcomes in plan
order and writes results.json, results.md and the figures, so the ``--out`` layout is that of
a local run. A task asks for one GPU when the cluster has GPUs (the task then sees only that
GPU and trains on it), else for one CPU. ``--weights last`` resumes each run from its newest
checkpoint, so after a failure the finished runs are only scored again, not retrained.

Workers must see ``out_dir`` and the cells' dataset files at the same paths (a shared file
system): tasks receive the cells' memory-mapped datasets by path.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from tqdm import tqdm

from benchmark.grid import BenchOptions, Cell, InitialWeights, RunOutcome
from benchmark.runs import run_one
from chexmix_dataset.dataset.distributed import DEFAULT_MAX_RETRIES, ray_session, require_ray


def _run_in_task(cell: Cell, spec: str, seed: int, options: BenchOptions, out_dir: Path,
                 initial: InitialWeights) -> RunOutcome:
    from benchmark.train import resolve_device

    # Resolved in the worker: "auto" picks the GPU Ray assigned to this task, if any.
    device = resolve_device(options.device)
    return run_one(cell, spec, seed, options, out_dir, device, initial)


def run_plan_on_ray(plan: list[tuple[Cell, str, int]], options: BenchOptions, out_dir: Path,
                    initial: InitialWeights, address: str | None = None) -> list[RunOutcome]:
    """The outcome of every (cell, model spec, seed) of ``plan``, in plan order, each run as a Ray task."""
    with ray_session(address):
        ray = require_ray()
        resources = {"num_gpus": 1} if ray.cluster_resources().get("GPU", 0) >= 1 else {"num_cpus": 1}
        task = ray.remote(max_retries=DEFAULT_MAX_RETRIES, **resources)(_run_in_task)
        quiet = dataclasses.replace(options, progress=False)  # worker bars would interleave
        cell_refs = {id(cell): ray.put(cell) for cell, _, _ in plan}
        initial_ref = ray.put(initial)
        refs = [task.remote(cell_refs[id(cell)], spec, seed, quiet, Path(out_dir).absolute(), initial_ref)
                for cell, spec, seed in plan]
        with tqdm(total=len(refs), desc="runs on Ray", disable=not options.progress) as bar:
            pending = list(refs)
            while pending:
                done, pending = ray.wait(pending, num_returns=1)
                ray.get(done)  # a failed run stops the grid here, with its error
                bar.update(len(done))
        return ray.get(refs)
