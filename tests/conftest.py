import sys
import tempfile
from pathlib import Path

import pytest

# tests/helpers.py is imported as a plain module by the test files.
sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture
def offline_publish(monkeypatch, tmp_path):
    """publish() with the tiny configs instead of the builder, the test card, a private temp area."""
    from publish_helpers import CARD, TOKEN, configs_for_tests  # imported here: only publishing tests need them

    from chexmix_dataset.hub import publish as publish_mod

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
