"""Benchmark statistics against independent expectations: coverage of known distributions,
clustered data, exact Wilcoxon null distributions and hand-counted pooled IoU."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import stats as scipy_stats

from chexmix_dataset.dataset.composition import describe_composition

from benchmark.report import compare_rows, comparison_line, results_markdown, summarize, validation_domain_warning
from benchmark.stats import (
    mean_ci,
    paired_comparison,
    pooled_iou,
    ratio_bootstrap,
    seed_spread,
    split_scores,
    wilcoxon_p,
)


def test_patient_bootstrap_ci_covers_the_true_mean_at_about_the_nominal_rate() -> None:
    rng = np.random.default_rng(1)
    true_mean, hits, repeats = 0.4, 0, 300
    for repeat in range(repeats):
        scores = rng.beta(2, 3, size=40)  # mean 2/5, skewed like IoUs
        estimate = mean_ci(scores, [f"p{k}" for k in range(40)], resamples=1000, seed=repeat)
        assert estimate.value == pytest.approx(scores.mean())
        hits += estimate.low <= true_mean <= estimate.high
    assert 0.89 <= hits / repeats <= 0.99  # nominal 0.95; percentile intervals undercover slightly at n = 40


def test_resampling_patients_keeps_coverage_where_resampling_images_loses_it() -> None:
    """Ten images per patient sharing the patient's level: images are not independent."""
    rng = np.random.default_rng(2)
    patients, per_patient, repeats = 20, 10, 150
    groups = [f"p{k}" for k in range(patients) for _ in range(per_patient)]
    as_if_independent = [f"i{k}" for k in range(patients * per_patient)]
    covered = {"patients": 0, "images": 0}
    widths = {"patients": [], "images": []}
    for repeat in range(repeats):
        level = rng.normal(0.5, 0.15, size=patients)
        scores = np.repeat(level, per_patient) + rng.normal(0, 0.03, size=patients * per_patient)
        for name, grouping in (("patients", groups), ("images", as_if_independent)):
            estimate = mean_ci(scores, grouping, resamples=600, seed=repeat)
            covered[name] += estimate.low <= 0.5 <= estimate.high
            widths[name].append(estimate.high - estimate.low)
    assert covered["patients"] / repeats >= 0.87
    assert covered["images"] / repeats <= 0.6
    # Effective sample size ~ 20 patients, not 200 images: the interval is about sqrt(10) wider.
    assert np.mean(widths["patients"]) / np.mean(widths["images"]) == pytest.approx(np.sqrt(per_patient), rel=0.25)


def test_bootstrap_is_seeded_and_degenerate_cases_are_explicit() -> None:
    scores = np.random.default_rng(0).uniform(size=30)
    groups = [f"p{k}" for k in range(30)]
    assert mean_ci(scores, groups, seed=7) == mean_ci(scores, groups, seed=7)
    assert mean_ci(scores, groups, seed=7, resamples=200) != mean_ci(scores, groups, seed=8, resamples=200)
    constant = mean_ci([0.6] * 5, list("abcde"))
    assert (constant.value, constant.low, constant.high) == (pytest.approx(0.6),) * 3
    one_patient = mean_ci([0.2, 0.4], ["a", "a"])
    assert one_patient.value == pytest.approx(0.3) and one_patient.low is one_patient.high is None
    with pytest.raises(ValueError, match="one value per image"):
        ratio_bootstrap([1.0], [1.0, 1.0], ["a"])


def test_pooled_iou_counts_all_pixels_at_once() -> None:
    # Image 1: 10 px shared of 20 px in union (IoU 0.5); image 2: nothing shared of 80 px (IoU 0).
    pooled = pooled_iou([10, 0], [20, 80], ["a", "b"])
    assert pooled.value == pytest.approx(10 / 100)
    # Each resample is (10k) / (20k + 80(2-k)) for k copies of patient a: 0, 0.2/1.8=0.111... or 1/2.
    assert pooled.low == pytest.approx(0.0) and pooled.high == pytest.approx(0.5)
    assert np.isnan(pooled_iou([0, 0], [0, 0], ["a", "b"]).value)  # nothing true or predicted anywhere


def test_split_scores_separate_lesion_positive_images_and_report_the_lesion_free_share() -> None:
    def image(patient, has_lesion, iou, intersection, union):
        return {"image_id": f"{patient}-{iou}", "patient_id": patient, "has_lesion": has_lesion, "iou": iou,
                "dice": 2 * iou / (1 + iou), "intersection_px": intersection, "union_px": union}

    per_image = [image("a", True, 0.5, 50, 100), image("a", False, 1.0, 0, 0),
                 image("b", True, 0.2, 20, 100), image("c", False, 1.0, 0, 0), image("c", False, 0.0, 0, 30)]
    scores = split_scores(per_image)
    assert scores["iou_mean"] == pytest.approx(2.7 / 5)
    assert scores["iou_lesion_mean"] == pytest.approx(0.35)  # the empty-image 1.0s do not count
    assert scores["pooled_iou"] == pytest.approx(70 / 230)
    assert scores["lesion_free_fraction"] == pytest.approx(3 / 5)
    assert scores["test_patients"] == 3
    low, high = scores["iou_ci"]
    assert low < scores["iou_mean"] < high


def exact_signed_rank_p(differences: list[float]) -> float:
    """Two-sided p of the signed-rank statistic by enumerating all sign flips (distinct |d|, no zeros)."""
    nonzero = [d for d in differences if d != 0]
    ranks = scipy_stats.rankdata(np.abs(nonzero))
    observed = min(sum(r for r, d in zip(ranks, nonzero) if d > 0), sum(r for r, d in zip(ranks, nonzero) if d < 0))
    sums = [sum(r for r, s in zip(ranks, signs) if s) for signs in itertools.product([0, 1], repeat=len(ranks))]
    return min(1.0, 2 * np.mean([s <= observed for s in sums]))


def test_wilcoxon_matches_the_exact_null_distribution_on_a_hand_case() -> None:
    differences = [0.1, -0.2, 0.3, 0.4, 0.5, -0.05, 0.0]
    # Zero dropped; |d| ranks 2, 3, 4, 5, 6, 1; negative ranks sum to 4. Of the 64 sign patterns,
    # 7 have a rank sum <= 4 ({}, {1}, {2}, {3}, {4}, {1,2}, {1,3}): p = 2 * 7 / 64.
    assert exact_signed_rank_p(differences) == pytest.approx(2 * 7 / 64)
    assert wilcoxon_p(differences) == pytest.approx(2 * 7 / 64)
    assert wilcoxon_p([0.0, 0.0]) is None  # no difference at all: the test is undefined


def test_paired_comparison_works_on_patients() -> None:
    b = np.array([0.30, 0.50, 0.20, 0.60, 0.40, 0.55, 0.35, 0.45, 0.25, 0.65])
    shift = np.array([0.05, 0.11, 0.02, 0.08, 0.13, 0.04, 0.07, 0.10, 0.01, 0.06])
    one_image_each = paired_comparison(b + shift, b, [f"p{k}" for k in range(10)])
    assert one_image_each.difference.value == pytest.approx(shift.mean())
    assert 0 < one_image_each.difference.low < shift.mean() < one_image_each.difference.high
    assert one_image_each.wilcoxon_p == pytest.approx(2 / 2 ** 10)  # every difference positive
    assert one_image_each.patients == 10
    # Two images per patient: the signed-rank test runs on the 5 per-patient mean differences.
    two_each = paired_comparison(b + shift, b, [f"p{k // 2}" for k in range(10)])
    assert two_each.patients == 5 and two_each.wilcoxon_p == pytest.approx(2 / 2 ** 5)
    opposite = paired_comparison(b - shift, b, [f"p{k}" for k in range(10)])
    assert opposite.difference.value == pytest.approx(-shift.mean()) and opposite.difference.high < 0


def test_seed_spread_is_the_sample_std_and_undefined_for_one_seed() -> None:
    assert seed_spread([0.3, 0.5, 0.4]) == (pytest.approx(0.4), pytest.approx(0.1))
    assert seed_spread([0.3]) == (pytest.approx(0.3), None)


def run(training_dataset: str, seed: int, ious: list[float], *, model: str = "unet", ct_fraction=None) -> dict:
    per_image = [{"image_id": f"img{k}", "patient_id": f"p{k // 2}", "has_lesion": k != 0, "iou": v, "dice": v,
                  "intersection_px": 10 * v, "union_px": 10} for k, v in enumerate(ious)]
    return {"training_dataset": training_dataset, "config": "mixed", "ct_fraction": ct_fraction, "split": "60/40",
            "augment": True, "model": model, "seed": seed, "epochs": 1, "train_images": 12,
            "train_ct_projections": 10, "ap": 0.5, "ap50": 0.6, "per_image": per_image,
            **{k: v for k, v in split_scores(per_image).items()}}


def test_summary_keeps_seed_spread_apart_and_pairs_rows_on_their_test_images() -> None:
    xrays = [run("X-rays only", 0, [1.0, 0.4, 0.5, 0.6, 0.2, 0.3]),
             run("X-rays only", 1, [1.0, 0.6, 0.5, 0.8, 0.4, 0.3])]
    mixed = [run("Mixed", 0, [1.0, 0.5, 0.6, 0.6, 0.3, 0.5]), run("Mixed", 1, [1.0, 0.5, 0.6, 0.6, 0.3, 0.5])]
    runs = xrays + mixed
    summary = summarize(runs)
    first = summary[0]
    assert first["iou_seeds"] == pytest.approx([3.0 / 6, 3.6 / 6])
    assert first["iou_mean_seeds"] == pytest.approx(0.55)
    assert first["iou_std_seeds"] == pytest.approx(np.std([0.5, 0.6], ddof=1))
    assert first["iou_mean"] == pytest.approx(0.55)
    assert first["iou_lesion_mean"] == pytest.approx((0.5 + 0.5 + 0.7 + 0.3 + 0.3) / 5)
    assert first["lesion_free_fraction"] == pytest.approx(1 / 6) and first["test_patients"] == 3
    (comparison,) = compare_rows(runs, summary)
    seed_mean_difference = np.array([1.0, 0.5, 0.6, 0.6, 0.3, 0.5]) - np.array([1.0, 0.5, 0.5, 0.7, 0.3, 0.3])
    assert comparison["kind"] == "training data" and comparison["paired"]
    assert comparison["difference_value"] == pytest.approx(seed_mean_difference.mean())
    assert comparison["patients"] == 3
    per_patient = seed_mean_difference.reshape(3, 2).mean(axis=1)
    assert comparison["wilcoxon_p"] == pytest.approx(scipy_stats.wilcoxon(per_patient).pvalue)
    line = comparison_line(comparison)
    assert line.startswith("Mixed vs X-rays only (60/40, aug y, unet): ΔIoU +0.033 [")
    table = results_markdown(summary, {"python": "3"}, compare_rows(runs, summary))
    assert "| Training dataset | Split | Aug | Model | IoU [95% CI] | Dice [95% CI] | AP50 |" in table
    assert "| 0.550 ± 0.071 (2 seeds) |" in table and "sample standard deviation" in table
    assert f"- {line}" in table


def test_rows_scored_on_other_test_images_are_not_paired() -> None:
    a = run("X-rays only", 0, [0.5, 0.4])
    b = run("Mixed", 0, [0.5, 0.4])
    b["per_image"] = [{**p, "image_id": p["image_id"] + "x"} for p in b["per_image"]]
    (comparison,) = compare_rows([a, b], summarize([a, b]))
    assert comparison["paired"] is False
    assert comparison_line(comparison).endswith("not paired, the test images differ")


def test_a_sweep_is_compared_with_its_smallest_fraction_whatever_the_order_given() -> None:
    runs = [run(f"CT fraction {f}", 0, [0.5 + f / 10, 0.4], ct_fraction=f) for f in (0.5, 0.0, 1.0)]
    comparisons = compare_rows(runs, summarize(runs))
    assert [(c["a"]["ct_fraction"], c["b"]["ct_fraction"]) for c in comparisons] == [(0.5, 0.0), (1.0, 0.0)]
    assert [c["difference_value"] for c in comparisons] == pytest.approx([0.05 / 2, 0.1 / 2])
    table = results_markdown(summarize(runs), {"python": "3"}, comparisons)
    sweep_table = table[table.index("## Replacement curve"):table.index("## Paired")]
    assert sweep_table.index("| 0 | 0.833 (10 of 12) |") < sweep_table.index("| 0.5 |") < sweep_table.index("| 1 |")


def composition(cxr: int, ct: int) -> dict:
    return {"images": cxr + ct, "cxr": cxr, "ct_projections": ct, "ct_cases": ct, "views_deg": {"0": ct} if ct else {},
            "patients": cxr + ct}


@pytest.mark.parametrize("train, validation, test, expected", [
    ((2, 8), (0, 2), (8, 0), "too few patients of that kind"),  # the sample's Mixed cell
    ((0, 8), (0, 2), (8, 0), "has none to hold out"),  # trained on CT projections only
    ((6, 0), (2, 0), (8, 0), None),  # X-rays only
    ((6, 8), (2, 2), (8, 0), None),  # a Mixed cell with CXRs held out
    ((6, 0), (2, 0), (0, 5), "has none to hold out"),  # CXRs validate, CT projections are tested
])
def test_a_threshold_chosen_on_another_kind_of_image_than_the_test_is_warned_about(train, validation, test,
                                                                                  expected) -> None:
    row = run("Mixed", 0, [0.5, 0.4])
    row.update(train_composition=composition(*train), validation_composition=composition(*validation),
               test_composition=composition(*test), threshold=0.35, threshold_kind="instance score",
               threshold_rule="validation: best pooled IoU")
    (summary,) = summarize([row])
    warning = validation_domain_warning(summary)
    table = results_markdown([summary], {"python": "3"})
    assert f"chosen on {describe_composition(composition(*validation))})" in table
    if expected is None:
        assert warning is None and "Warning" not in table and "| Mixed | 60/40 |" in table
    else:
        assert expected in warning and warning in table and "| Mixed † | 60/40 |" in table
