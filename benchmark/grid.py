"""What a benchmark grid is made of: its options, its cells, and the outcome of one scored run.

Shared by the harness, the Ray engine, the reports and the figures; it imports none of them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import datasets
import numpy as np


@dataclass(frozen=True)
class BenchOptions:
    """Training options shared by every run (sizes in px)."""

    epochs: int = 10
    image_size: int = 512
    batch_size: int = 2
    seeds: int = 1
    weights: str = "none"  # imagenet | coco | none | last | PATH of a chexmix checkpoint
    device: str = "auto"  # auto | cpu | cuda
    workers: int | None = None  # DataLoader workers; None: benchmark.data.default_workers
    progress: bool = True


@dataclass(frozen=True)
class Cell:
    """One training setting of the paper's table and the data it trains and tests on."""

    training_dataset: str  # "X-rays only", "Mixed", or a config name
    config: str
    split: str  # "60/40"
    augment: bool
    dataset: datasets.DatasetDict = field(compare=False, repr=False)
    ct_fraction: float | None = None  # the share of training CXRs asked to be replaced (a sweep's x); None: default
    downloads: tuple[dict, ...] = field(default=(), compare=False)  # what the builder downloaded, with sha256
    # The dataset options given beyond config and split (seed, projector, sources, ...), as text;
    # empty for the builder's defaults. Runs resume only under the same ones.
    dataset_options: tuple[tuple[str, str], ...] = ()

    @property
    def slug(self) -> str:
        names = self.training_dataset if self.training_dataset == self.config else f"{self.training_dataset} {self.config}"
        name = re.sub(r"[^a-z0-9]+", "-", names.lower()).strip("-")
        return f"{name}-{self.split.replace('/', '-')}-{'aug' if self.augment else 'noaug'}"


@dataclass
class RunOutcome:
    """A trained and scored run: its results.json entry and the lesion areas its overlay shows.

    ``lesion_areas`` maps test row index -> (H, W) bool predicted lesion area at the image's size.
    """

    result: dict
    lesion_areas: dict[int, np.ndarray]


@dataclass(frozen=True)
class InitialWeights:
    """What every run of a grid starts from, unless it resumes from its own checkpoint.

    ``name`` is "imagenet", "coco", "none" or the absolute path of a chexmix checkpoint, whose
    loaded state is ``checkpoint`` (empty otherwise).
    """

    name: str
    checkpoint: dict = field(default_factory=dict, compare=False, repr=False)

    @property
    def structure(self) -> str:
        """The pretrained structure the networks are built with: "imagenet", "coco" or "none"."""
        return self.checkpoint.get("init_weights", self.name)

