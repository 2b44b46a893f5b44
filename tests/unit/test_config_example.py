"""The annotated example configuration: every key of the format, and valid.

A key added to the format without an entry in systemd/lispd.toml.example
fails here. (Every file of examples/ loading is tested in test_config.)
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from lispd.config import load, parse
from lispd.config.parse import ROOT

EXAMPLE = Path(__file__).resolve().parents[2] / "systemd" / "lispd.toml.example"


def document_paths(table: dict[str, Any], prefix: str = "") -> set[str]:
    """The key paths a parsed TOML document uses, spelt as `Table.paths` spells them."""
    found: set[str] = set()
    for name, value in table.items():
        path = f"{prefix}.{name}" if prefix else name
        if isinstance(value, dict):
            found |= document_paths(value, path)
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            for item in value:
                found |= document_paths(item, f"{path}[]")
        else:
            found.add(path)
    return found


def test_the_schema_lists_nested_keys_and_no_tables() -> None:
    paths = ROOT.paths()
    assert len(paths) == len(set(paths))
    assert "daemon.metrics-listen" in paths
    assert "xtr.database-mapping[].rlocs[].weight" in paths
    assert "vxlan[].static[].mac" in paths
    assert "map-server.site[].accept-more-specifics" in paths
    assert not {"daemon", "xtr", "xtr.database-mapping[]", "vxlan[]"} & set(paths)


def test_every_key_of_the_format_is_in_the_example() -> None:
    document = tomllib.loads(EXAMPLE.read_text())
    assert set(ROOT.paths()) - document_paths(document) == set()


def test_the_example_is_valid() -> None:
    config = load(EXAMPLE)
    assert config.xtr is not None and config.map_server is not None and config.vxlan


def test_the_example_holds_every_address_to_its_fixed_rlocs() -> None:
    # With followed interfaces check-config cannot judge which addresses are
    # this node's; without them every such check runs, and still passes.
    text = EXAMPLE.read_text()
    line = 'interfaces = ["eth0"]\n'
    assert text.count(line) == 1
    config = parse(text.replace(line, ""))
    assert not config.underlay.follows_interfaces
