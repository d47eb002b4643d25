"""``torchrun ... tests/stopped_torchrun_bench.py STOP_AT ARGS``: ``chexmix bench ARGS``, stopped
the way a job scheduler stops a torchrun job.

Process 0 counts the training epochs it starts (over all runs of the grid, from 1). After the
first optimizer step of epoch STOP_AT it sends SIGTERM to its parent, the torchrun launcher,
which passes it on to every process, and waits to be ended. The epochs before are on disk:
process 0 writes a run's last.pt after each epoch, before it starts the next.
"""

from __future__ import annotations

import os
import signal
import sys
import time

from benchmark import runs
from chexmix_dataset.cli import main

STOP_AT = int(sys.argv[1])
train_one_epoch = runs.train_one_epoch
epochs_started = 0


def stopped_in_epoch(model, optimizer, scaler, loader, device, **kwargs):
    global epochs_started
    epochs_started += 1
    if epochs_started < STOP_AT or os.environ["RANK"] != "0":
        return train_one_epoch(model, optimizer, scaler, loader, device, **kwargs)

    def batches_until_stopped():
        for step, batch in enumerate(loader):
            if step == 1:  # one optimizer step of this epoch is done
                os.kill(os.getppid(), signal.SIGTERM)
                time.sleep(300)  # ended by the launcher's SIGTERM long before
                raise SystemExit("torchrun did not pass its SIGTERM on")
            yield batch
    return train_one_epoch(model, optimizer, scaler, batches_until_stopped(), device, **kwargs)


runs.train_one_epoch = stopped_in_epoch
sys.exit(main(["bench", *sys.argv[2:]]))
