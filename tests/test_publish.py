"""Publishing: the Hub repository tree, loading it back natively, and what the Hub is asked to do."""

from __future__ import annotations

import fnmatch
import hashlib
import io
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import datasets
import numpy as np
import pyarrow.parquet as pq
import pytest
from helpers import tiny_dataset_dict
from huggingface_hub import CommitOperationAdd, CommitOperationDelete, DatasetCard, DatasetCardData
from huggingface_hub.errors import HfHubHTTPError
from huggingface_hub.hf_api import CommitInfo, RepoFile, RepoFolder
from PIL import Image

from chexmix_dataset import cli
from chexmix_dataset.dataset.features import FEATURES
from chexmix_dataset.errors import ChexmixInputError
from chexmix_dataset.hub import publish as publish_mod
from chexmix_dataset.hub.licences import LICENCE_SECTION_TITLE

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

# Describes a DatasetDict as JSON-able data. Runs both here and in a subprocess that must not
# import chexmix_dataset, so it only uses numpy and hashlib.
DESCRIBE_SOURCE = '''
import hashlib
import numpy as np

def describe_image(image):
    pixels = np.asarray(image)
    return [image.mode, list(image.size), hashlib.sha256(pixels.tobytes()).hexdigest()]

def describe(dataset_dict):
    out = {}
    for split, dataset in dataset_dict.items():
        rows = []
        for row in dataset:
            rows.append({key: describe_image(value) if key in ("image", "mask") else value
                         for key, value in row.items()})
        out[split] = {"num_rows": len(dataset), "features": dataset.features.to_dict(), "rows": rows}
    return out
'''


def describe(dataset_dict: datasets.DatasetDict) -> dict:
    namespace: dict = {}
    exec(DESCRIBE_SOURCE, namespace)
    return json.loads(json.dumps(namespace["describe"](dataset_dict)))


def configs_for_tests() -> dict[str, datasets.DatasetDict]:
    return {"mixed": tiny_dataset_dict(n_train=6, n_test=4), "sample": tiny_dataset_dict(n_train=3, n_test=2, size=48)}


def file_digests(tree: Path) -> dict[str, str]:
    return {path.relative_to(tree).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(tree.rglob("*")) if path.is_file()}


@pytest.fixture
def offline_publish(monkeypatch, tmp_path):
    """publish() with the tiny configs instead of the builder, the test card, a private temp area."""
    built = configs_for_tests()
    calls: list[str] = []

    def build_config(config, data_dir, **options):
        calls.append(config)
        return built[config]

    monkeypatch.setattr(publish_mod, "build_config", build_config)
    monkeypatch.setattr(publish_mod, "read_dataset_card", lambda: CARD)
    temp_area = tmp_path / "temp-area"
    temp_area.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp_area))
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    return {"built": built, "calls": calls, "temp_area": temp_area}


# --- the tree ------------------------------------------------------------------------------------


def test_tree_layout_shards_cover_every_row_in_order(tmp_path):
    configs = configs_for_tests()
    # Every split here holds more than 900 bytes of Arrow data in rows of at most ~700 bytes, so a
    # 900-byte target must split each one, and no shard may exceed the target by a whole target.
    target = 900
    tree = publish_mod.write_hub_tree(configs, tmp_path / "repo", CARD, target_shard_bytes=target)
    files = sorted(path.relative_to(tree).as_posix() for path in tree.rglob("*") if path.is_file())
    shard_files = []
    for config, dataset_dict in configs.items():
        for split, dataset in dataset_dict.items():
            shards = [f for f in files if f.startswith(f"data/{config}/{split}-")]
            count = len(shards)
            assert count > 1
            assert shards == [f"data/{config}/{split}-{i:05d}-of-{count:05d}.parquet" for i in range(count)]
            tables = [pq.read_table(tree / shard) for shard in shards]
            assert all(0 < table.num_rows and table.nbytes < 2 * target for table in tables)
            ids = [image_id for table in tables for image_id in table.column("image_id").to_pylist()]
            assert ids == dataset["image_id"]
            shard_files += shards
    assert files == sorted(["README.md", "docs/projection.png", *shard_files])


def test_images_given_as_paths_are_embedded(tmp_path):
    rng = np.random.default_rng(0)
    pixels = [rng.integers(0, 256, (20, 30), dtype=np.uint8) for _ in range(3)]
    paths = []
    for i, array in enumerate(pixels):
        paths.append(str(tmp_path / f"image{i}.png"))
        Image.fromarray(array, mode="L").save(paths[-1])
    features = datasets.Features({"image": datasets.Image(mode="L"), "image_id": datasets.Value("string")})
    dataset = datasets.Dataset.from_dict({"image": paths, "image_id": ["a", "b", "c"]}, features=features)
    assert dataset.data.column("image").to_pylist()[0]["bytes"] is None  # stored by path before publishing
    tree = publish_mod.write_hub_tree({"xrays_only": datasets.DatasetDict({"train": dataset})}, tmp_path / "repo", CARD)
    for path in paths:
        os.remove(path)
    table = pq.read_table(tree / "data/xrays_only/train-00000-of-00001.parquet")
    decoded = [np.asarray(Image.open(io.BytesIO(cell["bytes"]))) for cell in table.column("image").to_pylist()]
    for got, want in zip(decoded, pixels):
        np.testing.assert_array_equal(got, want)


def test_same_content_gives_byte_identical_trees(tmp_path):
    first = publish_mod.write_hub_tree(configs_for_tests(), tmp_path / "first", CARD, target_shard_bytes=2000)
    second = publish_mod.write_hub_tree(configs_for_tests(), tmp_path / "second", CARD, target_shard_bytes=2000)
    assert file_digests(first) == file_digests(second)
    assert len(file_digests(first)) > 3


def test_failed_write_leaves_previous_folder_untouched(tmp_path, monkeypatch):
    out = tmp_path / "repo"
    out.mkdir()
    (out / "README.md").write_text("previous export")
    real = publish_mod._with_embedded_files
    seen = []

    def fail_on_third_shard(dataset):
        seen.append(1)
        if len(seen) == 3:
            raise OSError("disk full")
        return real(dataset)

    monkeypatch.setattr(publish_mod, "_with_embedded_files", fail_on_third_shard)
    with pytest.raises(OSError, match="disk full"):
        publish_mod.write_hub_tree(configs_for_tests(), out, CARD)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["repo"]
    assert [p.name for p in out.iterdir()] == ["README.md"]


def _layout_with(problem: str) -> dict[str, datasets.DatasetDict]:
    tiny = tiny_dataset_dict(n_train=2, n_test=1)
    if problem == "config named data":
        return {"data": tiny}
    if problem == "hyphen in split":
        return {"mixed": datasets.DatasetDict({"train-all": tiny["train"]})}
    if problem == "no splits":
        return {"mixed": datasets.DatasetDict()}
    return {"mixed": datasets.DatasetDict({"train": tiny["train"], "test": tiny["test"].remove_columns("mask")})}


@pytest.mark.parametrize("problem, message", [
    ("config named data", "'data'"), ("hyphen in split", "'train-all'"), ("no splits", "no splits"),
    ("features differ between splits", "features unlike"),
])
def test_layout_the_hub_cannot_load_is_rejected(tmp_path, problem, message):
    with pytest.raises(ChexmixInputError, match=message):
        publish_mod.write_hub_tree(_layout_with(problem), tmp_path / "repo", CARD)
    assert list(tmp_path.iterdir()) == []


# --- loading back natively -----------------------------------------------------------------------


def load_in_fresh_process(tree: Path, config_names: list[str], tmp_path: Path) -> dict:
    """describe() of ``load_dataset(tree, name)`` per config (and of the default config under
    "<default>"), computed by a Python that never imports chexmix_dataset and stays offline."""
    script = DESCRIBE_SOURCE + f'''
import json, sys
import datasets
tree = {str(tree)!r}
out = {{name: describe(datasets.load_dataset(tree, name)) for name in {config_names!r}}}
out["<default>"] = describe(datasets.load_dataset(tree))
assert "chexmix_dataset" not in sys.modules, "the round trip must not need CheXMix"
print(json.dumps(out))
'''
    env = {**os.environ, "HF_DATASETS_CACHE": str(tmp_path / "hf-cache-reader"), "HF_HUB_OFFLINE": "1",
           "HF_DATASETS_OFFLINE": "1", "PYTHONPATH": ""}
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_load_dataset_in_a_fresh_process_gives_the_same_rows(tmp_path):
    configs = configs_for_tests()
    tree = publish_mod.write_hub_tree(configs, tmp_path / "repo", CARD, target_shard_bytes=2000)
    loaded = load_in_fresh_process(tree, sorted(configs), tmp_path)
    for name, dataset_dict in configs.items():
        assert loaded[name] == describe(dataset_dict), name
    assert loaded["<default>"] == describe(configs["mixed"])
    assert loaded["mixed"]["train"]["features"] == FEATURES.to_dict()


def test_publish_sample_config_end_to_end(tmp_path, capsys, monkeypatch):
    """`chexmix publish --configs sample --local-dir` with the real builder, loaded back natively."""
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "hf-cache-builder"))
    monkeypatch.setattr(publish_mod, "read_dataset_card", lambda: CARD)  # the card is the lead's file
    out = tmp_path / "export"
    code, _, err = run_cli(capsys, "--configs", "sample", "--local-dir", str(out))
    assert code == 0, err
    from chexmix_dataset import load_chexmix

    expected = describe(load_chexmix("sample"))  # the same cache: no rebuild
    assert sum(split["num_rows"] for split in expected.values()) > 0
    loaded = load_in_fresh_process(out, ["sample"], tmp_path)
    assert loaded["sample"] == expected
    assert loaded["<default>"] == expected


def test_readme_metadata_is_a_valid_dataset_card(tmp_path):
    configs = configs_for_tests()
    tree = publish_mod.write_hub_tree(configs, tmp_path / "repo", CARD, target_shard_bytes=2000)
    card = DatasetCard((tree / "README.md").read_text(encoding="utf-8"))
    data = card.data
    assert isinstance(data, DatasetCardData)
    original = DatasetCard(CARD)
    for field in ("license", "task_categories", "pretty_name", "tags"):
        assert data.get(field) == original.data.get(field)
    # The body is the card's, with the generated licence section (from the rows published) added.
    assert card.text.startswith(original.text.rstrip("\n"))
    assert card.text[len(original.text.rstrip("\n")):].lstrip("\n").startswith(LICENCE_SECTION_TITLE)
    assert "| CC0-1.0 | test/discs | 15 |" in card.text  # tiny configs: 6 + 4 + 3 + 2 rows
    DatasetCardData(**data.to_dict())  # the Hub's card model accepts every field

    parquet_files = sorted(p.relative_to(tree).as_posix() for p in tree.rglob("*.parquet"))
    matched = []
    assert [entry["config_name"] for entry in data.configs] == list(configs)
    assert [entry["config_name"] for entry in data.configs if entry.get("default")] == ["mixed"]
    for entry in data.configs:
        for data_file in entry["data_files"]:
            hits = fnmatch.filter(parquet_files, data_file["path"])
            assert hits and all(hit.startswith(f"data/{entry['config_name']}/{data_file['split']}-") for hit in hits)
            matched += hits
    assert sorted(matched) == parquet_files

    infos = {entry["config_name"]: entry for entry in data.dataset_info}
    assert list(infos) == list(configs)
    for name, dataset_dict in configs.items():
        info = datasets.DatasetInfo._from_yaml_dict(infos[name])
        assert info.features == FEATURES
        assert {split: s.num_examples for split, s in info.splits.items()} == {
            split: len(dataset) for split, dataset in dataset_dict.items()}
        config_files = [f for f in parquet_files if f.startswith(f"data/{name}/")]
        assert info.download_size == sum((tree / f).stat().st_size for f in config_files)
        assert info.dataset_size == sum(s.num_bytes for s in info.splits.values()) > 0


@pytest.mark.parametrize("header, missing", [
    ("license: other\n", "task_categories"),
    ("task_categories:\n- image-segmentation\n", "license"),
    ("license: [unclosed\n", "YAML header is not valid"),
])
def test_card_without_required_metadata_is_rejected(tmp_path, header, missing):
    with pytest.raises(ChexmixInputError, match=missing) as excinfo:
        publish_mod.write_hub_tree(configs_for_tests(), tmp_path / "repo", f"---\n{header}---\n# body\n")
    assert "DATASET_CARD.md" in str(excinfo.value)
    assert not (tmp_path / "repo").exists()


# --- the command line and the Hub ----------------------------------------------------------------


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


def hub_digests(hub: FakeHub) -> dict[str, str]:
    return {path: hashlib.sha256(content).hexdigest()
            for path, content in hub.files.items() if path != ".gitattributes"}


def test_plan_compares_content_not_just_size(tmp_path):
    tree = tmp_path / "repo"
    (tree / "data/mixed").mkdir(parents=True)
    files = {"README.md": b"---\nlicense: other\n---\n", "data/mixed/train-00000-of-00001.parquet": b"PAR1 rows PAR1",
             "data/mixed/test-00000-of-00001.parquet": b"PAR1 test PAR1"}
    for path, content in files.items():
        (tree / path).write_bytes(content)

    def remote(path: str, content: bytes, lfs: bool) -> RepoFile:
        git_oid = hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()
        lfs_info = {"size": len(content), "oid": hashlib.sha256(content).hexdigest(), "pointerSize": 134}
        return RepoFile(path=path, size=len(content), oid=git_oid, lfs=lfs_info if lfs else None)

    same_size_other_bytes = {path: content.swapcase() for path, content in files.items()}
    assert all(len(same_size_other_bytes[p]) == len(files[p]) and same_size_other_bytes[p] != files[p] for p in files)
    identical = {p: remote(p, c, lfs=p.endswith(".parquet")) for p, c in files.items()}
    differing = {p: remote(p, c, lfs=p.endswith(".parquet")) for p, c in same_size_other_bytes.items()}
    stale = {"data/sample/train-00000-of-00001.parquet": remote("data/sample/train-00000-of-00001.parquet", b"x", True),
             ".gitattributes": remote(".gitattributes", b"*.parquet filter=lfs\n", False),
             "docs/notes.md": remote("docs/notes.md", b"kept", False)}

    assert publish_mod.plan_operations(tree, {**identical, **stale}) == [
        CommitOperationDelete(path_in_repo="data/sample/train-00000-of-00001.parquet")]
    operations = publish_mod.plan_operations(tree, differing)
    assert sorted(op.path_in_repo for op in operations) == sorted(files)
    assert all(isinstance(op, CommitOperationAdd) for op in operations)


def test_local_dir_writes_the_tree_and_pushes_nothing(tmp_path, capsys, monkeypatch, offline_publish):
    monkeypatch.delenv("HF_TOKEN")
    monkeypatch.setattr(publish_mod, "get_token", lambda: None)  # no token is needed for --local-dir
    hub = FakeHub()
    monkeypatch.setattr(publish_mod, "HfApi", hub)
    code, out, err = run_cli(capsys, "--configs", "mixed,sample", "--local-dir", str(tmp_path / "export"))
    assert code == 0, err
    assert hub.calls == [] and hub.tokens == []
    expected = publish_mod.write_hub_tree(offline_publish["built"], tmp_path / "expected", CARD)
    assert file_digests(tmp_path / "export") == file_digests(expected)
    assert offline_publish["calls"] == ["mixed", "sample"]
    assert (tmp_path / "export" / "docs" / "projection.png").is_file()  # the card's figure travels
    assert str(tmp_path / "export") in out


def test_local_dir_replaces_a_previous_export_but_not_other_folders(tmp_path, capsys, monkeypatch, offline_publish):
    export = tmp_path / "export"
    assert run_cli(capsys, "--configs", "mixed,sample", "--local-dir", str(export))[0] == 0
    assert run_cli(capsys, "--configs", "sample", "--local-dir", str(export))[0] == 0
    assert not (export / "data/mixed").exists() and (export / "data/sample").is_dir()

    documents = tmp_path / "documents"
    documents.mkdir()
    (documents / "thesis.tex").write_text("irreplaceable")
    code, _, err = run_cli(capsys, "--configs", "sample", "--local-dir", str(documents))
    assert code == 2 and str(documents) in error_lines(err)[0]
    assert [p.name for p in documents.iterdir()] == ["thesis.tex"]


def test_push_sends_one_commit_with_every_file(tmp_path, capsys, monkeypatch, offline_publish):
    hub = FakeHub()
    monkeypatch.setattr(publish_mod, "HfApi", hub)
    code, out, err = run_cli(capsys, "--configs", "mixed,sample", "--private")
    assert code == 0, err
    assert [call[0] for call in hub.calls] == ["create_repo", "list_repo_tree", "create_commit"]
    assert hub.calls[0][1:] == (REPO_ID, {"repo_type": "dataset", "private": True, "exist_ok": True})
    assert hub.calls[2][2]["repo_type"] == "dataset"
    assert hub.tokens == [TOKEN]
    assert TOKEN not in out + err

    local = publish_mod.write_hub_tree(offline_publish["built"], tmp_path / "local", CARD)
    [operations] = hub.commits
    assert all(isinstance(op, CommitOperationAdd) for op in operations)
    assert sorted(op.path_in_repo for op in operations) == sorted(file_digests(local))
    assert hub_digests(hub) == file_digests(local)  # the pushed tree is the --local-dir tree
    assert list(offline_publish["temp_area"].iterdir()) == []  # the temporary tree is gone
    assert "https://huggingface.co/datasets/" in out


def test_republishing_unchanged_content_makes_no_commit(capsys, monkeypatch, offline_publish):
    hub = FakeHub()
    monkeypatch.setattr(publish_mod, "HfApi", hub)
    assert run_cli(capsys, "--configs", "mixed,sample")[0] == 0
    code, out, _ = run_cli(capsys, "--configs", "mixed,sample")
    assert code == 0
    assert len(hub.commits) == 1
    assert [call[0] for call in hub.calls[3:]] == ["create_repo", "list_repo_tree"]  # and no create_commit
    assert "up to date" in out


def test_republishing_changes_sends_only_changes_and_deletes_stale_shards(tmp_path, capsys, monkeypatch,
                                                                          offline_publish):
    hub = FakeHub()
    monkeypatch.setattr(publish_mod, "HfApi", hub)
    assert run_cli(capsys, "--configs", "mixed,sample")[0] == 0
    before = hub_digests(hub)
    offline_publish["built"]["mixed"] = tiny_dataset_dict(n_train=5, n_test=4)  # one training image fewer
    assert run_cli(capsys, "--configs", "mixed")[0] == 0

    after = file_digests(publish_mod.write_hub_tree({"mixed": offline_publish["built"]["mixed"]},
                                                    tmp_path / "expected", CARD))
    assert len(hub.commits) == 2
    operations = hub.commits[1]
    added = sorted(op.path_in_repo for op in operations if isinstance(op, CommitOperationAdd))
    deleted = sorted(op.path_in_repo for op in operations if isinstance(op, CommitOperationDelete))
    assert added == sorted(path for path, digest in after.items() if before.get(path) != digest)
    assert "data/mixed/test-00000-of-00001.parquet" not in added  # the unchanged split is not re-sent
    assert deleted == sorted(path for path in before if path not in after)
    assert deleted and all(path.startswith("data/sample/") for path in deleted)
    assert hub_digests(hub) == after
    assert ".gitattributes" in hub.files


def test_no_token_is_one_line_and_exit_2(capsys, monkeypatch, offline_publish):
    monkeypatch.delenv("HF_TOKEN")
    monkeypatch.setattr(publish_mod, "get_token", lambda: None)
    hub = FakeHub()
    monkeypatch.setattr(publish_mod, "HfApi", hub)
    code, out, err = run_cli(capsys, "--configs", "sample")
    assert code == 2
    assert err.strip().splitlines() == [f"chexmix publish: error: {publish_mod.NO_TOKEN_MESSAGE}"]  # nothing else ran
    assert offline_publish["calls"] == [] and hub.calls == []
    assert list(offline_publish["temp_area"].iterdir()) == []


@pytest.mark.parametrize("repo_id", ["chexmix", "org/name/extra", "org/bad..name", "org/-name", "org/na me",
                                     "org/x.git"])
def test_malformed_repo_id_is_one_line_and_exit_2(capsys, monkeypatch, offline_publish, repo_id):
    hub = FakeHub()
    monkeypatch.setattr(publish_mod, "HfApi", hub)
    code = cli.main(["publish", "--repo-id", repo_id, "--configs", "sample"])
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and repo_id in err and "malformed repo id" in err
    assert offline_publish["calls"] == [] and hub.calls == []


def test_unknown_config_is_exit_2(tmp_path, capsys, offline_publish):
    code, _, err = run_cli(capsys, "--configs", "mixed,everything", "--local-dir", str(tmp_path / "out"))
    assert code == 2 and "everything" in err and len(err.strip().splitlines()) == 1
    assert offline_publish["calls"] == []


def http_error(status: int) -> HfHubHTTPError:
    import httpx2  # the HTTP library under huggingface_hub; only needed to build a response

    response = httpx2.Response(status, request=httpx2.Request("POST", "https://huggingface.co/api/repos/create"))
    return HfHubHTTPError(f"{status} Client Error\nmore detail on a second line", response=response)


@pytest.mark.parametrize("fail_on, error, expected", [
    ("create_repo", ConnectionError(f"cannot resolve huggingface.co (Authorization: Bearer {TOKEN})"),
     "cannot reach the Hugging Face Hub"),
    ("list_repo_tree", TimeoutError("read timed out"), "cannot reach the Hugging Face Hub"),
    ("create_commit", ConnectionError("connection reset by peer"), "cannot reach the Hugging Face Hub"),
    ("create_repo", http_error(401), "refused the token"),
    ("create_commit", http_error(500), "HTTP 500"),
])
def test_hub_failure_is_one_line_exit_2_and_leaves_nothing(tmp_path, capsys, monkeypatch, offline_publish,
                                                           fail_on, error, expected):
    hub = FakeHub(fail_on=fail_on, error=error)
    monkeypatch.setattr(publish_mod, "HfApi", hub)
    code, out, err = run_cli(capsys, "--configs", "mixed")
    assert code == 2
    lines = error_lines(err)
    assert len(lines) == 1 and REPO_ID in lines[0] and expected in lines[0]
    assert TOKEN not in out + err
    assert hub.commits == []
    if fail_on == "create_repo":  # the Hub is asked first, before anything is built
        assert offline_publish["calls"] == [] and [call[0] for call in hub.calls] == ["create_repo"]
    assert list(offline_publish["temp_area"].iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["temp-area"]
