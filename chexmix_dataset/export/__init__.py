"""Exporters from a CheXMix DatasetDict to the on-disk layouts that training code reads."""

from .coco import export_coco
from .via import export_via, mask_to_polygons

EXPORTERS = {"coco": export_coco, "via": export_via}

__all__ = ["EXPORTERS", "export_coco", "export_via", "mask_to_polygons"]
