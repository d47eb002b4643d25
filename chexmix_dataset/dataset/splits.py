"""Patient-level, seeded train/test splits and the paper's CXR/CT-projection mix.

Rules:

- A patient's images all go to one split (no patient in both train and test).
- Patients are shuffled with ``numpy.random.default_rng(seed)`` after sorting their ids, then
  train takes patients in that order while it holds fewer images than ``train_fraction`` of
  the total; the rest is test. The same seed and items always give the same split.
- ``mixed``: the CXRs are split exactly as in ``xrays_only`` (identical test set, real CXRs
  only). The training set keeps its size ``n``: ``round(ct_fraction * n)`` of its CXRs
  (a seeded choice) are replaced by as many CT projections. CTs of patients whose CXRs are in
  the test set are never used. With enough CTs, each chosen CT (a seeded choice) gives one
  frontal view; with too few, every CT gives its frontal view and further views turned about
  the superior-inferior axis (:data:`chexmix_dataset.ct.views.VIEW_ANGLES_DEG`: 0, +5, -5, +10,
  -10 degrees, taken in that order, each angle by a seeded share of the CTs) until the quota is
  filled. When even that cannot fill it, planning fails: the mix never shrinks silently.
- ``official`` (:func:`official_split`): each item goes where its collection's own split puts it
  (``official_split`` "train" or "test"; QaTa-COV19, COVID-QU-Ex). Every item split must have one,
  and no patient may be in both parts; otherwise planning fails.
"""

from __future__ import annotations

import dataclasses
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Sequence, TypeVar

import numpy as np

from chexmix_dataset.ct.views import VIEW_ANGLES_DEG
from chexmix_dataset.errors import ChexmixInputError

Item = TypeVar("Item")


SPLIT_FORMS = ("TRAIN/TEST percentages summing to 100 like 60/40, 80/20 or 70:30, a train fraction in (0, 1) "
               "like 0.6, or 'official'")


def parse_split(text: str | float) -> float:
    """Train fraction from "60/40", "80/20", "70:30" (percentages summing to 100), "0.6" or 0.6.

    Raises:
        ChexmixInputError: naming ``--split``: a pair not summing to 100 (``120/30`` is not read as
            80/20), a fraction outside (0, 1), or text of neither form ("official" is handled by
            :func:`is_official` before this).
    """
    if isinstance(text, (int, float)):
        fraction = float(text)
    else:
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*[/:]\s*(\d+(?:\.\d+)?)\s*", text)
        if match:
            train, test = float(match.group(1)), float(match.group(2))
            if abs(train + test - 100.0) > 1e-9:
                raise ChexmixInputError(f"--split {text!r} must be {SPLIT_FORMS}: {match.group(1)} + "
                                        f"{match.group(2)} is {train + test:g}, not 100")
            fraction = train / 100.0
        else:
            try:
                fraction = float(text)
            except ValueError:
                fraction = -1.0
    if not 0.0 < fraction < 1.0:  # nan fails too
        raise ChexmixInputError(f"--split {text!r} must be {SPLIT_FORMS}, with both parts above 0")
    return fraction


OFFICIAL = "official"


def is_official(text: str | float) -> bool:
    """Whether ``--split`` asks for the sources' own train/test split."""
    return isinstance(text, str) and text.strip().lower() == OFFICIAL


def official_split(items: Sequence[Item], what: str = "image") -> tuple[list[Item], list[Item]]:
    """Split ``items`` by their ``official_split`` ("train"/"test"), in their original order.

    Raises:
        ChexmixInputError: an item without an official split (naming the origins lacking one), or
            a patient whose items the collections put in both parts.
    """
    lacking = Counter(getattr(item, "origin", "?") for item in items
                      if getattr(item, "official_split", None) not in ("train", "test"))
    if lacking:
        listing = ", ".join(f"{origin} ({count})" for origin, count in sorted(lacking.items()))
        raise ChexmixInputError(f"--split official needs every {what} to carry its collection's own train/test "
                                f"split, but these have none: {listing}; use sources that publish one "
                                "(qata_cov19, covid_qu_ex) or a ratio such as 60/40")
    train = [item for item in items if item.official_split == "train"]
    test = [item for item in items if item.official_split == "test"]
    shared = sorted({item.patient_id for item in train} & {item.patient_id for item in test})
    if shared:
        raise ChexmixInputError(f"--split official would put {len(shared)} patient(s) in both train and test "
                                f"(e.g. {shared[0]}); splits must stay patient-level, use a ratio such as 60/40")
    return train, test


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


def mixed_plan(cxr_train: list, cxr_test: list, ct_items: list, ct_fraction: float, seed: int,
               view_angles_deg: Sequence[float] = VIEW_ANGLES_DEG) -> SplitPlan:
    """The paper's mix: the CXR training set with ``ct_fraction`` of it replaced by CT projections.

    Items are cases with a ``patient_id`` (CT cases also with ``view_deg``); a CT case whose patient has a CXR in ``cxr_test`` is left out. The returned training
    set always has ``len(cxr_train)`` items; extra views are copies of a case with ``view_deg``
    set (``dataclasses.replace``).

    Raises:
        ChexmixInputError: ``ct_fraction`` outside [0, 1], or fewer CT views than places.
    """
    if not 0.0 <= ct_fraction <= 1.0:
        raise ChexmixInputError(f"--ct-fraction must be in [0, 1], got {ct_fraction}")
    n_ct = int(round(ct_fraction * len(cxr_train)))
    test_patients = {item.patient_id for item in cxr_test}
    usable = [item for item in ct_items if item.patient_id not in test_patients]
    notes = []
    if len(usable) < len(ct_items):
        notes.append(f"{len(ct_items) - len(usable)} CT(s) left out: their patients have CXRs in the test set")
    capacity = len(usable) * len(view_angles_deg)
    if n_ct > capacity:
        raise ChexmixInputError(
            f"the mix needs {n_ct} CT projections ({ct_fraction:.4g} of {len(cxr_train)} training CXRs) but "
            f"{len(usable)} usable CT(s) x {len(view_angles_deg)} views give only {capacity}: short by "
            f"{n_ct - capacity}; add CTs, or lower --ct-fraction to at most {capacity / max(len(cxr_train), 1):.4g}")
    # Separate seeds for the two draws, so that changing one collection never reshuffles the other.
    kept_cxr = seeded_choice(cxr_train, len(cxr_train) - n_ct, seed)
    return SplitPlan(train=kept_cxr + ct_views(usable, n_ct, seed + 1, view_angles_deg), test=list(cxr_test),
                     notes=notes)


def ct_views(cases: Sequence[Item], count: int, seed: int, view_angles_deg: Sequence[float] = VIEW_ANGLES_DEG
             ) -> list[Item]:
    """``count`` (case, view) items: angle by angle, each angle on a seeded choice of the cases.

    With ``count <= len(cases)`` this is a seeded choice of cases at the first angle (0 degrees)
    and the items are the cases themselves. Otherwise every case gets the first angle, then the
    next angles in turn, the last one on only as many cases as are still needed.
    """
    if count <= len(cases):
        return seeded_choice(cases, count, seed)
    chosen: list[Item] = list(cases)
    for rank, angle in enumerate(view_angles_deg[1:], start=1):
        missing = count - len(chosen)
        if missing <= 0:
            break
        chosen += [dataclasses.replace(case, view_deg=float(angle))
                   for case in seeded_choice(cases, missing, seed + rank)]
    return chosen
