"""The private attributes of other libraries that CheXMix still uses, each in this one place.

Everything else goes through public APIs. Each use here has no public equivalent; the reason is
stated beside it, and tests/test_private_apis.py checks that it still exists and still means
what we rely on, so a release that removes or changes one fails that test by name instead of
somewhere deep in a download.
"""

from __future__ import annotations

import tqdm.std


def open_progress_bars() -> list[tqdm.std.tqdm]:
    """The tqdm bars (of any tqdm class) created and not yet closed.

    tqdm lists them in the class attribute ``_instances`` (used by its own ``tqdm.write`` and
    ``_decr_instances``) and has no public accessor. Without it (a tqdm that dropped it) this
    returns no bars, so callers degrade to leaving bars open rather than failing.
    """
    return list(getattr(tqdm.std.tqdm, "_instances", ()))
