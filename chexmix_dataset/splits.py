"""Patient-level, seeded train/test splits and the paper's CXR/CT-projection mix.

Rules:

- A patient's images all go to one split (no patient in both train and test).
- Patients are shuffled with ``numpy.random.default_rng(seed)`` after sorting their ids, then
  train takes patients in that order while it holds fewer images than ``train_fraction`` of
  the total; the rest is test. The same seed and items always give the same split.
- ``mixed``: the CXRs are split exactly as in ``xrays_only`` (identical test set, real CXRs
  only). The training set keeps its size ``n``: ``round(ct_fraction * n)`` of its CXRs
  (a seeded choice) are replaced by as many CT projections (a seeded choice of CT cases).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Sequence, TypeVar

import numpy as np

from .errors import ChexmixInputError

Item = TypeVar("Item")


def parse_split(text: str | float) -> float:
    """Train fraction from "60/40", "80/20", "70:30", "0.6" or 0.6."""
    if isinstance(text, (int, float)):
        fraction = float(text)
    else:
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*[/:]\s*(\d+(?:\.\d+)?)\s*", text)
        try:
            fraction = float(match.group(1)) / (float(match.group(1)) + float(match.group(2))) if match else float(text)
        except (ValueError, ZeroDivisionError):
            fraction = -1.0
    if not 0.0 < fraction < 1.0:
        raise ChexmixInputError(f"split must be TRAIN/TEST like 60/40 or a fraction in (0, 1), got {text!r}")
    return fraction


def patient_split(items: Sequence[Item], patient_ids: Sequence[str], train_fraction: float, seed: int
                  ) -> tuple[list[Item], list[Item]]:
    """Split ``items`` so that no patient is in both parts; deterministic for a seed."""
    by_patient: dict[str, list[int]] = {}
    for index, patient in enumerate(patient_ids):
        by_patient.setdefault(patient, []).append(index)
    patients = sorted(by_patient)
    order = np.random.default_rng(seed).permutation(len(patients))
    target = train_fraction * len(items)
    train_idx: list[int] = []
    test_idx: list[int] = []
    for rank in order:
        members = by_patient[patients[rank]]
        (train_idx if len(train_idx) + len(members) / 2 <= target else test_idx).extend(members)
    return [items[i] for i in sorted(train_idx)], [items[i] for i in sorted(test_idx)]


def seeded_choice(items: Sequence[Item], count: int, seed: int) -> list[Item]:
    """``count`` items chosen without replacement, in their original order."""
    chosen = np.sort(np.random.default_rng(seed).choice(len(items), size=min(count, len(items)), replace=False))
    return [items[i] for i in chosen]


@dataclass
class SplitPlan:
    """Which items make each split, and what could not be placed."""

    train: list = field(default_factory=list)
    test: list = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    skipped: list = field(default_factory=list)  # SkippedItem from the sources


def mixed_plan(cxr_train: list, cxr_test: list, ct_items: list, ct_fraction: float, seed: int) -> SplitPlan:
    """The paper's mix: the CXR training set with ``ct_fraction`` of it replaced by CT projections."""
    if not 0.0 <= ct_fraction <= 1.0:
        raise ChexmixInputError(f"ct_fraction must be in [0, 1], got {ct_fraction}")
    n_ct = int(round(ct_fraction * len(cxr_train)))
    notes = []
    if n_ct > len(ct_items):
        notes.append(f"only {len(ct_items)} CT projections for {n_ct} places: the training set is smaller")
    # Separate seeds for the two draws, so that changing one collection never reshuffles the other.
    kept_cxr = seeded_choice(cxr_train, len(cxr_train) - n_ct, seed)
    ct_chosen = seeded_choice(ct_items, n_ct, seed + 1)
    return SplitPlan(train=kept_cxr + ct_chosen, test=list(cxr_test), notes=notes)
