"""Sums along anterior-posterior in cache-sized chunks.

A projection reads every voxel once; the per-voxel work (clipping at -1000 HU, an 8-bit lookup)
runs on chunks of about 512 k voxels that stay in the CPU cache, so no float copy of the volume is
ever made. One thread: the sums are bound by memory bandwidth, and on the 2-core machine this was
built on, a thread pool over disjoint chunks was measured no faster than one thread.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import numpy as np
import numpy.typing as npt

# Chunks of about 512 k voxels (2 MB as float32): temporaries stay in the CPU cache and never near
# the volume's size. On the 2-core machine this was tuned on, 2^19-2^20 beat both smaller chunks
# (more of them to dispatch) and larger ones (2^21-2^22) by 10-40 %.
CHUNK_VOXELS = 1 << 19
#: float32 represents every integer up to this magnitude, so sums of integers below it are exact.
FLOAT32_EXACT_INTEGERS = 2**24


class Scratch:
    """Reusable chunk buffers: a fresh temporary per chunk would cost page faults."""

    def __init__(self) -> None:
        self._buffers: dict[np.dtype, np.ndarray] = {}
        self._views: dict[tuple, np.ndarray] = {}
        self._ones = np.ones(0, dtype=np.float32)

    def array(self, shape: tuple[int, ...], dtype: npt.DTypeLike) -> np.ndarray:
        dtype = np.dtype(dtype)
        size = math.prod(shape)
        buffer = self._buffers.get(dtype)
        if buffer is None or buffer.size < size:
            buffer = self._buffers[dtype] = np.empty(size, dtype=dtype)
        return buffer[:size].reshape(shape)

    def like(self, part: np.ndarray, dtype: npt.DTypeLike) -> np.ndarray:
        """A buffer of ``part``'s shape laid out in ``part``'s memory order, so copying into it streams."""
        # Every chunk but the last has the same shape and strides: reuse the view (building one
        # costs about 10 us, a few percent of a projection over hundreds of chunks).
        key = (part.shape, part.strides, dtype)
        view = self._views.get(key)
        if view is None:
            order = slowest_first(part)
            buffer = self.array(tuple(part.shape[axis] for axis in order), dtype)
            view = self._views[key] = buffer.transpose([order.index(axis) for axis in range(part.ndim)])
        return view

    def ones(self, length: int) -> np.ndarray:
        """float32 ones of ``length``, kept: the summing vector of every chunk."""
        if self._ones.size != length:
            self._ones = np.ones(length, dtype=np.float32)
        return self._ones


def slowest_first(array: np.ndarray) -> list[int]:
    """Axes from the largest stride to the smallest (Python's sort is stable, and cheap on 3 axes):
    ``[0]`` is the axis along which slices are contiguous blocks of memory."""
    return sorted(range(array.ndim), key=lambda axis: -abs(array.strides[axis]))


def _sum_y_float32(values: np.ndarray, scratch: Scratch) -> np.ndarray:
    """``values.sum(axis=1)`` for a float32 chunk laid out by :meth:`Scratch.like`, as one BLAS
    matrix-vector product (numpy's strided reduction is about twice as slow)."""
    order = slowest_first(values)
    laid_out = values.transpose(order)  # C-contiguous
    ones = scratch.ones(values.shape[1])
    at = order.index(1)
    if at == 0:
        sums = (ones @ laid_out.reshape(laid_out.shape[0], -1)).reshape(laid_out.shape[1:])
    elif at == 1:
        sums = np.matmul(ones, laid_out)
    else:
        sums = laid_out @ ones
    rest = [axis for axis in order if axis != 1]
    return sums if rest == [0, 2] else sums.T


def as_float32(part: np.ndarray, scratch: Scratch) -> np.ndarray:
    """``part`` converted to float32 in a scratch buffer of its layout (exact for integers below 2^24)."""
    values = scratch.like(part, np.float32)
    np.copyto(values, part, casting="unsafe")
    return values


Transform = Callable[[np.ndarray, Scratch], np.ndarray]
Chunk = tuple[int, int, tuple[slice, slice, slice]]  # (axis cut, first index along it, index)


def chunk_slices(volume: np.ndarray) -> Iterator[Chunk]:
    """(axis, start, index) of cache-sized chunks cut along the axis with the largest stride.

    Cutting along the slowest axis keeps each chunk one contiguous block of memory.
    """
    axis = slowest_first(volume)[0]
    per_index = volume.size // max(volume.shape[axis], 1)
    step = max(1, CHUNK_VOXELS // max(per_index, 1))
    for start in range(0, volume.shape[axis], step):
        index = [slice(None)] * 3
        index[axis] = slice(start, start + step)
        yield axis, start, tuple(index)  # type: ignore[misc]


def reduce_ap(volume: np.ndarray, transform: Transform, out_dtype: npt.DTypeLike) -> np.ndarray:
    """``sum_y transform(volume[x, y, z])`` as an (nx, nz) array of ``out_dtype``.

    ``transform(part, scratch)`` maps one chunk to the values to sum (it may write into ``scratch``).
    """
    nx, _, nz = volume.shape
    scratch, out = Scratch(), np.zeros((nx, nz), dtype=out_dtype)
    for axis, start, index in chunk_slices(volume):
        values = transform(volume[index], scratch)
        if values.dtype == out_dtype == np.float32:
            part = _sum_y_float32(values, scratch)
        else:
            part = values.sum(axis=1, dtype=out_dtype)
        if axis == 1:
            out += part
        elif axis == 0:
            out[start:start + part.shape[0]] = part
        else:
            out[:, start:start + part.shape[1]] = part
    return out


def map_chunks(volume: np.ndarray, transform: Transform, out: np.ndarray) -> np.ndarray:
    """``out[...] = transform(volume)`` chunk by chunk; returns ``out``."""
    scratch = Scratch()
    for _, _, index in chunk_slices(volume):
        out[index] = transform(volume[index], scratch)
    return out
