"""Phantom CTs on disk: .nii.gz pairs under ``ct/`` and ``mask/``, and the ``phantoms.json`` record.

The files are byte-identical for identical seeds and shapes (gzip without a timestamp), and
an output folder appears whole or not at all (:mod:`chexmix_dataset.atomic`).
"""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import nibabel as nib
import numpy as np
from tqdm.auto import tqdm

from chexmix_dataset.atomic import atomic_dir, atomic_file, check_replaceable, write_json
from chexmix_dataset.errors import ChexmixInputError
from chexmix_dataset.phantoms.chest import ChestPhantom, chest_phantom
from chexmix_dataset.phantoms.grid import DEFAULT_SHAPE, check_shape
from chexmix_dataset.phantoms.seeds import seeded_rng


def _nifti_gz_bytes(data: np.ndarray, affine: np.ndarray) -> bytes:
    image = nib.Nifti1Image(data, affine)
    image.set_qform(affine, code=1)
    image.set_sform(affine, code=1)
    image.header.set_xyzt_units("mm")
    # mtime=0 keeps the files byte-identical for identical phantoms.
    return gzip.compress(image.to_bytes(), compresslevel=1, mtime=0)


def write_phantom_nifti(phantom: ChestPhantom, ct_path: str | os.PathLike, mask_path: str | os.PathLike) -> None:
    """Write the CT (int16 HU) and the lesion labels (uint8) as .nii.gz with the phantom's affine."""
    for path, data in ((ct_path, phantom.hu), (mask_path, phantom.labels)):
        payload = _nifti_gz_bytes(data, phantom.affine)
        with atomic_file(path, "wb") as handle:
            handle.write(payload)


PHANTOMS_RECORD = "phantoms.json"
PHANTOM_OUTPUT_NAMES = ("ct", "mask", PHANTOMS_RECORD)


def _recorded_parameters(out_dir: Path) -> dict | None:
    """The ``{"seed", "n", "shape"}`` of a previous :func:`write_phantoms` output, or None."""
    try:
        record = json.loads((out_dir / PHANTOMS_RECORD).read_text(encoding="utf-8"))
        return {"seed": int(record["seed"]), "n": int(record["n"]), "shape": [int(v) for v in record["shape"]]}
    except (OSError, ValueError, KeyError, TypeError):
        return None


def check_phantom_output(out_dir: str | os.PathLike, seed: int, shape: tuple[int, int, int]) -> Path:
    """Refuse an ``out_dir`` that :func:`write_phantoms` must not replace; returns it absolute.

    Only a previous output of the same seed and shape (any ``n``) is replaced; phantoms of
    another seed or shape, or of unknown parameters, are refused rather than mixed with new ones.
    """
    path = check_replaceable(out_dir, PHANTOM_OUTPUT_NAMES)
    if path.is_dir() and any(path.iterdir()):
        record = _recorded_parameters(path)
        if record is None:
            raise ChexmixInputError(f"output folder holds phantoms without a readable {PHANTOMS_RECORD} (seed and "
                                    "shape unknown); choose a new folder rather than mix phantoms", out_dir)
        if (record["seed"], tuple(record["shape"])) != (seed, tuple(shape)):
            raise ChexmixInputError(
                f"output folder holds {record['n']} phantom(s) of seed {record['seed']}, shape "
                f"{'x'.join(map(str, record['shape']))}; this run makes seed {seed}, shape "
                f"{'x'.join(map(str, shape))}; choose another folder rather than mix them", out_dir)
    return path


def write_phantoms(out_dir: str | os.PathLike, n: int, seed: int, shape: tuple[int, int, int] = DEFAULT_SHAPE
                   ) -> list[tuple[Path, Path]]:
    """Write phantoms seeded ``seed .. seed + n - 1`` as ``ct/`` and ``mask/`` .nii.gz pairs.

    ``out_dir`` appears whole or not at all, with ``phantoms.json`` recording
    ``{"seed", "n", "shape"}``. It replaces an existing ``out_dir`` only when that is a previous
    output of the same seed and shape (see :func:`check_phantom_output`). Returns the final
    (ct_path, mask_path) pairs.
    """
    if n < 1:
        raise ChexmixInputError(f"number of phantoms must be at least 1, got {n}")
    shape = check_shape(shape)
    seeded_rng(seed)  # a bad seed fails before anything is written
    given = Path(out_dir)
    check_phantom_output(given, seed, shape)
    names = [f"phantom_{i:04d}.nii.gz" for i in range(n)]
    with atomic_dir(given, replaces=PHANTOM_OUTPUT_NAMES) as tmp:
        for i, name in enumerate(tqdm(names, desc="phantoms", unit="ct")):
            write_phantom_nifti(chest_phantom(seed + i, shape), tmp / "ct" / name, tmp / "mask" / name)
        write_json(tmp / PHANTOMS_RECORD, {"seed": seed, "n": n, "shape": list(shape)})
    return [(given / "ct" / name, given / "mask" / name) for name in names]
