"""Draw docs/geometry.png: one phantom CT in parallel beam, cone-beam PA at 1.8 m and AP at 1 m.

    python docs/make_geometry_figure.py

Each panel is drawn at its detector's own scale (mm on the detector), so the cone beam's
magnification shows as a larger chest, more so at 1 m, and the AP film magnifies the anterior
anatomy (heart, sternum) more than the PA film does.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from chexmix_dataset.phantoms import chest_phantom  # noqa: E402
from chexmix_dataset.projector import ProjectorOptions, project_volume  # noqa: E402

PANELS = (
    ("parallel (published geometry)", ProjectorOptions(size_px=256)),
    ("cone PA, SID 1800 mm", ProjectorOptions(size_px=256, geometry="cone", beam="PA", sid_mm=1800.0)),
    ("cone AP, SID 1000 mm (portable)", ProjectorOptions(size_px=256, geometry="cone", beam="AP", sid_mm=1000.0)),
)


def main(out: Path = Path(__file__).with_name("geometry.png")) -> None:
    phantom = chest_phantom(4, shape=(256, 256, 133), lesions=True)
    ct = phantom.as_ct_volume("phantom")
    projections = [(title, project_volume(ct, options)) for title, options in PANELS]
    half = max(max(p.image.shape) * p.pixel_spacing_mm[0] for _, p in projections) / 2
    fig, axes = plt.subplots(1, len(projections), figsize=(12, 4.4))
    for axis, (title, projection) in zip(axes, projections):
        height, width = projection.image.shape
        pixel = projection.pixel_spacing_mm[0]
        extent = (-width * pixel / 2, width * pixel / 2, -height * pixel / 2, height * pixel / 2)
        axis.imshow(projection.image, cmap="gray", extent=extent)
        for instance in projection.instances:
            axis.contour(instance.mask[::-1], levels=[0.5], colors="gold", linewidths=0.8, extent=extent)
        axis.axhline(0, color="tab:cyan", lw=0.5)
        axis.axvline(0, color="tab:cyan", lw=0.5)
        axis.set_xlim(-half, half)
        axis.set_ylim(-half, half)
        axis.set_title(f"{title}\n{width}x{height} px at {pixel:.2f} mm", fontsize=9)
        axis.set_xlabel("detector mm")
    fig.suptitle("Same CT phantom, same lesions (gold): cone beam magnifies, more at short SID", fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=70)


if __name__ == "__main__":
    main()
