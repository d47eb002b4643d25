"""The NIfTI-1 header of a well-formed single-file CT, read without nibabel.

``chexmix project`` spends about 0.45 s importing nibabel, a third of a whole projection. A CT
written by dcm2niix, ITK, SimpleITK or nibabel has a plain header: magic ``n+1``, valid
datatype, positive voxel sizes, qfac of +-1, known transform codes and a voxel offset past
the header. :func:`plain_header` reads exactly those and gives what nibabel gives for them (shape,
dtype, voxel offset, scaling and ``image.affine``, checked against nibabel in the tests);
anything else returns ``None`` and the caller reads the file with nibabel, which knows how to
repair or reject it.

Header fields follow the NIfTI-1 standard (https://nifti.nimh.nih.gov/nifti-1): affine in mm,
RAS+ world coordinates, ``value = stored * scl_slope + scl_inter``.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np

HEADER_BYTES = 348
_SINGLE_FILE_MAGIC = b"n+1\x00"
_FIRST_VOXEL_MIN = 352  # header plus the 4-byte extension flag

#: NIfTI datatype code -> (numpy type, bits per voxel); complex and RGB types go to nibabel.
_DATATYPES = {2: ("u1", 8), 4: ("i2", 16), 8: ("i4", 32), 16: ("f4", 32), 64: ("f8", 64),
              256: ("i1", 8), 512: ("u2", 16), 768: ("u4", 32), 1024: ("i8", 64), 1280: ("u8", 64)}
_XFORM_CODES = range(6)  # unknown, scanner, aligned, Talairach, MNI, template


@dataclass(frozen=True)
class NiftiHeader:
    """What reading the voxels needs: shape (Fortran order), stored dtype, first voxel byte,
    scaling (slope 1, intercept 0 when the header asks for none) and the 4x4 affine (mm)."""

    shape: tuple[int, ...]
    dtype: np.dtype
    voxel_offset: int
    slope: float
    intercept: float
    affine: np.ndarray


def _fields(block: bytes, endian: str) -> dict[str, Any]:
    def unpack(fmt: str, at: int) -> tuple:
        return struct.unpack_from(endian + fmt, block, at)

    return {
        "dim": unpack("8h", 40), "datatype": unpack("h", 70)[0], "bitpix": unpack("h", 72)[0],
        "pixdim": np.array(unpack("8f", 76), dtype=np.float32), "vox_offset": unpack("f", 108)[0],
        "scl_slope": unpack("f", 112)[0], "scl_inter": unpack("f", 116)[0],
        "qform_code": unpack("h", 252)[0], "sform_code": unpack("h", 254)[0],
        "quatern": np.array(unpack("3f", 256), dtype=np.float32), "qoffset": unpack("3f", 268),
        "srow": np.array(unpack("12f", 280), dtype=np.float32).reshape(3, 4), "magic": block[344:348],
    }


def _quaternion_rotation(bcd: np.ndarray) -> np.ndarray | None:
    """Rotation of the unit quaternion (a, b, c, d) with a >= 0; None when b, c, d are not unit-bounded.

    As nibabel's ``fillpositive``: ``a^2 = 1 - b^2 - c^2 - d^2`` in the widest float, and an
    ``a^2`` within 3 float32 epsilons of zero counts as zero (a 180 degree turn).
    """
    xyz = np.asarray(bcd, dtype=np.longdouble)
    w2 = 1.0 - xyz @ xyz
    if abs(w2) < np.finfo(np.float32).eps * 3:
        w = 0.0
    elif w2 < 0:
        return None
    else:
        w = np.sqrt(w2)
    w, x, y, z = np.r_[w, xyz]
    norm = w * w + x * x + y * y + z * z
    if norm < np.finfo(np.float64).eps:
        return np.eye(3)
    s = 2.0 / norm
    X, Y, Z = x * s, y * s, z * s
    wX, wY, wZ = w * X, w * Y, w * Z
    xX, xY, xZ = x * X, x * Y, x * Z
    yY, yZ, zZ = y * Y, y * Z, z * Z
    return np.array([[1.0 - (yY + zZ), xY - wZ, xZ + wY],
                     [xY + wZ, 1.0 - (xX + zZ), yZ - wX],
                     [xZ - wY, yZ + wX, 1.0 - (xX + yY)]])


def _affine(fields: dict[str, object]) -> np.ndarray | None:
    """nibabel's ``get_best_affine``: the sform when coded, else the qform; None for neither."""
    affine = np.eye(4)
    if fields["sform_code"] != 0:
        affine[:3, :] = fields["srow"]
        return affine
    if fields["qform_code"] == 0:
        return None  # the Analyze fallback affine: rare for a CT, left to nibabel
    rotation = _quaternion_rotation(fields["quatern"])
    if rotation is None:
        return None
    voxel = fields["pixdim"][1:4].copy()
    voxel[-1] *= fields["pixdim"][0]
    affine[:3, :3] = np.dot(rotation, np.diag(voxel))
    affine[:3, 3] = fields["qoffset"]
    return affine


def plain_header(block: bytes) -> NiftiHeader | None:
    """The header in a file's first 348 bytes, or None when it is not a plain single-file NIfTI-1."""
    if len(block) < HEADER_BYTES:
        return None
    endian = next((e for e in "<>" if struct.unpack_from(e + "i", block, 0)[0] == HEADER_BYTES), None)
    if endian is None:
        return None
    fields = _fields(block, endian)
    dim, pixdim = fields["dim"], fields["pixdim"]
    ndim = dim[0]
    if fields["magic"] != _SINGLE_FILE_MAGIC or not 1 <= ndim <= 7 or min(dim[1:ndim + 1]) < 1:
        return None
    if _DATATYPES.get(fields["datatype"], (None, None))[1] != fields["bitpix"]:
        return None
    offset = fields["vox_offset"]
    if not (math.isfinite(offset) and offset >= _FIRST_VOXEL_MIN and offset == int(offset)):
        return None
    if pixdim[0] not in (-1.0, 1.0) or not np.all(pixdim[1:4] > 0):
        return None  # nibabel repairs these on load (and says so): its answer is the reference
    if fields["qform_code"] not in _XFORM_CODES or fields["sform_code"] not in _XFORM_CODES:
        return None
    slope, intercept = float(fields["scl_slope"]), float(fields["scl_inter"])
    if slope == 0 or not math.isfinite(slope):
        slope, intercept = 1.0, 0.0  # "no scaling", as the standard says
    elif not math.isfinite(intercept):
        return None
    affine = _affine(fields)
    if affine is None:
        return None
    dtype = np.dtype(endian + _DATATYPES[fields["datatype"]][0])
    return NiftiHeader(tuple(int(d) for d in dim[1:ndim + 1]), dtype, int(offset), slope, intercept, affine)
