"""Which rows may be published, and the card's licence section generated from them.

Rows carry their source's licence in the ``license`` column. Rows whose licence forbids
redistributing derivatives (any CC ND term: projections, masks and re-encoded images are
derivatives) or is unknown are refused unless the publisher names those licences.
"""

from __future__ import annotations

import re
from typing import Mapping, Sequence

import datasets

from chexmix_dataset.errors import ChexmixInputError

UNKNOWN_LICENCES = frozenset({"", "unknown", "none", "n/a", "na"})
LICENCE_SECTION_TITLE = "## Licences of the published rows"



def licence_key(licence: str) -> str:
    """A licence name compared loosely: case, spaces, hyphens and underscores do not matter."""
    return re.sub(r"[\s_\-]+", "-", (licence or "").strip()).strip("-").casefold()


def publication_problem(licence: str) -> str | None:
    """Why rows under ``licence`` may not be published by default, or None when they may.

    "unknown" (blank, unknown, none, n/a): nobody can tell whether redistribution is allowed;
    "no derivatives": an ND term (CC BY-ND, CC BY-NC-ND, any version); projections, masks and
    re-encoded images are derivatives.
    """
    key = licence_key(licence)
    if key in UNKNOWN_LICENCES:
        return "unknown"
    if "nd" in key.split("-") or "noderivatives" in key.replace("-", "") or "noderivs" in key.replace("-", ""):
        return "no derivatives"
    return None


def licence_rows(datasets_by_config: Mapping[str, datasets.DatasetDict]) -> dict[tuple[str, str], int]:
    """Rows per (licence, origin) over every config and split, in first-seen order."""
    counts: dict[tuple[str, str], int] = {}
    for dataset_dict in datasets_by_config.values():
        for dataset in dataset_dict.values():
            columns = [c for c in ("license", "origin") if c in dataset.column_names]
            if "license" not in columns:
                raise ChexmixInputError("rows have no `license` column: cannot tell what may be published")
            table = dataset.select_columns(columns)
            licences = table["license"]
            origins = table["origin"] if "origin" in columns else [""] * len(licences)
            for licence, origin in zip(licences, origins):
                key = (licence or "", origin or "")
                counts[key] = counts.get(key, 0) + 1
    return counts


def check_publishable(rows: Mapping[tuple[str, str], int], include_licences: Sequence[str] = ()) -> None:
    """Raise ChexmixInputError naming every refused licence and its row count, unless included."""
    included = {licence_key(name) for name in include_licences}
    refused: dict[str, list] = {}
    for (licence, _), count in rows.items():
        problem = publication_problem(licence)
        if problem is not None and licence_key(licence) not in included:
            entry = refused.setdefault(licence or "unknown", [problem, 0])
            entry[1] += count
    if refused:
        refused = dict(sorted(refused.items(), key=lambda item: item[0].casefold()))
        listing = ", ".join(f"{licence} ({problem}): {count} rows" for licence, (problem, count) in refused.items())
        names = ",".join(dict.fromkeys(refused))
        raise ChexmixInputError(
            f"refusing to publish rows whose licence forbids redistributing derivatives or is unknown: {listing}; "
            f"pass --include-licence {names} only if you hold the right to redistribute them")


def licence_section(rows: Mapping[tuple[str, str], int]) -> str:
    """The card's Markdown licence section for these rows: one table line per licence and origin."""
    lines = [LICENCE_SECTION_TITLE, "",
             "Generated from the rows in this repository (every config and split); each row also carries "
             "its licence in the `license` column.", "",
             "| licence | origin | rows | note |", "|---|---|---|---|"]
    for (licence, origin), count in sorted(rows.items(), key=lambda item: (item[0][0].casefold(), item[0][1])):
        problem = publication_problem(licence)
        note = {None: "", "unknown": "licence unknown: published on the publisher's explicit request",
                "no derivatives": "no-derivatives licence: published on the publisher's explicit request"}[problem]
        lines.append(f"| {licence or 'unknown'} | {origin or '-'} | {count} | {note} |")
    return "\n".join(lines) + "\n"


def licence_details(rows: Mapping[tuple[str, str], int]) -> str:
    """One sentence for the YAML ``license_details``: the licences of the published rows."""
    totals: dict[str, int] = {}
    for (licence, _), count in rows.items():
        totals[licence or "unknown"] = totals.get(licence or "unknown", 0) + count
    listing = "; ".join(f"{licence}: {count} rows" for licence, count in sorted(totals.items()))
    return f"Each row carries its source's licence in the `license` column. This release holds {listing}."


def with_licence_section(body: str, section: str) -> str:
    """``body`` with ``section`` replacing an earlier generated one, else placed before ``## Citation``."""
    if LICENCE_SECTION_TITLE in body:
        start = body.index(LICENCE_SECTION_TITLE)
        following = body.find("\n## ", start + len(LICENCE_SECTION_TITLE))
        body = body[:start] + (body[following + 1:] if following >= 0 else "")
    anchor = body.find("\n## Citation")
    if anchor < 0:
        return body.rstrip("\n") + "\n\n" + section
    return body[:anchor + 1] + section + "\n" + body[anchor + 1:]
