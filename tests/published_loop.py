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
    """The display step of the published ``main.py`` (rvignav/CT2Xray), ported line by line.

    main.py divides by the maximum, multiplies by 255, casts with ``np.array(p, dtype=np.uint8)``
    (truncation) and stretches images under 300 rows with ``Image.resize``'s default filter.
    Only its left-right mirror (``WIDTH - x - 1``), absent from the paper's listing, is left out:
    ``xray`` comes from :func:`published_create_cxr`.
    """
    p = xray / np.max(xray) * 255.0
    array = np.array(p, dtype=np.uint8)
    image = Image.fromarray(array)  # main.py passes mode 'L', which Pillow now deprecates; 2D uint8 is 'L'
    if image.size[1] < 300:
        image = image.resize((image.size[0], 300))
    return np.asarray(image)
