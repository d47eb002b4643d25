"""The CheXMix row schema: one row per image, following the Hub's object-detection conventions.

``objects`` is a ``Sequence`` of a dict, which ``datasets`` stores (and returns) as a dict of
lists: ``row["objects"]["bbox"][i]`` is the i-th lesion's box.
"""

from __future__ import annotations

import datasets

SOURCES = ("cxr", "ct_projection")
CATEGORY_NAMES = ["lesion"]

FEATURES = datasets.Features(
    {
        "image": datasets.Image(mode="L"),
        "image_id": datasets.Value("string"),
        "source": datasets.Value("string"),  # "cxr" | "ct_projection"
        "origin": datasets.Value("string"),  # source collection, e.g. "covid19-ct-seg/coronacases"
        "patient_id": datasets.Value("string"),
        "license": datasets.Value("string"),
        "view_deg": datasets.Value("float32"),  # CT projections: turn about the SI axis (deg); CXRs: None
        "width": datasets.Value("int32"),
        "height": datasets.Value("int32"),
        "objects": datasets.Sequence(
            {
                "id": datasets.Value("int64"),
                "bbox": datasets.Sequence(datasets.Value("float32"), length=4),  # COCO x, y, w, h (px)
                "area": datasets.Value("float32"),  # px
                "segmentation": {
                    "size": datasets.Sequence(datasets.Value("int32"), length=2),  # [h, w]
                    "counts": datasets.Value("string"),  # COCO compressed RLE
                },
                "category": datasets.ClassLabel(names=CATEGORY_NAMES),
                "lesion_type": datasets.Value("string"),
            }
        ),
        "mask": datasets.Image(mode="L"),  # union of lesions, 0 background / 255 lesion
        # The collection's lung mask (0 / 255 lung) at the image's size, for lung-restricted metrics;
        # None where the source has none (every source but COVID-QU-Ex today, CT projections included).
        "lung_mask": datasets.Image(mode="L"),
    }
)
