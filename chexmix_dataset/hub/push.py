"""Pushing a repository tree to the Hugging Face Hub (datasets from ``chexmix publish``, models
from ``chexmix publish-model``).

A push is one commit holding every file whose content differs from the Hub's copy (compared by
LFS sha256 or git blob id) and deletions of files under ``data/`` that the tree no longer holds.
Re-pushing an unchanged tree makes no commit at all.

Every network or HTTP failure becomes one :class:`ChexmixInputError` line naming the repository
and the reason (refused token, missing rights, HTTP status, unreachable Hub); the token never
appears in it.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Iterator, Mapping

from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi, get_token
from huggingface_hub.errors import HfHubHTTPError, HFValidationError
from huggingface_hub.errors import HTTPError as HubTransportError  # the base error of its HTTP library
from huggingface_hub.hf_api import RepoFile
from huggingface_hub.utils import validate_repo_id
from huggingface_hub.utils.sha import git_hash, sha_fileobj

from chexmix_dataset import __version__
from chexmix_dataset.errors import ChexmixInputError, first_line

NO_TOKEN_MESSAGE = "no Hugging Face token: set HF_TOKEN or run `hf auth login`"


def check_repo_id(repo_id: str) -> str:
    """``repo_id`` if it is a valid ``ORG/NAME`` Hub repository id, else ChexmixInputError."""
    if repo_id.count("/") != 1:
        raise ChexmixInputError(f"malformed repo id {repo_id!r}: expected ORG/NAME")
    try:
        validate_repo_id(repo_id)
    except HFValidationError as exc:
        raise ChexmixInputError(f"malformed repo id {repo_id!r}: {first_line(exc)}") from None
    return repo_id


def resolve_token() -> str:
    """The Hugging Face token from ``HF_TOKEN`` or the login cache; never printed or logged."""
    token = os.environ.get("HF_TOKEN") or get_token()
    if not token:
        raise ChexmixInputError(NO_TOKEN_MESSAGE)
    return token


def plan_operations(
    tree_dir: str | os.PathLike, remote_files: Mapping[str, RepoFile]
) -> list[CommitOperationAdd | CommitOperationDelete]:
    """Commit operations that make the Hub repository hold exactly ``tree_dir``'s files.

    Adds every local file whose content the Hub lacks; deletes Hub files under ``data/`` that
    the tree no longer has. Other Hub files (.gitattributes, extra docs) are left alone.
    """
    tree_dir = Path(tree_dir)
    local = {path.relative_to(tree_dir).as_posix(): path for path in sorted(tree_dir.rglob("*")) if path.is_file()}
    additions = [CommitOperationAdd(path_in_repo=repo_path, path_or_fileobj=str(path))
                 for repo_path, path in local.items()
                 if repo_path not in remote_files or not _same_content(path, remote_files[repo_path])]
    deletions = [CommitOperationDelete(path_in_repo=repo_path) for repo_path in sorted(remote_files)
                 if repo_path.startswith("data/") and repo_path not in local]
    return [*additions, *deletions]


def open_hub_repo(repo_id: str, *, token: str, private: bool = False, repo_type: str = "dataset") -> HfApi:
    """A Hub client for ``repo_id``, creating the repository (a dataset unless told) if needed.

    ``private`` applies only to a repository created now. Called before any building so that a
    refused token or an unreachable Hub shows up at once, not after hours of projecting.
    """
    api = HfApi(token=token, library_name="chexmix", library_version=__version__)
    with _hub_errors(repo_id, token):
        api.create_repo(repo_id, repo_type=repo_type, private=private, exist_ok=True)
    return api


def push_hub_tree(api: HfApi, tree_dir: str | os.PathLike, repo_id: str, *, token: str, repo_type: str = "dataset",
                  commit_message: str = f"Publish CheXMix {__version__}") -> tuple[str | None, list[str]]:
    """Push ``tree_dir`` to the repository ``repo_id`` (a dataset unless told) in one commit.

    Returns the commit URL and the changed repository paths, or ``(None, [])`` when the Hub
    already holds identical files.
    """
    with _hub_errors(repo_id, token):
        remote = {entry.path: entry for entry in api.list_repo_tree(repo_id, repo_type=repo_type, recursive=True)
                  if isinstance(entry, RepoFile)}
    # Hashing local files is no Hub call: a local disk error must not read as a network failure.
    operations = plan_operations(tree_dir, remote)
    if not operations:
        return None, []
    with _hub_errors(repo_id, token):
        commit = api.create_commit(
            repo_id,
            operations,
            commit_message=commit_message,
            repo_type=repo_type,
        )
    return commit.commit_url, [operation.path_in_repo for operation in operations]


@contextlib.contextmanager
def _hub_errors(repo_id: str, token: str) -> Iterator[None]:
    """Turn network and HTTP failures into one ChexmixInputError line that never shows the token."""
    try:
        yield
    except (HubTransportError, OSError) as exc:
        raise ChexmixInputError(_hub_failure(repo_id, exc, token)) from None


def _same_content(local: Path, remote: RepoFile) -> bool:
    if remote.size != local.stat().st_size:
        return False
    if remote.lfs is not None:
        with local.open("rb") as handle:
            return sha_fileobj(handle).hex() == remote.lfs.sha256
    return git_hash(local.read_bytes()) == remote.blob_id


def _hub_failure(repo_id: str, exc: BaseException, token: str) -> str:
    status = getattr(getattr(exc, "response", None), "status_code", None) if isinstance(exc, HfHubHTTPError) else None
    if status == 401:
        reason = "the Hub refused the token (HTTP 401); check HF_TOKEN or run `hf auth login`"
    elif status == 403:
        reason = "the token may not create or write this repository (HTTP 403)"
    elif status is not None:
        reason = f"the Hub answered HTTP {status}: {first_line(exc)}"
    else:
        reason = f"cannot reach the Hugging Face Hub ({type(exc).__name__}: {first_line(exc)})"
    # Error texts from HTTP libraries can quote request headers; the token must never be shown.
    return f"{repo_id}: {reason}".replace(token, "<token>")
