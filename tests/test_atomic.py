"""Atomic outputs: whole or not at all (also on SIGTERM/SIGINT), never over foreign files, umask modes."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from chexmix_dataset import atomic
from chexmix_dataset.atomic import atomic_dir, atomic_file, write_json
from chexmix_dataset.cli import main as cli_main
from chexmix_dataset.errors import ChexmixInputError


def test_atomic_dir_replaces_a_previous_output_only_on_success(tmp_path):
    out = tmp_path / "out"
    with atomic_dir(out, replaces=("a.txt",)) as tmp:
        (tmp / "a.txt").write_text("one")
    with pytest.raises(RuntimeError):
        with atomic_dir(out, replaces=("a.txt",)) as tmp:
            (tmp / "a.txt").write_text("two")
            raise RuntimeError("crash")
    assert (out / "a.txt").read_text() == "one"
    with atomic_dir(out, replaces=("a.txt",)) as tmp:
        (tmp / "a.txt").write_text("three")
    assert (out / "a.txt").read_text() == "three"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_atomic_dir_refuses_a_folder_of_other_files_before_any_work(tmp_path):
    out = tmp_path / "home"
    out.mkdir()
    (out / "notes.md").write_text("mine")
    with pytest.raises(ChexmixInputError, match="notes.md"):
        with atomic_dir(out, replaces=("a.txt",)):
            raise AssertionError("the block must not run")
    assert [p.name for p in out.iterdir()] == ["notes.md"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home"]


def test_atomic_file_leaves_nothing_on_failure(tmp_path):
    with pytest.raises(ValueError):
        with atomic_file(tmp_path / "f.json", "w") as handle:
            handle.write("{half")
            raise ValueError("bad")
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------- --out . and renames ---

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("out", [".", "..", "sub/.."])
@pytest.mark.parametrize("command", [
    ["phantom"],
    ["project", "missing_ct.nii.gz"],
    ["export", "coco", "--config", "sample", "--overwrite"],
])
def test_out_refuses_the_current_folder_and_above(tmp_path, monkeypatch, capsys, command, out):
    work = tmp_path / "work"
    (work / "sub").mkdir(parents=True)
    monkeypatch.chdir(work)
    assert cli_main([*command, "--out", out]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "current folder or one above it" in err
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["sub", "work"]


def test_publish_local_dir_refuses_the_current_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert cli_main(["publish", "--repo-id", "org/name", "--configs", "sample", "--local-dir", "."]) == 2
    assert "current folder" in capsys.readouterr().err and list(tmp_path.iterdir()) == []


def test_failed_rename_restores_the_previous_output_and_removes_the_new_one(tmp_path, monkeypatch):
    out = tmp_path / "out"
    with atomic_dir(out, replaces=("a.txt",)) as tmp:
        (tmp / "a.txt").write_text("one")
    real_replace = os.replace
    calls = []

    def second_rename_fails(src, dst):
        calls.append((Path(src).name, Path(dst).name))
        if len(calls) == 2:  # the new output onto the final name
            raise PermissionError(13, "Permission denied")
        real_replace(src, dst)

    monkeypatch.setattr(atomic.os, "replace", second_rename_fails)
    with pytest.raises(ChexmixInputError, match="cannot put the output in place"):
        with atomic_dir(out, replaces=("a.txt",)) as tmp:
            (tmp / "a.txt").write_text("two")
    assert (out / "a.txt").read_text() == "one"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    assert atomic.live_temporary_paths() == []


def test_atomic_file_refuses_a_folder_as_its_path(tmp_path):
    with pytest.raises(ChexmixInputError, match="is a folder"):
        with atomic_file(tmp_path, "w"):
            raise AssertionError("the block must not run")
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------- permissions ---

@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_outputs_get_the_permissions_of_the_umask(tmp_path, umask):
    previous = os.umask(umask)
    try:
        write_json(tmp_path / "alone.json", {"a": 1})
        with atomic_dir(tmp_path / "folder") as tmp:
            (tmp / "inner.txt").write_text("x")
        code = cli_main(["phantom", "--out", str(tmp_path / "phantoms"), "--shape", "24", "24", "24"])
    finally:
        os.umask(previous)
    assert code == 0
    file_mode, dir_mode = 0o666 & ~umask, 0o777 & ~umask
    for path in (tmp_path / "alone.json", tmp_path / "folder" / "inner.txt", tmp_path / "phantoms" / "phantoms.json",
                 tmp_path / "phantoms" / "ct" / "phantom_0000.nii.gz"):
        assert stat.S_IMODE(path.stat().st_mode) == file_mode, path
    for path in (tmp_path / "folder", tmp_path / "phantoms", tmp_path / "phantoms" / "mask"):
        assert stat.S_IMODE(path.stat().st_mode) == dir_mode, path


# ----------------------------------------------------------------------- SIGTERM, SIGINT ---

def _python(script: str, *args: str, cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen([sys.executable, "-c", script, *args], cwd=cwd, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _run_python(script: str, cwd: Path) -> str:
    """Run ``script`` to its end in a fresh interpreter; its stdout (it must succeed)."""
    child = _python(script, cwd=cwd)
    out, err = child.communicate(timeout=60)
    assert child.returncode == 0, err
    return out


def _wait_for(predicate, process: subprocess.Popen, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the child never started writing"
        time.sleep(0.05)


def test_sigterm_during_chexmix_phantom_leaves_no_partial_output(tmp_path):
    """A cluster job limit: ``chexmix phantom`` killed with SIGTERM while it writes its folder."""
    script = "import sys; from chexmix_dataset.cli import main; sys.exit(main())"
    child = _python(script, "phantom", "--out", "out", "--n", "500", "--shape", "48", "48", "32", cwd=tmp_path)
    # Wait until the hidden temporary folder holds finished phantoms: the middle of the write.
    _wait_for(lambda: any(p.name.endswith(".nii.gz") for p in tmp_path.rglob("*")), child)
    assert [p.name for p in tmp_path.iterdir()][0].endswith(".partial")
    child.send_signal(signal.SIGTERM)
    _, err = child.communicate(timeout=60)
    assert child.returncode == 143
    assert err.strip().splitlines()[-1] == "chexmix phantom: terminated by SIGTERM; no partial output left"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_during_a_big_file_write_removes_the_temporary_file(tmp_path, signum):
    """Library use (a checkpoint written through atomic_file), interrupted mid-write."""
    script = (
        "import sys, time\n"
        "from chexmix_dataset.atomic import atomic_file\n"
        "with atomic_file('checkpoint.pt', 'wb') as handle:\n"
        "    for _ in range(100000):\n"
        "        handle.write(b'x' * 65536)\n"
        "        handle.flush()\n"
        "        time.sleep(0.01)\n"
    )
    child = _python(script, cwd=tmp_path)
    _wait_for(lambda: any(p.stat().st_size > 1_000_000 for p in tmp_path.iterdir()), child)
    child.send_signal(signum)
    _, err = child.communicate(timeout=60)
    assert child.returncode != 0
    assert ("Terminated: terminated by SIGTERM" if signum == signal.SIGTERM else "KeyboardInterrupt") in err
    assert list(tmp_path.iterdir()) == []


def test_forked_child_keeps_default_sigterm_and_leaves_the_parents_output(tmp_path):
    """A DataLoader worker (forked) killed by SIGTERM dies as usual and removes nothing of its parent's."""
    script = (
        "import os, signal, time\n"
        "from chexmix_dataset.atomic import atomic_file, live_temporary_paths\n"
        "with atomic_file('result.bin', 'wb') as handle:\n"
        "    handle.write(b'parent')\n"
        "    pid = os.fork()\n"
        "    if pid == 0:\n"
        "        print(signal.getsignal(signal.SIGTERM) is signal.SIG_DFL, flush=True)\n"
        "        time.sleep(30)\n"
        "        os._exit(0)\n"
        "    time.sleep(0.5)\n"
        "    os.kill(pid, signal.SIGTERM)\n"
        "    _, status = os.waitpid(pid, 0)\n"
        "    print(os.WIFSIGNALED(status), os.WTERMSIG(status) if os.WIFSIGNALED(status) else None)\n"
        "    print(all(p.exists() for p in live_temporary_paths()))\n"
    )
    out = _run_python(script, tmp_path)
    # The child had the default handler back; it died by SIGTERM; the parent's temp file survived.
    assert out.split() == ["True", "True", str(int(signal.SIGTERM)), "True"]
    assert [p.name for p in tmp_path.iterdir()] == ["result.bin"]
    assert (tmp_path / "result.bin").read_bytes() == b"parent"


def test_writes_from_a_thread_work_and_install_no_handler(tmp_path):
    script = (
        "import signal, threading\n"
        "from chexmix_dataset.atomic import write_json\n"
        "worker = threading.Thread(target=write_json, args=('from_thread.json', {'ok': True}))\n"
        "worker.start(); worker.join()\n"
        "print(signal.getsignal(signal.SIGTERM) is signal.SIG_DFL)\n"
    )
    out = _run_python(script, tmp_path)
    assert out.split() == ["True"]
    assert json.loads((tmp_path / "from_thread.json").read_text()) == {"ok": True}


def test_sigterm_with_dataloader_workers_cleans_up_and_stops_the_workers(tmp_path):
    """The benchmark's case: SIGTERM while DataLoader workers (forked, sharing the handler) run."""
    script = (
        "import os, sys, time, torch\n"
        "from torch.utils.data import DataLoader, Dataset\n"
        "from chexmix_dataset.atomic import atomic_file\n"
        "class Slow(Dataset):\n"
        "    def __len__(self): return 10**6\n"
        "    def __getitem__(self, i): time.sleep(0.01); return torch.zeros(4)\n"
        "loader = DataLoader(Slow(), batch_size=2, num_workers=2)\n"
        "with atomic_file('checkpoint.pt', 'wb') as handle:\n"
        "    for step, batch in enumerate(loader):\n"
        "        handle.write(b'x' * 1024)\n"
        "        if step == 3:\n"
        "            workers = [int(p) for p in os.listdir('/proc') if p.isdigit() and\n"
        "                       open(f'/proc/{p}/stat').read().split(') ')[1].split()[1] == str(os.getpid())]\n"
        "            print(' '.join(map(str, workers)), flush=True)\n"
    )
    child = _python(script, cwd=tmp_path)
    workers = [int(pid) for pid in child.stdout.readline().split()]
    assert len(workers) == 2, child.communicate()
    child.send_signal(signal.SIGTERM)
    _, err = child.communicate(timeout=60)
    assert child.returncode != 0 and "Terminated: terminated by SIGTERM" in err
    assert list(tmp_path.iterdir()) == []
    time.sleep(0.5)
    assert not [pid for pid in workers if Path(f"/proc/{pid}").exists()], "DataLoader workers left running"
