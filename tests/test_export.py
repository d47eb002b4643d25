"""COCO and VIA exports, checked by reading them back the way their consumers do."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import datasets
import numpy as np
import pytest
from helpers import disc, disc_image_row, tiny_dataset_dict
from matplotlib.path import Path as PolygonPath
from PIL import Image
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from scipy import ndimage

from chexmix_dataset import cli
from chexmix_dataset.commands import dataset_args
from chexmix_dataset.dataset.features import FEATURES
from chexmix_dataset.dataset.lesions import LesionInstance
from chexmix_dataset.dataset.rows import make_row
from chexmix_dataset.errors import ChexmixInputError
from chexmix_dataset.export import coco as coco_module
from chexmix_dataset.export import export_coco, export_via, mask_to_polygons


@pytest.fixture(scope="module")
def tiny() -> datasets.DatasetDict:
    return tiny_dataset_dict()


@pytest.fixture(scope="module")
def coco_dir(tiny, tmp_path_factory) -> tuple[Path, dict[str, Path]]:
    out_dir = tmp_path_factory.mktemp("coco") / "export"
    return out_dir, export_coco(tiny, out_dir)


def load_coco(path: Path) -> COCO:
    with contextlib.redirect_stdout(io.StringIO()):  # COCO() prints timings
        return COCO(str(path))


def row_masks(row: dict) -> list[np.ndarray]:
    return [mask_utils.decode({"size": seg["size"], "counts": seg["counts"].encode()}).astype(bool)
            for seg in row["objects"]["segmentation"]]


def rasterise_polygon(xs: list[float], ys: list[float], shape: tuple[int, int]) -> np.ndarray:
    """Pixels whose centre (x = column, y = row) lies inside the polygon, like skimage.draw.polygon."""
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    inside = PolygonPath(np.column_stack([xs, ys])).contains_points(np.column_stack([xx.ravel(), yy.ravel()]))
    return inside.reshape(shape)


# ---------------------------------------------------------------- COCO


def test_coco_layout_and_images(tiny, coco_dir):
    out_dir, paths = coco_dir
    assert paths == {split: out_dir / "annotations" / f"instances_{split}.json" for split in ("train", "test")}
    for split in ("train", "test"):
        coco = load_coco(paths[split])
        assert len(coco.imgs) == len(tiny[split])
        for row in tiny[split]:
            (info,) = [img for img in coco.imgs.values() if img["chexmix_image_id"] == row["image_id"]]
            image_path = out_dir / "images" / split / info["file_name"]
            assert info["file_name"] == f"{row['image_id']}.png"
            with Image.open(image_path) as stored:
                assert stored.size == (info["width"], info["height"]) == (row["width"], row["height"])
                np.testing.assert_array_equal(np.asarray(stored), np.asarray(row["image"]))
            assert (info["source"], info["patient_id"], info["origin"]) == (row["source"], row["patient_id"],
                                                                           row["origin"])
            licenses = {entry["id"]: entry["name"] for entry in coco.dataset["licenses"]}
            assert licenses[info["license"]] == row["license"]
        assert coco.dataset["categories"] == [{"id": 1, "name": "lesion", "supercategory": "lung"}]


def test_coco_masks_boxes_and_areas_match_rows(tiny, coco_dir):
    _, paths = coco_dir
    for split in ("train", "test"):
        coco = load_coco(paths[split])
        by_name = {img["chexmix_image_id"]: img["id"] for img in coco.imgs.values()}
        for row in tiny[split]:
            anns = coco.loadAnns(coco.getAnnIds(imgIds=[by_name[row["image_id"]]]))
            masks = row_masks(row)
            assert len(anns) == len(masks) == len(row["objects"]["id"])
            union = np.zeros((row["height"], row["width"]), dtype=bool)
            for ann, mask, lesion_type in zip(anns, masks, row["objects"]["lesion_type"]):
                decoded = coco.annToMask(ann).astype(bool)
                np.testing.assert_array_equal(decoded, mask)
                rows_, cols = np.nonzero(mask)
                assert ann["bbox"] == [cols.min(), rows_.min(), cols.max() - cols.min() + 1,
                                       rows_.max() - rows_.min() + 1]
                assert ann["area"] == mask.sum()
                assert (ann["category_id"], ann["iscrowd"], ann["lesion_type"]) == (1, 0, lesion_type)
                union |= decoded
            # The row's union mask is stored separately (a PNG), so it is an independent check.
            np.testing.assert_array_equal(union, np.asarray(row["mask"]) > 0)
        ann_ids = [ann["id"] for ann in coco.dataset["annotations"]]
        assert len(set(ann_ids)) == len(ann_ids) and min(ann_ids) >= 1


@pytest.mark.parametrize("iou_type", ["segm", "bbox"])
def test_coco_ground_truth_scores_perfect_ap_against_itself(coco_dir, iou_type):
    _, paths = coco_dir
    gt = load_coco(paths["test"])
    detections = [{"image_id": ann["image_id"], "category_id": ann["category_id"], "score": 1.0,
                   **({"segmentation": ann["segmentation"]} if iou_type == "segm" else {"bbox": ann["bbox"]})}
                  for ann in gt.dataset["annotations"]]
    with contextlib.redirect_stdout(io.StringIO()):
        evaluation = COCOeval(gt, gt.loadRes(detections), iouType=iou_type)
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    ap, ap50, ap75 = evaluation.stats[:3]
    assert ap == pytest.approx(1.0) and ap50 == pytest.approx(1.0) and ap75 == pytest.approx(1.0)


def test_coco_detections_that_miss_score_below_one(coco_dir):
    """The self-scoring oracle can fail: shifting every detected box by its own width drops AP to 0."""
    _, paths = coco_dir
    gt = load_coco(paths["test"])
    shifted = [{"image_id": ann["image_id"], "category_id": 1, "score": 1.0,
                "bbox": [ann["bbox"][0] + ann["bbox"][2], *ann["bbox"][1:]]} for ann in gt.dataset["annotations"]]
    with contextlib.redirect_stdout(io.StringIO()):
        evaluation = COCOeval(gt, gt.loadRes(shifted), iouType="bbox")
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    assert evaluation.stats[0] == pytest.approx(0.0)


def test_coco_export_failure_leaves_nothing(tiny, tmp_path, monkeypatch):
    calls = []

    def failing_png(row, split):
        calls.append(row["image_id"])
        if len(calls) == 3:
            raise RuntimeError("disk full")
        return real_png(row, split)

    real_png = coco_module.grey_png
    monkeypatch.setattr(coco_module, "grey_png", failing_png)
    with pytest.raises(RuntimeError, match="disk full"):
        export_coco(tiny, tmp_path / "out")
    assert len(calls) == 3
    assert list(tmp_path.iterdir()) == []  # no out_dir, no hidden partial folder


def test_coco_failed_overwrite_keeps_previous_export(tiny, tmp_path, monkeypatch):
    out_dir = tmp_path / "out"
    export_coco(tiny, out_dir)
    before = sorted(p.relative_to(out_dir) for p in out_dir.rglob("*"))

    def failing_write_json(path, obj):
        raise RuntimeError("boom")

    monkeypatch.setattr(coco_module, "write_json", failing_write_json)
    with pytest.raises(RuntimeError, match="boom"):
        export_coco(tiny, out_dir, overwrite=True)
    assert sorted(p.relative_to(out_dir) for p in out_dir.rglob("*")) == before
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_existing_out_dir_is_refused_without_overwrite(tiny, tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    for export in (export_coco, export_via):
        with pytest.raises(ChexmixInputError, match="already exists"):
            export(tiny, tmp_path / "out")
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["keep.txt"]
    (tmp_path / "empty").mkdir()  # an empty folder is used as by every other command
    assert export_coco(tiny, tmp_path / "empty")["train"].is_file()


@pytest.mark.parametrize("bad_id", ["a/b", "..", ""])
def test_image_id_that_is_not_a_file_name_is_refused(tmp_path, bad_id):
    row = disc_image_row(0)
    row["image_id"] = bad_id
    dataset = datasets.DatasetDict({"train": datasets.Dataset.from_list([row], features=FEATURES)})
    with pytest.raises(ChexmixInputError, match="file name"):
        export_coco(dataset, tmp_path / "out")
    assert list(tmp_path.iterdir()) == []


def test_duplicate_image_ids_are_refused(tmp_path):
    rows = [disc_image_row(0), disc_image_row(0)]
    dataset = datasets.DatasetDict({"test": datasets.Dataset.from_list(rows, features=FEATURES)})
    with pytest.raises(ChexmixInputError, match="appears twice"):
        export_via(dataset, tmp_path / "out")
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- VIA / Matterport balloon


def load_balloon_subset(dataset_dir: Path, subset: str) -> list[dict]:
    """What Matterport's samples/balloon/balloon.py load_balloon() + load_mask() do, without skimage."""
    assert subset in ["train", "val"]
    subset_dir = dataset_dir / subset
    annotations = list(json.loads((subset_dir / "via_region_data.json").read_text()).values())
    annotations = [a for a in annotations if a["regions"]]  # balloon.py skips images without regions
    images = []
    for a in annotations:
        regions = a["regions"].values() if isinstance(a["regions"], dict) else a["regions"]
        polygons = [r["shape_attributes"] for r in regions]
        with Image.open(subset_dir / a["filename"]) as image:
            width, height = image.size
        masks = [rasterise_polygon(p["all_points_x"], p["all_points_y"], (height, width)) for p in polygons]
        images.append({"filename": a["filename"], "masks": masks, "regions": list(regions)})
    return images


@pytest.fixture(scope="module")
def via_dataset() -> datasets.DatasetDict:
    """tiny_dataset_dict plus one lesion-free test image and one lesion cut by the image border."""
    tiny = tiny_dataset_dict()
    test_rows = list(tiny["test"]) + [disc_image_row(200, n_lesions=0)]
    edge = disc_image_row(201, n_lesions=1)
    edge_mask = disc((64, 64), (2, 30), 7)
    image = np.asarray(edge["image"]).copy()
    image[edge_mask] = 220
    test_rows.append(make_row(image, [LesionInstance(edge_mask, "consolidation")], image_id="edge-0201",
                              source="cxr", origin="test/discs", patient_id="patient-edge", license="CC0-1.0"))
    return datasets.DatasetDict({"train": tiny["train"],
                                 "test": datasets.Dataset.from_list(test_rows, features=FEATURES)})


@pytest.fixture(scope="module")
def via_dir(via_dataset, tmp_path_factory) -> tuple[Path, dict[str, Path]]:
    out_dir = tmp_path_factory.mktemp("via") / "balloon"
    return out_dir, export_via(via_dataset, out_dir)


def test_via_layout_is_balloon_train_and_val(via_dataset, via_dir):
    out_dir, paths = via_dir
    assert paths == {"train": out_dir / "train" / "via_region_data.json",
                     "test": out_dir / "val" / "via_region_data.json"}
    for split, subset in (("train", "train"), ("test", "val")):
        entries = json.loads(paths[split].read_text())
        assert len(entries) == len(via_dataset[split])
        for key, entry in entries.items():
            image_path = out_dir / subset / entry["filename"]
            # VIA 2.0 keys an image by file name + file size in bytes.
            assert entry["size"] == image_path.stat().st_size and key == f"{entry['filename']}{entry['size']}"
            assert all(r["shape_attributes"]["name"] == "polygon" for r in entry["regions"])


def test_via_keeps_lesion_free_images_that_balloon_skips(via_dataset, via_dir):
    out_dir, paths = via_dir
    entries = json.loads(paths["test"].read_text()).values()
    empty = [e["filename"] for e in entries if not e["regions"]]
    assert empty == ["cxr-0200.png"]
    loaded = [image["filename"] for image in load_balloon_subset(out_dir, "val")]
    assert len(loaded) == len(via_dataset["test"]) - 1 and "cxr-0200.png" not in loaded


def test_via_polygons_rasterise_back_to_each_lesion(via_dataset, via_dir):
    out_dir, _ = via_dir
    for split, subset in (("train", "train"), ("test", "val")):
        rows = {f"{row['image_id']}.png": row for row in via_dataset[split]}
        for image in load_balloon_subset(out_dir, subset):
            row = rows[image["filename"]]
            instance_ids = [r["region_attributes"]["instance_id"] for r in image["regions"]]
            for k, (instance_id, mask) in enumerate(zip(row["objects"]["id"], row_masks(row))):
                raster = np.zeros_like(mask)
                for region, region_mask in zip(image["regions"], image["masks"]):
                    if region["region_attributes"]["instance_id"] == instance_id:
                        assert region["region_attributes"]["lesion_type"] == row["objects"]["lesion_type"][k]
                        raster |= region_mask
                iou = (raster & mask).sum() / (raster | mask).sum()
                assert iou >= 0.9, (image["filename"], instance_id, iou)
            assert sorted(set(instance_ids)) == sorted(row["objects"]["id"])


def test_via_splits_that_share_a_folder_are_refused(tmp_path):
    tiny = tiny_dataset_dict(n_train=1, n_test=1)
    clash = datasets.DatasetDict({"test": tiny["test"], "val": tiny["test"]})
    with pytest.raises(ChexmixInputError, match="val/"):
        export_via(clash, tmp_path / "out")
    assert list(tmp_path.iterdir()) == []


def _shapes() -> dict[str, np.ndarray]:
    shapes = {name: np.zeros((20, 24), dtype=bool) for name in
              ("square_at_corner", "l_shape", "ring", "two_pieces", "single_pixel", "whole_image")}
    shapes["square_at_corner"][:5, :5] = True
    shapes["l_shape"][3:15, 4:8] = True
    shapes["l_shape"][11:15, 4:18] = True
    shapes["ring"][4:16, 4:16] = True
    shapes["ring"][8:12, 8:12] = False
    shapes["two_pieces"][2:6, 2:9] = True
    shapes["two_pieces"][12:18, 15:23] = True
    shapes["single_pixel"][10, 10] = True
    shapes["whole_image"][:] = True
    return shapes


@pytest.mark.parametrize("name", list(_shapes()))
def test_mask_to_polygons_traces_outer_outlines_exactly(name):
    mask = _shapes()[name]
    polygons = mask_to_polygons(mask)
    assert len(polygons) == ndimage.label(mask)[1]
    raster = np.zeros_like(mask)
    for polygon in polygons:
        assert polygon.shape[1] == 2 and len(polygon) >= 3
        raster |= rasterise_polygon(polygon[:, 0], polygon[:, 1], mask.shape)
    # Outer outlines only: the ring's hole comes back filled, every other shape exactly.
    np.testing.assert_array_equal(raster, ndimage.binary_fill_holes(mask))


def test_mask_to_polygons_of_empty_mask_is_empty():
    assert mask_to_polygons(np.zeros((8, 8), dtype=bool)) == []


# ---------------------------------------------------------------- command line


@pytest.mark.parametrize("fmt, json_path", [("coco", "annotations/instances_test.json"),
                                            ("via", "val/via_region_data.json")])
def test_export_cli_writes_the_layout(tmp_path, monkeypatch, capsys, fmt, json_path):
    monkeypatch.setattr(dataset_args, "load_dataset_from_args", lambda args: tiny_dataset_dict(2, 2))
    out_dir = tmp_path / "out"
    assert cli.main(["export", fmt, "--config", "sample", "--out", str(out_dir)]) == 0
    assert (out_dir / json_path).is_file()
    assert str(out_dir / json_path) in capsys.readouterr().out
    # A second export into the same folder needs --overwrite: one stderr line, exit code 2.
    assert cli.main(["export", fmt, "--config", "sample", "--out", str(out_dir)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(out_dir) in err[0] and "already exists" in err[0]
    assert cli.main(["export", fmt, "--config", "sample", "--out", str(out_dir), "--overwrite"]) == 0


def test_export_cli_end_to_end_on_the_offline_sample_config(tmp_path):
    """The real builder (phantom CTs and CXR stand-ins, ~10 s on 2 cores), exported as COCO."""
    out_dir = tmp_path / "coco"
    argv = ["export", "coco", "--config", "sample", "--size", "64", "--out", str(out_dir),
            "--cache-dir", str(tmp_path / "cache")]
    assert cli.main(argv) == 0
    sources = set()
    for split in ("train", "test"):
        coco = load_coco(out_dir / "annotations" / f"instances_{split}.json")
        assert coco.imgs
        for info in coco.imgs.values():
            with Image.open(out_dir / "images" / split / info["file_name"]) as stored:
                assert stored.size == (info["width"], info["height"]) and stored.mode == "L"
            sources.add(info["source"])
        for ann in coco.dataset["annotations"]:
            mask = coco.annToMask(ann)
            assert mask.sum() == ann["area"] > 0
            assert ann["lesion_type"] in {"ground_glass", "consolidation"}
    assert sources == {"cxr", "ct_projection"}


def test_export_refuses_a_bad_out_before_building(tmp_path, capsys, monkeypatch):
    from chexmix_dataset.cli import main
    from chexmix_dataset.commands import dataset_args

    def must_not_build(args):
        raise AssertionError("the dataset was built before --out was checked")

    monkeypatch.setattr(dataset_args, "load_dataset_from_args", must_not_build)
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep")
    assert main(["export", "coco", "--config", "sample", "--out", str(out), "--overwrite"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "notes.txt" in err[0]
    assert [p.name for p in out.iterdir()] == ["notes.txt"]
