"""`chexmix publish` refuses rows under no-derivatives or unknown licences unless told to include
them, and writes the card's licence section from the rows it actually publishes."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import datasets
import public_layouts_more as more
import pyarrow.parquet as pq
import pytest
from huggingface_hub import DatasetCard
from publish_helpers import CARD, FakeHub, error_lines, run_cli

from chexmix_dataset.dataset.builder import make_builder
from chexmix_dataset.errors import ChexmixInputError
from chexmix_dataset.hub import card as card_mod
from chexmix_dataset.hub import licences as licences_mod
from chexmix_dataset.hub import push as push_mod
from chexmix_dataset.sources import covid_qu_ex, mosmed

ND = mosmed.LICENSE  # "CC-BY-NC-ND-3.0"


@pytest.mark.parametrize("licence, problem", [
    ("CC-BY-NC-ND-3.0", "no derivatives"), ("CC BY-NC-ND 4.0", "no derivatives"), ("cc_by_nd_4.0", "no derivatives"),
    ("Attribution-NoDerivatives 4.0", "no derivatives"), ("unknown", "unknown"), ("", "unknown"), (" N/A ", "unknown"),
    ("CC-BY-NC-SA-4.0", None), ("CC BY 4.0", None), ("Apache 2.0", None), ("CC0-1.0", None), ("Landmark-1.0", None),
])
def test_which_licences_block_publishing(licence, problem):
    assert licences_mod.publication_problem(licence) == problem


@pytest.fixture(scope="module")
def nd_mix(tmp_path_factory) -> datasets.DatasetDict:
    """A real `mixed` build: COVID-QU-Ex CXRs (licence unknown) + MosMedData CT projections (CC BY-NC-ND 3.0)."""
    root = tmp_path_factory.mktemp("nd-mix")
    more.make_covid_qu_ex(root / "covid_qu_ex")
    more.make_mosmed(root / "mosmed", annotated={f"study_{i:04d}": "CT-1" for i in range(255, 259)}, unannotated={})
    builder = make_builder("mixed", root, ct_fraction=0.5, cache_dir=root / "cache", sources=("covid_qu_ex", "mosmed"))
    builder.download_and_prepare()
    return builder.as_dataset()


def parquet_licences(tree: Path, config: str) -> Counter:
    """(licence, origin) counts read back from the written Parquet shards: the oracle."""
    counts: Counter = Counter()
    for shard in sorted((tree / "data" / config).glob("*.parquet")):
        table = pq.read_table(shard, columns=["license", "origin"])
        counts.update(zip(table.column("license").to_pylist(), table.column("origin").to_pylist()))
    return counts


def test_publish_refuses_a_mix_with_a_no_derivatives_source_unless_included(tmp_path, capsys, monkeypatch,
                                                                             offline_publish, nd_mix):
    offline_publish["built"]["mixed"] = nd_mix
    rows = Counter(license for split in nd_mix.values() for license in split["license"])
    assert rows[ND] > 0 and rows[covid_qu_ex.LICENSE] > 0 and set(rows) == {ND, "unknown"}
    out = tmp_path / "export"

    code, _, err = run_cli(capsys, "--configs", "mixed", "--local-dir", str(out))
    assert code == 2
    [line] = error_lines(err)
    assert f"{ND} (no derivatives): {rows[ND]} rows" in line and f"unknown (unknown): {rows['unknown']} rows" in line
    assert f"--include-licence {ND},unknown" in line
    assert not out.exists()

    # Naming one licence is not enough: the other is still refused, and only it is named.
    code, _, err = run_cli(capsys, "--configs", "mixed", "--local-dir", str(out), "--include-licence", ND.lower())
    assert code == 2
    [line] = error_lines(err)
    assert "unknown (unknown)" in line and ND not in line
    assert not out.exists()

    code, _, err = run_cli(capsys, "--configs", "mixed", "--local-dir", str(out), "--include-licence", f"{ND},unknown")
    assert code == 0, err
    published = parquet_licences(out, "mixed")
    assert sum(published.values()) == sum(len(split) for split in nd_mix.values())
    card = DatasetCard((out / "README.md").read_text(encoding="utf-8"))
    # The licence section lists exactly the published (licence, origin) pairs with their row counts.
    section = card.text[card.text.index(licences_mod.LICENCE_SECTION_TITLE):]
    table = [line for line in section.splitlines() if line.startswith("| ") and not line.startswith("| licence")]
    listed = Counter({(cells[0], cells[1]): int(cells[2])
                      for cells in ([c.strip() for c in line.strip("|").split("|")] for line in table)})
    assert listed == published
    assert "no-derivatives licence" in section and "licence unknown" in section
    totals = Counter()
    for (licence, _), count in published.items():
        totals[licence] += count
    for licence, count in totals.items():
        assert f"{licence}: {count} rows" in card.data.license_details
    assert CARD.split("---\n", 2)[2].strip() in card.text  # the card's own body is kept


def test_unrestricted_rows_publish_without_options_and_section_replaces_an_old_one(tmp_path, capsys, offline_publish):
    code, _, err = run_cli(capsys, "--configs", "sample", "--local-dir", str(tmp_path / "export"))
    assert code == 0, err
    readme = (tmp_path / "export" / "README.md").read_text(encoding="utf-8")
    assert readme.count(licences_mod.LICENCE_SECTION_TITLE) == 1 and "| CC0-1.0 | test/discs | 5 |  |" in readme
    # Rendering a card that already holds a generated section replaces it instead of adding another.
    again = card_mod.render_card(readme, {}, "sample", {("CC-BY-4.0", "x"): 2})
    assert again.count(licences_mod.LICENCE_SECTION_TITLE) == 1 and "| CC-BY-4.0 | x | 2 |" in again
    assert "CC0-1.0 | test/discs" not in again


def test_rows_without_a_licence_column_are_refused():
    dataset = datasets.Dataset.from_dict({"image_id": ["a"]})
    with pytest.raises(ChexmixInputError, match="no `license` column"):
        licences_mod.licence_rows({"mixed": datasets.DatasetDict({"train": dataset})})


def test_refused_rows_are_never_pushed(capsys, monkeypatch, offline_publish):
    mixed = offline_publish["built"]["mixed"]
    offline_publish["built"]["mixed"] = datasets.DatasetDict(
        {split: dataset.map(lambda row: {"license": "CC BY-ND 4.0"}) for split, dataset in mixed.items()})
    hub = FakeHub()
    monkeypatch.setattr(push_mod, "HfApi", hub)
    code, _, err = run_cli(capsys, "--configs", "mixed")
    assert code == 2 and "CC BY-ND 4.0 (no derivatives): 10 rows" in error_lines(err)[0]
    assert hub.commits == [] and [call[0] for call in hub.calls] == ["create_repo"]
