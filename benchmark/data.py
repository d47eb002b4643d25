"""CheXMix rows as model inputs: square grayscale tensors and torchvision-style lesion targets.

Rows are decoded and targets made by :mod:`chexmix_dataset.dataset.arrays` and
:func:`chexmix_dataset.torch_dataset.detection_target`, as for users' own code; this module adds
the benchmark's resizing, caching and augmentation.

Every image is resized to ``image_size`` x ``image_size`` px (bilinear; lesion masks by nearest
neighbour). Chest X-rays are close to square, so the small change of aspect ratio is accepted in
exchange for batches without padding; predictions are resized back to each image's own size
before scoring (see :mod:`benchmark.evaluate`).

A :class:`LesionDataset` decodes and resizes its rows once, when it is made, and keeps the
resized images as 8-bit grey levels (the rows' images are 8-bit grey, so only the resize's
rounding, at most half a grey level, is lost) and the masks bit-packed: about S * S bytes per
image plus S * S / 8 per lesion (0.26 MB per 512 px image). Epochs then only augment.
"""

from __future__ import annotations

import datasets
import numpy as np
import torch
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as TF
from tqdm import tqdm

from benchmark.augment import augment, sample_params
from chexmix_dataset.dataset.arrays import row_image, row_lesion_masks
from chexmix_dataset.torch_dataset import detection_target

Target = dict[str, torch.Tensor]


def resized_grey(image: np.ndarray, image_size: int) -> np.ndarray:
    """(H, W) uint8 grey image -> (S, S) uint8 at ``image_size`` px, as every model input is made
    (bilinear, antialiased, rounded back to grey levels): training, evaluation and predict alike."""
    tensor = torch.from_numpy(image.astype(np.float32) / 255.0)[None]
    tensor = TF.resize(tensor, [image_size, image_size], interpolation=InterpolationMode.BILINEAR, antialias=True)
    return (tensor[0] * 255.0).round_().clamp_(0, 255).to(torch.uint8).numpy()


def resize_row(row: dict, image_size: int) -> tuple[np.ndarray, np.ndarray]:
    """A row at ``image_size`` px: (S, S) uint8 grey image and (N, S, ceil(S / 8)) bit-packed masks."""
    size = [image_size, image_size]
    masks = torch.from_numpy(row_lesion_masks(row).astype(np.uint8))
    if len(masks):
        masks = TF.resize(masks, size, interpolation=InterpolationMode.NEAREST)
    else:
        masks = torch.zeros((0, *size), dtype=torch.uint8)
    return resized_grey(row_image(row, "L"), image_size), np.packbits(masks.numpy().astype(bool), axis=-1)


class LesionDataset(torch.utils.data.Dataset):
    """One split of a CheXMix config as ((1, S, S) float image in [0, 1], target) pairs.

    Items are keyed by ``index`` or ``(epoch, index)`` (what :class:`EpochSampler` yields). With
    ``augment`` on, the draw for a key comes from a generator seeded by (seed, epoch, index): the
    same whatever the worker, batch order or resume point.
    """

    def __init__(self, split: datasets.Dataset, image_size: int, augment: bool = False, seed: int = 0,
                 progress: bool = False) -> None:
        self.image_size = image_size
        self.augment = augment
        self.seed = seed
        rows = split.select_columns(["image", "objects", "height", "width"])
        resized = [resize_row(row, image_size)
                   for row in tqdm(rows, desc="decode", leave=False, disable=not progress)]
        self.images = [image for image, _ in resized]
        self.packed_masks = [masks for _, masks in resized]

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[torch.Tensor, Target]:
        epoch, index = key if isinstance(key, tuple) else (0, key)
        image = torch.from_numpy(self.images[index]).float().div_(255.0)[None]
        packed = self.packed_masks[index]
        masks = torch.from_numpy(np.unpackbits(packed, axis=-1, count=self.image_size))
        if self.augment:
            rng = np.random.default_rng([self.seed, epoch, index])
            image, masks = augment(image, masks, sample_params(rng, self.image_size))
        return image.contiguous(), detection_target(masks)


class EpochSampler(torch.utils.data.Sampler):
    """Yields (epoch, index) keys, shuffled by a generator seeded with (seed, epoch).

    It runs in the main process, so ``set_epoch`` reaches persistent workers too, and a resumed
    run sees exactly the batches of an uninterrupted one. With ``world_size`` N > 1 (data-parallel
    training, :mod:`benchmark.ddp`) process ``rank`` takes every N-th key of the epoch's order,
    starting at ``rank``: with a per-process batch of B/N the N shares of step k are the keys of
    step k of one process with batch B. When N does not divide the length, the order is padded
    with its first keys so that every process makes the same number of steps (the last step of
    an epoch then repeats up to N - 1 images a single process would not).
    """

    def __init__(self, length: int, *, shuffle: bool, seed: int, rank: int = 0, world_size: int = 1) -> None:
        self.length, self.shuffle, self.seed, self.epoch = length, shuffle, seed, 0
        self.rank, self.world_size = rank, world_size

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return -(-self.length // self.world_size)

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        order = torch.randperm(self.length, generator=generator).tolist() if self.shuffle else list(range(self.length))
        padded = order + order[:len(self) * self.world_size - self.length]
        return iter([(self.epoch, index) for index in padded[self.rank::self.world_size]])


def collate(batch: list[tuple[torch.Tensor, Target]]) -> tuple[torch.Tensor, list[Target]]:
    images, targets = zip(*batch)
    return torch.stack(images), list(targets)


def default_workers(device: torch.device) -> int:
    """DataLoader workers when none are asked for: 0 on CPU, where they would compete with the
    training for the same cores; up to 8 on CUDA, to keep the GPU fed."""
    return min(8, torch.get_num_threads()) if device.type == "cuda" else 0


def make_loader(dataset: LesionDataset, batch_size: int, *, shuffle: bool, seed: int, workers: int,
                pin_memory: bool = False, rank: int = 0, world_size: int = 1) -> torch.utils.data.DataLoader:
    """A loader over ``dataset``; call ``loader.sampler.set_epoch(e)`` before each epoch.
    ``rank``/``world_size``: this process's share in data-parallel training (see :class:`EpochSampler`).

    Augmentation draws from its own per-sample generator, so results do not depend on the
    workers' seeds (torch seeds each worker's torch, random and numpy generators anyway).
    """
    return torch.utils.data.DataLoader(
        dataset, batch_size=batch_size,
        sampler=EpochSampler(len(dataset), shuffle=shuffle, seed=seed, rank=rank, world_size=world_size),
        num_workers=workers, persistent_workers=workers > 0, collate_fn=collate, pin_memory=pin_memory,
    )
