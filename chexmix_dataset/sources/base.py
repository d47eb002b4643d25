"""What a source adapter is (:class:`SourceAdapter`) and what it hands the builder: annotated CT
cases and annotated CXR cases."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Protocol, runtime_checkable

import datasets
import numpy as np

from chexmix_dataset.dataset.lesions import LesionInstance
from chexmix_dataset.errors import ChexmixInputError


@dataclass(frozen=True)
class CTCase:
    """An annotated chest CT on disk.

    Attributes:
        case_id: unique within the source (used in image ids).
        patient_id: the patient; splits never put one patient in both train and test.
        origin: source collection, e.g. "covid19-ct-seg/radiopaedia".
        license: licence of this case, e.g. "CC-BY-NC-SA-4.0".
        ct_path: NIfTI file in HU (or slice folder).
        mask_path: lesion label NIfTI on the CT's grid, or None.
        lesion_types: label value -> lesion type name (e.g. {1: "infection"}).
        stored_window_hu: None when the NIfTI holds Hounsfield units. Otherwise (lo, hi): the
            voxels hold grey values 0-255 made by clipping HU to this window and scaling it
            linearly (lo -> 0, hi -> 255), so HU = lo + value * (hi - lo) / 255. The
            COVID-19-CT-Seg Radiopaedia cases are stored this way, with (-1250, 250).
        view_deg: the patient's turn about the superior-inferior axis in degrees for this
            projection (:mod:`chexmix_dataset.ct.views`); 0 is the CT as scanned. Sources always
            give 0; a mix that needs more projections than CTs adds turned views.
    """

    case_id: str
    patient_id: str
    origin: str
    license: str
    ct_path: Path
    mask_path: Path | None
    lesion_types: dict[int, str] = field(default_factory=lambda: {1: "lesion"})
    stored_window_hu: tuple[float, float] | None = None
    view_deg: float = 0.0


@dataclass(frozen=True)
class CXRCase:
    """An annotated real chest X-ray (or a phantom stand-in).

    ``load`` returns the image as a (height, width) uint8 array and its lesion instances; it may
    raise :class:`chexmix_dataset.errors.ChexmixInputError` for a corrupt image (the builder
    skips and counts such cases) and may report clipped polygons through ``warn``.

    ``lung_mask_path``: the collection's lung mask PNG for this image (COVID-QU-Ex), kept for
    lung-restricted metrics; rows carry it as ``lung_mask``. ``official_split``: "train" or "test" when
    the collection publishes its own split (QaTa-COV19, COVID-QU-Ex, whose "Val" counts as
    train), else None; ``--split official`` honours it.
    """

    image_id: str
    patient_id: str
    origin: str
    license: str
    load: Callable[[Callable[[str], None]], tuple[np.ndarray, list[LesionInstance]]] = field(compare=False)
    view: str = "PA"
    lung_mask_path: str | None = None
    official_split: str | None = None


@dataclass(frozen=True)
class SkippedItem:
    """Something a source could not use: which item, and why (shown in the build summary).

    ``source``: the adapter that skipped it (filled in by :func:`..sources.scan_sources`).
    """

    item: str
    reason: str
    source: str = ""


@dataclass
class SourceScan:
    """The result of scanning one source's ``data_dir``."""

    ct_cases: list[CTCase] = field(default_factory=list)
    cxr_cases: list[CXRCase] = field(default_factory=list)
    skipped: list[SkippedItem] = field(default_factory=list)

    def add(self, other: "SourceScan") -> "SourceScan":
        """Append another scan's cases and skipped items (merging sources); returns self."""
        self.ct_cases.extend(other.ct_cases)
        self.cxr_cases.extend(other.cxr_cases)
        self.skipped.extend(other.skipped)
        return self


def source_folder(root: str | Path, name: str, layout: str) -> Path:
    """``root`` as a Path when it is a folder; else one clear error naming the source's layout."""
    root = Path(root)
    if not root.is_dir():
        raise ChexmixInputError(f"{name} data folder does not exist; expected layout: {layout}", root)
    return root


@runtime_checkable
class SourceAdapter(Protocol):
    """One public collection of annotated CTs or CXRs, as the builder sees it.

    Every adapter in :data:`chexmix_dataset.sources.SOURCES` satisfies it: the modules
    (``covid19_ct_seg``, ``mosmed``, ...) with their module-level constants and functions, and
    the local-folder adapters of :mod:`.folders`.

    Attributes:
        NAME: the ``--sources`` name (rows' ``origin`` names the collection, e.g. "covid-qu-ex/normal").
        HOMEPAGE: where the collection is published ("" for local folders).
        CITATION: BibTeX to cite ("" when there is none).
        LICENSE: the rows' licence unless a case says otherwise (SPDX-like; "unknown" when the
            collection states none); publishing checks it (:mod:`chexmix_dataset.hub.licences`).
        URLS: download name -> public URL ({} when the collection cannot be fetched anonymously).
        LAYOUT: the public on-disk layout ``scan`` reads, as shown in error messages.
        EXCLUSIVE_WITH: other source -> why the two cannot be built together (shared images
            without a documented id mapping would put one patient in train and test).
    """

    NAME: str
    HOMEPAGE: str
    CITATION: str
    LICENSE: str
    URLS: Mapping[str, str]
    LAYOUT: str
    EXCLUSIVE_WITH: Mapping[str, str]

    def scan(self, root: Path) -> SourceScan:
        """The cases of a local copy in the public layout under ``root``."""
        ...

    def download(self, dl_manager: datasets.DownloadManager, mirror: str | None = None) -> SourceScan:
        """Fetch the public files (through ``mirror``, see :mod:`.download`) and scan them."""
        ...
