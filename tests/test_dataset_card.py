"""DATASET_CARD.md: Hub metadata, the clinical-use warning, the packaged copy, its figure."""

from __future__ import annotations

from pathlib import Path

from huggingface_hub import DatasetCard

from chexmix_dataset.dataset.builder import CONFIG_NAMES
from chexmix_dataset.hub.card import card_assets

ROOT = Path(__file__).resolve().parents[1]


def test_card_metadata_and_sections():
    card = DatasetCard((ROOT / "DATASET_CARD.md").read_text())
    assert set(card.data.task_categories) == {"image-segmentation", "object-detection"}
    assert card.data.license
    text = card.text.lower()
    assert "not for clinical use" in text
    for section in ("## sources", "## how projections are made", "## splits", "## fields", "## intended use",
                    "## limitations and biases", "## citation"):
        assert section in text, section
    for config in CONFIG_NAMES:
        assert f"`{config}`" in card.text
    assert "patient-level" in text


def test_packaged_card_is_the_root_card():
    assert (ROOT / "chexmix_dataset" / "DATASET_CARD.md").read_text() == (ROOT / "DATASET_CARD.md").read_text()


def test_card_figure_exists_and_is_published():
    assert "](docs/projection.png)" in (ROOT / "DATASET_CARD.md").read_text()
    assert card_assets() == {"docs/projection.png": ROOT / "docs" / "projection.png"}
    assert (ROOT / "docs" / "projection.png").stat().st_size > 10_000
