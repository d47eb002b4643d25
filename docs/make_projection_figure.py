"""Draw docs/projection.png: how CheXMix turns an annotated chest CT into a frontal X-ray.

    python docs/make_projection_figure.py
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from chexmix_dataset.figures.overlay import draw_overlay  # noqa: E402
from chexmix_dataset.phantoms import chest_phantom  # noqa: E402
from chexmix_dataset.projector import ProjectorOptions, project_volume  # noqa: E402


def main(out: Path = Path(__file__).with_name("projection.png")) -> None:
    phantom = chest_phantom(4, shape=(256, 256, 133), lesions=True)
    ct = phantom.as_ct_volume("phantom")
    physics = project_volume(ct, ProjectorOptions(size_px=320))
    seed = project_volume(ct, ProjectorOptions(mode="seed"))
    z_lesion = int(np.argmax(phantom.labels.sum(axis=(0, 1))))
    y_lesion = int(np.argmax(phantom.labels.sum(axis=(0, 2))))

    fig, axes = plt.subplots(1, 4, figsize=(16, 4.6))
    # Axial: anterior at the top, patient's right on the left (radiological display).
    axial = phantom.hu[::-1, ::-1, z_lesion].T
    axes[0].imshow(np.clip(axial, -1200, 300), cmap="gray")
    axes[0].contour(phantom.labels[::-1, ::-1, z_lesion].T > 0, levels=[0.5], colors="gold", linewidths=1)
    axes[0].set_title("1. axial CT slice (HU) + lesion mask")
    coronal = phantom.hu[::-1, y_lesion, ::-1].T
    axes[1].imshow(np.clip(coronal, -1200, 300), cmap="gray", aspect=phantom.spacing_mm[2] / phantom.spacing_mm[0])
    axes[1].contour(phantom.labels[::-1, y_lesion, ::-1].T > 0, levels=[0.5], colors="gold", linewidths=1)
    axes[1].set_title("2. rays run anterior to posterior")
    axes[2].imshow(draw_overlay(physics.image, physics.instances))
    axes[2].set_title("3. physics: Beer-Lambert, -ln T windowed")
    axes[3].imshow(draw_overlay(seed.image, seed.instances, legend=False), aspect="auto")
    axes[3].set_title("seed: the published column sums")
    for axis in axes:
        axis.set_xticks([])
        axis.set_yticks([])
    fig.suptitle("CheXMix projection of a synthetic chest CT (phantom seed 4); lesion instances outlined", y=0.99)
    fig.tight_layout()
    fig.savefig(out, dpi=80)
    print(out)


if __name__ == "__main__":
    main()
