"""Synthetic chest phantoms: 3D CTs with COVID-19-like lesion labels, and 2D CXR stand-ins.

They let CheXMix build, test and demonstrate everything offline. Both are drawn from
``numpy.random.default_rng(seed)`` and are identical for identical seeds.

CT phantoms (:func:`chest_phantom`) are in Hounsfield units (HU), in nibabel's RAS+ voxel order:
axis 0 increases towards the patient's Right, axis 1 towards Anterior, axis 2 towards Superior.
The physical field of view is fixed (:data:`FIELD_OF_VIEW_MM`); ``shape`` only sets the sampling,
so a small phantom shows the same anatomy coarsely.

CXR stand-ins (:func:`cxr_standin`) are drawn directly in 2D, in radiological display: the
patient's right on the image's left, superior at the top, dense structures bright.

Modules, each readable on its own:

- :mod:`.grid`: the voxel grid in mm (fixed field of view) and the tube / partial-volume helpers.
- :mod:`.seeds`: the one random generator per seed.
- :mod:`.body`: seeded patient geometry (mm) and tissue values (HU).
- :mod:`.anatomy`: soft tissue, airways, great and pulmonary vessels, lungs.
- :mod:`.bones`: spine, ribs, sternum, clavicles.
- :mod:`.lesions`: lesion blobs and where they are placed.
- :mod:`.chest`: :class:`ChestPhantom` and :func:`chest_phantom`, which draws all of the above.
- :mod:`.files`: NIfTI files, :func:`write_phantoms` and its ``phantoms.json`` record.
- :mod:`.cxr`: the 2D stand-ins.
"""

from __future__ import annotations

from chexmix_dataset.phantoms.body import (
    HU_AIR,
    HU_CANCELLOUS,
    HU_CARTILAGE,
    HU_CORTICAL,
    HU_CSF,
    HU_FAT,
    HU_LIVER,
    HU_LUNG,
    HU_SOFT,
)
from chexmix_dataset.phantoms.chest import ChestPhantom, chest_phantom
from chexmix_dataset.phantoms.cxr import CXRStandin, cxr_standin, standin_patient_id
from chexmix_dataset.phantoms.files import (
    PHANTOM_OUTPUT_NAMES,
    PHANTOMS_RECORD,
    check_phantom_output,
    write_phantom_nifti,
    write_phantoms,
)
from chexmix_dataset.phantoms.grid import DEFAULT_SHAPE, FIELD_OF_VIEW_MM, MIN_AXIS_VOXELS
from chexmix_dataset.phantoms.lesions import LESION_GAP_VOXELS, LESION_HU, LESION_TYPES, MAX_LESIONS

__all__ = [
    "DEFAULT_SHAPE", "FIELD_OF_VIEW_MM", "HU_AIR", "HU_CANCELLOUS", "HU_CARTILAGE", "HU_CORTICAL", "HU_CSF", "HU_FAT",
    "HU_LIVER", "HU_LUNG", "HU_SOFT", "LESION_GAP_VOXELS", "LESION_HU", "LESION_TYPES", "MAX_LESIONS",
    "MIN_AXIS_VOXELS", "PHANTOMS_RECORD", "PHANTOM_OUTPUT_NAMES", "CXRStandin", "ChestPhantom",
    "check_phantom_output", "chest_phantom", "cxr_standin", "standin_patient_id", "write_phantom_nifti",
    "write_phantoms",
]
