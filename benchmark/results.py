"""What identifies a row of the results table, shared by :mod:`benchmark.report` and :mod:`benchmark.figures`.

Rows are the dicts of results.json's ``summary`` (see :func:`benchmark.report.summarize`).
"""

from __future__ import annotations

#: what makes runs one row of the table; runs of one row differ only by seed.
ROW_KEYS = ("training_dataset", "config", "ct_fraction", "split", "augment", "model")


def replaced_fraction(row: dict) -> float | None:
    """The share of the row's training set that is CT projections, as built (not as asked)."""
    if row.get("train_ct_projections") is None or not row["train_images"]:
        return None
    return row["train_ct_projections"] / row["train_images"]


def sweep_rows(summary: list[dict]) -> list[dict]:
    """The rows of a CT-fraction sweep (those with a ct_fraction, at least two fractions), sorted
    by split, augmentation, model and fraction; [] when the results hold no sweep."""
    rows = [row for row in summary if row["ct_fraction"] is not None]
    if len({row["ct_fraction"] for row in rows}) < 2:
        return []
    return sorted(rows, key=lambda r: (r["split"], not r["augment"], r["model"], r["ct_fraction"]))
