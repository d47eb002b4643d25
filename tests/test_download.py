"""Downloads for real: a stdlib HTTP server on 127.0.0.1 serves the sources' public files, in their
exact public layouts, under ``BASE/HOST/PATH``; ``chexmix build`` without ``--data-dir`` fetches
them through ``--mirror BASE`` with datasets' own DownloadManager (fsspec + aiohttp).
"""

from __future__ import annotations

import dataclasses
import hashlib
import http.server
import io
import json
import logging
import socket
import subprocess
import sys
import threading
import zipfile
from pathlib import Path
from urllib.parse import urlsplit

import datasets
import pytest
from public_layouts import make_covid19_ct_seg_zenodo, make_covid_chestxray

from chexmix_dataset.cli import main
from chexmix_dataset.dataset.builder import default_config, make_builder
from chexmix_dataset.errors import ChexmixInputError
from chexmix_dataset.sources import covid19_ct_seg, covid_chestxray
from chexmix_dataset.sources.download import RECORDS_FILE, download_records, fetch, mirrored_url, read_records

GITHUB_ARCHIVE_TOP = "covid-chestxray-dataset-master/"
ALL_URLS = {**covid_chestxray.URLS, **{f"ct_{k}": v for k, v in covid19_ct_seg.URLS.items()}}


def served_key(url: str) -> str:
    """Where a public URL sits under the mirror base: HOST/PATH?QUERY."""
    parts = urlsplit(url)
    return parts.netloc + parts.path + (f"?{parts.query}" if parts.query else "")


class Mirror:
    """A real HTTP server in a thread: ``files`` maps HOST/PATH?QUERY to bytes served under /pub/."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.drop: set[str] = set()        # keys whose body is cut off after half its bytes
        self.requests: list[tuple[str, str]] = []
        mirror = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_HEAD(self) -> None:
                self._answer(with_body=False)

            def do_GET(self) -> None:
                self._answer(with_body=True)

            def _answer(self, with_body: bool) -> None:
                key = self.path.removeprefix("/pub/")
                mirror.requests.append((self.command, key))
                body = mirror.files.get(key)
                if body is None or not self.path.startswith("/pub/"):
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if not with_body:
                    return
                if key in mirror.drop:
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.connection.shutdown(socket.SHUT_RDWR)  # as a proxy or server dying mid-transfer
                    self.close_connection = True
                    return
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}/pub"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def gets(self, url: str) -> int:
        return sum(1 for method, key in self.requests if method == "GET" and key == served_key(url))

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _zip(entries: list[tuple[str, bytes | None]], comment: bytes = b"") -> bytes:
    """A deflated zip; entries with None content are folder entries (as GitHub writes them)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in entries:
            if content is None:
                archive.writestr(zipfile.ZipInfo(name), b"")
            else:
                archive.writestr(name, content)
        archive.comment = comment
    return buffer.getvalue()


def github_archive(repo_root: Path) -> bytes:
    """ieee8023/covid-chestxray-dataset's GitHub archive: every file under covid-chestxray-dataset-master/,
    folder entries included, the commit id as the zip comment (as `git archive` writes it)."""
    entries: list[tuple[str, bytes | None]] = [(GITHUB_ARCHIVE_TOP, None)]
    for path in sorted(repo_root.rglob("*")):
        name = GITHUB_ARCHIVE_TOP + path.relative_to(repo_root).as_posix()
        entries.append((name + "/", None) if path.is_dir() else (name, path.read_bytes()))
    return _zip(entries, comment=b"5d9e7b6a1c0f4e2b8a3d9c7e6f5a4b3c2d1e0f9a")


def flat_zip(folder: Path) -> bytes:
    """A Zenodo zip: the folder's .nii.gz files at the top level, no folder entry."""
    return _zip([(path.name, path.read_bytes()) for path in sorted(folder.glob("*.nii.gz"))])


@pytest.fixture
def public(tmp_path) -> dict:
    """The five public files, built from tests/public_layouts.py, and the unpacked data-dir twin."""
    data_dir = tmp_path / "data"
    cohen = make_covid_chestxray(data_dir / "covid_chestxray")
    cohen_root = cohen.root
    # The GitHub repository holds metadata.csv and images/ (plus its own docs); CT2Xray's two VIA
    # files come from raw.githubusercontent.com, so they are not in the archive.
    repo = tmp_path / "repo"
    (repo / "images").mkdir(parents=True)
    (repo / "metadata.csv").write_bytes((cohen_root / "metadata.csv").read_bytes())
    for image in (cohen_root / "images").iterdir():
        (repo / "images" / image.name).write_bytes(image.read_bytes())
    (repo / "README.md").write_text("# COVID-19 image data collection\n")
    (repo / "SCHEMA.md").write_text("patientid: internal identifier\n")
    (repo / "annotations").mkdir()
    (repo / "annotations" / "README.md").write_text("Annotations\n")
    cases = make_covid19_ct_seg_zenodo(data_dir / "covid19_ct_seg")
    bodies = {
        "dataset": github_archive(repo),
        "via_train": (cohen_root / "xrays_only" / "train" / "via_region_data.json").read_bytes(),
        "via_val": (cohen_root / "mixed" / "val" / "via_region_data.json").read_bytes(),
        "ct_ct": flat_zip(data_dir / "covid19_ct_seg" / "COVID-19-CT-Seg_20cases"),
        "ct_infection_mask": flat_zip(data_dir / "covid19_ct_seg" / "Infection_Mask"),
    }
    return {"data_dir": data_dir, "cohen": cohen, "cases": cases,
            "bodies": {ALL_URLS[key]: body for key, body in bodies.items()}}


@pytest.fixture
def mirror(public):
    server = Mirror()
    server.files = {served_key(url): body for url, body in public["bodies"].items()}
    yield server
    server.close()


@pytest.fixture(autouse=True)
def no_env_mirror(monkeypatch):
    monkeypatch.delenv("CHEXMIX_MIRROR", raising=False)


@pytest.fixture(autouse=True)
def online_to_loopback(monkeypatch):
    """CI runs offline (HF_HUB_OFFLINE=1, .ci/run); these tests reach only the 127.0.0.1 server."""
    import huggingface_hub.constants

    for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
        if hasattr(datasets.config, name):
            monkeypatch.setattr(datasets.config, name, False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)


def build(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["build", *args, "--size", "64"])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def small(config: str):
    """The projector `chexmix build --config CONFIG --size 64` uses."""
    return dataclasses.replace(default_config(config).projector, size_px=64)


def rows_by_id(builder) -> dict[str, dict]:
    dataset = builder.as_dataset()
    return {row["image_id"]: row for split in dataset.values() for row in split}


def comparable(row: dict) -> dict:
    row = dict(row)
    row["image"] = row["image"].tobytes()
    return row


# --- the mirror rewrite ----------------------------------------------------------------------


def test_mirrored_url_keeps_host_path_and_query(monkeypatch):
    url = "https://zenodo.org/records/3757476/files/Infection_Mask.zip?download=1"
    assert mirrored_url(url, "http://proxy.lan/cache/") == \
        "http://proxy.lan/cache/zenodo.org/records/3757476/files/Infection_Mask.zip?download=1"
    assert mirrored_url(covid_chestxray.URLS["via_val"], "https://m.example") == \
        "https://m.example/raw.githubusercontent.com/rvignav/CT2Xray/master/mixed/val/via_region_data.json"
    assert mirrored_url(url, None) == url
    monkeypatch.setenv("CHEXMIX_MIRROR", "http://env.lan")
    assert mirrored_url(url, None).startswith("http://env.lan/zenodo.org/records/")
    assert mirrored_url(url, "") == url  # an explicit empty mirror overrides the environment
    with pytest.raises(ChexmixInputError, match="http:// or https://"):
        mirrored_url(url, "proxy.lan/cache")


def test_the_mirror_does_not_name_the_cache(tmp_path):
    plain = make_builder("mixed", cache_dir=tmp_path).cache_dir
    assert make_builder("mixed", cache_dir=tmp_path, mirror="http://proxy.lan/m").cache_dir == plain
    assert make_builder("mixed", cache_dir=tmp_path, seed=1).cache_dir != plain


# --- builds through the real download manager ---------------------------------------------------


def test_build_mixed_downloads_every_source_records_its_sha256_and_reruns_offline(tmp_path, public, mirror, capsys):
    cache = tmp_path / "cache"
    code, out, err = build(capsys, "--config", "mixed", "--mirror", mirror.base, "--cache-dir", str(cache))
    assert code == 0, err
    for url, body in public["bodies"].items():
        assert mirror.gets(url) == 1
        line = (f"download {'covid_chestxray' if 'zenodo' not in url else 'covid19_ct_seg'} {url} "
                f"sha256={hashlib.sha256(body).hexdigest()} bytes={len(body)} via {mirror.base}/{served_key(url)}")
        assert line in out.splitlines()
    records = json.loads((cache / "downloads" / RECORDS_FILE).read_text())
    assert set(records) == set(public["bodies"])

    builder = make_builder("mixed", cache_dir=cache, mirror=mirror.base, projector=small("mixed"))
    builder.download_and_prepare()
    rows = rows_by_id(builder)
    kept = {f"cxr-covid-chestxray-dataset-{Path(name).stem}" for name in public["cohen"].kept}
    cts = {f"ct-{case}" for case in public["cases"]}
    assert {i for i in rows if i.startswith("cxr-")} <= kept
    assert {i for i in rows if i.startswith("ct-")} <= cts
    assert any(i.startswith("ct-") for i in rows) and any(i.startswith("cxr-") for i in rows)
    assert [r["sha256"] for r in download_records(builder)] == \
        [hashlib.sha256(public["bodies"][u]).hexdigest() for u in ALL_URLS.values()]

    # Rerun through a mirror that is down, and with a new seed so that rows are generated again:
    # the recorded downloads are reused, nothing is requested, whatever the mirror says.
    requests_before = len(mirror.requests)
    dead = Mirror()
    dead_base = dead.base
    dead.close()
    code, out, err = build(capsys, "--config", "mixed", "--mirror", dead_base, "--cache-dir", str(cache),
                           "--seed", "1")
    assert code == 0, err
    assert len(mirror.requests) == requests_before
    assert f"sha256={hashlib.sha256(public['bodies'][covid_chestxray.URLS['dataset']]).hexdigest()}" in out


@pytest.mark.parametrize("config, source", [("xrays_only", "covid_chestxray"), ("ct_projections", "covid19_ct_seg")])
def test_downloaded_rows_equal_the_rows_of_the_unpacked_layout(tmp_path, public, mirror, config, source):
    projector = small(config)
    downloaded = make_builder(config, cache_dir=tmp_path / "cache_dl", mirror=mirror.base, projector=projector)
    downloaded.download_and_prepare()
    local = make_builder(config, public["data_dir"] / source, cache_dir=tmp_path / "cache_local", projector=projector)
    local.download_and_prepare()
    got, expected = rows_by_id(downloaded), rows_by_id(local)
    assert sorted(got) == sorted(expected)
    if config == "xrays_only":
        assert sorted(got) == sorted(f"cxr-covid-chestxray-dataset-{Path(n).stem}" for n in public["cohen"].kept)
    else:
        assert sorted(got) == sorted(f"ct-{case}" for case in public["cases"])
    for image_id in got:
        assert comparable(got[image_id]) == comparable(expected[image_id])
    assert download_records(local) == []


# --- failures: one line naming the URL, exit 2, nothing a rerun would trust --------------------------


def _truncate(body: bytes) -> bytes:
    return body[: len(body) * 2 // 3]


def _damage(body: bytes) -> bytes:
    """Flip bytes inside the first member's compressed data; the central directory stays intact."""
    with zipfile.ZipFile(io.BytesIO(body)) as archive:
        first = archive.infolist()[0]
    start = first.header_offset + 30 + len(first.filename.encode()) + len(first.extra)
    middle = start + first.compress_size // 2
    return body[:middle] + bytes(b ^ 0xFF for b in body[middle:middle + 64]) + body[middle + 64:]


CT_ZIP = covid19_ct_seg.URLS["ct"]
MASK_ZIP = covid19_ct_seg.URLS["infection_mask"]


@pytest.mark.parametrize("fault, url, words", [
    ("404", MASK_ZIP, "the server answered HTTP 404"),
    ("truncated", CT_ZIP, "is not a complete zip archive"),
    ("damaged", CT_ZIP, "damaged zip archive"),
    ("drop", CT_ZIP, "the connection closed before the whole file arrived"),
    ("truncated_json", covid_chestxray.URLS["via_train"], "is not valid JSON"),
])
def test_a_broken_download_is_one_line_and_a_rerun_fetches_it_again(tmp_path, public, mirror, capsys, fault, url, words):
    config = "xrays_only" if fault == "truncated_json" else "ct_projections"
    key, good = served_key(url), public["bodies"][url]
    if fault == "404":
        del mirror.files[key]
    elif fault == "drop":
        mirror.drop.add(key)
    else:
        mirror.files[key] = {"truncated": _truncate, "damaged": _damage, "truncated_json": _truncate}[fault](good)
    argv = ("--config", config, "--mirror", mirror.base, "--cache-dir", str(tmp_path / "cache"))
    code, out, err = build(capsys, *argv)
    assert code == 2
    errors = [line for line in err.splitlines() if line.startswith("chexmix build: error:")]
    assert len(errors) == 1 and err.strip().splitlines()[-1] == errors[0], err
    assert f"{mirror.base}/{key}" in errors[0] and words in errors[0]
    assert "Traceback" not in err and "offline" not in errors[0] and "without network" not in errors[0]
    records_file = tmp_path / "cache" / "downloads" / RECORDS_FILE
    assert url not in (json.loads(records_file.read_text()) if records_file.exists() else {})

    # The server is fixed: the rerun downloads the file again and builds every row.
    mirror.files[key], mirror.drop = good, set()
    gets_before = mirror.gets(url)
    code, out, err = build(capsys, *argv)
    assert code == 0, err
    assert mirror.gets(url) == gets_before + 1
    assert f"sha256={hashlib.sha256(good).hexdigest()} bytes={len(good)}" in out
    expected = len(public["cohen"].kept) if config == "xrays_only" else len(public["cases"])
    produced = int(out.split("train:")[1].split(" images")[0]) + int(out.split("test:")[1].split(" images")[0])
    assert produced == expected


def test_an_unreachable_mirror_names_the_url_and_suggests_data_dir(tmp_path, public, capsys):
    dead = Mirror()
    base = dead.base
    dead.close()
    code, out, err = build(capsys, "--config", "ct_projections", "--mirror", base, "--cache-dir", str(tmp_path))
    assert code == 2
    line = err.strip().splitlines()[-1]
    assert line.startswith("chexmix build: error:") and f"{base}/{served_key(CT_ZIP)}" in line
    assert "cannot reach 127.0.0.1" in line and "--data-dir" in line


def test_offline_mode_is_worded_as_offline(tmp_path, public, mirror, capsys, monkeypatch):
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    code, out, err = build(capsys, "--config", "ct_projections", "--mirror", mirror.base, "--cache-dir", str(tmp_path))
    assert code == 2
    line = err.strip().splitlines()[-1]
    assert f"{mirror.base}/{served_key(CT_ZIP)}" in line and "offline mode is on" in line and "--data-dir" in line
    assert [method for method, _ in mirror.requests] == []


def test_a_new_download_with_other_bytes_updates_its_record_and_says_so(tmp_path, public, mirror, caplog):
    dl_manager = datasets.DownloadManager(download_config=datasets.DownloadConfig(cache_dir=str(tmp_path),
                                                                                  use_etag=False))
    url = covid_chestxray.URLS["via_val"]
    first = fetch(dl_manager, url, "covid_chestxray", "layout", mirror.base)
    assert fetch(dl_manager, url, "covid_chestxray", "layout", mirror.base) == first
    assert mirror.gets(url) == 1  # the record is reused, nothing is asked again
    first.unlink()  # the cached file is gone: the next build downloads again, and gets other bytes
    changed = public["bodies"][url].replace(b"12442", b"12443")
    mirror.files[served_key(url)] = changed
    with caplog.at_level(logging.WARNING, logger="chexmix_dataset.sources.download"):
        fetch(dl_manager, url, "covid_chestxray", "layout", mirror.base)
    assert mirror.gets(url) == 2
    record = read_records(tmp_path)[url]
    assert (record["sha256"], record["bytes"]) == (hashlib.sha256(changed).hexdigest(), len(changed))
    assert hashlib.sha256(public["bodies"][url]).hexdigest() in caplog.text and record["sha256"] in caplog.text


def test_an_interrupted_extraction_is_not_trusted(tmp_path, public, mirror, capsys):
    argv = ["--config", "ct_projections", "--mirror", mirror.base, "--cache-dir", str(tmp_path / "cache")]
    code, out, err = build(capsys, *argv)
    assert code == 0, err
    # As a job killed while datasets extracts: a member missing, another cut short.
    extracted = sorted((tmp_path / "cache" / "downloads" / "extracted").glob("*/coronacases_002.nii.gz"))
    assert len(extracted) == 2  # CTs and infection masks, each archive in its own folder
    extracted[0].unlink()
    cut = extracted[1]
    cut.write_bytes(cut.read_bytes()[:100])
    requests_before = len(mirror.requests)
    code, out, err = build(capsys, *argv, "--seed", "1")  # a new cache entry: the rows are made again
    assert code == 0, err
    assert "skipped items: 0" in out and len(mirror.requests) == requests_before
    produced = int(out.split("train:")[1].split(" images")[0]) + int(out.split("test:")[1].split(" images")[0])
    assert produced == len(public["cases"])


def test_missing_http_support_says_what_to_install_not_that_we_are_offline(tmp_path, mirror):
    # A fresh install without fsspec's HTTP extra: aiohttp cannot be imported.
    script = ("import sys; sys.modules['aiohttp'] = None\n"
              "from chexmix_dataset.cli import main\n"
              f"sys.exit(main({['build', '--config', 'ct_projections', '--mirror', mirror.base, '--cache-dir', str(tmp_path)]!r}))")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                          cwd=Path(__file__).resolve().parents[1])
    assert done.returncode == 2, done.stderr
    line = done.stderr.strip().splitlines()[-1]
    assert line.startswith("chexmix build: error:") and f"{mirror.base}/{served_key(CT_ZIP)}" in line
    assert "pip install 'fsspec[http]'" in line
    assert "without network" not in line and "offline" not in line
    assert mirror.requests == []
