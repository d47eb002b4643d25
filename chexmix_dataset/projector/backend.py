"""The thin switch that lets one renderer run on numpy arrays or torch tensors (CPU or CUDA).

Renderers call these few functions instead of numpy or torch directly; each dispatches on the
type of the array it is given. torch is imported only when a tensor is passed.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

Array = Any  # numpy.ndarray or torch.Tensor


def is_torch(array: Array) -> bool:
    return type(array).__module__.startswith("torch")


def to_device(array: np.ndarray, device: str) -> Array:
    """``array`` as it will be rendered: unchanged for "cpu", a torch tensor on ``device`` otherwise.

    ``device`` is "cpu" (numpy), a torch device such as "cuda" or "cuda:1", or "torch:cpu".
    """
    if device == "cpu":
        return array
    import torch

    return torch.from_numpy(np.ascontiguousarray(array)).to(device.removeprefix("torch:"))


def to_numpy(array: Array) -> np.ndarray:
    return array.detach().cpu().numpy() if is_torch(array) else np.asarray(array)


def float_slabs(voxels: Array, y0: int, y1: int, scale: float, offset: float, floor: float) -> Array:
    """``max(voxels[:, y0:y1, :] * scale + offset, floor)`` as float32 in (y, x, z) order, contiguous."""
    part = voxels[:, y0:y1, :]
    if is_torch(part):
        # copy=True: a float32 slab must never be scaled in place in the caller's volume.
        out = part.permute(1, 0, 2).to(dtype=_torch().float32, copy=True).contiguous()
        return out.mul_(scale).add_(offset).clamp_(min=floor)
    out = np.array(part.transpose(1, 0, 2), dtype=np.float32, order="C")  # always a copy (scaled in place below)
    out *= np.float32(scale)
    out += np.float32(offset)
    return np.maximum(out, np.float32(floor), out=out)


def like(reference: Array, values: np.ndarray) -> Array:
    """``values`` (numpy) on the backend and device of ``reference``."""
    if is_torch(reference):
        return _torch().from_numpy(np.ascontiguousarray(values)).to(reference.device)
    return values


def swap_last_axes(array: Array) -> Array:
    """A contiguous copy of a 3D array with its last two axes swapped."""
    if is_torch(array):
        return array.transpose(1, 2).contiguous()
    return np.ascontiguousarray(array.transpose(0, 2, 1))


def sparse_rows_matmul(columns: np.ndarray, weights: np.ndarray, n_columns: int, dense: Array) -> Array:
    """``S @ dense`` for the sparse S whose row r holds ``weights[r, :]`` at ``columns[r, :]``.

    Every row has the same number of entries (sorted, duplicates summed): CSR without search.
    """
    n_rows, per_row = columns.shape
    indptr = np.arange(0, n_rows * per_row + 1, per_row, dtype=np.int64)
    if is_torch(dense):
        torch = _torch()
        with warnings.catch_warnings():  # "CSR support is in beta": it is the documented cuSPARSE path
            warnings.simplefilter("ignore", UserWarning)
            matrix = torch.sparse_csr_tensor(torch.from_numpy(indptr), torch.from_numpy(columns.reshape(-1)),
                                             torch.from_numpy(weights.reshape(-1).astype(np.float32)),
                                             size=(n_rows, n_columns), device=dense.device, check_invariants=False)
            return matrix @ dense
    from scipy import sparse  # the cone renderer alone needs it: parallel projections skip its import

    matrix = sparse.csr_matrix((weights.reshape(-1).astype(np.float32), columns.reshape(-1), indptr),
                               shape=(n_rows, n_columns))
    return matrix @ dense


def _torch():
    import torch

    return torch
