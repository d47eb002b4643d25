"""Exporters from a CheXMix DatasetDict to the on-disk layouts that training code reads."""

from chexmix_dataset.export import coco, via
from chexmix_dataset.export.coco import export_coco
from chexmix_dataset.export.via import export_via, mask_to_polygons

EXPORTERS = {"coco": export_coco, "via": export_via}
TOP_LEVEL = {"coco": coco.TOP_LEVEL, "via": via.TOP_LEVEL}

__all__ = ["EXPORTERS", "export_coco", "export_via", "mask_to_polygons"]
