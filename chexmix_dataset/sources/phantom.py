"""The offline synthetic source: chest CT phantoms and 2D CXR stand-ins (:mod:`..phantoms`).

CT phantoms are written once as NIfTI into a cache folder under ``root`` whose name holds the
parameters (``ct_n12_seed0_128x128x48/{ct,mask}/phantom_0000.nii.gz`` + ``manifest.json``) and
reused while it is complete. CXR stand-ins are made on demand by ``CXRCase.load`` (cheap, 2D).
Defaults are sized for the offline ``sample`` config to build in seconds on a CPU.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import datasets
import numpy as np
from tqdm.auto import tqdm

from chexmix_dataset.atomic import atomic_dir, write_json
from chexmix_dataset.dataset.lesions import LesionInstance
from chexmix_dataset.errors import ChexmixInputError
from chexmix_dataset.sources.base import CTCase, CXRCase, SourceScan

NAME = "phantom"
HOMEPAGE = "https://github.com/chexmix/chexmix"
LICENSE = "CC0-1.0"
CITATION = ""
URLS: dict[str, str] = {}
EXCLUSIVE_WITH: dict[str, str] = {}  # generated images: nothing to share
LAYOUT = ("generated, not read: ct_n<N>_seed<S>_<X>x<Y>x<Z>/{ct,mask}/phantom_NNNN.nii.gz + manifest.json, "
          "written by this source into its cache folder")
CT_ORIGIN = "phantom/ct"
CXR_ORIGIN = "phantom/cxr_standin"
DEFAULT_N_CT = 12
DEFAULT_N_CXR = 20
DEFAULT_CT_SHAPE = (128, 128, 48)
DEFAULT_CXR_SIZE = 256
# Stand-in seeds are offset so that no stand-in shares a seed with a CT phantom of the same run.
CXR_SEED_OFFSET = 100_000


def cache_folder(root: Path, n_ct: int, seed: int, ct_shape: tuple[int, int, int]) -> Path:
    return Path(root) / f"ct_n{n_ct}_seed{seed}_{'x'.join(str(int(s)) for s in ct_shape)}"


def _write_ct_phantoms(folder: Path, n_ct: int, seed: int, ct_shape: tuple[int, int, int]) -> None:
    from chexmix_dataset import phantoms  # imported late: generating phantoms is this source's only heavy need

    manifest = []
    with atomic_dir(folder, replaces=("ct", "mask", "manifest.json")) as tmp:  # a damaged cache is rebuilt
        for i in tqdm(range(n_ct), desc="CT phantoms", unit="volume"):
            phantom = phantoms.chest_phantom(seed + i, shape=tuple(ct_shape))
            ct_path = Path("ct") / f"phantom_{i:04d}.nii.gz"
            mask_path = Path("mask") / f"phantom_{i:04d}.nii.gz"
            (tmp / "ct").mkdir(exist_ok=True)
            (tmp / "mask").mkdir(exist_ok=True)
            phantoms.write_phantom_nifti(phantom, tmp / ct_path, tmp / mask_path)
            manifest.append({"case_id": f"phantom_{i:04d}", "patient_id": phantom.patient_id,
                             "ct": ct_path.as_posix(), "mask": mask_path.as_posix(),
                             "lesion_types": {str(k): v for k, v in phantom.lesion_types.items()}})
        write_json(tmp / "manifest.json", manifest)


def _read_manifest(folder: Path) -> list[dict] | None:
    """The cached manifest when it and every file it names exist, else None."""
    try:
        manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not all((folder / e["ct"]).is_file() and (folder / e["mask"]).is_file() for e in manifest):
        return None
    return manifest


def load_standin(seed: int, size: int, warn) -> tuple[np.ndarray, list[LesionInstance]]:
    """``CXRCase.load`` of a stand-in (``warn`` is unused: stand-ins are made inside the image)."""
    from chexmix_dataset import phantoms

    standin = phantoms.cxr_standin(seed, size=size)
    return standin.image, list(standin.instances)


def scan(root: Path, n_ct: int = DEFAULT_N_CT, n_cxr: int = DEFAULT_N_CXR, seed: int = 0,
         ct_shape: tuple[int, int, int] = DEFAULT_CT_SHAPE, cxr_size: int = DEFAULT_CXR_SIZE) -> SourceScan:
    """Write (or reuse) ``n_ct`` CT phantoms of ``ct_shape`` voxels under ``root``; list ``n_cxr`` stand-ins
    of ``cxr_size`` px. Phantom i is seeded ``seed + i``; stand-in j ``seed + 100000 + j``."""
    if n_ct < 0 or n_cxr < 0:
        raise ChexmixInputError(f"phantom counts must be >= 0, got n_ct={n_ct}, n_cxr={n_cxr}")
    from chexmix_dataset import phantoms

    result = SourceScan()
    if n_ct:
        folder = cache_folder(root, n_ct, seed, tuple(ct_shape))
        manifest = _read_manifest(folder)
        if manifest is None:
            _write_ct_phantoms(folder, n_ct, seed, tuple(ct_shape))
            manifest = _read_manifest(folder)
        result.ct_cases = [
            CTCase(case_id=e["case_id"], patient_id=e["patient_id"], origin=CT_ORIGIN, license=LICENSE,
                   ct_path=folder / e["ct"], mask_path=folder / e["mask"],
                   lesion_types={int(k): v for k, v in e["lesion_types"].items()})
            for e in manifest
        ]
    for j in range(n_cxr):
        standin_seed = seed + CXR_SEED_OFFSET + j
        result.cxr_cases.append(CXRCase(
            image_id=f"phantom-standin-{j:04d}", patient_id=phantoms.standin_patient_id(standin_seed), origin=CXR_ORIGIN, license=LICENSE,
            load=functools.partial(load_standin, standin_seed, cxr_size), view="PA"))
    return result


def download(dl_manager: datasets.DownloadManager, mirror: str | None = None) -> SourceScan:
    """Nothing to download (``mirror`` is unused): generate the default phantoms in the datasets cache."""
    config = getattr(dl_manager, "download_config", None)
    cache = getattr(config, "cache_dir", None) or datasets.config.HF_DATASETS_CACHE
    return scan(Path(cache) / "chexmix_sources" / NAME)
