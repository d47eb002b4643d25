"""Statistics of a benchmark's scores: patient bootstrap confidence intervals, pooled IoU, paired tests.

Pure numpy/scipy, seeded, so the same scores always give the same intervals. :func:`split_scores`
turns a (non-empty) split's per-image scores into what results.json reports of it.

- Images of one patient are not independent (several CXRs of one person, or several views), so
  every bootstrap here resamples *patients* with replacement and takes all their test images
  (a cluster bootstrap); a CI from resampling images would be too narrow.
- Every statistic is a ratio of sums over images, ``sum(numerator) / sum(denominator)``: the mean
  score is ``sum(score) / n_images``, the pooled IoU is ``sum(intersection px) / sum(union px)``.
  The bootstrap recomputes that ratio on each resample, so both kinds share one code path.
- Intervals are percentile intervals of ``DEFAULT_RESAMPLES`` resamples.
- Paired comparisons (same test images, two runs) bootstrap the mean per-image difference over
  patients and give a two-sided Wilcoxon signed-rank p-value over patients (scipy), each
  patient's difference being the mean over its images, again because images of one patient are
  not independent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy import stats as scipy_stats

DEFAULT_RESAMPLES = 2000
CONFIDENCE = 0.95


@dataclass(frozen=True)
class Estimate:
    """A statistic and its bootstrap confidence interval (``low``/``high`` None when undefined)."""

    value: float
    low: float | None
    high: float | None

    def as_dict(self) -> dict[str, float | None]:
        return {"value": self.value, "low": self.low, "high": self.high}


def _group_index(groups: Sequence[str]) -> tuple[np.ndarray, int]:
    """Each image's patient as an integer 0..P-1 (in order of first appearance) and P."""
    order = {name: k for k, name in enumerate(dict.fromkeys(groups))}
    return np.array([order[name] for name in groups], dtype=np.int64), len(order)


def ratio_bootstrap(numerator: Sequence[float], denominator: Sequence[float], groups: Sequence[str], *,
                    resamples: int = DEFAULT_RESAMPLES, confidence: float = CONFIDENCE, seed: int = 0) -> Estimate:
    """``sum(numerator) / sum(denominator)`` over images with a patient bootstrap percentile CI.

    Args:
        numerator, denominator: one value per image (e.g. IoU and 1, or intersection and union px).
        groups: the patient of each image; patients are resampled with replacement.

    Returns:
        The ratio (nan when the denominator sums to 0) and its CI; the bounds are None when fewer
        than two patients make a resample meaningful or every resample's denominator is 0.
    """
    numerator = np.asarray(numerator, dtype=np.float64)
    denominator = np.asarray(denominator, dtype=np.float64)
    if not (len(numerator) == len(denominator) == len(groups)):
        raise ValueError("numerator, denominator and groups need one value per image")
    total = denominator.sum()
    value = float(numerator.sum() / total) if total > 0 else float("nan")
    index, n_patients = _group_index(groups)
    if n_patients < 2:
        return Estimate(value, None, None)
    per_patient_num = np.bincount(index, weights=numerator, minlength=n_patients)
    per_patient_den = np.bincount(index, weights=denominator, minlength=n_patients)
    drawn = np.random.default_rng(seed).integers(0, n_patients, size=(resamples, n_patients))
    sums_den = per_patient_den[drawn].sum(axis=1)
    sums_num = per_patient_num[drawn].sum(axis=1)
    defined = sums_den > 0
    if not defined.any():
        return Estimate(value, None, None)
    ratios = sums_num[defined] / sums_den[defined]
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(ratios, [tail, 100 - tail])
    return Estimate(value, float(low), float(high))


def mean_ci(scores: Sequence[float], groups: Sequence[str], **options: object) -> Estimate:
    """Mean of per-image ``scores`` with a patient bootstrap CI (see :func:`ratio_bootstrap`)."""
    return ratio_bootstrap(scores, np.ones(len(scores)), groups, **options)


def pooled_iou(intersection_px: Sequence[float], union_px: Sequence[float], groups: Sequence[str],
               **options: object) -> Estimate:
    """IoU of all pixels of a split at once: total intersection / total union (px), with its CI.

    Unlike the mean of per-image IoUs, it weighs images by lesion size and has no empty-ground-truth
    rule; with no lesion predicted or true anywhere in the split it is undefined (nan).
    """
    return ratio_bootstrap(intersection_px, union_px, groups, **options)


@dataclass(frozen=True)
class PairedComparison:
    """Run A minus run B on the same test images: mean difference, its CI, Wilcoxon p, patients."""

    difference: Estimate
    wilcoxon_p: float | None  # None when every patient's difference is 0 (the test is undefined)
    patients: int

    def as_dict(self) -> dict:
        return {**{f"difference_{k}": v for k, v in self.difference.as_dict().items()},
                "wilcoxon_p": self.wilcoxon_p, "patients": self.patients}


def per_patient_means(values: Sequence[float], groups: Sequence[str]) -> np.ndarray:
    """The mean of ``values`` over each patient's images, patients in order of first appearance."""
    index, n_patients = _group_index(groups)
    sums = np.bincount(index, weights=np.asarray(values, dtype=np.float64), minlength=n_patients)
    return sums / np.bincount(index, minlength=n_patients)


def wilcoxon_p(differences: Sequence[float]) -> float | None:
    """Two-sided Wilcoxon signed-rank p-value of paired ``differences`` (scipy; zero differences
    dropped, as Wilcoxon proposed); None when every difference is 0."""
    differences = np.asarray(differences, dtype=np.float64)
    if not np.any(differences != 0):
        return None
    return float(scipy_stats.wilcoxon(differences, zero_method="wilcox", alternative="two-sided").pvalue)


def paired_comparison(scores_a: Sequence[float], scores_b: Sequence[float], groups: Sequence[str],
                      **options: object) -> PairedComparison:
    """A - B on the same images (``groups``: their patients): patient bootstrap CI of the mean
    per-image difference and the Wilcoxon signed-rank p-value over per-patient mean differences."""
    differences = np.asarray(scores_a, dtype=np.float64) - np.asarray(scores_b, dtype=np.float64)
    patient_differences = per_patient_means(differences, groups)
    return PairedComparison(mean_ci(differences, groups, **options), wilcoxon_p(patient_differences),
                            len(patient_differences))


def seed_spread(values: Sequence[float]) -> tuple[float, float | None]:
    """(mean, sample standard deviation, ddof 1) of one score over seeds; std None for one seed."""
    array = np.asarray(values, dtype=np.float64)
    return float(array.mean()), (float(array.std(ddof=1)) if len(array) > 1 else None)


def _interval(estimate: Estimate) -> list[float | None]:
    return [estimate.low, estimate.high]


def split_scores(per_image: list[dict]) -> dict:
    """A split's summary scores from its per-image ones (image_id, patient_id, has_lesion, iou,
    dice, intersection_px, union_px, as :func:`benchmark.evaluate.evaluate_split` scores them).

    iou_mean/dice_mean: mean over test images, iou_ci/dice_ci: its 95 % CI resampling patients;
    iou_std/dice_std: the spread over test images (population std), not an uncertainty of the
    mean; iou_lesion_mean/iou_lesion_ci: the same over lesion-positive images only (None without
    any); pooled_iou/pooled_iou_ci: all pixels of the split at once; lesion_free_fraction: the
    share of test images without ground-truth lesions (the empty-ground-truth rule gives them 1
    for predicting nothing); test_patients: distinct patient_ids.
    """
    patients = [p["patient_id"] for p in per_image]
    scores: dict = {}
    for metric in ("iou", "dice"):
        values = [p[metric] for p in per_image]
        scores[f"{metric}_mean"] = float(np.mean(values))
        scores[f"{metric}_std"] = float(np.std(values))
        scores[f"{metric}_ci"] = _interval(mean_ci(values, patients))
    positive = [p for p in per_image if p["has_lesion"]]
    if positive:
        lesion = mean_ci([p["iou"] for p in positive], [p["patient_id"] for p in positive])
        scores["iou_lesion_mean"], scores["iou_lesion_ci"] = lesion.value, _interval(lesion)
    else:
        scores["iou_lesion_mean"], scores["iou_lesion_ci"] = None, [None, None]
    pooled = pooled_iou([p["intersection_px"] for p in per_image], [p["union_px"] for p in per_image], patients)
    scores["pooled_iou"] = None if np.isnan(pooled.value) else pooled.value
    scores["pooled_iou_ci"] = _interval(pooled)
    scores["lesion_free_fraction"] = (float(np.mean([not p["has_lesion"] for p in per_image]))
                                      if per_image else float("nan"))
    scores["test_patients"] = len(set(patients))
    return scores
