"""The published CT-to-X-ray loop: the oracle for the projector's ``seed`` mode.

It lives with the tests (and is timed by ``python -m benchmark.speed projector``); the package
itself only holds the vectorised version.
"""

from __future__ import annotations

import numpy as np
from PIL import Image


def published_create_cxr(images: list[str]) -> np.ndarray:
    """The published CT-to-X-ray loop (arXiv:2105.08147 project page), ported line by line.

    The page lost ``Image.open(images`` twice and all indentation; ``xray`` is allocated once,
    before the slice loop, the only reading under which the function returns a full image.
    """
    xray = np.zeros((len(images), Image.open(images[0]).convert("L").size[0]))
    for z in range(len(images)):
        img = Image.open(images[z]).convert("L")  # convert image to 8-bit grayscale
        HEIGHT, WIDTH = img.size
        data = list(img.getdata())
        pixels = [data[offset:offset + WIDTH] for offset in range(0, WIDTH * HEIGHT, WIDTH)]
        for x in range(WIDTH):
            sum = 0
            for y in range(HEIGHT):
                sum += pixels[y][x]
            xray[len(images) - 1 - z][x] = sum
    return xray


def published_display(xray: np.ndarray) -> np.ndarray:
    """The seed mode's documented post-processing: scale by the max, stretch to >= 300 rows."""
    image = np.rint(xray * 255.0 / xray.max()).astype(np.uint8)
    if image.shape[0] < 300:
        image = np.asarray(Image.fromarray(image).resize((image.shape[1], 300), Image.BILINEAR))
    return image
