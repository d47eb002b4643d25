"""Atomic writes: outputs appear complete or not at all.

Everything CheXMix writes goes to a temporary sibling first and is renamed into place, so an
interrupted or failed run never leaves a half-written file or folder where a finished one is
expected.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Collection, Iterator

from .errors import ChexmixInputError


def _writable_parent(path: Path) -> Path:
    parent = path.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ChexmixInputError(f"cannot create output folder ({exc.strerror})", parent) from None
    if not os.access(parent, os.W_OK):
        raise ChexmixInputError("output folder is not writable", parent)
    return parent


def check_replaceable(path: str | os.PathLike, replaces: Collection[str] = ()) -> Path:
    """Refuse to replace an existing ``path`` unless it holds only names in ``replaces``.

    Outputs replace their folder as a whole, so a folder holding anything but a previous output
    of the same kind (a mistyped ``--out``, a home folder) is never wiped.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ChexmixInputError("output path exists and is not a folder", path)
    # Fail before any work when the folder could never be created: find the nearest existing
    # ancestor and check that it is a writable folder (nothing is created here).
    ancestor = path.absolute().parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir() or not os.access(ancestor, os.W_OK):
        raise ChexmixInputError("cannot create the output folder: "
                                f"{ancestor} is {'not a folder' if not ancestor.is_dir() else 'not writable'}", path)
    if path.is_dir():
        foreign = sorted(p.name for p in path.iterdir() if p.name not in replaces)
        if foreign:
            raise ChexmixInputError(
                f"output folder holds other files ({', '.join(foreign[:3])}{', ...' if len(foreign) > 3 else ''}); "
                "choose a new or empty folder", path)
    return path


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike, replaces: Collection[str] = ()) -> Iterator[Path]:
    """Yield a temporary folder that replaces ``path`` only if the block completes.

    An existing ``path`` is replaced only when it holds nothing but names in ``replaces`` (see
    :func:`check_replaceable`). On any exception the temporary folder is removed and ``path`` is
    left as it was.
    """
    final = check_replaceable(path, replaces)
    parent = _writable_parent(final)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".partial", dir=parent))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if final.exists():
        # Move the old folder aside first so that a crash between the two renames loses nothing.
        old = final.with_name(f".{final.name}.old-{os.getpid()}")
        os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, final)


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike, mode: str = "wb") -> Iterator[Any]:
    """Open a temporary sibling of ``path`` for writing; rename it onto ``path`` on success."""
    final = Path(path)
    parent = _writable_parent(final)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".partial", dir=parent)
    try:
        with os.fdopen(fd, mode) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, final)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    with atomic_file(path, "w") as handle:
        json.dump(obj, handle, indent=2)
        handle.write("\n")
