"""``python -m benchmark ARGS`` is ``chexmix bench ARGS``; data-parallel training over N processes
(one per GPU, or CPU processes with gloo) is ``torchrun --nproc-per-node N -m benchmark ARGS``."""

import sys

from chexmix_dataset.cli import main

sys.exit(main(["bench", *sys.argv[1:]]))
