"""Reading CXR files for prediction: 16-bit PNG and DICOM agree, MONOCHROME1, windows, spacing."""

from __future__ import annotations

import numpy as np
import pytest
from dicom_cxr import write_cxr_dicom
from PIL import Image

from chexmix_dataset.errors import ChexmixInputError
from chexmix_dataset.xray.radiographs import read_radiograph


def _exposure(height: int = 40, width: int = 30) -> np.ndarray:
    """A 12-bit-like exposure stored in 16 bits: a ramp plus a bright disc."""
    yy, xx = np.mgrid[:height, :width]
    values = 300 + 20 * xx + 7 * yy
    values[(yy - 20) ** 2 + (xx - 15) ** 2 < 36] = 3900
    return values.astype(np.uint16)


def test_dicom_and_16_bit_png_of_the_same_pixels_read_alike(tmp_path):
    stored = _exposure()
    png = tmp_path / "cxr.png"
    Image.fromarray(stored).save(png)  # mode I;16
    from_png = read_radiograph(png)
    from_dicom = read_radiograph(write_cxr_dicom(tmp_path / "cxr.dcm", stored, imager_spacing_mm=(0.2, 0.25)))
    expected = np.rint((stored - 300.0) * 255.0 / (3900 - 300)).astype(np.uint8)
    assert np.array_equal(from_png.image, expected)
    assert np.array_equal(from_dicom.image, expected)
    assert from_png.pixel_spacing_mm is None and from_dicom.pixel_spacing_mm == (0.2, 0.25)


def test_monochrome1_is_inverted_to_dense_is_bright(tmp_path):
    stored = _exposure()
    inverted = (4095 - stored).astype(np.uint16)  # MONOCHROME1: dense = low values
    plain = read_radiograph(write_cxr_dicom(tmp_path / "m2.dcm", stored)).image
    mono1 = read_radiograph(write_cxr_dicom(tmp_path / "m1.dcm", inverted, photometric="MONOCHROME1")).image
    assert np.array_equal(mono1, plain)
    assert mono1[20, 15] == 255, "the dense disc is white"


def test_window_and_rescale_follow_the_dicom_standard(tmp_path):
    stored = _exposure()
    image = read_radiograph(write_cxr_dicom(tmp_path / "w.dcm", stored, window=(1000.0, 801.0),
                                            rescale=(2.0, -100.0))).image
    values = stored * 2.0 - 100.0
    expected = np.rint(np.clip((values - 999.5) / 800.0 + 0.5, 0, 1) * 255).astype(np.uint8)
    assert np.array_equal(image, expected)
    assert image.min() == 0 and image.max() == 255


def test_colour_and_corrupt_dicom_are_refused(tmp_path):
    path = write_cxr_dicom(tmp_path / "ok.dcm", _exposure())
    broken = tmp_path / "broken.dcm"
    broken.write_bytes(path.read_bytes()[:400])
    with pytest.raises(ChexmixInputError, match="broken.dcm: cannot read DICOM image"):
        read_radiograph(broken)
    import pydicom
    ds = pydicom.dcmread(str(path))
    ds.PhotometricInterpretation = "PALETTE COLOR"
    ds.save_as(str(tmp_path / "colour.dcm"))
    with pytest.raises(ChexmixInputError, match="only greyscale"):
        read_radiograph(tmp_path / "colour.dcm")
