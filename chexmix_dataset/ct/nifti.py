"""Reading NIfTI volumes as the integers they store, with clean errors.

``read_nifti_stored`` returns the stored array with the header's ``scl_slope``/``scl_inter``
(value = stored * slope + intercept, HU for CTs), so that a scaled int16 CT never becomes a
float64 copy four times its size; ``.nii.gz`` voxels are decompressed straight into the array,
with ISA-L's inflate (``isal``, about 2-3x faster than zlib on a CT) where it is installed.
A plain single-file header (what scanners' converters write) is read by
:mod:`.nifti_header`, without importing nibabel; any other file is read by nibabel.
"""

from __future__ import annotations

import gzip
import math
import os
import zlib
from pathlib import Path
from typing import BinaryIO

import numpy as np

from chexmix_dataset.ct.nifti_header import HEADER_BYTES, NiftiHeader, plain_header
from chexmix_dataset.errors import ChexmixInputError, first_line

try:  # decode dominates reading a CT: ISA-L inflates the same stream bit-identically, faster
    from isal import igzip as gzip_reader
    from isal.isal_zlib import error as _inflate_error
except ImportError:  # isal left out (installed without dependencies): the standard library's zlib
    gzip_reader = gzip
    _inflate_error = zlib.error

_READ_ERRORS = (EOFError, zlib.error, _inflate_error, OSError, ValueError, MemoryError)

NIFTI_SUFFIXES = (".nii", ".nii.gz")


def is_nifti(path: str | os.PathLike) -> bool:
    return str(path).lower().endswith(NIFTI_SUFFIXES)


def _check_finite(array: np.ndarray, path: str | os.PathLike, what: str) -> None:
    if np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all():
        bad = int(np.size(array) - np.count_nonzero(np.isfinite(array)))
        raise ChexmixInputError(f"{what} has {bad} NaN or infinite voxels", path)


_READ_CHUNK_BYTES = 1 << 20
# Far above any CT (a 1024^2 x 4000 int16 volume is 8 GiB): a header claiming more is corrupt,
# and allocating first would fail with MemoryError instead of naming the file.
_MAX_VOXEL_BYTES = 64 << 30


def _is_gzip(path: Path) -> bool:
    return str(path).lower().endswith(".gz")


def _open(path: Path) -> BinaryIO:
    return gzip_reader.open(path, "rb") if _is_gzip(path) else open(path, "rb")


def _read_voxels(handle: BinaryIO, skip: int, dtype: np.dtype, shape: tuple[int, ...]) -> np.ndarray:
    """The stored array, read straight into its final buffer (Fortran order, native byte order).

    nibabel's gzip read holds the decompressed bytes twice at its peak; reading 1 MiB at a time
    into the array keeps the peak at the volume's size.
    """
    count = int(np.prod(shape, dtype=np.int64))
    if count * dtype.itemsize > _MAX_VOXEL_BYTES:
        raise ValueError(f"header claims {count * dtype.itemsize / 2**30:.0f} GiB of voxels {shape}")
    out = np.empty(count, dtype=dtype.newbyteorder("="))
    buffer = memoryview(out.view(np.uint8))
    if skip:
        handle.seek(skip, os.SEEK_CUR)
    done = 0
    while done < len(buffer):
        count = handle.readinto(buffer[done: done + _READ_CHUNK_BYTES])
        if not count:
            raise EOFError(f"expected {len(buffer)} bytes of voxels, got {done}")
        done += count
    if not dtype.isnative:
        out.byteswap(inplace=True)
    return out.reshape(shape, order="F")


def _read_plain(path: Path) -> tuple[np.ndarray, np.ndarray, float, float] | None:
    """(stored, affine, slope, intercept) of a file with a plain header; None for any other file."""
    with _open(path) as handle:
        header: NiftiHeader | None = plain_header(handle.read(HEADER_BYTES))
        if header is None:
            return None
        if not _is_gzip(path):
            needed = header.voxel_offset + int(np.prod(header.shape, dtype=np.int64)) * header.dtype.itemsize
            size = os.fstat(handle.fileno()).st_size
            if size < needed:
                raise EOFError(f"header needs {needed} bytes, the file has {size}")
        data = _read_voxels(handle, header.voxel_offset - HEADER_BYTES, header.dtype, header.shape)
    return data, header.affine, header.slope, header.intercept


def _read_with_nibabel(path: Path) -> tuple[np.ndarray, np.ndarray, float, float]:
    import nibabel as nib  # only for headers outside the plain case: its import costs 0.45 s

    try:
        image = nib.load(str(path))
        proxy = image.dataobj
        if isinstance(proxy, np.ndarray):
            return proxy, np.asarray(image.affine, dtype=np.float64), 1.0, 0.0
        if _is_gzip(path):
            with _open(path) as handle:
                data = _read_voxels(handle, int(proxy.offset), np.dtype(proxy.dtype), tuple(proxy.shape))
        else:
            data = np.asanyarray(proxy.get_unscaled())
        return data, np.asarray(image.affine, dtype=np.float64), float(proxy.slope), float(proxy.inter)
    except (nib.filebasedimages.ImageFileError, nib.spatialimages.HeaderDataError) as exc:
        raise ValueError(first_line(exc)) from None


def read_nifti_stored(path: str | os.PathLike, what: str = "volume"
                      ) -> tuple[np.ndarray, np.ndarray, float, float]:
    """Read a 3D NIfTI file as (stored array, stored affine, scl_slope, scl_inter).

    The array holds the integers the file stores; ``value = stored * slope + intercept``
    (slope 1 and intercept 0 when the header asks for no scaling).
    """
    path = Path(path)
    if not path.exists():
        raise ChexmixInputError(f"{what} file does not exist", path)
    try:
        stored = _read_plain(path) or _read_with_nibabel(path)
    except _READ_ERRORS as exc:
        detail = first_line(exc)
        raise ChexmixInputError(f"cannot read {what} as NIfTI (truncated or corrupt?): {detail}", path) from None
    data, affine, slope, intercept = stored
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise ChexmixInputError(f"{what} must be a 3D volume, got shape {data.shape}", path)
    if not (math.isfinite(slope) and math.isfinite(intercept)) or slope == 0:
        raise ChexmixInputError(f"{what} has an unusable scale: scl_slope {slope}, scl_inter {intercept}", path)
    _check_finite(data, path, what)
    return data, affine, slope, intercept
