"""CheXMix: chest CT projections mixed with real chest X-rays for lung-lesion segmentation."""

__version__ = "0.1.0"
