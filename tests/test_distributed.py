"""`chexmix build --engine ray`: the same rows as a local build, skipped volumes, retried workers.

One local 2-CPU Ray instance serves the whole module (starting Ray takes seconds).
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import datasets
import numpy as np
import pytest

# Before Ray is imported: the local instance then advertises and binds 127.0.0.1 only.
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
import ray  # noqa: E402
from public_layouts import make_ct_folder, make_ct_folder_with_a_cut_volume
from test_builder import SMALL_SAMPLE

from chexmix_dataset.cli import main
from chexmix_dataset.dataset import builder as builder_module
from chexmix_dataset.dataset.builder import load_chexmix, make_builder
from chexmix_dataset.dataset.distributed import build_with_ray


@pytest.fixture(scope="module", autouse=True)
def ray_instance():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    assert ray.util.get_node_ip_address() == "127.0.0.1"
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def local_sample(tmp_path_factory) -> datasets.DatasetDict:
    return load_chexmix("sample", cache_dir=tmp_path_factory.mktemp("local"), **SMALL_SAMPLE)


def _load(out_dir: Path, config: str, tmp_path: Path) -> datasets.DatasetDict:
    """The output folder as any user reads it: `datasets.load_dataset`, no CheXMix code."""
    return datasets.load_dataset(str(out_dir), config, cache_dir=str(tmp_path / "read-cache"))


def assert_same_rows(got: datasets.DatasetDict, expected: datasets.DatasetDict) -> None:
    assert set(got) == set(expected)
    for split in expected:
        assert got[split]["image_id"] == expected[split]["image_id"], split
        assert len(got[split]) > 0
        for a, b in zip(got[split], expected[split]):
            for column in ("image", "mask"):
                assert np.array_equal(np.asarray(a[column]), np.asarray(b[column])), (a["image_id"], column)
            others = [c for c in expected[split].column_names if c not in ("image", "mask")]
            assert {c: a[c] for c in others} == {c: b[c] for c in others}, a["image_id"]


def test_ray_build_equals_local_build_row_for_row(tmp_path, local_sample):
    out = tmp_path / "hub"
    result = build_with_ray(make_builder("sample", cache_dir=tmp_path / "cache", **SMALL_SAMPLE), out)
    assert result.skipped == {}
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.parquet"))
    assert files == ["data/sample/test-00000-of-00001.parquet", "data/sample/train-00000-of-00001.parquet"]
    assert "config_name: sample" in (out / "README.md").read_text()
    got = _load(out, "sample", tmp_path)
    assert_same_rows(got, local_sample)
    assert sum(len(r["objects"]["id"]) for r in got["train"]) > 0  # lesions were compared, not just empty lists
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "no temporary folder is left behind"


def test_killed_worker_is_retried_and_the_build_completes(tmp_path, local_sample):
    marker = tmp_path / "worker-killed-once"
    real_row_for = builder_module._row_for

    def dies_on_first_attempt(item, projector):
        # Runs in a Ray worker: the first task for the first CT kills its own process.
        if getattr(item, "case_id", None) and not marker.exists():
            marker.write_text(str(os.getpid()))
            os._exit(1)
        return real_row_for(item, projector)

    builder = make_builder("sample", cache_dir=tmp_path / "cache", **SMALL_SAMPLE)
    with pytest.raises(ray.exceptions.WorkerCrashedError):
        build_with_ray(builder, tmp_path / "no-retries", row_for=dies_on_first_attempt, max_retries=0)
    assert not (tmp_path / "no-retries").exists(), "a failed build writes nothing"

    marker.unlink()
    out = tmp_path / "hub"
    build_with_ray(builder, out, row_for=dies_on_first_attempt, max_retries=2)
    assert marker.exists() and int(marker.read_text()) != os.getpid(), "a worker process, not the driver, died"
    assert_same_rows(_load(out, "sample", tmp_path), local_sample)


def test_cli_ray_build_skips_a_corrupt_volume_with_its_reason_like_the_local_build(tmp_path, capsys):
    data_dir = tmp_path / "data"
    make_ct_folder_with_a_cut_volume(data_dir)  # case4: header intact, voxels cut off
    common = ["build", "--config", "ct_projections", "--data-dir", str(data_dir), "--sources", "ct_folder",
              "--size", "64"]
    assert main([*common, "--cache-dir", str(tmp_path / "c1"), "--out", str(tmp_path / "local")]) == 0
    capsys.readouterr()
    assert main([*common, "--cache-dir", str(tmp_path / "c2"), "--engine", "ray", "--out", str(tmp_path / "ray")]) == 0
    out = capsys.readouterr().out
    skipped = [line for line in out.splitlines() if line.startswith("skipped ct-case4")]
    assert len(skipped) == 1 and "case4.nii.gz" in skipped[0], out
    assert "skipped items: 1" in out
    got = _load(tmp_path / "ray", "ct_projections", tmp_path)
    assert sum(len(split) for split in got.values()) == 4
    assert "ct-case4" not in [*got["train"]["image_id"], *got["test"]["image_id"]]
    assert_same_rows(got, _load(tmp_path / "local", "ct_projections", tmp_path))


def test_ray_engine_needs_out_and_refuses_a_foreign_folder_before_building(tmp_path, capsys):
    assert main(["build", "--config", "sample", "--engine", "ray", "--cache-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--out" in err[0]
    foreign = tmp_path / "home"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    argv = ["build", "--config", "sample", "--engine", "ray", "--out", str(foreign), "--cache-dir", str(tmp_path / "c")]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "notes.txt" in err[0]
    assert (foreign / "notes.txt").read_text() == "keep me"
    assert not (tmp_path / "c").exists(), "refused before planning anything"


def test_cli_without_address_starts_and_stops_its_own_local_ray(tmp_path):
    data_dir = tmp_path / "data"
    make_ct_folder(data_dir, ["case0", "case1", "case2"])
    argv = ["build", "--config", "ct_projections", "--data-dir", str(data_dir), "--sources", "ct_folder",
            "--size", "64", "--split", "50/50", "--cache-dir", str(tmp_path / "cache"), "--engine", "ray",
            "--num-proc", "1", "--out", str(tmp_path / "hub")]
    # Without RAY_ADDRESS the command cannot reach this module's instance: it must start its own.
    env = {key: value for key, value in os.environ.items() if key != "RAY_ADDRESS"}
    done = subprocess.run([sys.executable, "-m", "chexmix_dataset.cli", *argv], env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Started a local Ray instance" in done.stderr
    got = _load(tmp_path / "hub", "ct_projections", tmp_path)
    assert sorted([*got["train"]["image_id"], *got["test"]["image_id"]]) == ["ct-case0", "ct-case1", "ct-case2"]
    assert "skipped items: 0" in done.stdout


def test_address_without_the_ray_engine_is_a_one_line_error(tmp_path, capsys):
    assert main(["build", "--config", "sample", "--address", "ray://head:10001", "--cache-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--engine ray" in err[0]


# --- benchmark grids ---------------------------------------------------------------------------

def test_bench_grid_on_ray_writes_the_same_results_as_a_local_grid(tmp_path, monkeypatch):
    import torch
    from helpers import tiny_dataset_dict

    from benchmark.grid import BenchOptions, Cell
    from benchmark.harness import run_grid

    data = tiny_dataset_dict()
    cells = [Cell("Tiny discs", "tiny", "60/40", augment, data) for augment in (True, False)]
    options = BenchOptions(epochs=1, image_size=64, batch_size=2, progress=False, device="cpu")
    # A Ray task asking for one CPU runs torch on one thread; so does the local grid here, so that
    # both sum floating-point numbers in the same order.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        local = run_grid(cells, ["unet"], options, tmp_path / "local")
    finally:
        torch.set_num_threads(threads)
    on_ray = run_grid(cells, ["unet"], options, tmp_path / "ray", engine="ray")
    assert len(on_ray["runs"]) == 2
    assert on_ray["runs"] == local["runs"]
    assert (tmp_path / "ray" / "results.md").read_text() == (tmp_path / "local" / "results.md").read_text()
    layout = lambda root: sorted(p.relative_to(root).as_posix() for p in root.rglob("*"))
    assert layout(tmp_path / "ray") == layout(tmp_path / "local")
    assert len(list((tmp_path / "ray").rglob("last.pt"))) == 2

    # Resume after a failure: the second run never finished (no checkpoint); `--weights last`
    # trains only that one again, and the grid's results are those of the uninterrupted grid.
    finished, unfinished = sorted((tmp_path / "ray").rglob("last.pt"))
    finished_stamp = finished.stat().st_mtime_ns
    unfinished.unlink()
    resumed = run_grid(cells, ["unet"], dataclasses.replace(options, weights="last"), tmp_path / "ray", engine="ray")
    assert finished.stat().st_mtime_ns == finished_stamp, "a finished run is not trained again"
    assert unfinished.is_file()
    scores = lambda grid: [{k: v for k, v in run.items() if k != "weights"} for run in grid["runs"]]
    assert scores(resumed) == scores(local)


def test_bench_address_without_the_ray_engine_is_a_one_line_error(tmp_path, capsys):
    argv = ["bench", "--config", "sample", "--models", "unet", "--image-size", "64", "--epochs", "1",
            "--address", "ray://head:10001", "--out", str(tmp_path / "out")]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--engine ray" in err[0]
    assert not (tmp_path / "out").exists()
