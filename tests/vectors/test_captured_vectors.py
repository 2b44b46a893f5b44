"""Byte-exact vectors captured from independent implementations (index.json
says where each came from)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.vectors.captures import check_capture

HERE = Path(__file__).parent
INDEX = json.loads((HERE / "index.json").read_text())


@pytest.mark.parametrize("vector", INDEX, ids=[v["file"] for v in INDEX])
def test_capture_decodes_reencodes_and_verifies(vector: dict[str, object]) -> None:
    seen = check_capture(HERE / str(vector["file"]), str(vector["key"]).encode())
    for kind in vector["expect"]:  # type: ignore[attr-defined]
        assert seen[kind] > 0, f"no {kind} in {vector['file']}: {dict(seen)}"
