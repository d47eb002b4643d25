"""What a built split is actually made of: real CXRs, CT projections, CTs and their views.

Used by ``chexmix build``'s summary and by the benchmark's ``results.json``, so that a run says
exactly which mix it trained on (e.g. 10 CXRs + 50 projections of 20 CTs in 3 views).
"""

from __future__ import annotations

import re
from collections import Counter

import datasets

_VIEW_SUFFIX = re.compile(r"-view[+-]\d+(?:\.\d+)?$")


def ct_case_id(image_id: str) -> str:
    """The CT a projection row comes from: its image id without the ``-view<angle>`` suffix."""
    return _VIEW_SUFFIX.sub("", image_id)


def split_composition(rows: datasets.Dataset) -> dict:
    """Counts of one split: images, CXRs, CT projections, distinct CTs, views by angle, patients.

    ``views_deg`` maps the angle as text ("0", "+5", ...) to the number of projections.
    """
    columns = rows.select_columns([c for c in ("image_id", "source", "patient_id", "view_deg")
                                   if c in rows.column_names])
    sources = columns["source"]
    ids = columns["image_id"]
    views = columns["view_deg"] if "view_deg" in columns.column_names else [0.0] * len(ids)
    ct = [i for i, source in enumerate(sources) if source == "ct_projection"]
    return {
        "images": len(ids),
        "cxr": sum(source == "cxr" for source in sources),
        "ct_projections": len(ct),
        "ct_cases": len({ct_case_id(ids[i]) for i in ct}),
        "views_deg": {f"{angle:+g}" if angle else "0": count
                      for angle, count in sorted(Counter(float(views[i] or 0.0) for i in ct).items())},
        "patients": len(set(columns["patient_id"])),
    }


def describe_composition(composition: dict) -> str:
    """One line, e.g. "10 CXRs + 50 CT projections of 20 CTs (views 0: 20, +5: 20, -5: 10)"."""
    text = f"{composition['cxr']} CXRs + {composition['ct_projections']} CT projections"
    if composition["ct_projections"]:
        views = ", ".join(f"{angle}: {count}" for angle, count in composition["views_deg"].items())
        text += f" of {composition['ct_cases']} CTs (views in degrees {views})"
    return text
