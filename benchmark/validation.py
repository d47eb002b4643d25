"""The validation part of a training split: the operating threshold and the best epoch.

Each run holds out a patient-level part of its training split (never the test split):
``chexmix_dataset.dataset.splits.patient_split`` on the rows' ``patient_id`` with seed 0, keeping
``1 - VALIDATION_FRACTION`` of the images for training, separately for the patients with real
CXRs only, with CT projections only and with both (the rows' ``source``), so that the part that
trains keeps the mix of the cell: a Mixed cell of few CXRs must not lose all of them to
validation and train on projections alone. The part is the same for every model and
seed of a cell, so their scores stay comparable (parts without lesions: see below). After every
epoch the model predicts it, and the *pooled* IoU (intersection over union of all its lesion
pixels together, at the model's input size against the resized masks) is measured at every candidate threshold (0.05, 0.10,
..., 0.95: a Mask R-CNN instance score, a U-Net lesion probability). Pooled, not the per-image
mean of the test scores: with the empty-ground-truth rule a mean over a few lesion-free images
is 1 for a model that predicts nothing, which would choose the untrained first epoch; pooled
IoU is 0 for it and still counts false positives on lesion-free images. The epoch with the
best such IoU gives the run's "best" weights and its threshold; ties go to the threshold
nearest 0.5, then to the lower one.

A validation part without any lesion cannot rank thresholds, so then the part is drawn again
with seeds 1, 2, ... (``VALIDATION_DRAWS`` draws in all, deterministic).

Fallback rule: a training split of fewer than ``MIN_TRAIN_IMAGES`` images (or one where no
draw gives both parts an image and the validation part a lesion) has no validation part. Then every image trains, the threshold is the model's default 0.5 and the
last epoch's weights are scored; results.json records which rule applied.
"""

from __future__ import annotations

from dataclasses import dataclass

import datasets
import numpy as np
import torch

from baselines import LesionModel
from chexmix_dataset.dataset.splits import patient_split

VALIDATION_FRACTION = 0.2
MIN_TRAIN_IMAGES = 10
#: the validation part is drawn with this seed, whatever the run's seed; when it holds no lesion,
#: the next seeds are tried, up to VALIDATION_DRAWS draws in all.
VALIDATION_SEED = 0
VALIDATION_DRAWS = 10
THRESHOLDS = tuple(round(0.05 * k, 2) for k in range(1, 20))
DEFAULT_THRESHOLD = 0.5


@dataclass(frozen=True)
class TrainValidation:
    """Row indices of a training split that train and that validate (empty: fallback rule)."""

    train: list[int]
    validation: list[int]

    @property
    def rule(self) -> str:
        if self.validation:
            return (f"validation: best pooled IoU over {len(self.validation)} held-out training images "
                    f"({VALIDATION_FRACTION:.0%} of the patients' images, patient-level, per source)")
        return (f"default {DEFAULT_THRESHOLD}: the training split is too small (< {MIN_TRAIN_IMAGES} images, "
                "too few patients, or no lesion in the validation part) for a validation part; last epoch scored")


def source_strata(patient_ids: list[str], sources: list[str]) -> list[list[int]]:
    """Row indices grouped by what their patient has: the sorted set of the patient's sources
    ("cxr", "ct_projection" or both), so that one patient stays in one group."""
    by_patient: dict[str, set[str]] = {}
    for patient, source in zip(patient_ids, sources):
        by_patient.setdefault(patient, set()).add(source)
    groups: dict[tuple[str, ...], list[int]] = {}
    for index, patient in enumerate(patient_ids):
        groups.setdefault(tuple(sorted(by_patient[patient])), []).append(index)
    return [groups[key] for key in sorted(groups)]


def split_validation(train: datasets.Dataset) -> TrainValidation:
    """Hold out a patient-level validation part of ``train`` (see the module docstring)."""
    everything = list(range(len(train)))
    if len(train) < MIN_TRAIN_IMAGES:
        return TrainValidation(everything, [])
    has_lesion = [len(objects["id"]) > 0 for objects in train["objects"]]
    patients = train["patient_id"]
    strata = source_strata(patients, train["source"] if "source" in train.column_names else [""] * len(train))
    for seed in range(VALIDATION_SEED, VALIDATION_SEED + VALIDATION_DRAWS):
        fit, held_out = [], []
        for rows in strata:
            part_fit, part_held_out = patient_split(rows, [patients[i] for i in rows], 1 - VALIDATION_FRACTION, seed)
            fit += part_fit
            held_out += part_held_out
        if fit and any(has_lesion[i] for i in held_out):
            return TrainValidation(sorted(fit), sorted(held_out))
    return TrainValidation(everything, [])


@torch.no_grad()
def validation_ious(model: LesionModel, loader: torch.utils.data.DataLoader, device: torch.device) -> list[float]:
    """Pooled IoU over ``loader``'s images at every threshold of :data:`THRESHOLDS`."""
    intersections = np.zeros(len(THRESHOLDS))
    unions = np.zeros(len(THRESHOLDS))
    with model.evaluating():  # training goes on after validation
        for images, targets in loader:
            for prediction, target in zip(model.predict(images.to(device)), targets):
                truth = (target["masks"].amax(dim=0).bool() if len(target["masks"])
                         else torch.zeros(images.shape[-2:], dtype=torch.bool)).to(device)
                for k, threshold in enumerate(THRESHOLDS):
                    area = model.lesion_area(prediction, threshold)
                    intersections[k] += int((area & truth).sum())
                    unions[k] += int((area | truth).sum())
    return [float(i / u) if u else 1.0 for i, u in zip(intersections, unions)]


def best_threshold(ious: list[float]) -> tuple[float, float]:
    """(threshold, mean IoU) of the best threshold; ties: nearest 0.5, then the lower."""
    best = max(range(len(THRESHOLDS)),
               key=lambda k: (ious[k], -abs(THRESHOLDS[k] - DEFAULT_THRESHOLD), -THRESHOLDS[k]))
    return THRESHOLDS[best], ious[best]
