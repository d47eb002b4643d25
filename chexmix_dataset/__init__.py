"""CheXMix: chest CT projections mixed with real chest X-rays for lung-lesion segmentation.

``load_chexmix(config, data_dir=None, **options) -> datasets.DatasetDict`` is the entry point;
see :mod:`chexmix_dataset.dataset.builder`. ``CheXMixDetectionDataset`` and
``collate_detection_batch`` (:mod:`chexmix_dataset.torch_dataset`, needs torch) turn a split into
torchvision-style detection samples for your own models.
"""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["CheXMix", "CheXMixDetectionDataset", "collate_detection_batch", "load_chexmix", "__version__"]


def __getattr__(name: str):
    # Imported on first use: `chexmix project` should not pay for `datasets` at start-up.
    if name in ("CheXMix", "load_chexmix"):
        from chexmix_dataset.dataset import builder

        return getattr(builder, name)
    if name in ("CheXMixDetectionDataset", "collate_detection_batch"):
        # torch is the `bench` extra: imported only by those who ask for the torch wrapper.
        from chexmix_dataset import torch_dataset

        return getattr(torch_dataset, name)
    raise AttributeError(f"module 'chexmix_dataset' has no attribute {name!r}")
