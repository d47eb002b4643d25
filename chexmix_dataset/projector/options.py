"""What a projection is asked for (:class:`ProjectorOptions`) and what it gives (:class:`Projection`)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from chexmix_dataset.dataset.lesions import LesionInstance
from chexmix_dataset.errors import ChexmixInputError

MU_WATER_60KEV_PER_MM = 0.0206
# Longest image side: a 43 cm flat-panel detector at its finest 0.1 mm pitch is about 4300 px;
# beyond this a typo (--size 100000 would need 37 GiB) rather than a wish.
MAX_SIZE_PX = 4096
#: a frontal view's tilt about the right-left axis stays small; larger ones are other views
MAX_TILT_DEG = 30.0
# Usual source-to-image distances: a departmental PA chest film at 72 in (1.8 m); a portable AP
# film (bedside, the usual view for the sickest patients) at about 40 in (1 m).
DEFAULT_SID_MM = {"PA": 1800.0, "AP": 1000.0}
# The chest's centre sits about half a 30 cm anterior-posterior diameter in front of the
# detector, whichever side the detector is on.
DEFAULT_CENTRE_TO_DETECTOR_MM = 150.0
GEOMETRIES = ("parallel", "cone")
BEAMS = ("PA", "AP")
DISPLAYS = ("linear", "radiograph")


@dataclass(frozen=True)
class ProjectorOptions:
    """How to project a CT.

    Attributes:
        mode: "physics" (default) or "seed" (the published algorithm).
        size_px: physics mode: length in px of the image's longer side, 8 to 4096.
        mu_water_per_mm: linear attenuation of water (1/mm) in physics mode.
        window_percentiles: physics mode: percentiles of the line integral mapped to 0 and 255.
        slice_hu_range: HU assumed for grey 0 and 255 when a slice folder (no HU) is projected
            in physics mode.
        min_lesion_mm: least path length (mm) through a lesion for a lesion pixel; None means
            one voxel along anterior-posterior.
        min_area_mm2: instances whose projection covers less area are dropped (mm^2 on the
            image's grid: the detector plane in cone geometry).
        lesion_types: lesion label value -> name; unlisted labels are named "lesion".
        geometry: "parallel" (default: rays along anterior-posterior, as the published tool)
            or "cone" (a point source and a flat detector, :mod:`.geometry`). Physics mode only
            for cone.
        beam: cone: "PA" (source behind the patient, detector at the chest; default) or "AP"
            (source in front, detector at the back). The image layout is the same for both.
        sid_mm: cone: source-to-detector distance in mm; None: 1800 for PA, 1000 for AP.
        sod_mm: cone: source-to-isocentre distance in mm (the isocentre is the centre of the
            CT's grid); None: ``sid_mm - 150``.
        detector_pixel_mm: cone: detector pixel pitch in mm; None: the whole CT, magnified,
            over ``size_px`` px on the longer side.
        view_deg: patient rotation about the superior-inferior axis in degrees (convention of
            :mod:`chexmix_dataset.ct.views`), applied before projecting in either geometry.
        tilt_deg: patient tilt about the right-left axis in degrees, at most
            :data:`MAX_TILT_DEG` either way (a positive tilt leans the patient back; see
            :mod:`chexmix_dataset.ct.views`), applied after ``view_deg``.
        display: physics mode: "linear" (default: ``-ln T`` windowed linearly) or "radiograph"
            (quantum noise, tissue equalisation, unsharp mask, sigmoid detector response; see
            :func:`.display.radiograph_uint8`). ``line_integral`` is the same for both.
        device: "cpu" (numpy) or "cuda" / "cuda:N" (torch on that GPU); "torch:cpu" runs the
            torch path on the CPU (to check it). The renderers are the same functions on each
            (:mod:`.backend`).
    """

    mode: Literal["physics", "seed"] = "physics"
    size_px: int = 512
    mu_water_per_mm: float = MU_WATER_60KEV_PER_MM
    window_percentiles: tuple[float, float] = (0.5, 99.8)
    slice_hu_range: tuple[float, float] = (-1000.0, 1000.0)
    min_lesion_mm: float | None = None
    min_area_mm2: float = 4.0
    lesion_types: dict[int, str] = field(default_factory=lambda: {1: "ground_glass", 2: "consolidation"})
    geometry: Literal["parallel", "cone"] = "parallel"
    beam: Literal["PA", "AP"] = "PA"
    sid_mm: float | None = None
    sod_mm: float | None = None
    detector_pixel_mm: float | None = None
    view_deg: float = 0.0
    tilt_deg: float = 0.0
    device: str = "cpu"
    display: Literal["linear", "radiograph"] = "linear"

    def __post_init__(self) -> None:
        if self.mode not in ("physics", "seed"):
            raise ChexmixInputError(f"unknown projection mode {self.mode!r} (physics or seed)")
        if isinstance(self.size_px, bool) or not isinstance(self.size_px, (int, np.integer)):
            raise ChexmixInputError(f"--size (the image size) must be a whole number of px, got {self.size_px!r}")
        if not 8 <= self.size_px <= MAX_SIZE_PX:
            raise ChexmixInputError(f"--size (the image size) must be 8 to {MAX_SIZE_PX} px, got {self.size_px}")
        if self.min_lesion_mm is not None and self.min_lesion_mm <= 0:
            raise ChexmixInputError(f"--min-lesion-mm must be positive, got {self.min_lesion_mm}")
        if self.geometry not in GEOMETRIES:
            raise ChexmixInputError(f"unknown geometry {self.geometry!r} (parallel or cone)")
        if self.beam not in BEAMS:
            raise ChexmixInputError(f"unknown beam direction {self.beam!r} (PA or AP)")
        if self.geometry == "cone" and self.mode == "seed":
            raise ChexmixInputError("seed mode is the published parallel-beam algorithm; use --mode physics "
                                    "with --geometry cone")
        for name in ("sid_mm", "sod_mm", "detector_pixel_mm"):
            value = getattr(self, name)
            if value is not None and not (np.isfinite(value) and value > 0):
                raise ChexmixInputError(f"--{name.replace('_', '-')} must be a positive number of mm, got {value}")
        if self.source_to_isocentre_mm >= self.source_to_detector_mm:
            raise ChexmixInputError(
                f"the isocentre must lie between source and detector: --sod-mm {self.source_to_isocentre_mm:g} "
                f"is not below --sid-mm {self.source_to_detector_mm:g}"
            )
        if not (self.device == "cpu" or re.fullmatch(r"cuda(:\d+)?|torch:cpu", str(self.device))):
            raise ChexmixInputError(f"unknown device {self.device!r} (cpu, cuda or cuda:N)")
        if self.display not in DISPLAYS:
            raise ChexmixInputError(f"unknown display {self.display!r} (linear or radiograph)")
        if self.display != "linear" and self.mode == "seed":
            raise ChexmixInputError("seed mode keeps the published display; --display radiograph needs --mode physics")
        if not np.isfinite(self.view_deg):
            raise ChexmixInputError(f"--view-deg must be a finite angle, got {self.view_deg}")
        if not (np.isfinite(self.tilt_deg) and abs(self.tilt_deg) <= MAX_TILT_DEG):
            raise ChexmixInputError(f"--tilt-deg must be within +-{MAX_TILT_DEG:g} degrees (a small tilt of a "
                                    f"frontal view), got {self.tilt_deg}")

    @property
    def source_to_detector_mm(self) -> float:
        """``sid_mm``, or the beam's usual distance (:data:`DEFAULT_SID_MM`)."""
        return float(self.sid_mm) if self.sid_mm is not None else DEFAULT_SID_MM[self.beam]

    @property
    def source_to_isocentre_mm(self) -> float:
        """``sod_mm``, or the isocentre :data:`DEFAULT_CENTRE_TO_DETECTOR_MM` before the detector."""
        if self.sod_mm is not None:
            return float(self.sod_mm)
        return self.source_to_detector_mm - DEFAULT_CENTRE_TO_DETECTOR_MM


@dataclass(frozen=True)
class Projection:
    """A projected CT.

    Attributes:
        image: (height, width) uint8 frontal X-ray, radiological convention.
        instances: projected lesions, each with its own mask on ``image``'s grid.
        pixel_spacing_mm: (row, column) pixel size in mm (cone geometry: at the detector, as
            DICOM's ImagerPixelSpacing; divide by the magnification for the isocentre).
        line_integral: physics mode: (height, width) float32 ``-ln T`` on ``image``'s grid.
    """

    image: np.ndarray
    instances: list[LesionInstance]
    pixel_spacing_mm: tuple[float, float]
    line_integral: np.ndarray | None = None
