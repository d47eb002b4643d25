"""The dataset card: DATASET_CARD.md checked, and rendered into the Hub repository's README.md.

The README's YAML header is DATASET_CARD.md's header (license, task_categories, tags, ...)
with two generated entries: ``configs`` (which Parquet files make which split of which config;
one config is ``default: true``) and ``dataset_info`` (features, split sizes). That is all
``datasets.load_dataset(repo_or_folder, config)`` needs: no loading script, no CheXMix import.

The README's licence section and its YAML ``license_details`` are generated from the rows
actually published (:func:`chexmix_dataset.hub.licences.licence_rows`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import datasets
import yaml
from datasets.info import DatasetInfosDict
from huggingface_hub import DatasetCard

from chexmix_dataset.errors import ChexmixInputError, first_line
from chexmix_dataset.hub.licences import licence_details, licence_section, with_licence_section

CARD_FIGURE = "docs/projection.png"
CARD_FILENAME = "DATASET_CARD.md"
REQUIRED_CARD_FIELDS = ("license", "task_categories")
#: the repository root of a source checkout (where maintainers publish): chexmix_dataset/hub/ is two below it.
CHECKOUT_ROOT = Path(__file__).resolve().parents[2]


def render_card(card_text: str, infos: Mapping[str, datasets.DatasetInfo], default_config: str,
                rows: Mapping[tuple[str, str], int] | None = None) -> str:
    """README.md: the card's YAML header plus generated ``configs`` and ``dataset_info``, then its body.

    ``infos``: config name -> its DatasetInfo (features, splits, sizes in bytes). ``rows``
    (:func:`chexmix_dataset.hub.licences.licence_rows`): when given, ``license_details`` and the
    body's licence section are generated from them.
    """
    card = parse_card(card_text)
    if rows is not None:
        card.data.license_details = licence_details(rows)
        card.text = with_licence_section(card.text, licence_section(rows))
    card.data.configs = [
        {
            "config_name": config,
            "data_files": [{"split": split, "path": f"data/{config}/{split}-*"} for split in info.splits],
            **({"default": True} if config == default_config else {}),
        }
        for config, info in infos.items()
    ]
    # datasets' own writer of this entry (push_to_hub uses it); it merges with what the card holds,
    # so an entry left from an earlier render is dropped first: only the configs published now count.
    card.data.pop("dataset_info", None)
    DatasetInfosDict(infos).to_dataset_card_data(card.data)
    return str(card)


def parse_card(card_text: str) -> DatasetCard:
    """The dataset card, checked for the metadata the Hub shows (license, task categories)."""
    try:
        card = DatasetCard(card_text)
    except (yaml.YAMLError, ValueError, TypeError) as exc:
        raise ChexmixInputError(f"YAML header is not valid: {first_line(exc)}", CARD_FILENAME) from None
    missing = [field for field in REQUIRED_CARD_FIELDS if not card.data.get(field)]
    if missing:
        raise ChexmixInputError(f"YAML header lacks {', '.join(missing)}", CARD_FILENAME)
    return card


def card_assets() -> dict[str, Path]:
    """The figure DATASET_CARD.md shows (repository path -> local file), from a source checkout."""
    figure = CHECKOUT_ROOT / CARD_FIGURE
    return {CARD_FIGURE: figure} if figure.is_file() else {}


def read_dataset_card() -> str:
    """DATASET_CARD.md as shipped in the package, else from the repository root (a source checkout)."""
    from importlib import resources

    packaged = resources.files("chexmix_dataset").joinpath(CARD_FILENAME)
    if packaged.is_file():
        return packaged.read_text(encoding="utf-8")
    checkout = CHECKOUT_ROOT / CARD_FILENAME
    if checkout.is_file():
        return checkout.read_text(encoding="utf-8")
    raise ChexmixInputError("dataset card not found in the package or the source checkout", CARD_FILENAME)
