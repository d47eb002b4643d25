"""The CheXMix Hugging Face ``datasets`` builder and :func:`load_chexmix`.

Configs:

``xrays_only``
    Real chest X-rays with lesion annotations (COVID-19 image data collection + CT2Xray polygons).
``ct_projections``
    Frontal projections of annotated CTs (COVID-19 CT Lung and Infection Segmentation Dataset).
``mixed``
    The paper's experiment: the ``xrays_only`` split (identical test set of real CXRs, same
    training size), with a fraction ``ct_fraction`` (default 5/6: 10 CXRs + 50 projections) of
    the training CXRs replaced by CT projections; with fewer CTs than places, CTs give extra
    views turned about the superior-inferior axis (see :mod:`.splits`).
``sample``
    Offline and small: phantom CT projections and phantom CXR stand-ins, structured like
    ``mixed`` (the test split holds stand-in CXRs only). ``ct_fraction=0`` gives its X-rays-only
    counterpart with the same test split.

``datasets`` >= 4 no longer runs dataset scripts: use :func:`load_chexmix`, the builder class
(``CheXMix(config_name=...).download_and_prepare()`` then ``as_dataset()``), or ``chexmix build``.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import posixpath
from dataclasses import dataclass, field
from pathlib import Path

import datasets
import numpy as np

from chexmix_dataset.ct.volume import load_ct
from chexmix_dataset.dataset.features import FEATURES
from chexmix_dataset.dataset.rows import make_row
from chexmix_dataset.dataset.splits import (
    SplitPlan,
    is_official,
    mixed_plan,
    official_split,
    parse_split,
    patient_split,
)
from chexmix_dataset.errors import ChexmixInputError
from chexmix_dataset.projector import ProjectorOptions, project_volume
from chexmix_dataset.sources import SOURCES, scan_sources
from chexmix_dataset.sources import phantom as phantom_source
from chexmix_dataset.sources.annotations import read_region_mask
from chexmix_dataset.sources.base import CTCase, CXRCase, SourceScan

logger = logging.getLogger(__name__)

CONFIG_NAMES = ("xrays_only", "ct_projections", "mixed", "sample")
DEFAULT_SOURCES = {
    "xrays_only": ("covid_chestxray",),
    "ct_projections": ("covid19_ct_seg",),
    "mixed": ("covid_chestxray", "covid19_ct_seg"),
    "sample": ("phantom",),
}
PAPER_CT_FRACTION = 5 / 6
_BASE_CONFIG_FIELDS = {f.name for f in dataclasses.fields(datasets.BuilderConfig)}

_DESCRIPTION = (
    "CheXMix: frontal chest X-rays with COVID-19 lung-lesion annotations, mixing real chest X-rays "
    "with X-ray-like projections of annotated chest CTs (after Ramesh, Rister & Rubin, "
    "arXiv:2105.08147). Research use only; not for clinical use."
)
_CITATION = """@article{ramesh2021chexmix,
  title   = {COVID-19 Lung Lesion Segmentation Using a Sparsely Supervised Mask R-CNN on Chest X-rays
             Automatically Computed from Volumetric CTs},
  author  = {Ramesh, Vignav and Rister, Blaine and Rubin, Daniel L.},
  journal = {arXiv preprint arXiv:2105.08147},
  year    = {2021}
}"""


ROWS_VERSION = "0.2.0"


@dataclass
class CheXMixConfig(datasets.BuilderConfig):
    """A CheXMix config with its split, mix and projector options.

    Attributes:
        train_test_split: "60/40", "80/20" or any ratio/fraction; patient-level. "official":
            the sources' own train/test split (:func:`.splits.official_split`).
        seed: seeds the split and the mix (and the phantoms of ``sample``).
        ct_fraction: share of the training CXRs replaced by CT projections (mixed, sample).
        projector: how CTs are projected (:class:`ProjectorOptions`).
        sources: source adapter names; None means the config's defaults.
        sample_n_ct, sample_n_cxr: ``sample`` only: phantom CTs and CXR stand-ins to make.
        sample_ct_shape: ``sample`` only: phantom CT shape (x, y, z) in voxels.
        sample_cxr_size: ``sample`` only: stand-in CXR size in px.
        mirror: base URL the sources' downloads are fetched through (None: ``$CHEXMIX_MIRROR``;
            see :mod:`.sources.download`). Not part of the cache's name: it changes where the
            bytes come from, not the data, and each download's sha256 is recorded.
    """

    # The rows' version: part of the cache folder's name, so a cache built before FEATURES or the
    # row content changed is not reused. Bump it with every such change (0.2.0: lung_mask).
    version: datasets.Version | str | None = ROWS_VERSION
    train_test_split: str = "60/40"
    seed: int = 0
    ct_fraction: float = PAPER_CT_FRACTION
    projector: ProjectorOptions = field(default_factory=ProjectorOptions)
    sources: tuple[str, ...] | None = None
    sample_n_ct: int = 16
    sample_n_cxr: int = 20
    sample_ct_shape: tuple[int, int, int] = (128, 128, 48)
    sample_cxr_size: int = 256
    mirror: str | None = None

    def create_config_id(self, config_kwargs: dict, custom_features: datasets.Features | None = None) -> str:
        # A mirror serves the same files; rows built from them are reused under any mirror.
        kept = {key: value for key, value in config_kwargs.items() if key != "mirror"}
        return super().create_config_id(kept, custom_features)


class CheXMix(datasets.GeneratorBasedBuilder):
    """Builds CheXMix rows (see :mod:`.features`) for one config."""

    VERSION = datasets.Version(ROWS_VERSION)
    BUILDER_CONFIG_CLASS = CheXMixConfig
    BUILDER_CONFIGS = [
        CheXMixConfig(name="xrays_only", description="Real chest X-rays with lesion annotations."),
        CheXMixConfig(name="ct_projections", description="Projections of annotated chest CTs."),
        CheXMixConfig(name="mixed", description="Real CXRs with 5/6 of the training set replaced by CT projections."),
        CheXMixConfig(name="sample", description="Offline phantom data structured like 'mixed'.",
                      projector=ProjectorOptions(size_px=256)),
    ]
    DEFAULT_CONFIG_NAME = "sample"

    def __init__(self, cache_dir: str | None = None, **kwargs) -> None:
        super().__init__(cache_dir=cache_dir, **kwargs)
        # datasets keeps both folders private (_cache_dir_root, _cache_downloaded_dir); they follow
        # its documented rule: under cache_dir when given, else HF_DATASETS_CACHE and
        # HF_DATASETS_DOWNLOADED_DATASETS_PATH. tests/test_builder.py checks they agree.
        #: the cache root: ``cache_dir``, else ``datasets.config.HF_DATASETS_CACHE``.
        self.cache_root = os.path.expanduser(str(cache_dir or datasets.config.HF_DATASETS_CACHE))
        #: where ``download_and_prepare`` downloads (and reuses) the sources' files.
        self.downloads_dir = (posixpath.join(self.cache_root, datasets.config.DOWNLOADED_DATASETS_DIR) if cache_dir
                              else os.path.expanduser(str(datasets.config.DOWNLOADED_DATASETS_PATH)))

    def _info(self) -> datasets.DatasetInfo:
        return datasets.DatasetInfo(
            description=_DESCRIPTION,
            features=FEATURES,
            homepage="https://arxiv.org/abs/2105.08147",
            citation=_CITATION,
            license="Per row: see the `license` column (CC BY-NC-SA 4.0, CC BY 4.0, ... by source).",
        )

    def _split_generators(self, dl_manager: datasets.DownloadManager) -> list[datasets.SplitGenerator]:
        plan = self.plan(dl_manager)
        for skipped in plan.skipped:
            logger.warning("skipped %s: %s", skipped.item, skipped.reason)
        for note in plan.notes:
            logger.warning(note)
        return [
            datasets.SplitGenerator(name=datasets.Split.TRAIN, gen_kwargs={"items": plan.train}),
            datasets.SplitGenerator(name=datasets.Split.TEST, gen_kwargs={"items": plan.test}),
        ]

    def _generate_examples(self, items: list[CTCase | CXRCase]):
        projector = self.config.projector
        for item in items:
            try:
                row = _row_for(item, projector)
            except ChexmixInputError as exc:
                # Counted in `chexmix build`'s summary as planned but not produced.
                logger.warning("skipped %s: %s", image_id_for(item), exc)
                continue
            yield row["image_id"], row

    # -- planning: pure functions of the config and the sources ---------------------------------

    def source_names(self) -> list[str]:
        """The source adapters this config reads (``--sources``, else the config's defaults)."""
        return list(self.config.sources or DEFAULT_SOURCES[self.config.name])

    def source_urls(self) -> list[str]:
        """The public URLs the config's sources download, in source order."""
        return [url for name in self.source_names() if name in SOURCES for url in SOURCES[name].URLS.values()]

    def scan(self, dl_manager: datasets.DownloadManager | None) -> SourceScan:
        """All cases of the config's sources, with what had to be skipped."""
        config = self.config
        names = self.source_names()
        scan = SourceScan()
        if "phantom" in names:
            # Phantoms read no data_dir: they are generated once into the builder's cache.
            names.remove("phantom")
            root = Path(self.cache_root) / "chexmix_sources" / "phantom"
            scan.add(phantom_source.scan(root, n_ct=config.sample_n_ct, n_cxr=config.sample_n_cxr, seed=config.seed,
                                         ct_shape=tuple(config.sample_ct_shape), cxr_size=config.sample_cxr_size))
        if names:
            data_dir = None if config.data_dir is None else Path(config.data_dir)
            scan.add(scan_sources(names, data_dir, dl_manager, mirror=config.mirror))
        return scan

    def plan(self, dl_manager: datasets.DownloadManager | None = None) -> SplitPlan:
        """Which cases make train and test for this config (no image is loaded)."""
        config = self.config
        if config.name not in CONFIG_NAMES:
            raise ChexmixInputError(f"unknown config {config.name!r}; choose one of {', '.join(CONFIG_NAMES)}")
        official = is_official(config.train_test_split)
        fraction = None if official else parse_split(config.train_test_split)

        def split(items: list, what: str) -> tuple[list, list]:
            if official:
                return official_split(items, what)
            return patient_split(items, [item.patient_id for item in items], fraction, config.seed)

        scan = self.scan(dl_manager)
        if config.name == "ct_projections":
            train, test = split(scan.ct_cases, "CT")
            plan = SplitPlan(train=train, test=test)
        else:
            cxr_train, cxr_test = split(scan.cxr_cases, "CXR")
            if config.name == "xrays_only":
                plan = SplitPlan(train=cxr_train, test=cxr_test)
            else:
                plan = mixed_plan(cxr_train, cxr_test, scan.ct_cases, config.ct_fraction, config.seed)
        if not plan.train or not plan.test:
            raise ChexmixInputError(
                f"config {config.name!r} with split {config.train_test_split} leaves "
                f"{'train' if not plan.train else 'test'} empty ({len(plan.train)} train, {len(plan.test)} test items)"
            )
        plan.skipped = list(scan.skipped)
        return plan


def image_id_for(item: CTCase | CXRCase) -> str:
    """The row id of a planned item; a turned CT view carries its angle, e.g. ``ct-NAME-view+5``."""
    if isinstance(item, CXRCase):
        return f"cxr-{item.image_id}"
    return f"ct-{item.case_id}" if item.view_deg == 0 else f"ct-{item.case_id}-view{item.view_deg:+g}"


def _row_for(item: CTCase | CXRCase, projector: ProjectorOptions) -> dict:
    if isinstance(item, CTCase):
        ct = load_ct(item.ct_path, item.mask_path)
        # The planned extra view and the projector's own turn make one rotation (in project_volume).
        turn = projector.view_deg + item.view_deg
        options = dataclasses.replace(projector, lesion_types=dict(item.lesion_types), view_deg=turn)
        if item.stored_window_hu is not None:
            # Stored as 0-255 grey over an HU window (Radiopaedia cases of Ma et al.): map back.
            ct = dataclasses.replace(ct, is_hounsfield=False)
            options = dataclasses.replace(options, slice_hu_range=tuple(item.stored_window_hu))
        projection = project_volume(ct, options)
        image, instances, source = projection.image, projection.instances, "ct_projection"
        view_deg: float | None = turn
    else:
        warn = functools.partial(logger.warning, "%s: %s", item.image_id)
        image, instances = item.load(warn)
        source, view_deg = "cxr", None
    return make_row(image, instances, image_id=image_id_for(item), source=source, origin=item.origin,
                    patient_id=item.patient_id, license=item.license, view_deg=view_deg,
                    lung_mask=_lung_mask(item, image.shape, warn) if isinstance(item, CXRCase) else None)


def _lung_mask(item: CXRCase, image_shape: tuple[int, int], warn) -> np.ndarray | None:
    """The case's lung mask, or None; an unusable one is left out with a warning (the image stays)."""
    if not item.lung_mask_path:
        return None
    try:
        return read_region_mask(item.lung_mask_path, image_shape, warn)
    except ChexmixInputError as exc:
        warn(f"lung mask left out: {exc}")
        return None


def default_config(name: str) -> CheXMixConfig:
    """The named config with its default options."""
    if name not in CONFIG_NAMES:
        raise ChexmixInputError(f"unknown config {name!r}; choose one of {', '.join(CONFIG_NAMES)}")
    return next(c for c in CheXMix.BUILDER_CONFIGS if c.name == name)


def make_builder(config: str = "sample", data_dir: str | Path | None = None, *, split: str = "60/40",
                 seed: int = 0, ct_fraction: float | None = None, projector: ProjectorOptions | None = None,
                 cache_dir: str | Path | None = None, **config_options) -> CheXMix:
    """A configured :class:`CheXMix` builder (nothing is built yet)."""
    if not is_official(split):
        parse_split(split)
    if seed < 0:
        raise ChexmixInputError(f"--seed must be a non-negative integer, got {seed}")
    # Pass every option explicitly: datasets names the cache after the options it is given, so
    # a changed default (or projector setting) can never reuse rows built under the old one.
    defaults = default_config(config)
    options = {f.name: getattr(defaults, f.name) for f in dataclasses.fields(CheXMixConfig)
               if f.name not in _BASE_CONFIG_FIELDS}
    options.update(config_options, train_test_split=split, seed=seed)
    if ct_fraction is not None:
        options["ct_fraction"] = float(ct_fraction)
    if projector is not None:
        options["projector"] = projector
    if "sources" in options and options["sources"] is not None:
        options["sources"] = tuple(options["sources"])
    return CheXMix(config_name=config, dataset_name="chexmix",
                   data_dir=None if data_dir is None else str(data_dir),
                   cache_dir=None if cache_dir is None else str(cache_dir), **options)


def load_chexmix(config: str = "sample", data_dir: str | Path | None = None, *, num_proc: int | None = None,
                 **options) -> datasets.DatasetDict:
    """Build (or reuse from the cache) one CheXMix config and return its train/test DatasetDict.

    Args:
        config: "xrays_only", "ct_projections", "mixed" or "sample".
        data_dir: local copies of the sources in their public layouts (one sub-folder per source,
            named as the source, or the source's own layout); None downloads them (``sample``
            needs nothing).
        num_proc: processes for generation (sharded over cases).
        **options: ``split`` ("60/40"), ``seed``, ``ct_fraction``, ``projector``
            (:class:`ProjectorOptions`), ``cache_dir``, ``sources`` and the ``sample_*`` sizes.
    """
    builder = make_builder(config, data_dir, **options)
    builder.download_and_prepare(num_proc=num_proc)
    return builder.as_dataset()
