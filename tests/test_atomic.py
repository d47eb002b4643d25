"""Atomic outputs: a folder appears whole or not at all, and never replaces foreign files."""

from __future__ import annotations

import pytest

from chexmix_dataset.atomic import atomic_dir, atomic_file
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
