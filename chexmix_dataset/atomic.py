"""Atomic writes: outputs appear complete or not at all.

Everything CheXMix writes goes to a hidden temporary sibling (``.NAME.XXXXXXXX.partial``) first
and is renamed into place, so an interrupted or failed run never leaves a half-written file or
folder where a finished one is expected. Temporary outputs are removed on exceptions, on Ctrl-C
(SIGINT) and on SIGTERM (a cluster job reaching its time limit): while a write is in progress
in the main thread, SIGTERM raises :class:`Terminated`, which unwinds like KeyboardInterrupt;
``chexmix`` then exits with the conventional status 143 (128 + 15) (see
:func:`install_signal_cleanup`). The renames that put an
output in place are never cut in half by a signal: it waits until they are done. Forked
children (DataLoader workers, ``num_proc`` processes) get the default handlers back at fork,
so they die on SIGTERM as usual and never touch their parent's temporary outputs. Outputs get the permissions the umask gives
(0644 files, 0755 folders under umask 022), like any file the user creates.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import secrets
import shutil
import signal
import threading
from pathlib import Path
from typing import Any, Collection, Iterator

from chexmix_dataset.errors import ChexmixInputError


class Terminated(BaseException):
    """SIGTERM arrived; raised in the main thread so that temporary outputs are removed on the way out.

    A BaseException (like KeyboardInterrupt), so that ``except Exception`` does not swallow it.
    """

    def __init__(self, signum: int = signal.SIGTERM) -> None:
        self.signum = int(signum)
        super().__init__(f"terminated by {signal.Signals(self.signum).name}")

    @property
    def exit_code(self) -> int:
        """The shell's status for a process ended by this signal: 128 + signal number."""
        return 128 + self.signum


# ------------------------------------------------------------------ live temporary outputs ---

_live: dict[Path, int] = {}  # temporary path -> pid of the process that created it
# Reentrant: the signal handler runs in the main thread, possibly while that thread holds it.
_lock = threading.RLock()
_handler_pid: int | None = None  # the process whose handlers are installed
_raise_always = False  # True under ``chexmix``: SIGTERM unwinds even when no output is being written
_deferring = 0  # > 0 while the main thread renames outputs into place
_pending: list[int] = []  # signals that arrived meanwhile


def _register(path: Path) -> None:
    with _lock:
        _live[path] = os.getpid()


def _unregister(path: Path) -> None:
    with _lock:
        _live.pop(path, None)


def _discard(path: Path) -> None:
    """Remove a temporary file or folder; a missing one is fine."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def live_temporary_paths() -> list[Path]:
    """Temporary outputs this process is writing now (for tests and diagnostics)."""
    with _lock:
        return [path for path, pid in _live.items() if pid == os.getpid()]


@atexit.register
def _discard_leftovers() -> None:
    # Reached only when an interruption was swallowed somewhere: normally each context cleans up.
    for path in live_temporary_paths():
        _discard(path)
        _unregister(path)


def _raise_for(signum: int) -> None:
    if signum == signal.SIGINT:
        raise KeyboardInterrupt
    raise Terminated(signum)


def _on_signal(signum: int, frame: object) -> None:
    writing = bool(live_temporary_paths())
    if not writing and (os.getpid() != _handler_pid or not _raise_always):
        # Nothing of ours to clean (or a child forked without the at-fork reset): behave
        # exactly as without the handler.
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
        return
    if _deferring:
        _pending.append(signum)
        return
    _raise_for(signum)


def _after_fork_in_child() -> None:
    """A forked child (DataLoader worker, multiprocessing pool) starts with default signal handling.

    It must die on SIGTERM at once, as by default: a Python-level handler only runs between
    bytecodes, so a child blocked in C (a lock inherited mid-use, a long native call) would
    outlive its parent's terminate(). Its copy of the registry lock may have been held by
    another thread at the fork, so it gets a fresh one.
    """
    global _lock, _deferring
    _lock = threading.RLock()
    _deferring = 0
    _pending.clear()
    for signum, default in ((signal.SIGTERM, signal.SIG_DFL), (signal.SIGINT, signal.default_int_handler)):
        with contextlib.suppress(ValueError):
            if signal.getsignal(signum) is _on_signal:
                signal.signal(signum, default)


os.register_at_fork(after_in_child=_after_fork_in_child)


def install_signal_cleanup(always_raise: bool = False) -> bool:
    """Make SIGTERM and SIGINT remove temporary outputs; returns whether the handlers are in place.

    Only from the main thread, and only over the default handlers: a program that installed its
    own keeps them. While this process writes an output, SIGTERM raises :class:`Terminated` in
    the main thread (uncaught, Python then exits with status 1 after cleaning up); otherwise it
    ends the process as by default, unless ``always_raise`` (``chexmix`` sets it, to exit with
    143 after every ``finally`` has run). The atomic writers call this too, so library use (a
    script calling ``run_benchmark``) is covered.
    """
    global _handler_pid, _raise_always
    if always_raise and _handler_pid == os.getpid():
        _raise_always = True
    if _handler_pid == os.getpid():
        return True
    if threading.current_thread() is not threading.main_thread():
        return False
    defaults = {signal.SIGTERM: signal.SIG_DFL, signal.SIGINT: signal.default_int_handler}
    try:
        for signum, default in defaults.items():
            current = signal.getsignal(signum)
            if current is default or current is _on_signal:
                signal.signal(signum, _on_signal)
    except ValueError:  # not the main interpreter's main thread
        return False
    _handler_pid = os.getpid()
    _raise_always = always_raise
    return True


@contextlib.contextmanager
def _signals_deferred() -> Iterator[None]:
    """Hold SIGTERM/SIGINT (main thread) until the block is done; then act on the first that came."""
    global _deferring
    main = threading.current_thread() is threading.main_thread()
    if main:
        _deferring += 1
    try:
        yield
    finally:
        if main:
            _deferring -= 1
            if not _deferring and _pending:
                signum = _pending[0]
                _pending.clear()
                _raise_for(signum)


def _temporary_name(final: Path) -> Path:
    return final.with_name(f".{final.name}.{secrets.token_hex(4)}.partial")


def _create_registered(final: Path, create) -> tuple[Path, Any]:
    """Create a new hidden sibling of ``final`` with ``create(path)`` and register it.

    Creation and registration are one step for signals; a signal held meanwhile removes it again.
    """
    while True:
        path = _temporary_name(final)
        created = False
        try:
            with _signals_deferred():
                try:
                    result = create(path)
                except FileExistsError:
                    continue
                created = True
                _register(path)
            return path, result
        except BaseException:
            if created:
                _discard(path)
                _unregister(path)
            raise


def _new_temporary_dir(final: Path) -> Path:
    """A new empty hidden sibling folder of ``final`` (mode 0777 less the umask), registered."""
    # os.mkdir applies the umask, as for any folder the user makes (mkdtemp would force 0700).
    return _create_registered(final, lambda path: os.mkdir(path, 0o777))[0]


def _new_temporary_file(final: Path) -> tuple[int, Path]:
    """An open descriptor on a new hidden sibling file of ``final`` (0666 less the umask), registered."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
    path, fd = _create_registered(final, lambda path: os.open(path, flags, 0o666))
    return fd, path


# ------------------------------------------------------------------------ output checks ---

def _writable_parent(path: Path) -> Path:
    parent = path.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ChexmixInputError(f"cannot create output folder ({exc.strerror})", parent) from None
    if not os.access(parent, os.W_OK):
        raise ChexmixInputError("output folder is not writable", parent)
    return parent


def _is_current_folder_or_above(path: Path) -> bool:
    cwd = Path.cwd()
    for candidate, here in ((path, cwd), (path.resolve(), cwd.resolve())):
        if candidate == here or candidate in here.parents:
            return True
    return False


def check_replaceable(path: str | os.PathLike, replaces: Collection[str] = ()) -> Path:
    """Refuse to replace an existing ``path`` unless it holds only names in ``replaces``.

    Outputs replace their folder as a whole, so a folder holding anything but a previous output
    of the same kind (a mistyped ``--out``, a home folder) is never wiped, and neither is the
    current folder or one above it (``--out .``, ``--out ..``). Returns ``path`` made absolute,
    with ``..`` and ``.`` resolved lexically.
    """
    given = path
    path = Path(os.path.abspath(path))
    if _is_current_folder_or_above(path):
        raise ChexmixInputError("output folder is the current folder or one above it; outputs replace their "
                                "folder whole, so name a new sub-folder (e.g. --out out)", given)
    if path.exists() and not path.is_dir():
        raise ChexmixInputError("output path exists and is not a folder", given)
    # Fail before any work when the folder could never be created: find the nearest existing
    # ancestor and check that it is a writable folder (nothing is created here).
    ancestor = path.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir() or not os.access(ancestor, os.W_OK):
        raise ChexmixInputError("cannot create the output folder: "
                                f"{ancestor} is {'not a folder' if not ancestor.is_dir() else 'not writable'}", given)
    if path.is_dir():
        foreign = sorted(p.name for p in path.iterdir() if p.name not in replaces)
        if foreign:
            raise ChexmixInputError(
                f"output folder holds other files ({', '.join(foreign[:3])}{', ...' if len(foreign) > 3 else ''}); "
                "choose a new or empty folder", given)
    return path


# ------------------------------------------------------------------------------ writers ---

def _put_folder_in_place(tmp: Path, final: Path) -> None:
    """Rename ``tmp`` onto ``final``; a previous ``final`` is set aside first and restored on failure."""
    old: Path | None = None
    try:
        with _signals_deferred():
            if final.exists():
                old = final.with_name(f".{final.name}.old-{os.getpid()}-{secrets.token_hex(4)}")
                try:
                    os.replace(final, old)
                except OSError as exc:
                    old = None
                    raise ChexmixInputError(f"cannot move the previous output aside ({exc.strerror})", final) from None
                _register(old)
            try:
                os.replace(tmp, final)
            except OSError as exc:
                if old is not None:
                    os.replace(old, final)  # the previous output stays as it was
                    _unregister(old)
                    old = None
                raise ChexmixInputError(f"cannot put the output in place ({exc.strerror})", final) from None
    finally:
        if old is not None:
            _discard(old)
            _unregister(old)


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike, replaces: Collection[str] = ()) -> Iterator[Path]:
    """Yield a temporary folder that replaces ``path`` only if the block completes.

    An existing ``path`` is replaced only when it holds nothing but names in ``replaces`` (see
    :func:`check_replaceable`). On any exception or interruption the temporary folder is removed
    and ``path`` is left as it was.
    """
    install_signal_cleanup()
    final = check_replaceable(path, replaces)
    _writable_parent(final)
    tmp = _new_temporary_dir(final)
    try:
        yield tmp
        _put_folder_in_place(tmp, final)
    except BaseException:
        _discard(tmp)  # after a successful rename tmp no longer exists: nothing is lost
        raise
    finally:
        _unregister(tmp)


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike, mode: str = "wb") -> Iterator[Any]:
    """Open a temporary sibling of ``path`` for writing; rename it onto ``path`` on success.

    On any exception or interruption the temporary file is removed and ``path`` is untouched.
    """
    install_signal_cleanup()
    final = Path(os.path.abspath(path))
    if final.is_dir():
        raise ChexmixInputError("output path is a folder; expected a file name", path)
    _writable_parent(final)
    fd, tmp = _new_temporary_file(final)
    try:
        with os.fdopen(fd, mode) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.replace(tmp, final)
        except OSError as exc:
            raise ChexmixInputError(f"cannot put the output in place ({exc.strerror})", path) from None
    except BaseException:
        _discard(tmp)
        raise
    finally:
        _unregister(tmp)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    with atomic_file(path, "w") as handle:
        json.dump(obj, handle, indent=2)
        handle.write("\n")
