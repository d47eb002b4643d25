"""The speed scripts run end to end, tiny, on the CPU: a GPU session gets one short device call,
so a script that breaks there costs the whole check. What they measure is not asserted (speed
is read from the scripts, never timed in tests); that they run and report every row is."""

from __future__ import annotations

import re

import datasets
import pytest

from benchmark.speed import main

# The projector script times the published code, whose Image.getdata Pillow plans to remove.
pytestmark = pytest.mark.filterwarnings("ignore:Image.Image.getdata:DeprecationWarning")


def test_train_speed_runs_the_harness_and_the_ceiling_on_the_sample(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "hf-cache"))
    assert main(["train", "--models", "unet", "--image-size", "32", "--batch-size", "2", "--steps", "1",
                 "--warmup", "0", "--device", "cpu", "--workers", "0"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| unet |")]
    assert len(rows) == 1
    harness, ceiling, ratio = (float(v) for v in re.findall(r"[\d.]+", rows[0].split("|", 6)[-1]))
    assert harness > 0 and ceiling > 0 and ratio == pytest.approx(harness / ceiling, abs=0.01)


def test_projector_speed_times_the_torch_path_with_its_own_floor(capsys) -> None:
    assert main(["projector", "--shape", "32", "32", "24", "--repeats", "1", "--loop-slices", "2",
                 "--device", "torch:cpu"]) == 0
    out = capsys.readouterr().out
    for method in ("copy of the volume to torch:cpu", "physics mode (image + lesions) on torch:cpu",
                   "physics, cone PA 1800 mm (image + lesions) on torch:cpu", "floor: torch.sum(volume on torch:cpu)"):
        assert f"| {method} " in out
    assert len(re.findall(r"^(PASS|FAIL)  ", out, flags=re.MULTILINE)) == 2


def test_projector_speed_refuses_cpu_as_the_torch_device(capsys) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["projector", "--device", "cpu"])
    assert stopped.value.code == 2 and "torch:cpu" in capsys.readouterr().err


def test_projector_speed_refuses_an_unknown_device_before_timing(capsys) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["projector", "--device", "gpu"])
    assert stopped.value.code == 2 and "unknown device 'gpu'" in capsys.readouterr().err


def test_drr_speed_without_a_diffdrr_renderer_times_chexmix_alone(capsys) -> None:
    assert main(["drr", "--shape", "32", "32", "24", "--sizes", "16", "--renderers", "--repeats", "1"]) == 0
    out = capsys.readouterr().out
    assert "| CheXMix cone (line integral) " in out and "| CheXMix project_volume (image + lesions) " in out
    assert not re.search(r"^\| DiffDRR", out, flags=re.MULTILINE)
