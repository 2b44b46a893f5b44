"""Logging set-up (lispd.log): JSON lines unless on a terminal, levels, and
no secret ever reaching the output."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import structlog

from lispd import log as log_setup


@pytest.fixture(autouse=True)
def _restore() -> Iterator[None]:
    yield
    structlog.reset_defaults()


def test_auto_is_json_lines_off_a_terminal(capsys: pytest.CaptureFixture[str]) -> None:
    log_setup.configure("auto", "info")
    structlog.get_logger("t").info("registered", peer="198.18.1.2", eids=["[0]192.0.2.0/26"])
    structlog.get_logger("t").debug("map_cache_installed", eid="[0]192.0.2.0/26")
    (line,) = capsys.readouterr().out.splitlines()
    event = json.loads(line)
    assert (event["event"], event["peer"], event["level"]) == ("registered", "198.18.1.2", "info")


def test_console_is_not_json(capsys: pytest.CaptureFixture[str]) -> None:
    log_setup.configure("console", "debug")
    structlog.get_logger("t").debug("map_cache_removed", eid="[0]192.0.2.0/26")
    out = capsys.readouterr().out
    assert "map_cache_removed" in out and not out.lstrip().startswith("{")


@pytest.mark.parametrize("field", sorted(log_setup.SECRET_FIELDS))
def test_a_field_named_like_a_secret_is_redacted(
    field: str, capsys: pytest.CaptureFixture[str]
) -> None:
    log_setup.configure("json", "debug")
    structlog.get_logger("t").warning("oops", **{field: "tenant-s3cret"})
    out = capsys.readouterr().out
    assert "tenant-s3cret" not in out
    assert json.loads(out)[field] == "<redacted>"
