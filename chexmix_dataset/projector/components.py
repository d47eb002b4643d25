"""Connected components of a boolean array, full connectivity (26 in 3D, 8 in 2D), in numpy.

The same labels and boxes as ``scipy.ndimage.label(mask, structure=np.ones((3,) * mask.ndim))``
and ``scipy.ndimage.find_objects`` (components numbered in raster order of their first voxel),
without importing scipy.ndimage, which costs about 0.4 s of every ``chexmix project``.

Method: the mask is cut into runs along its last axis; two runs touch when they lie on
neighbouring lines and overlap with one voxel of slack (that is full connectivity); the run
graph is merged by min-label hooking with pointer jumping, so every component's root is its
first run.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Components:
    """``labels``: int32, 0 outside, 1..count inside; ``boxes[k]``: the slices around component k + 1."""

    labels: np.ndarray
    count: int
    boxes: list[tuple[slice, ...]]


def _runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(line, start, stop) of every run of True along the last axis, in raster order."""
    lines, length = int(np.prod(mask.shape[:-1], dtype=np.int64)), mask.shape[-1]
    padded = np.zeros((lines, length + 2), dtype=bool)
    padded[:, 1:-1] = mask.reshape(lines, length)
    flat = padded.reshape(-1)
    edges = np.flatnonzero(flat[1:] != flat[:-1]) + 1  # alternately a run's first voxel and one past its last
    width = length + 2
    starts, stops = edges[0::2], edges[1::2]
    return starts // width, starts % width - 1, stops % width - 1


def _touching_pairs(line: np.ndarray, start: np.ndarray, stop: np.ndarray, lead_shape: tuple[int, ...],
                    width: int) -> tuple[np.ndarray, np.ndarray]:
    """Pairs (r, q) of runs on neighbouring lines that overlap with one voxel of slack."""
    key_start, key_stop = line * width + start, line * width + stop  # both ascending over the runs
    lead = np.unravel_index(line, lead_shape) if lead_shape else ()
    firsts, seconds = [], []
    offsets = [o for o in itertools.product((-1, 0, 1), repeat=len(lead_shape)) if o > (0,) * len(lead_shape)]
    strides = np.array([int(np.prod(lead_shape[k + 1:], dtype=np.int64)) for k in range(len(lead_shape))])
    for offset in offsets:  # each unordered pair of neighbouring lines once
        inside = np.ones(line.shape, dtype=bool)
        for axis, step in enumerate(offset):
            inside &= (lead[axis] + step >= 0) & (lead[axis] + step < lead_shape[axis])
        runs = np.flatnonzero(inside)
        target = line[runs] + int(np.dot(offset, strides))
        # runs q on the target line with start_q <= stop_r and stop_q >= start_r
        lo = np.searchsorted(key_stop, target * width + start[runs], side="left")
        hi = np.searchsorted(key_start, target * width + stop[runs], side="right")
        counts = np.maximum(hi - lo, 0)
        total = int(counts.sum())
        if not total:
            continue
        begin = np.repeat(np.cumsum(counts) - counts, counts)
        firsts.append(np.repeat(runs, counts))
        seconds.append(np.repeat(lo, counts) + np.arange(total) - begin)
    if not firsts:
        return np.empty(0, np.intp), np.empty(0, np.intp)
    return np.concatenate(firsts), np.concatenate(seconds)


def _roots(count: int, first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Root (smallest run index) of each run's component."""
    parent = np.arange(count)
    while True:
        a, b = parent[first], parent[second]
        if np.array_equal(a, b):
            return parent
        low = np.minimum(a, b)
        np.minimum.at(parent, a, low)  # hook both roots under the smaller one
        np.minimum.at(parent, b, low)
        while True:  # pointer jumping: every run points at its root again
            jumped = parent[parent]
            if np.array_equal(jumped, parent):
                break
            parent = jumped


def connected_components(mask: np.ndarray) -> Components:
    """Label the full-connectivity components of a boolean array of any dimension >= 1."""
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim == 0:
        raise ValueError("connected_components needs an array of at least one dimension")
    lead_shape, length = mask.shape[:-1], mask.shape[-1]
    line, start, stop = _runs(mask)
    first, second = _touching_pairs(line, start, stop, lead_shape, length + 2)
    roots = _roots(line.size, first, second)
    firsts_of_components, component = np.unique(roots, return_inverse=True)
    count = int(firsts_of_components.size)
    labels = np.zeros(mask.size, dtype=np.int32)
    labels[np.flatnonzero(mask)] = np.repeat(component.astype(np.int32) + 1, stop - start)
    return Components(labels.reshape(mask.shape), count, _boxes(component, count, line, start, stop, lead_shape))


def _boxes(component: np.ndarray, count: int, line: np.ndarray, start: np.ndarray, stop: np.ndarray,
           lead_shape: tuple[int, ...]) -> list[tuple[slice, ...]]:
    """Each component's bounding slices, from its runs' lines and extents (find_objects' boxes)."""
    if not count:
        return []
    order = np.argsort(component, kind="stable")
    first_of = np.searchsorted(component[order], np.arange(count))
    lows, highs = [], []
    for coordinate in (*(np.unravel_index(line, lead_shape) if lead_shape else ()),):
        lows.append(np.minimum.reduceat(coordinate[order], first_of))
        highs.append(np.maximum.reduceat(coordinate[order], first_of) + 1)
    lows.append(np.minimum.reduceat(start[order], first_of))
    highs.append(np.maximum.reduceat(stop[order], first_of))
    return [tuple(slice(int(lo[k]), int(hi[k])) for lo, hi in zip(lows, highs)) for k in range(count)]
