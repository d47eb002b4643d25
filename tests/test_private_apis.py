"""The private attributes of other libraries that CheXMix relies on (chexmix_dataset.private_apis)
still exist and behave as relied on: a release that removes one fails here, by name."""

from __future__ import annotations

import tqdm.auto
import tqdm.std

from chexmix_dataset.private_apis import open_progress_bars


def test_tqdm_still_lists_open_bars_in_instances():
    assert hasattr(tqdm.std.tqdm, "_instances"), "tqdm dropped tqdm._instances: rewrite open_progress_bars"
    before = set(open_progress_bars())
    auto_bar, std_bar = tqdm.auto.tqdm(total=3, disable=False), tqdm.std.tqdm(total=2, disable=False)
    try:
        assert set(open_progress_bars()) - before == {auto_bar, std_bar}  # tqdm.auto's class shares the list
        auto_bar.close()
        assert set(open_progress_bars()) - before == {std_bar}
    finally:
        auto_bar.close()
        std_bar.close()
    assert set(open_progress_bars()) == before
