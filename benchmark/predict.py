"""``chexmix predict IMAGE_OR_FOLDER... --weights W --out DIR``: lesion masks for new chest X-rays.

FOR RESEARCH ONLY: the output is not a diagnosis and must not be used for clinical decisions.

Each image is read as a model sees it (:mod:`chexmix_dataset.xray.radiographs`: PNG/JPEG 8/16-bit
with EXIF orientation, DICOM with its value transforms), resized to the model's square input
size exactly as in training (:mod:`benchmark.data`), predicted, and the lesion probabilities are
resized back to the image's own size before they are cut, as the benchmark scores them.

``DIR`` holds, per image ``NAME`` (the file's stem, made unique with ``-2``, ``-3``, ...):
``NAME/mask.png`` (0 background, 255 lesion, at the image's size and orientation),
``NAME/instances.json`` (COCO RLE per lesion with its score) and ``NAME/overlay.png``; and one
``predictions.json`` for the batch (per image: lesions, lesion area in px, as a fraction of the
image and in cm² when the file gives its pixel spacing; the model, its threshold; the images
skipped and why).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from baselines import LesionModel
from benchmark.data import resized_grey
from benchmark.evaluate import masks_at_size
from benchmark.model_files import load_model
from benchmark.train import resolve_device
from chexmix_dataset.atomic import atomic_dir, check_replaceable, write_json
from chexmix_dataset.dataset.lesions import LesionInstance, coco_object
from chexmix_dataset.errors import ChexmixInputError
from chexmix_dataset.figures.overlay import draw_overlay
from chexmix_dataset.xray.images import IMAGE_SUFFIXES
from chexmix_dataset.xray.radiographs import DICOM_SUFFIXES, Radiograph, read_radiograph

RESULTS_FILE = "predictions.json"
NOT_CLINICAL = "For research only: not a diagnosis, not for clinical use."
LESION_TYPE = "lesion"


@dataclass(frozen=True)
class ImagePrediction:
    """Lesions predicted on one radiograph, at its own size (px)."""

    lesion_area: np.ndarray  # (H, W) bool
    instances: list[LesionInstance]
    scores: list[float]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = f"{parser.description}. {NOT_CLINICAL}"
    parser.add_argument("inputs", nargs="+", type=Path,
                        help="chest X-ray files (PNG, JPEG, TIFF, BMP, WebP or DICOM) or folders of them "
                             "(not recursive)")
    parser.add_argument("--weights", required=True,
                        help="model folder with model.safetensors + config.json (a chexmix bench run's "
                             "runs/<cell>/<model>/seed<k>/model), that model.safetensors, or hub:ORG/NAME")
    parser.add_argument("--out", type=Path, required=True,
                        help="output folder; a previous predict output there is replaced, other files are refused")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"),
                        help="where the model runs (default: %(default)s)")
    parser.add_argument("--threshold", type=float, default=None,
                        help="operating threshold (instance score for Mask R-CNN, lesion probability for the "
                             "U-Net); default: the one chosen on validation during training, from config.json")


def input_files(inputs: list[Path]) -> list[Path]:
    """The image files named or contained (one level) in ``inputs``, in the order given."""
    suffixes = (*IMAGE_SUFFIXES, *DICOM_SUFFIXES)
    files: list[Path] = []
    for path in inputs:
        if path.is_dir():
            files += sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in suffixes)
        elif path.exists():
            files.append(path)
        else:
            raise ChexmixInputError("input image or folder does not exist", path)
    if not files:
        raise ChexmixInputError(f"no image files ({', '.join(suffixes)}) found in the inputs", inputs[0])
    return files


def unique_names(files: list[Path]) -> list[str]:
    """Output folder names: file stems, made unique in input order with -2, -3, ... (skipping any
    suffixed name an input's own stem already takes: a-2.png, a.png, a.jpg -> a-2, a, a-3)."""
    taken = {file.stem or "image" for file in files}
    used: set[str] = set()
    names = []
    for file in files:
        stem = name = file.stem or "image"
        copy = 1
        while name in used or (copy > 1 and name in taken):
            copy += 1
            name = f"{stem}-{copy}"
        used.add(name)
        names.append(name)
    return names


def model_input(image: np.ndarray, size: int) -> torch.Tensor:
    """(1, 1, S, S) float in [0, 1]: the image as training saw its images (benchmark.data.resized_grey)."""
    return torch.from_numpy(resized_grey(image, size)).float().div_(255.0)[None, None]


@torch.no_grad()
def predict_radiograph(model: LesionModel, image: np.ndarray, image_size: int, device: torch.device
                       ) -> ImagePrediction:
    """The lesions ``model`` finds on a (H, W) uint8 radiograph, at its own size."""
    height, width = image.shape
    prediction = model.predict(model_input(image, image_size).to(device))[0]
    cut = prediction.mask_threshold
    area = masks_at_size(prediction.lesion_probability, height, width, cut)
    keep = model.confident_instances(prediction)
    instances, scores = [], []
    for probability, score in zip(prediction.instance_probabilities[keep], prediction.scores[keep]):
        mask = masks_at_size(probability, height, width, cut) & area
        if mask.any():
            instances.append(LesionInstance(mask=mask, lesion_type=LESION_TYPE))
            scores.append(float(score))
    return ImagePrediction(area, instances, scores)


def image_record(file: Path, name: str, radiograph: Radiograph, prediction: ImagePrediction) -> dict:
    """The predictions.json entry of one image."""
    height, width = radiograph.image.shape
    area_px = int(prediction.lesion_area.sum())
    record = {"image": str(file), "name": name, "width": width, "height": height,
              "lesions": len(prediction.instances), "lesion_area_px": area_px,
              "lesion_area_fraction": area_px / float(height * width),
              "pixel_spacing_mm": None if radiograph.pixel_spacing_mm is None else list(radiograph.pixel_spacing_mm),
              "lesion_area_cm2": None}
    if radiograph.pixel_spacing_mm is not None:
        row_mm, col_mm = radiograph.pixel_spacing_mm
        record["lesion_area_cm2"] = area_px * row_mm * col_mm / 100.0
    return record


def _write_image_outputs(folder: Path, radiograph: Radiograph, prediction: ImagePrediction) -> None:
    folder.mkdir()
    shape = radiograph.image.shape
    Image.fromarray(np.where(prediction.lesion_area, 255, 0).astype(np.uint8)).save(folder / "mask.png")
    Image.fromarray(draw_overlay(radiograph.image, prediction.instances)).save(folder / "overlay.png")
    objects = []
    for index, (instance, score) in enumerate(zip(prediction.instances, prediction.scores)):
        objects.append({**coco_object(instance, index), "score": score})
    write_json(folder / "instances.json", {"width": shape[1], "height": shape[0], "instances": objects,
                                           "note": NOT_CLINICAL})


def _replaceable_names(out: Path) -> list[str]:
    """What a previous predict output in ``out`` holds (so that it may be replaced), else nothing."""
    if out.is_dir() and (out / RESULTS_FILE).is_file():
        return [p.name for p in out.iterdir()]
    return []


def run(args: argparse.Namespace) -> int:
    previous = _replaceable_names(args.out)
    check_replaceable(args.out, previous)  # before loading anything: fail fast on a foreign folder
    if args.threshold is not None and not 0.0 <= args.threshold <= 1.0:
        raise ChexmixInputError(f"--threshold must be in [0, 1], got {args.threshold}")
    files = input_files(args.inputs)
    device = resolve_device(args.device)
    model, config = load_model(args.weights)
    if args.threshold is not None:
        model.threshold = args.threshold
    model.to(device)
    image_size = int(config["image_size"])
    records, skipped = [], []
    with atomic_dir(args.out, replaces=previous) as tmp:
        for file, name in tqdm(list(zip(files, unique_names(files))), desc="predict", unit="image"):
            try:
                radiograph = read_radiograph(file)
            except ChexmixInputError as exc:
                skipped.append({"image": str(file), "reason": str(exc)})
                continue
            prediction = predict_radiograph(model, radiograph.image, image_size, device)
            _write_image_outputs(tmp / name, radiograph, prediction)
            records.append(image_record(file, name, radiograph, prediction))
        if not records:
            raise ChexmixInputError(f"no image could be read ({len(skipped)} skipped; first: {skipped[0]['reason']})")
        write_json(tmp / RESULTS_FILE, {
            "note": NOT_CLINICAL, "weights": args.weights, "architecture": model.architecture,
            "threshold": model.threshold, "threshold_kind": model.threshold_kind, "image_size": image_size,
            "device": str(device), "images": records, "skipped": skipped,
        })
    for entry in skipped:
        print(f"skipped {entry['reason']}", file=sys.stderr)
    print(f"{args.out}: {len(records)} image(s) predicted, {len(skipped)} skipped "
          f"({model.architecture}, threshold {model.threshold:.3g}). {NOT_CLINICAL}")
    return 0
