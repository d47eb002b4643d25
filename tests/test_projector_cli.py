"""The geometry options on the command line: `chexmix project` and the dataset commands."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
from PIL import Image

from chexmix_dataset.cli import main
from chexmix_dataset.commands.dataset_args import add_dataset_arguments, builder_from_args
from chexmix_dataset.ct.volume import load_ct
from chexmix_dataset.phantoms import chest_phantom, write_phantom_nifti
from chexmix_dataset.projector import ProjectorOptions, project_volume


@pytest.fixture(scope="module")
def phantom_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("phantom")
    phantom = chest_phantom(2, shape=(96, 96, 40), lesions=True)
    write_phantom_nifti(phantom, folder / "ct.nii.gz", folder / "mask.nii.gz")
    return folder / "ct.nii.gz", folder / "mask.nii.gz"


def test_project_cone_ap_matches_the_library_and_records_its_geometry(tmp_path, phantom_files, capsys):
    ct, mask = phantom_files
    out = tmp_path / "out"
    argv = ["project", str(ct), str(mask), "--out", str(out), "--size", "128", "--geometry", "cone", "--beam", "AP",
            "--sid-mm", "1000", "--view-deg", "5", "--tilt-deg", "-4", "--min-area-mm2", "0"]
    assert main(argv) == 0
    meta = json.loads((out / "instances.json").read_text())
    assert meta["geometry"] == {"type": "cone", "view_deg": 5.0, "tilt_deg": -4.0, "beam": "AP", "sid_mm": 1000.0,
                                "sod_mm": 850.0}
    expected = project_volume(load_ct(ct, mask), ProjectorOptions(size_px=128, geometry="cone", beam="AP",
                                                                   sid_mm=1000.0, view_deg=5.0, tilt_deg=-4.0,
                                                                   min_area_mm2=0.0))
    np.testing.assert_array_equal(np.asarray(Image.open(out / "xray.png")), expected.image)
    assert len(meta["instances"]) == len(expected.instances) > 0
    assert meta["pixel_spacing_mm"] == list(expected.pixel_spacing_mm)
    assert "cone" in capsys.readouterr().out


def test_project_parallel_default_is_recorded(tmp_path, phantom_files):
    ct, mask = phantom_files
    assert main(["project", str(ct), str(mask), "--out", str(tmp_path / "o"), "--size", "64"]) == 0
    meta = json.loads((tmp_path / "o" / "instances.json").read_text())
    assert meta["geometry"] == {"type": "parallel", "view_deg": 0.0, "tilt_deg": 0.0}


@pytest.mark.parametrize("extra, fragment", [
    (["--geometry", "cone", "--sid-mm", "1000", "--sod-mm", "1100"], "between source and detector"),
    (["--geometry", "cone", "--mode", "seed"], "seed mode"),
    (["--geometry", "cone", "--sid-mm", "300", "--sod-mm", "100"], "source must lie outside the CT"),
    (["--device", "tpu"], "unknown device"),
])
def test_bad_geometry_is_refused_in_one_line(tmp_path, phantom_files, capsys, extra, fragment):
    ct, mask = phantom_files
    out = tmp_path / "out"
    assert main(["project", str(ct), str(mask), "--out", str(out), *extra]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err and fragment in err, err
    assert not out.exists()


def test_dataset_arguments_set_the_geometry_and_keep_the_config_otherwise():
    parser = argparse.ArgumentParser()
    add_dataset_arguments(parser)
    plain = builder_from_args(parser.parse_args(["--config", "sample"]))
    assert plain.config.projector == ProjectorOptions(size_px=256)
    args = parser.parse_args(["--config", "sample", "--geometry", "cone", "--beam", "AP", "--sid-mm", "1100",
                              "--view-deg", "-3"])
    projector = builder_from_args(args).config.projector
    assert (projector.geometry, projector.beam, projector.sid_mm, projector.view_deg) == ("cone", "AP", 1100.0, -3.0)
    assert projector.size_px == 256 and projector.sod_mm is None


def test_project_radiograph_display(tmp_path, phantom_files):
    ct, mask = phantom_files
    assert main(["project", str(ct), str(mask), "--out", str(tmp_path / "film"), "--size", "96",
                 "--display", "radiograph"]) == 0
    meta = json.loads((tmp_path / "film" / "instances.json").read_text())
    assert meta["display"] == "radiograph"
    expected = project_volume(load_ct(ct, mask), ProjectorOptions(size_px=96, display="radiograph"))
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "film" / "xray.png")), expected.image)
