"""What the publishing tests share: the test card, a token, the tiny configs, the CLI, a fake Hub.

The ``offline_publish`` fixture that uses them is in conftest.py.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import datasets
from helpers import tiny_dataset_dict
from huggingface_hub import CommitOperationAdd
from huggingface_hub.hf_api import CommitInfo, RepoFile, RepoFolder

from chexmix_dataset import cli

CARD = """---
license: other
task_categories:
- image-segmentation
pretty_name: CheXMix (test card)
tags:
- medical
- chest-x-ray
---

# CheXMix

Test body: projections of chest CT mixed with chest X-rays.
"""
TOKEN = "hf_testtokenthatmustneverbeprinted"
REPO_ID = "chexmix-org/chexmix"


def configs_for_tests() -> dict[str, datasets.DatasetDict]:
    return {"mixed": tiny_dataset_dict(n_train=6, n_test=4), "sample": tiny_dataset_dict(n_train=3, n_test=2, size=48)}



def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    code = cli.main(["publish", "--repo-id", REPO_ID, *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def error_lines(err: str) -> list[str]:
    """The error lines on stderr (progress bars may come before them)."""
    lines = err.strip().splitlines()
    errors = [line for line in lines if line.startswith("chexmix publish: error:")]
    assert errors and lines[-1] == errors[-1]
    return errors


class FakeHub:
    """Stands in for the Hub: records what HfApi is asked to do and keeps the repository's files."""

    def __init__(self, fail_on: str | None = None, error: BaseException | None = None) -> None:
        self.files: dict[str, bytes] = {".gitattributes": b"*.parquet filter=lfs diff=lfs merge=lfs -text\n"}
        self.calls: list[tuple] = []
        self.commits: list[list] = []
        self.tokens: list[str] = []
        self.fail_on, self.error = fail_on, error

    def __call__(self, token=None, **_):  # replaces the HfApi class
        self.tokens.append(token)
        return self

    def _maybe_fail(self, name: str) -> None:
        if self.fail_on == name:
            raise self.error

    def create_repo(self, repo_id, **kwargs):
        self.calls.append(("create_repo", repo_id, kwargs))
        self._maybe_fail("create_repo")

    def list_repo_tree(self, repo_id, **kwargs):
        self.calls.append(("list_repo_tree", repo_id, kwargs))
        self._maybe_fail("list_repo_tree")
        entries = [RepoFolder(path="data", oid="0" * 40)]
        for path, content in self.files.items():
            git_oid = hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()
            lfs = ({"size": len(content), "oid": hashlib.sha256(content).hexdigest(), "pointerSize": 134}
                   if path.endswith(".parquet") else None)
            entries.append(RepoFile(path=path, size=len(content), oid=git_oid, lfs=lfs))
        return iter(entries)

    def create_commit(self, repo_id, operations, **kwargs):
        operations = list(operations)
        self.calls.append(("create_commit", repo_id, kwargs))
        self._maybe_fail("create_commit")
        self.commits.append(operations)
        for op in operations:
            if isinstance(op, CommitOperationAdd):
                self.files[op.path_in_repo] = Path(op.path_or_fileobj).read_bytes()
            else:
                del self.files[op.path_in_repo]
        return CommitInfo(commit_url=f"https://huggingface.co/datasets/{repo_id}/commit/{len(self.commits)}",
                          commit_message=kwargs["commit_message"], commit_description="",
                          oid=f"{len(self.commits):040d}")

