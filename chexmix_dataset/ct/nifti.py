"""Reading NIfTI volumes as the integers they store, with clean errors.

``read_nifti_stored`` returns the stored array with the header's ``scl_slope``/``scl_inter``
(value = stored * slope + intercept, HU for CTs), so that a scaled int16 CT never becomes a
float64 copy four times its size; ``.nii.gz`` voxels are decompressed straight into the array,
with ISA-L's inflate (``isal``, about 2-3x faster than zlib on a CT) where it is installed.
"""

from __future__ import annotations

import gzip
import math
import os
import zlib
from pathlib import Path

import nibabel as nib
import numpy as np

from chexmix_dataset.errors import ChexmixInputError, first_line

try:  # decode dominates reading a CT: ISA-L inflates the same stream bit-identically, faster
    from isal import igzip as gzip_reader
    from isal.isal_zlib import error as _inflate_error
except ImportError:  # isal left out (installed without dependencies): the standard library's zlib
    gzip_reader = gzip
    _inflate_error = zlib.error

NIFTI_SUFFIXES = (".nii", ".nii.gz")


def is_nifti(path: str | os.PathLike) -> bool:
    return str(path).lower().endswith(NIFTI_SUFFIXES)


def _check_finite(array: np.ndarray, path: str | os.PathLike, what: str) -> None:
    if np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all():
        bad = int(np.size(array) - np.count_nonzero(np.isfinite(array)))
        raise ChexmixInputError(f"{what} has {bad} NaN or infinite voxels", path)


_READ_CHUNK_BYTES = 1 << 20


def _read_gzip_array(path: Path, proxy) -> np.ndarray:
    """The stored array of a .nii.gz, decompressed straight into its final buffer.

    nibabel's gzip read holds the decompressed bytes twice at its peak; reading 1 MiB at a time
    into the array keeps the peak at the volume's size.
    """
    dtype, shape = np.dtype(proxy.dtype), tuple(proxy.shape)
    out = np.empty(int(np.prod(shape, dtype=np.int64)), dtype=dtype.newbyteorder("="))
    buffer = memoryview(out.view(np.uint8))
    with gzip_reader.open(path, "rb") as handle:
        handle.seek(int(proxy.offset))
        done = 0
        while done < len(buffer):
            count = handle.readinto(buffer[done: done + _READ_CHUNK_BYTES])
            if not count:
                raise EOFError(f"expected {len(buffer)} bytes of voxels, got {done}")
            done += count
    if not dtype.isnative:
        out.byteswap(inplace=True)
    return out.reshape(shape, order=proxy.order)


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
        image = nib.load(str(path))
        proxy = image.dataobj
        if isinstance(proxy, np.ndarray):
            data, slope, intercept = proxy, 1.0, 0.0
        else:
            gzipped = str(path).lower().endswith(".gz")
            data = _read_gzip_array(path, proxy) if gzipped else np.asanyarray(proxy.get_unscaled())
            slope, intercept = float(proxy.slope), float(proxy.inter)
    except (nib.filebasedimages.ImageFileError, EOFError, zlib.error, _inflate_error, OSError, ValueError) as exc:
        detail = first_line(exc)
        raise ChexmixInputError(f"cannot read {what} as NIfTI (truncated or corrupt?): {detail}", path) from None
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise ChexmixInputError(f"{what} must be a 3D volume, got shape {data.shape}", path)
    if not (math.isfinite(slope) and math.isfinite(intercept)) or slope == 0:
        raise ChexmixInputError(f"{what} has an unusable scale: scl_slope {slope}, scl_inter {intercept}", path)
    _check_finite(data, path, what)
    return data, np.asarray(image.affine, dtype=np.float64), slope, intercept
