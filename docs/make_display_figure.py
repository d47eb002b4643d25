"""Draw docs/display.png: the default linear display vs the optional radiograph-like one.

    python docs/make_display_figure.py
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from chexmix_dataset.phantoms import chest_phantom  # noqa: E402
from chexmix_dataset.projector import ProjectorOptions, project_volume  # noqa: E402


def main(out: Path = Path(__file__).with_name("display.png")) -> None:
    ct = chest_phantom(4, shape=(256, 256, 133), lesions=True).as_ct_volume("phantom")
    cone = dict(size_px=320, geometry="cone", beam="PA")
    panels = [("linear window (default)", project_volume(ct, ProjectorOptions(**cone))),
              ("--display radiograph", project_volume(ct, ProjectorOptions(display="radiograph", **cone)))]
    fig, axes = plt.subplots(1, 2, figsize=(8, 4.3))
    for axis, (title, projection) in zip(axes, panels):
        axis.imshow(projection.image, cmap="gray", vmin=0, vmax=255)
        axis.set_title(f"cone PA 1800 mm: {title}", fontsize=9)
        axis.axis("off")
    fig.tight_layout()
    fig.savefig(out, dpi=70)


if __name__ == "__main__":
    main()
