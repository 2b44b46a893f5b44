"""`lispd check-config FILE`, as an operator sees it: what it prints, and its exit status.

Each broken file comes with the exact lines expected on stderr: the file,
the line in it, the key path and the message. ({file} stands for the path
given on the command line.)
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from lispd.cli import main

GOOD = """\
[underlay]
rlocs = ["198.18.1.10"]

[xtr]
eid-space = ["192.0.2.0/24"]

[[xtr.database-mapping]]
eid-prefix = "192.0.2.10/32"
assign = true
"""

# name: (file text, the lines expected on stderr)
BROKEN: dict[str, tuple[str, list[str]]] = {
    "unknown key (a typo)": (
        GOOD.replace("eid-space", "eid-spcae"),
        ["{file}:5: xtr.eid-spcae: unknown key 'eid-spcae'; did you mean 'eid-space'?"],
    ),
    "unknown section": (
        GOOD + "\n[map-sever]\nlisten = []\n",
        ["{file}:11: map-sever: unknown key 'map-sever'; did you mean 'map-server'?"],
    ),
    "type": (
        GOOD.replace("assign = true", 'assign = "yes"'),
        ["{file}:9: xtr.database-mapping[0].assign: expected true or false, "
         "got a string ('yes')"],
    ),
    "prefix with host bits": (
        GOOD.replace("192.0.2.0/24", "192.0.2.1/24"),
        ["{file}:5: xtr.eid-space[0]: 192.0.2.1/24 has host bits set; "
         "did you mean 192.0.2.0/24?"],
    ),
    "prefix without length": (
        GOOD.replace("192.0.2.10/32", "192.0.2.10"),
        ["{file}:8: xtr.database-mapping[0].eid-prefix: 192.0.2.10 has no prefix length; "
         "write 192.0.2.10/32 for one host"],
    ),
    "address": (
        GOOD.replace("198.18.1.10", "198.18.1.300"),
        ["{file}:2: underlay.rlocs[0]: '198.18.1.300' is not an IPv4 or IPv6 address"],
    ),
    "range": (
        GOOD + 'rlocs = [{ address = "198.18.1.10", priority = 256 }]\n',
        ["{file}:10: xtr.database-mapping[0].rlocs[0].priority: 256 is out of range 0..255"],
    ),
    "RLOC that is not local": (
        GOOD + 'rlocs = [{ address = "198.18.1.11" }]\n',
        ["{file}:10: xtr.database-mapping[0].rlocs[0].address: 198.18.1.11 is not one of "
         "this node's underlay.rlocs (198.18.1.10)"],
    ),
    "duplicate prefix": (
        GOOD + '\n[[xtr.static-mapping]]\neid-prefix = "192.0.2.10/32"\n'
        'rlocs = [{ address = "198.18.2.10" }]\n',
        ["{file}:12: xtr.static-mapping[0].eid-prefix: duplicate eid-prefix 192.0.2.10/32 "
         "in instance-id 0 (also at xtr.database-mapping[0])"],
    ),
    "instance-id without a TUN": (
        GOOD + "instance-id = 7\n",
        ["{file}:10: xtr.database-mapping[0].instance-id: instance-id 7 is not declared: "
         "add an [[xtr.instance]] for it"],
    ),
    "VNI used twice": (
        GOOD + '\n[[vxlan]]\ndevice = "vxl1"\nvni = 100\nlocal = "192.0.2.10"\n'
        '\n[[vxlan]]\ndevice = "vxl2"\nvni = 100\nlocal = "198.18.1.10"\n',
        ["{file}:18: vxlan[1].vni: duplicate vni 100 (also at vxlan[0])"],
    ),
    "key-id that does not exist": (
        GOOD.replace("\n[[xtr.database-mapping]]",
                     'map-resolvers = ["198.18.0.1"]\n\n[[xtr.map-server]]\n'
                     'address = "198.18.0.1"\nkey = "k"\nkey-id = "hmac-sha512"\n'
                     "\n[[xtr.database-mapping]]"),
        ["{file}:11: xtr.map-server[0].key-id: 'hmac-sha512' is not one of 'hmac-sha1', "
         "'hmac-sha256'; did you mean 'hmac-sha1'?"],
    ),
    "empty key": (
        GOOD.replace("\n[[xtr.database-mapping]]",
                     '\n[[xtr.map-server]]\naddress = "198.18.0.1"\nkey = ""\n'
                     "\n[[xtr.database-mapping]]"),
        ["{file}:9: xtr.map-server[0].key: an empty key authenticates nothing"],
    ),
    "required key left out: the line of its table": (
        GOOD.replace('eid-prefix = "192.0.2.10/32"\n', ""),
        ["{file}:7: xtr.database-mapping[0].eid-prefix: required key is missing"],
    ),
    "metrics-listen without a port": (
        '[daemon]\nmetrics-listen = "[2001:db8::1]"\n\n' + GOOD,
        ["{file}:2: daemon.metrics-listen: [2001:db8::1] has no port; "
         "write [2001:db8::1]:PORT"],
    ),
    "map-server listening on an address that is not local": (
        GOOD + '\n[map-server]\nlisten = ["198.18.1.11"]\n',
        ["{file}:12: map-server.listen[0]: 198.18.1.11 is not one of this node's "
         "underlay.rlocs (198.18.1.10)"],
    ),
    "site prefix in two sites": (
        GOOD + '\n[map-server]\nlisten = ["198.18.1.10"]\n'
        '\n[[map-server.site]]\nname = "a"\nkey = "k"\neid-prefixes = ["192.0.2.0/24"]\n'
        '\n[[map-server.site]]\nname = "b"\nkey = "j"\neid-prefixes = ["192.0.2.0/24"]\n',
        ["{file}:22: map-server.site[1].eid-prefixes[0]: duplicate eid-prefix 192.0.2.0/24 "
         "in instance-id 0 (also at map-server.site[0].eid-prefixes[0])"],
    ),
    "TOML syntax": (
        GOOD.replace("assign = true", "assign = yes"),
        ["{file}:9: TOML syntax: Invalid value"],
    ),
    "nothing to do: the file as a whole": (
        '[underlay]\nrlocs = ["198.18.1.10"]\n',
        ["{file}: nothing to do: configure [xtr] (LISP), [[vxlan]] (VXLAN) and/or [map-server]"],
    ),
}


def check(path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str], list[str]]:
    """Exit status, stdout lines and stderr lines of `lispd check-config path`."""
    status = main(["check-config", str(path)])
    out, err = capsys.readouterr()
    return status, out.splitlines(), err.splitlines()


@pytest.mark.parametrize(("text", "expected"), BROKEN.values(), ids=BROKEN.keys())
def test_a_broken_file(text: str, expected: list[str], tmp_path: Path,
                       capsys: pytest.CaptureFixture[str]) -> None:
    file = tmp_path / "lispd.toml"
    file.write_text(text)
    assert check(file, capsys) == (1, [], [line.format(file=file) for line in expected])


def test_a_good_file_is_ok(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    file = tmp_path / "lispd.toml"
    file.write_text(GOOD)
    assert check(file, capsys) == (0, [f"{file}: ok"], [])


def test_several_problems_one_line_each_in_file_order(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = tmp_path / "lispd.toml"
    file.write_text(
        "[daemon]\n"                                                   # 1
        'log-format = "text"\n'                                        # 2
        "[underlay]\n"                                                 # 3
        'rlocs = ["198.18.1.10"]\n'                                    # 4
        "mtu = 1000\n"                                                 # 5
        "[xtr]\n"                                                      # 6
        'eid-space = ["192.0.2.0/24"]\n'                               # 7
        "[[xtr.static-mapping]]\n"                                     # 8
        'eid-prefix = "198.51.100.0/24"\n'                             # 9
        'rlocs = [{ address = "198.18.2.10", weigth = 5 }]\n'          # 10
        "[[vxlan]]\n"                                                  # 11
        'device = "vxl1"\n'                                            # 12
        "vni = 16777216\n"                                             # 13
        'local = "198.18.1.10"\n'                                      # 14
    )
    status, out, err = check(file, capsys)
    assert (status, out) == (1, [])
    assert err == [
        f"{file}:2: daemon.log-format: 'text' is not one of 'auto', 'json', 'console'",
        f"{file}:5: underlay.mtu: 1000 is out of range 1280..65535",
        f"{file}:9: xtr.static-mapping[0].eid-prefix: 198.51.100.0/24 is outside the "
        "eid-space of instance-id 0 (192.0.2.0/24): nothing is routed to it through the TUN, "
        "so it would never be used",
        f"{file}:10: xtr.static-mapping[0].rlocs[0].weigth: unknown key 'weigth'; "
        "did you mean 'weight'?",
        f"{file}:13: vxlan[0].vni: 16777216 is out of range 0..16777215",
    ]


def test_a_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    file = tmp_path / "absent.toml"
    assert check(file, capsys) == (1, [], [f"{file}: cannot read: No such file or directory"])


def test_a_file_that_cannot_be_read(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # A directory: permissions would not stop root, who runs the tests in CI.
    assert check(tmp_path, capsys) == (1, [], [f"{tmp_path}: cannot read: Is a directory"])


def test_a_file_that_is_not_utf8(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    file = tmp_path / "lispd.toml"
    file.write_bytes(GOOD.encode() + b"# caf\xe9\n")
    assert check(file, capsys) == (1, [], [f"{file}:10: not UTF-8 text"])


def test_the_command_itself(tmp_path: Path) -> None:
    """Through `python -m lispd`, as systemd's ExecStartPre runs it."""
    good, bad = tmp_path / "good.toml", tmp_path / "bad.toml"
    good.write_text(GOOD)
    bad.write_text(GOOD.replace("198.18.1.10", "198.18.1.300"))
    for file, status, out, err in [
        (good, 0, f"{good}: ok\n", ""),
        (bad, 1, "", f"{bad}:2: underlay.rlocs[0]: '198.18.1.300' is not an IPv4 or IPv6 "
                     "address\n"),
    ]:
        done = subprocess.run([sys.executable, "-m", "lispd", "check-config", str(file)],
                              capture_output=True, text=True, check=False, timeout=60)
        assert (done.returncode, done.stdout, done.stderr) == (status, out, err)
