"""One-line error texts: the first line of a library's message, or the exception's type name."""

from __future__ import annotations

import json

import pytest

from chexmix_dataset.errors import ChexmixInputError, first_line


def test_first_line_keeps_only_the_first_line_of_a_multi_line_message() -> None:
    assert first_line(ValueError("  bad header\n  at byte 12\n")) == "bad header"
    assert first_line(ValueError("bad header\nat byte 12"), with_type=True) == "ValueError: bad header"


@pytest.mark.parametrize("exc", [OSError(), ValueError(""), RuntimeError("  \n ")])
def test_first_line_of_an_empty_message_is_the_type_name(exc: BaseException) -> None:
    assert first_line(exc) == type(exc).__name__
    assert first_line(exc, with_type=True) == type(exc).__name__


def test_first_line_of_a_real_library_error() -> None:
    with pytest.raises(json.JSONDecodeError) as caught:
        json.loads('{"a": 1,\n')
    assert first_line(caught.value).startswith("Expecting property name") and "\n" not in first_line(caught.value)


def test_input_errors_name_their_file() -> None:
    assert str(ChexmixInputError("not a NIfTI file", "/data/ct.nii.gz")) == "/data/ct.nii.gz: not a NIfTI file"
    assert str(ChexmixInputError("--size must be 8..4096")) == "--size must be 8..4096"
