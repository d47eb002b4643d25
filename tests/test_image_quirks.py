"""Real 2D file quirks: JPEG / 16-bit / colour lesion masks, EXIF-rotated JPEGs, 16-bit CXRs.

Every fixture is written with PIL directly (JPEG at quality 75, 16-bit PNG, RGB/RGBA PNG, EXIF
Orientation tags), as real collections store them, and read through the ``cxr_folder`` source.
The expected lesions are analytic discs.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import public_layouts as layouts
import pytest
from helpers import disc
from PIL import Image

from chexmix_dataset.sources import folders
from chexmix_dataset.sources.annotations import image_size, read_grey_image

HEIGHT, WIDTH = 120, 160  # displayed size, px; not square so that a rotation shows
DISCS = (((40.0, 50.0), 18.0), ((82.0, 112.0), 22.0))  # ((row, column) centre, radius) in px
EXIF_ORIENTATION = 0x0112


def disc_masks() -> list[np.ndarray]:
    return [disc((HEIGHT, WIDTH), centre, radius) for centre, radius in DISCS]


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


def assert_two_disc_lesions(instances) -> None:
    """Exactly the two discs, each matched with IoU >= 0.95, all of type "lesion"."""
    assert len(instances) == 2
    assert {i.lesion_type for i in instances} == {"lesion"}
    for expected in disc_masks():
        assert max(iou(i.mask, expected) for i in instances) >= 0.95


def write_cxr_folder(root: Path, mask_name: str, save_mask) -> None:
    """images/x.png (a plain grey image) and masks/``mask_name`` written by ``save_mask(path)``."""
    layouts.save_png(root / "images" / "x.png", np.full((HEIGHT, WIDTH), 90, dtype=np.uint8))
    (root / "masks").mkdir(parents=True)
    save_mask(root / "masks" / mask_name)


def load_only_case(root: Path) -> tuple[np.ndarray, list, list[str]]:
    scan = folders.CXR_FOLDER.scan(root)
    assert [c.image_id for c in scan.cxr_cases] == ["cxr_folder-x"], scan.skipped
    warnings: list[str] = []
    image, instances = scan.cxr_cases[0].load(warnings.append)
    return image, instances, warnings


def union_uint8(full_scale: int, dtype) -> np.ndarray:
    union = np.zeros((HEIGHT, WIDTH), dtype=dtype)
    for mask in disc_masks():
        union[mask] = full_scale
    return union


# ------------------------------------------------------------------------------- masks ---

def test_jpeg_mask_is_binarised_not_split_into_noise_labels(tmp_path):
    union = union_uint8(255, np.uint8)
    write_cxr_folder(tmp_path, "x.jpg", lambda p: Image.fromarray(union).save(p, quality=75))
    with Image.open(tmp_path / "masks" / "x.jpg") as stored:  # the fixture really is noisy
        assert stored.format == "JPEG" and len(np.unique(np.asarray(stored))) > 10
    _, instances, warnings = load_only_case(tmp_path)
    assert_two_disc_lesions(instances)
    assert len(warnings) == 1 and "x.jpg" in warnings[0] and "binarised at 128" in warnings[0]


def test_sixteen_bit_mask_0_65535_gives_the_two_discs(tmp_path):
    union = union_uint8(65535, np.uint16)
    write_cxr_folder(tmp_path, "x.png", lambda p: Image.fromarray(union).save(p))
    with Image.open(tmp_path / "masks" / "x.png") as stored:
        assert stored.mode.startswith("I;16") and np.asarray(stored).max() == 65535
    _, instances, warnings = load_only_case(tmp_path)
    assert_two_disc_lesions(instances)
    assert warnings == []


def test_sixteen_bit_mask_with_a_faint_value_is_binarised_at_half_range(tmp_path):
    union = union_uint8(65535, np.uint16)
    union[100:110, 10:20] = 300  # far below half of 0..65535: not a lesion, but worth a warning
    write_cxr_folder(tmp_path, "x.png", lambda p: Image.fromarray(union).save(p))
    _, instances, warnings = load_only_case(tmp_path)
    assert_two_disc_lesions(instances)
    assert len(warnings) == 1 and "x.png" in warnings[0] and "32768" in warnings[0]


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "P"])
def test_colour_masks_give_the_two_discs(tmp_path, mode):
    union = union_uint8(1, np.uint8).astype(bool)
    if mode == "RGB":  # red discs on black, as drawing tools export
        array = np.zeros((HEIGHT, WIDTH, 3), dtype=np.uint8)
        array[union] = (255, 0, 0)
    elif mode == "RGBA":  # white discs on a transparent background
        array = np.zeros((HEIGHT, WIDTH, 4), dtype=np.uint8)
        array[union] = (255, 255, 255, 255)
    else:  # palette index 1, coloured like PASCAL VOC's class 1 (dark red)
        array = union.astype(np.uint8)

    def save(path: Path) -> None:
        image = Image.fromarray(array)
        if mode == "P":
            image = image.convert("P")
            image.putpalette([0, 0, 0, 128, 0, 0] + [0] * (256 - 2) * 3)
        image.save(path)

    write_cxr_folder(tmp_path, "x.png", save)
    with Image.open(tmp_path / "masks" / "x.png") as stored:
        assert stored.mode == mode
    _, instances, warnings = load_only_case(tmp_path)
    assert_two_disc_lesions(instances)
    assert warnings == []


def test_binary_masks_of_0_and_1_still_work(tmp_path):
    write_cxr_folder(tmp_path, "x.png", lambda p: Image.fromarray(union_uint8(1, np.uint8)).save(p))
    _, instances, warnings = load_only_case(tmp_path)
    assert_two_disc_lesions(instances)
    assert warnings == []


def test_declared_label_masks_must_be_lossless(tmp_path):
    labels = np.zeros((HEIGHT, WIDTH), dtype=np.uint16)  # a 16-bit label mask, lossless
    first, second = disc_masks()
    labels[first], labels[second] = 1, 2
    write_cxr_folder(tmp_path, "x.png", lambda p: Image.fromarray(labels).save(p))
    (tmp_path / "lesion_types.json").write_text(json.dumps({"1": "ground_glass", "2": "consolidation"}))
    _, instances, warnings = load_only_case(tmp_path)
    assert sorted(i.lesion_type for i in instances) == ["consolidation", "ground_glass"]
    by_type = {i.lesion_type: i.mask for i in instances}
    np.testing.assert_array_equal(by_type["ground_glass"], first)
    np.testing.assert_array_equal(by_type["consolidation"], second)
    assert warnings == []

    (tmp_path / "masks" / "x.png").unlink()
    Image.fromarray((labels * 100).astype(np.uint8)).save(tmp_path / "masks" / "x.jpg", quality=75)
    scan = folders.CXR_FOLDER.scan(tmp_path)
    assert scan.cxr_cases == []
    [skipped] = scan.skipped
    assert Path(skipped.item).name == "x.jpg" and "lossily" in skipped.reason and "PNG" in skipped.reason


def test_undeclared_values_of_a_label_mask_are_named(tmp_path):
    labels = np.zeros((HEIGHT, WIDTH), dtype=np.uint8)
    first, second = disc_masks()
    labels[first], labels[second] = 1, 7
    write_cxr_folder(tmp_path, "x.png", lambda p: Image.fromarray(labels).save(p))
    (tmp_path / "lesion_types.json").write_text(json.dumps({"1": "ground_glass"}))
    _, instances, warnings = load_only_case(tmp_path)
    assert sorted(i.lesion_type for i in instances) == ["ground_glass", "label_7"]
    assert len(warnings) == 1 and "x.png" in warnings[0] and "7" in warnings[0]


# -------------------------------------------------------------------------------- EXIF ---

def stored_sideways(displayed: np.ndarray, orientation: int) -> np.ndarray:
    """The pixels a camera stores for ``displayed`` with EXIF ``orientation`` (TIFF 6.0 / EXIF 2.3).

    6: the viewer turns the stored image 90 degrees clockwise; 8: 90 degrees anticlockwise.
    """
    return {6: np.rot90(displayed, k=1), 8: np.rot90(displayed, k=-1)}[orientation].copy()


def save_jpeg_with_orientation(path: Path, displayed: np.ndarray, orientation: int) -> None:
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = orientation
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(stored_sideways(displayed, orientation)).save(path, quality=90, exif=exif.tobytes())


def disc_polygon(centre: tuple[float, float], radius: float, n: int = 96) -> tuple[list[float], list[float]]:
    """Vertices (x, y) in displayed pixels of a polygon tracing a disc's outline."""
    angles = np.linspace(0.0, 2 * np.pi, n, endpoint=False)
    # A pixel (row, col) covers [col, col + 1): its centre is at col + 0.5 in VIA coordinates.
    xs = centre[1] + 0.5 + radius * np.cos(angles)
    ys = centre[0] + 0.5 + radius * np.sin(angles)
    return xs.round(2).tolist(), ys.round(2).tolist()


def displayed_xray() -> np.ndarray:
    """Bright discs (the lesions) on a darker ramp, so that a wrong rotation shows in the pixels."""
    image = np.tile(np.linspace(20, 90, WIDTH, dtype=np.float64), (HEIGHT, 1))
    for mask in disc_masks():
        image[mask] = 230
    return image.astype(np.uint8)


def assert_upright(image: np.ndarray, instances) -> None:
    assert image.shape == (HEIGHT, WIDTH)
    assert_two_disc_lesions(instances)
    for instance in instances:  # the lesions sit on the bright discs of the image as read
        assert image[instance.mask].mean() > 200
    assert np.abs(image.astype(int) - displayed_xray()).mean() < 3  # JPEG error only


@pytest.mark.parametrize("orientation", [6, 8])
def test_exif_rotated_jpeg_with_via_polygons_drawn_as_displayed(tmp_path, orientation):
    save_jpeg_with_orientation(tmp_path / "images" / "x.jpg", displayed_xray(), orientation)
    with Image.open(tmp_path / "images" / "x.jpg") as stored:  # stored sideways, as phones do
        assert stored.size == (HEIGHT, WIDTH) and stored.getexif()[EXIF_ORIENTATION] == orientation
    assert image_size(tmp_path / "images" / "x.jpg") == (HEIGHT, WIDTH)
    key, entry = layouts.via_entry("x.jpg", [layouts.via_polygon(*disc_polygon(c, r)) for c, r in DISCS])
    (tmp_path / "via_region_data.json").write_text(json.dumps({key: entry}))
    image, instances, warnings = load_only_case(tmp_path)
    assert_upright(image, instances)
    assert warnings == []


@pytest.mark.parametrize("orientation", [6, 8])
def test_exif_rotated_image_and_mask_pair(tmp_path, orientation):
    save_jpeg_with_orientation(tmp_path / "images" / "x.jpg", displayed_xray(), orientation)
    save_jpeg_with_orientation(tmp_path / "masks" / "x.jpg", union_uint8(255, np.uint8), orientation)
    image, instances, _ = load_only_case(tmp_path)
    assert_upright(image, instances)


def test_exif_orientation_in_a_png_after_the_pixels(tmp_path):
    """PIL writes eXIf before the pixel data; some tools append it after. Both are honoured."""
    path = tmp_path / "late.png"
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = 6
    Image.fromarray(stored_sideways(displayed_xray(), 6)).save(path, exif=exif.tobytes())
    data = path.read_bytes()
    start = data.index(b"eXIf") - 4
    length = int.from_bytes(data[start:start + 4], "big")
    chunk, rest = data[start:start + 12 + length], data[:start] + data[start + 12 + length:]
    end = rest.index(b"IEND") - 4
    path.write_bytes(rest[:end] + chunk + rest[end:])
    with Image.open(path) as reopened:
        assert "exif" not in reopened.info  # not seen from the header: the case that needs care
    assert image_size(path) == (HEIGHT, WIDTH)
    np.testing.assert_array_equal(read_grey_image(path), displayed_xray())


# -------------------------------------------------------------------------- 16-bit CXRs ---

def test_sixteen_bit_cxr_is_stretched_from_its_own_range(tmp_path):
    """A 12-bit exposure stored in a 16-bit PNG: min..max maps linearly to 0..255, rounded."""
    rng = np.random.default_rng(0)
    stored = rng.integers(300, 4096, size=(HEIGHT, WIDTH)).astype(np.uint16)
    stored[0, 0], stored[-1, -1] = 300, 4095
    Image.fromarray(stored).save(tmp_path / "x.png")
    with Image.open(tmp_path / "x.png") as reopened:
        assert reopened.mode.startswith("I;16")
    grey = read_grey_image(tmp_path / "x.png")
    expected = np.floor((stored.astype(np.float64) - 300) * 255 / (4095 - 300) + 0.5)
    assert grey.dtype == np.uint8 and (grey[0, 0], grey[-1, -1]) == (0, 255)
    assert np.abs(grey.astype(int) - expected).max() <= 1  # ties may round to even
    assert np.mean(grey.astype(int) == expected) > 0.99


def test_inverted_mask_is_flagged(tmp_path):
    inverted = 255 - union_uint8(255, np.uint8)  # lesions black on white: the whole background is "lesion"
    write_cxr_folder(tmp_path, "x.png", lambda p: Image.fromarray(inverted).save(p))
    _, instances, warnings = load_only_case(tmp_path)
    assert len(instances) == 1 and instances[0].mask.sum() == HEIGHT * WIDTH - sum(m.sum() for m in disc_masks())
    assert len(warnings) == 1 and "x.png" in warnings[0] and "inverted" in warnings[0]
