"""Lesion overlays and the `chexmix show` grid: colours, outlines, atomic PNGs."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import disc, tiny_dataset_dict
from PIL import Image

from chexmix_dataset import cli
from chexmix_dataset.commands import dataset_args
from chexmix_dataset.commands.show import spread_indices
from chexmix_dataset.dataset.lesions import LesionInstance
from chexmix_dataset.figures.overlay import (
    LESION_COLOURS,
    draw_overlay,
    lesion_colour,
    outline,
    row_instances,
    save_grid,
    save_png,
)


def four_neighbour_edge(mask: np.ndarray) -> np.ndarray:
    """Lesion pixels with a 4-neighbour outside the lesion (outside the image counts as outside)."""
    padded = np.pad(mask, 1)
    interior = padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    return mask & ~interior


def colour_pixels(rgb: np.ndarray, colour: tuple[int, int, int], tolerance: int = 12) -> int:
    return int((np.abs(rgb.astype(int) - np.asarray(colour)).max(axis=2) <= tolerance).sum())


def test_outline_is_the_lesion_edge():
    mask = disc((40, 40), (20, 20), 9) | disc((40, 40), (0, 5), 4)  # the second disc is cut by the border
    np.testing.assert_array_equal(outline(mask, 1), four_neighbour_edge(mask))
    assert outline(mask, 2).sum() > outline(mask, 1).sum()


def test_draw_overlay_colours_outlines_by_lesion_type():
    image = np.full((48, 64), 90, dtype=np.uint8)
    ggo = LesionInstance(disc(image.shape, (15, 15), 7), "ground_glass")
    consolidation = LesionInstance(disc(image.shape, (30, 45), 8), "consolidation")
    rgb = draw_overlay(image, [ggo, consolidation], thickness_px=1, fill_alpha=0.0, legend=False)
    assert rgb.shape == (48, 64, 3) and rgb.dtype == np.uint8
    for instance in (ggo, consolidation):
        edge = four_neighbour_edge(instance.mask)
        assert (rgb[edge] == LESION_COLOURS[instance.lesion_type]).all()
        assert (rgb[instance.mask & ~edge] == 90).all()  # no fill asked for
    outside = ~(ggo.mask | consolidation.mask)
    assert (rgb[outside] == 90).all()


def test_draw_overlay_tints_lesions_and_accepts_a_union_mask():
    image = np.full((32, 32), 100, dtype=np.uint8)
    union = (disc(image.shape, (16, 16), 8) * 255).astype(np.uint8)
    rgb = draw_overlay(image, union, thickness_px=1, fill_alpha=0.5, legend=False)
    inside = (union > 0) & ~four_neighbour_edge(union > 0)
    expected = np.rint(0.5 * 100 + 0.5 * np.asarray(LESION_COLOURS["lesion"])).astype(np.uint8)
    assert (rgb[inside] == expected).all()
    assert (rgb[four_neighbour_edge(union > 0)] == LESION_COLOURS["lesion"]).all()


def test_draw_overlay_legend_names_the_types_present():
    image = np.full((512, 512), 60, dtype=np.uint8)
    lesion = LesionInstance(disc(image.shape, (400, 400), 30), "infection")
    with_key = draw_overlay(image, [lesion])
    without_key = draw_overlay(image, [lesion], legend=False)
    corner = (slice(0, 128), slice(0, 256))
    assert colour_pixels(with_key[corner], LESION_COLOURS["infection"], 0) > 0
    assert colour_pixels(without_key[corner], LESION_COLOURS["infection"], 0) == 0
    # The key is drawn only for types present: no lesions, no key, image unchanged.
    np.testing.assert_array_equal(draw_overlay(image, []), np.repeat(image[..., None], 3, axis=2))


def test_draw_overlay_rejects_masks_of_another_size():
    with pytest.raises(ValueError, match="shape"):
        draw_overlay(np.zeros((10, 10), np.uint8), [LesionInstance(np.zeros((10, 12), bool), "lesion")])


def test_unknown_lesion_types_get_a_stable_distinct_colour():
    assert lesion_colour("nodule") == lesion_colour("nodule")
    assert lesion_colour("nodule") not in LESION_COLOURS.values()


def test_save_png_round_trips_and_is_atomic(tmp_path, monkeypatch):
    array = np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    save_png(tmp_path / "a.png", array)
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "a.png")), array)

    def failing_save(self, fp, format=None, **params):
        fp.write(b"\x89PNG half")
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", failing_save)
    with pytest.raises(OSError, match="disk full"):
        save_png(tmp_path / "b.png", array)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png"]


def test_save_grid_draws_every_lesion_type_in_its_colour(tmp_path):
    rows = list(tiny_dataset_dict()["train"])
    assert [len(row_instances(r)) for r in rows] == [len(r["objects"]["id"]) for r in rows]
    save_grid(rows, tmp_path / "grid.png", n_cols=3, title="tiny / train")
    with Image.open(tmp_path / "grid.png") as png:
        assert png.format == "PNG"
        grid = np.asarray(png.convert("RGB"))
    height, width = grid.shape[:2]
    assert width > height  # 3 columns x 2 rows of square tiles, plus titles and legend
    for lesion_type in ("ground_glass", "consolidation"):
        assert colour_pixels(grid, LESION_COLOURS[lesion_type]) > 100, lesion_type
    assert colour_pixels(grid, LESION_COLOURS["infection"]) == 0


def test_save_grid_without_rows_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="no rows"):
        save_grid([], tmp_path / "grid.png")
    assert not (tmp_path / "grid.png").exists()



def test_spread_indices_cover_the_split_evenly():
    assert spread_indices(100, 5) == [0, 25, 50, 74, 99]
    assert spread_indices(3, 16) == [0, 1, 2]


def test_show_cli_writes_the_grid(tmp_path, monkeypatch, capsys):
    tiny = tiny_dataset_dict()
    monkeypatch.setattr(dataset_args, "load_dataset_from_args", lambda args: tiny)
    out = tmp_path / "grid.png"
    assert cli.main(["show", "--config", "sample", "--out", str(out), "--subset", "train", "--n", "4"]) == 0
    with Image.open(out) as png:
        grid = np.asarray(png.convert("RGB"))
    assert colour_pixels(grid, LESION_COLOURS["ground_glass"]) > 0
    assert "4 of 6 train images" in capsys.readouterr().out


def test_show_cli_unknown_subset_is_one_clear_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(dataset_args, "load_dataset_from_args", lambda args: tiny_dataset_dict(2, 2))
    out = tmp_path / "grid.png"
    assert cli.main(["show", "--config", "sample", "--out", str(out), "--subset", "validation"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no split 'validation'" in err[0]
    assert list(tmp_path.iterdir()) == []


def test_show_compare_display_draws_each_ct_projection_in_both_displays(tmp_path, monkeypatch, capsys):
    from chexmix_dataset import load_chexmix
    from chexmix_dataset.commands import show

    drawn = {}
    real_save_grid = show.save_grid

    def recording_save_grid(rows, path, **kwargs):
        drawn.update(rows=list(rows), **kwargs)
        real_save_grid(drawn["rows"], path, **kwargs)

    monkeypatch.setattr(show, "save_grid", recording_save_grid)
    out = tmp_path / "compare.png"
    assert cli.main(["show", "--config", "sample", "--subset", "train", "--n", "4", "--compare-display",
                     "--out", str(out)]) == 0
    rows, titles = drawn["rows"], drawn["tile_titles"]
    assert len(rows) == 4 and out.is_file()
    default = {row["image_id"]: row for row in load_chexmix("sample")["train"] if row["source"] == "ct_projection"}
    for plain, processed, plain_title, processed_title in zip(rows[::2], rows[1::2], titles[::2], titles[1::2]):
        assert plain["image_id"] == processed["image_id"] and plain["source"] == processed["source"] == "ct_projection"
        assert "linear" in plain_title and "radiograph" in processed_title
        linear_pixels, radiograph_pixels = np.asarray(plain["image"]), np.asarray(processed["image"])
        # The linear tile is the default build's image; the other one went through the radiograph display.
        assert np.array_equal(linear_pixels, np.asarray(default[plain["image_id"]]["image"]))
        assert linear_pixels.shape == radiograph_pixels.shape
        assert np.abs(linear_pixels.astype(int) - radiograph_pixels.astype(int)).mean() > 2
        assert plain["objects"]["bbox"] == processed["objects"]["bbox"]  # same lesions: only the display differs
    assert "2 of 10 train CT projections, each in both displays" in capsys.readouterr().out


def test_show_compare_display_with_a_display_is_refused(tmp_path, capsys):
    out = tmp_path / "compare.png"
    assert cli.main(["show", "--config", "sample", "--compare-display", "--display", "radiograph",
                     "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--compare-display draws both displays" in err[0]
    assert not out.exists()


def test_show_compare_display_refuses_seed_mode_before_building(tmp_path, monkeypatch, capsys):
    from chexmix_dataset.dataset.builder import CheXMix

    monkeypatch.setattr(CheXMix, "download_and_prepare", lambda *a, **k: pytest.fail("built before refusing"))
    out = tmp_path / "compare.png"
    assert cli.main(["show", "--config", "sample", "--compare-display", "--mode", "seed", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "radiograph needs --mode physics" in err[0]
    assert not out.exists()
