"""CheXMix: chest CT projections mixed with real chest X-rays for lung-lesion segmentation.

``load_chexmix(config, data_dir=None, **options) -> datasets.DatasetDict`` is the entry point;
see :mod:`chexmix_dataset.dataset.builder`.
"""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["CheXMix", "load_chexmix", "__version__"]


def __getattr__(name: str):
    # Imported on first use: `chexmix project` should not pay for `datasets` at start-up.
    if name in ("CheXMix", "load_chexmix"):
        from chexmix_dataset.dataset import builder

        return getattr(builder, name)
    raise AttributeError(f"module 'chexmix_dataset' has no attribute {name!r}")
