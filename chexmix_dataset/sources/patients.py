"""One patient id for one case across collections and modalities.

The COVID-19 image data collection (Cohen et al.) holds Radiopaedia cases, and 10 of Ma et
al.'s CTs are Radiopaedia cases too. A Radiopaedia case is one patient, so its CXRs and its CT
must share a patient id, or a split could test on a patient's CXR after training on the
projection of that patient's CT.

Rule: a Radiopaedia case is named by its URL slug, ``radiopaedia.org/cases/<slug>`` (e.g.
``covid-19-pneumonia-15``), and its patient id is ``radiopaedia-<slug>``.

- Cohen et al.: a row is a Radiopaedia case when its ``url`` is a Radiopaedia case URL. All
  rows of one ``patientid`` and all rows of one Radiopaedia case are one patient (linked
  transitively), whose id is the Radiopaedia one when any of its rows has it.
- Ma et al.: ``radiopaedia_<N>_<study>_<series>`` is Radiopaedia case ``covid-19-pneumonia-<N>``
  (the Kaggle redistribution of the same files spells it out:
  ``radiopaedia_org_covid-19-pneumonia-<N>_<study>_<series>-dcm``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_RADIOPAEDIA_CASE_URL = re.compile(r"radiopaedia\.org/cases/([a-z0-9][a-z0-9-]*)", re.IGNORECASE)
_MA_RADIOPAEDIA_NAME = re.compile(r"^radiopaedia_(\d+)_\d+_\d+$")


def radiopaedia_patient_id(slug: str) -> str:
    return f"radiopaedia-{slug.lower()}"


def radiopaedia_case_from_url(url: str) -> str | None:
    """The case slug of a Radiopaedia case URL (query, fragment and sub-pages ignored), else None."""
    match = _RADIOPAEDIA_CASE_URL.search(url or "")
    return match.group(1).lower() if match else None


def radiopaedia_case_from_ma_name(case_name: str) -> str | None:
    """The Radiopaedia case slug of a Ma et al. case name ``radiopaedia_<N>_<study>_<series>``."""
    match = _MA_RADIOPAEDIA_NAME.match(case_name)
    return f"covid-19-pneumonia-{match.group(1)}" if match else None


def linked_patient_ids(rows: Iterable[tuple[str, str]], prefix: str) -> dict[str, str]:
    """``{own patient id: shared patient id}`` from (own patient id, case URL) pairs.

    Own ids that share a Radiopaedia case, directly or through each other, map to one id: the
    Radiopaedia id (the smallest, when a group spans several cases). Ids with no Radiopaedia
    row map to ``prefix + own id``.
    """
    parent: dict[str, str] = {}

    def find(node: str) -> str:
        parent.setdefault(node, node)
        while parent[node] != node:
            parent[node] = parent[parent[node]]
            node = parent[node]
        return node

    owners = []
    for own, url in rows:
        own_node = "own:" + own
        find(own_node)
        owners.append(own)
        slug = radiopaedia_case_from_url(url)
        if slug is not None:
            parent[find(own_node)] = find("case:" + slug)
    groups: dict[str, list[str]] = {}
    for node in list(parent):
        groups.setdefault(find(node), []).append(node)
    shared: dict[str, str] = {}
    for members in groups.values():
        cases = sorted(m[len("case:"):] for m in members if m.startswith("case:"))
        for member in members:
            if member.startswith("own:"):
                own = member[len("own:"):]
                shared[own] = radiopaedia_patient_id(cases[0]) if cases else prefix + own
    return {own: shared[own] for own in owners}
