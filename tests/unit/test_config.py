"""The configuration loader: the format, every check, and where problems are reported."""

from __future__ import annotations

import re
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lispd.config import (
    Config,
    ConfigError,
    DaemonConfig,
    DatabaseMapping,
    InstanceConfig,
    Problem,
    RlocConfig,
    StaticMac,
    StaticMapping,
    UnderlayConfig,
    VxlanConfig,
    XtrConfig,
    load,
    parse,
)
from lispd.config.positions import key_lines
from lispd.config.reader import Key, Table, integer
from lispd.config.sections import MAX_FLOOD, MAX_SERVED_ITRS
from lispd.ffi import lib

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

# The smallest valid file; [xtr] comes last so that a test can append keys to
# it or further [[...]] sections after it.
BASE = """\
[underlay]
rlocs = ["198.18.1.10"]

[xtr]
eid-space = ["192.0.2.0/24"]
"""

DB = """
[[xtr.database-mapping]]
eid-prefix = "192.0.2.10/32"
rlocs = [{ address = "198.18.1.10" }]
"""

VXLAN = """
[[vxlan]]
device = "vxl100"
vni = 100
local = "198.18.1.10"
"""

FULL = """\
[daemon]
control-socket = "/run/lispd/test.sock"
log-format = "console"
log-level = "debug"
metrics-listen = "[2001:db8::1]:9100"
ready-timeout = 2.5

[underlay]
rlocs = ["198.18.1.10", "2001:2::10"]
mtu = 9000

[xtr]
tun = "lisp0"
eid-space = ["192.0.2.0/24", "2001:db8::/32"]
map-cache-limit = 5000
tun-mtu = 1400
proxy-etrs = ["198.18.0.7"]

[[xtr.database-mapping]]
eid-prefix = "192.0.2.10/32"
instance-id = 0
assign = true
rlocs = [{ address = "198.18.1.10", priority = 1, weight = 100 }]

[[xtr.database-mapping]]
eid-prefix = "198.51.100.0/24"
instance-id = 7
interface = "lan7"
rlocs = [{ address = "2001:2::10", priority = 2, weight = 30 }]

[[xtr.static-mapping]]
eid-prefix = "192.0.2.20/32"
rlocs = [{ address = "198.18.2.10", priority = 1, weight = 100 }]

[[xtr.static-mapping]]
eid-prefix = "192.0.2.128/25"
action = "native-forward"

[[xtr.instance]]
instance-id = 7
tun = "lisp7"
table = 107
eid-space = ["198.51.100.0/24"]
interfaces = ["lan7"]

[[vxlan]]
device = "vxl100"
vni = 100
local = "192.0.2.10"
flood = ["192.0.2.20"]
learning = false
ageing = 60
static = [{ mac = "02:00:00:00:00:02", vtep = "192.0.2.20" }]
mtu = 1400
"""


def problems_of(text: str) -> tuple[Problem, ...]:
    with pytest.raises(ConfigError) as error:
        parse(text, "test.toml")
    assert error.value.problems, "a ConfigError must carry its problems"
    return error.value.problems


def problem_at(text: str, path: str) -> Problem:
    problems = problems_of(text)
    found = [problem for problem in problems if problem.path == path]
    assert found, f"no problem at {path}; got {problems}"
    return found[0]


def line_with(text: str, marker: str) -> int:
    """The 1-based line of the only line of `text` that contains `marker`."""
    lines = [n for n, line in enumerate(text.splitlines(), 1) if marker in line]
    assert len(lines) == 1, (marker, lines)
    return lines[0]


# --- what a good file turns into ----------------------------------------------------


def test_full_file_builds_the_model() -> None:
    config = parse(FULL, "full.toml")
    assert config.source == "full.toml"
    assert config.daemon == DaemonConfig(
        control_socket=Path("/run/lispd/test.sock"),
        log_format="console",
        log_level="debug",
        metrics_listen=(IPv6Address("2001:db8::1"), 9100),
        ready_timeout=2.5,
    )
    assert config.underlay == UnderlayConfig(
        rlocs=(IPv4Address("198.18.1.10"), IPv6Address("2001:2::10")), mtu=9000
    )
    xtr = config.xtr
    assert xtr is not None
    assert xtr.eid_space == (IPv4Network("192.0.2.0/24"), IPv6Network("2001:db8::/32"))
    assert (xtr.tun, xtr.map_cache_limit, xtr.tun_mtu) == ("lisp0", 5000, 1400)
    assert xtr.database_mappings == (
        DatabaseMapping(
            eid_prefix=IPv4Network("192.0.2.10/32"),
            assign=True,
            rlocs=(RlocConfig(IPv4Address("198.18.1.10"), 1, 100),),
        ),
        DatabaseMapping(
            eid_prefix=IPv4Network("198.51.100.0/24"),
            instance_id=7,
            interface="lan7",
            rlocs=(RlocConfig(IPv6Address("2001:2::10"), 2, 30),),
        ),
    )
    assert xtr.static_mappings == (
        StaticMapping(
            eid_prefix=IPv4Network("192.0.2.20/32"),
            rlocs=(RlocConfig(IPv4Address("198.18.2.10")),),
        ),
        StaticMapping(eid_prefix=IPv4Network("192.0.2.128/25"), action="native-forward"),
    )
    assert xtr.instances == (
        InstanceConfig(
            instance_id=7,
            tun="lisp7",
            table=107,
            eid_space=(IPv4Network("198.51.100.0/24"),),
            interfaces=("lan7",),
        ),
    )
    assert config.vxlan == (
        VxlanConfig(
            device="vxl100",
            vni=100,
            local=IPv4Address("192.0.2.10"),
            flood=(IPv4Address("192.0.2.20"),),
            learning=False,
            ageing=60,
            static=(StaticMac(bytes.fromhex("020000000002"), IPv4Address("192.0.2.20")),),
            mtu=1400,
        ),
    )


def test_left_out_keys_take_the_documented_defaults() -> None:
    config = parse(BASE + DB)
    assert config.daemon == DaemonConfig()
    assert config.daemon.control_socket == Path("/run/lispd/control.sock")
    assert (config.daemon.log_format, config.daemon.log_level) == ("auto", "info")
    assert (config.daemon.metrics_listen, config.daemon.ready_timeout) == (None, 15.0)
    assert config.underlay.mtu == 1500
    assert config.xtr == XtrConfig(
        eid_space=(IPv4Network("192.0.2.0/24"),),
        database_mappings=(
            DatabaseMapping(
                eid_prefix=IPv4Network("192.0.2.10/32"),
                rlocs=(RlocConfig(IPv4Address("198.18.1.10")),),
            ),
        ),
    )
    assert config.xtr.tun == "lisp0"
    assert config.xtr.map_cache_limit == 100000
    assert config.xtr.tun_mtu is None
    assert config.vxlan == ()
    assert config.source == "<string>"
    mapping = config.xtr.database_mappings[0]
    assert (mapping.instance_id, mapping.assign, mapping.interface) == (0, False, None)
    assert (mapping.rlocs[0].priority, mapping.rlocs[0].weight) == (1, 100)


def test_vxlan_defaults_and_vxlan_without_xtr() -> None:
    config = parse('[underlay]\nrlocs = ["198.18.1.10"]\n' + VXLAN)
    assert config.xtr is None
    (vxlan,) = config.vxlan
    assert (vxlan.flood, vxlan.learning, vxlan.ageing, vxlan.static, vxlan.mtu) == (
        (), True, 300, (), None,
    )


def test_tun_for_and_assigned_eids() -> None:
    xtr = parse(FULL).xtr
    assert xtr is not None
    assert xtr.tun_for(0) == "lisp0"
    assert xtr.tun_for(7) == "lisp7"
    assert xtr.tun_for(8) is None
    assert xtr.assigned_eids() == {IPv4Address("192.0.2.10")}


@pytest.mark.parametrize("name", sorted(p.name for p in EXAMPLES.glob("*.toml")))
def test_examples_load(name: str) -> None:
    config = load(EXAMPLES / name)
    assert config.source == str(EXAMPLES / name)
    assert config.xtr is not None or config.map_server is not None


def test_own_xtr_example_assigns_its_eids_and_site_gateway_routes_to_a_lan() -> None:
    own = load(EXAMPLES / "own-xtr.toml").xtr
    gateway = load(EXAMPLES / "site-gateway.toml").xtr
    assert own is not None and gateway is not None
    assert own.database_mappings and all(m.assign for m in own.database_mappings)
    assert gateway.database_mappings
    assert all(m.interface and not m.assign for m in gateway.database_mappings)


def test_the_commented_out_vxlan_over_lisp_in_own_xtr_is_valid_too() -> None:
    text = (EXAMPLES / "own-xtr.toml").read_text()
    start = text.index("# [[vxlan]]")
    uncommented = text[:start] + re.sub(r"(?m)^# ?", "", text[start:])
    (vxlan,) = parse(uncommented).vxlan
    assert vxlan.local == IPv4Address("192.0.2.10")


def test_load_accepts_str_and_path(tmp_path: Path) -> None:
    file = tmp_path / "lispd.toml"
    file.write_text(BASE)
    assert load(file) == load(str(file))


# --- how problems are reported ---------------------------------------------------------


def test_error_string_is_one_line_per_problem_with_source_line_and_path() -> None:
    text = BASE + DB.replace("/32", "/33") + 'tun = "x/y"\n'
    with pytest.raises(ConfigError) as error:
        parse(text, "my.toml")
    lines = str(error.value).splitlines()
    assert len(lines) == len(error.value.problems) == 2
    prefix_line = line_with(text, "/33")
    assert f"my.toml:{prefix_line}: xtr.database-mapping[0].eid-prefix: " in lines[0]
    assert lines[1].startswith(f"my.toml:{len(text.splitlines())}: xtr.database-mapping[0].tun: ")


def test_problem_without_line_or_path() -> None:
    assert Problem("a.b", "bad").format("f.toml") == "f.toml: a.b: bad"
    assert Problem("", "bad", 3).format("f.toml") == "f.toml:3: bad"
    assert str(ConfigError([Problem("x", "y", None)], "s")) == "s: x: y"


def test_problems_are_in_file_order_and_unlocated_ones_last() -> None:
    error = ConfigError([Problem("b", "2", None), Problem("c", "3", 9), Problem("a", "1", 2)])
    assert [p.path for p in error.problems] == ["a", "c", "b"]


def test_toml_syntax_error_is_one_problem_on_its_line() -> None:
    text = BASE + "map-cache-limit = = 3\n"
    (problem,) = problems_of(text)
    assert problem.path == ""
    assert problem.line == line_with(text, "= =")
    assert problem.message.startswith("TOML syntax: ")
    assert "(at line" not in problem.message


def test_toml_error_at_end_of_document() -> None:
    (problem,) = problems_of(BASE + 'tun = "lisp0')
    assert problem.line is not None


def test_all_problems_are_found_in_one_pass() -> None:
    text = """\
[underlay]
rlocs = ["198.18.1.10", "198.18.1.300"]
mtu = 100

[xtr]
eid-space = ["192.0.2.1/24"]

[[xtr.database-mapping]]
eid-prefix = "192.0.2.10/32"
rlocs = [{ address = "198.18.1.10", weight = 256 }, { address = "198.18.1.10" }]

[[xtr.database-mapping]]
eid_prefix = "192.0.2.11/32"
rlocs = []

[[vxlan]]
device = "vxl100"
vni = true
local = "198.18.9.9"
"""
    paths = {problem.path for problem in problems_of(text)}
    assert paths == {
        "underlay.rlocs[1]",
        "underlay.mtu",
        "xtr.eid-space[0]",
        "xtr.database-mapping[0].rlocs[0].weight",
        "xtr.database-mapping[1].eid_prefix",
        "xtr.database-mapping[1].rlocs",
        "vxlan[0].vni",
    }


def test_checks_between_sections_still_run_when_another_section_is_broken() -> None:
    text = BASE + DB.replace("198.18.1.10", "198.18.9.9") + VXLAN.replace("vni = 100", 'vni = "x"')
    paths = {problem.path for problem in problems_of(text)}
    assert "xtr.database-mapping[0].rlocs[0].address" in paths  # needs [underlay] and [xtr]
    assert "vxlan[0].vni" in paths


def test_load_reports_an_unreadable_file(tmp_path: Path) -> None:
    missing = tmp_path / "absent.toml"
    with pytest.raises(ConfigError) as error:
        load(missing)
    assert str(error.value) == f"{missing}: cannot read: No such file or directory"


def test_load_reports_text_that_is_not_utf8(tmp_path: Path) -> None:
    file = tmp_path / "latin1.toml"
    file.write_bytes(BASE.encode() + b"# caf\xe9\n")
    with pytest.raises(ConfigError) as error:
        load(file)
    (problem,) = error.value.problems
    assert (problem.message, problem.line) == ("not UTF-8 text", len(BASE.splitlines()) + 1)


# --- lines: tomllib has none, so they are found by scanning the text ---------------------


def test_line_of_a_key_in_a_nested_array_of_tables() -> None:
    text = BASE + DB + """
[[xtr.database-mapping]]   # the second one
eid-prefix = "192.0.2.11/32"
rlocs = [
    { address = "198.18.1.10", priority = 1, weight = 100 },  # [not] a "header"

    { address = "198.18.1.10", weigth = 5 },
]
"""
    problem = problem_at(text, "xtr.database-mapping[1].rlocs[1].weigth")
    assert problem.message == "unknown key 'weigth'; did you mean 'weight'?"
    assert problem.line == line_with(text, "weigth")


def test_line_of_a_missing_key_is_its_table_header() -> None:
    text = BASE + DB + '\n[[xtr.database-mapping]]  # here\nassign = false\n'
    problem = problem_at(text, "xtr.database-mapping[1].eid-prefix")
    assert problem.line == line_with(text, "# here")


def test_key_lines_follow_strings_comments_and_nesting() -> None:
    text = "\n".join([
        'title = "a # not a comment ] nor a bracket"',  # 1
        'multi = """',
        "line = 3",
        '"""  # ends here',
        "[a]",  # 5
        '"quoted.key" = 1',
        "dotted.key = 2",
        "[[b]]",
        "x = 1",
        "[[b]]",  # 10
        "[[b.c]]",
        "y = 'x'",
        "[[b.c]]",
        "z = \'\'\'",
        "many = 15",  # 15
        "lines\'\'\'",
        "w = [ [1, 2],",
        "  [3] ]",
        'v = "escaped \\" quote"',
        "[c]  # 20",
    ])
    lines = key_lines(text)
    assert lines["title"] == 1
    assert lines["multi"] == 2
    assert "line" not in lines and "a.many" not in lines and "b[1].c[1].many" not in lines
    assert lines["a"] == 5
    assert lines["a.quoted.key"] == 6
    assert lines["a.dotted.key"] == 7
    assert lines["b[0].x"] == 9
    assert lines["b[1]"] == 10
    assert lines["b[1].c[0].y"] == 12
    assert lines["b[1].c[1]"] == 13
    assert lines["b[1].c[1].z"] == 14
    assert lines["b[1].c[1].w"] == 17
    assert lines["b[1].c[1].w[1][0]"] == 18
    assert lines["b[1].c[1].v"] == 19
    assert lines["c"] == 20


def test_key_lines_stops_quietly_on_what_it_cannot_follow() -> None:
    assert key_lines('a = 1\n= 2\nb = 3\n') == {"a": 1}


# --- every check ----------------------------------------------------------------------



def _static(mac: str) -> str:
    return f'static = [{{ mac = "{mac}", vtep = "198.18.2.10" }}]\n'


INSTANCE = """
[[xtr.instance]]
instance-id = {iid}
tun = "{tun}"
table = {table}
eid-space = ["192.0.2.0/24"]
interfaces = [{lans}]
"""


def _instance(iid: int, tun: str, table: int, lans: str = "") -> str:
    return INSTANCE.format(iid=iid, tun=tun, table=table, lans=lans)


def _metrics(value: str) -> str:
    return f'[daemon]\nmetrics-listen = "{value}"\n' + BASE


def _negative(prefix: str, action: str = "drop", extra: str = "") -> str:
    return f'[[xtr.static-mapping]]\neid-prefix = "{prefix}"\naction = "{action}"\n{extra}'


MAP_SERVER = '[map-server]\nlisten = ["198.18.1.10"]\n'


def _site(name: str, prefixes: str, extra: str = "") -> str:
    return f'[[map-server.site]]\nname = "{name}"\nkey = "k"\neid-prefixes = [{prefixes}]\n{extra}'


# (text, path of the problem, a fragment of its message)
CASES: dict[str, tuple[str, str, str]] = {
    # unknown keys, with the close match
    "kebab typo": (
        BASE + DB.replace("eid-prefix", "eid_prefix"),
        "xtr.database-mapping[0].eid_prefix",
        "unknown key 'eid_prefix'; did you mean 'eid-prefix'?",
    ),
    "a required key left out": (
        BASE + DB.replace('eid-prefix = "192.0.2.10/32"', ""),
        "xtr.database-mapping[0].eid-prefix",
        "required key is missing",
    ),
    "weight typo": (
        BASE + DB.replace('"198.18.1.10"', '"198.18.1.10", weigth = 5'),
        "xtr.database-mapping[0].rlocs[0].weigth",
        "did you mean 'weight'?",
    ),
    "section typo": (BASE + '[xrt]\ntun = "a"\n', "xrt", "unknown key 'xrt'; did you mean 'xtr'?"),
    "no close match": (BASE + "colour = 1\n", "xtr.colour", "unknown key 'colour'"),
    # types
    "bool is not an int": (BASE + VXLAN.replace("100\n", "true\n"), "vxlan[0].vni",
                           "expected an integer, got a boolean (true)"),
    "string is not an int": (BASE + DB.replace("rlocs", "instance-id = \"7\"\nrlocs"),
                             "xtr.database-mapping[0].instance-id",
                             "expected an integer, got a string ('7')"),
    "int is not a bool": (BASE + DB + "assign = 1\n", "xtr.database-mapping[0].assign",
                          "expected true or false, got an integer (1)"),
    "float is not an int": (BASE + "map-cache-limit = 1.5\n", "xtr.map-cache-limit",
                            "expected an integer, got a float (1.5)"),
    "string is not an array": (BASE.replace('["198.18.1.10"]', '"198.18.1.10"'),
                               "underlay.rlocs", "expected an array, got a string"),
    "table is not an array of tables": (
        BASE + DB.replace("[[xtr.database-mapping]]", "[xtr.database-mapping]"),
        "xtr.database-mapping",
        "write [[xtr.database-mapping]], not [xtr.database-mapping]",
    ),
    "array is not a table": ("daemon = [1]\n" + BASE,
                             "daemon", "expected a table, got an array"),
    "address is a string": (BASE + DB.replace('"198.18.1.10" }', "17 }"),
                            "xtr.database-mapping[0].rlocs[0].address",
                            "expected a string, got an integer (17)"),
    # choices
    "log format": ('[daemon]\nlog-format = "jsno"\n' + BASE, "daemon.log-format",
                   "'jsno' is not one of 'auto', 'json', 'console'; did you mean 'json'?"),
    "log level": ('[daemon]\nlog-level = "warn"\n' + BASE, "daemon.log-level",
                  "did you mean 'warning'?"),
    "relative socket": ('[daemon]\ncontrol-socket = "lispd.sock"\n' + BASE,
                        "daemon.control-socket", "must be an absolute path"),
    "negative action": (BASE + '[[xtr.static-mapping]]\neid-prefix = "192.0.2.0/25"\n'
                        'action = "forward"\n', "xtr.static-mapping[0].action",
                        "is not one of 'drop', 'native-forward', 'send-map-request'"),
    # ranges
    "instance-id too big": (BASE + DB + "instance-id = 16777216\n",
                            "xtr.database-mapping[0].instance-id",
                            "16777216 is out of range 0..16777215"),
    "vni too big": (BASE + VXLAN.replace("100\n", "16777216\n"), "vxlan[0].vni",
                    "out of range 0..16777215"),
    "vni negative": (BASE + VXLAN.replace("100\n", "-1\n"), "vxlan[0].vni",
                     "-1 is out of range 0..16777215"),
    "priority": (BASE + DB.replace('"198.18.1.10" }', '"198.18.1.10", priority = 256 }'),
                 "xtr.database-mapping[0].rlocs[0].priority", "256 is out of range 0..255"),
    "weight": (BASE + DB.replace('"198.18.1.10" }', '"198.18.1.10", weight = -1 }'),
               "xtr.database-mapping[0].rlocs[0].weight", "-1 is out of range 0..255"),
    "underlay mtu low": (BASE.replace("[xtr]", "mtu = 1279\n[xtr]"), "underlay.mtu",
                         "1279 is out of range 1280..65535"),
    "underlay mtu high": (BASE.replace("[xtr]", "mtu = 65536\n[xtr]"), "underlay.mtu",
                          "out of range 1280..65535"),
    "tun mtu": (BASE + "tun-mtu = 500\n", "xtr.tun-mtu", "500 is out of range 576..65535"),
    "tun mtu for IPv6": (BASE.replace('["192.0.2.0/24"]', '["192.0.2.0/24", "2001:db8::/32"]')
                         + "tun-mtu = 1000\n",
        "xtr.tun-mtu", "1000 is below 1280, the least IPv6 EIDs need"),
    "map-cache-limit": (BASE + "map-cache-limit = 0\n", "xtr.map-cache-limit",
                        "0 is too small: must be at least 1"),
    "ageing": (BASE + VXLAN + "ageing = 0\n", "vxlan[0].ageing", "out of range 1.."),
    "vxlan mtu": (BASE + VXLAN + "mtu = 70000\n", "vxlan[0].mtu", "out of range 576..65535"),
    # prefixes and addresses
    "host bits": (BASE + DB.replace("192.0.2.10/32", "192.0.2.1/24"),
                  "xtr.database-mapping[0].eid-prefix",
                  "192.0.2.1/24 has host bits set; did you mean 192.0.2.0/24?"),
    "host bits v6": (BASE.replace("192.0.2.0/24", "2001:db8::1/32"), "xtr.eid-space[0]",
                     "2001:db8::1/32 has host bits set; did you mean 2001:db8::/32?"),
    "no prefix length": (BASE.replace("192.0.2.0/24", "192.0.2.0"), "xtr.eid-space[0]",
                         "192.0.2.0 has no prefix length; write 192.0.2.0/32 for one host"),
    "not a prefix": (BASE.replace("192.0.2.0/24", "192.0.2.0/33"), "xtr.eid-space[0]",
                     "'192.0.2.0/33' is not an IPv4 or IPv6 prefix"),
    "not an address": (BASE.replace("198.18.1.10", "198.18.1.10/32"), "underlay.rlocs[0]",
                       "'198.18.1.10/32' is not an IPv4 or IPv6 address"),
    # names
    "empty name": (BASE + 'tun = ""\n', "xtr.tun", "must be 1..15 bytes long"),
    "long name": (BASE + 'tun = "lisp-0123456789a"\n', "xtr.tun", "must be 1..15 bytes long"),
    "slash in name": (BASE + 'tun = "lisp/0"\n', "xtr.tun", "not a valid interface name"),
    "space in name": (BASE + VXLAN.replace("vxl100", "vxl 100"), "vxlan[0].device",
                      "not a valid interface name"),
    "colon in name": (BASE + DB + 'interface = "eth0:1"\n', "xtr.database-mapping[0].interface",
                      "not a valid interface name"),
    # database mappings
    "rloc not ours": (BASE + DB.replace("198.18.1.10", "198.18.2.10"),
                      "xtr.database-mapping[0].rlocs[0].address",
                      "198.18.2.10 is not one of this node's underlay.rlocs (198.18.1.10)"),
    "no rlocs": (BASE + DB.replace('{ address = "198.18.1.10" }', ""),
                 "xtr.database-mapping[0].rlocs", "must not be empty"),
    "rloc twice": (BASE + DB.replace('{ address = "198.18.1.10" }',
                                     '{ address = "198.18.1.10" }, { address = "198.18.1.10" }'),
                   "xtr.database-mapping[0].rlocs[1].address",
                   "duplicate RLOC 198.18.1.10 (also at xtr.database-mapping[0].rlocs[0])"),
    "assign a /24": (BASE + DB.replace("192.0.2.10/32", "192.0.2.0/25") + "assign = true\n",
                     "xtr.database-mapping[0].assign",
                     "it needs a /32, not 192.0.2.0/25"),
    "assign a /64": (BASE + DB.replace("192.0.2.10/32", "2001:db8::/64") + "assign = true\n",
                     "xtr.database-mapping[0].assign", "it needs a /128, not 2001:db8::/64"),
    "assign and interface": (BASE + DB + 'assign = true\ninterface = "lan0"\n',
                             "xtr.database-mapping[0].interface", "not together with assign"),
    "undeclared instance (database)": (BASE + DB + "instance-id = 7\n",
                                       "xtr.database-mapping[0].instance-id",
                                       "instance-id 7 is not declared"),
    "undeclared instance (static)": (
        BASE + '[[xtr.static-mapping]]\neid-prefix = "192.0.2.0/25"\ninstance-id = 9\n',
        "xtr.static-mapping[0].instance-id", "instance-id 9 is not declared"),
    "duplicate prefix": (
        BASE + DB + '[[xtr.static-mapping]]\neid-prefix = "192.0.2.10/32"\n',
        "xtr.static-mapping[0].eid-prefix",
        "duplicate eid-prefix 192.0.2.10/32 in instance-id 0 (also at xtr.database-mapping[0])",
    ),
    "interface of another instance": (
        BASE + DB.replace("192.0.2.10/32", "192.0.2.0/25") + 'interface = "lan7"\n'
        + '[[xtr.instance]]\ninstance-id = 7\ntun = "lisp7"\ntable = 107\n'
        + 'eid-space = ["192.0.2.0/24"]\ninterfaces = ["lan7"]\n',
        "xtr.database-mapping[0].interface",
        "lan7 carries instance-id 7 (see [[xtr.instance]] interfaces), but this mapping is in "
        "instance-id 0",
    ),
    # static mappings
    "action with rlocs": (
        BASE + '[[xtr.static-mapping]]\neid-prefix = "192.0.2.0/25"\naction = "drop"\n'
        'rlocs = [{ address = "198.18.2.10" }]\n',
        "xtr.static-mapping[0].action", "only for a negative mapping (no rlocs)"),
    # instances
    "instance 0": (BASE + '[[xtr.instance]]\ninstance-id = 0\ntun = "lisp7"\ntable = 107\n'
                   'eid-space = ["192.0.2.0/24"]\n', "xtr.instance[0].instance-id",
                   "instance-id 0 is the default instance"),
    "reserved table": (BASE + '[[xtr.instance]]\ninstance-id = 7\ntun = "lisp7"\ntable = 254\n'
                       'eid-space = ["192.0.2.0/24"]\n', "xtr.instance[0].table",
                       "table 254 is Linux's own"),
    "table 0": (BASE + '[[xtr.instance]]\ninstance-id = 7\ntun = "lisp7"\ntable = 0\n'
                'eid-space = ["192.0.2.0/24"]\n', "xtr.instance[0].table",
                "0 is out of range 1..4294967295"),
    "table too big": (BASE + '[[xtr.instance]]\ninstance-id = 7\ntun = "lisp7"\n'
                      'table = 4294967296\neid-space = ["192.0.2.0/24"]\n',
                      "xtr.instance[0].table", "out of range 1..4294967295"),
    "instance eid-space missing": (BASE + '[[xtr.instance]]\ninstance-id = 7\ntun = "lisp7"\n'
                                   'table = 7\n', "xtr.instance[0].eid-space", "required"),
    # underlay, xtr, the file
    "no underlay": ("[xtr]\neid-space = [\"192.0.2.0/24\"]\n", "underlay",
                    "required section: this node's RLOCs"),
    "underlay without rlocs": (BASE.replace('rlocs = ["198.18.1.10"]', "mtu = 1500"),
                               "underlay.rlocs", "required: this node's own RLOC addresses"),
    "underlay rlocs empty": (BASE.replace('["198.18.1.10"]', "[]"), "underlay.rlocs",
                             "must not be empty"),
    "underlay rloc twice": (BASE.replace('["198.18.1.10"]', '["198.18.1.10", "198.18.1.10"]'),
                            "underlay.rlocs[1]",
                            "duplicate RLOC 198.18.1.10 (also at underlay.rlocs[0])"),
    "nothing to do": ('[underlay]\nrlocs = ["198.18.1.10"]\n', "",
                      "nothing to do: configure [xtr] (LISP), [[vxlan]] (VXLAN) and/or "
                      "[map-server]"),
    # the mapping system
    "map-server peer without key": (
        BASE + '[[xtr.map-server]]\naddress = "198.18.0.1"\n', "xtr.map-server[0].key",
        "required: the key shared"),
    "map-server peer empty key": (
        BASE + '[[xtr.map-server]]\naddress = "198.18.0.1"\nkey = ""\n',
        "xtr.map-server[0].key", "an empty key authenticates nothing"),
    "map-server peer key-id": (
        BASE + '[[xtr.map-server]]\naddress = "198.18.0.1"\nkey = "k"\nkey-id = "hmac-md5"\n',
        "xtr.map-server[0].key-id", "'hmac-md5' is not one of 'hmac-sha1', 'hmac-sha256'"),
    "map-server peer twice": (
        BASE + '[[xtr.map-server]]\naddress = "198.18.0.1"\nkey = "k"\n'
        '[[xtr.map-server]]\naddress = "198.18.0.1"\nkey = "j"\n',
        "xtr.map-server[1].address", "duplicate map-server 198.18.0.1"),
    "map-resolver of a missing family": (
        BASE.replace('eid-space', 'map-resolvers = ["2001:db8:ff00::1"]\neid-space'),
        "xtr.map-resolvers[0]", "this node has no IPv6 RLOC"),
    "probe interval negative": (
        BASE + "rloc-probe-interval = -1\n", "xtr.rloc-probe-interval",
        "-1 is out of range 0..3600 seconds"),
    "register interval zero": (
        BASE + "register-interval = 0\n", "xtr.register-interval", "out of range 1..3600"),
    "subscribe without resolvers": (
        BASE + "subscribe = true\n", "xtr.subscribe", "needs map-resolvers"),
    "listen not local": (
        BASE + '[map-server]\nlisten = ["198.18.0.9"]\n', "map-server.listen[0]",
        "198.18.0.9 is not one of this node's underlay.rlocs"),
    "site without prefixes": (
        BASE + '[map-server]\nlisten = ["198.18.1.10"]\n[[map-server.site]]\nname = "a"\n'
        'key = "k"\n', "map-server.site[0].eid-prefixes", "required: the EID prefixes"),
    "site twice": (
        BASE + '[map-server]\nlisten = ["198.18.1.10"]\n'
        '[[map-server.site]]\nname = "a"\nkey = "k"\neid-prefixes = ["192.0.2.0/25"]\n'
        '[[map-server.site]]\nname = "a"\nkey = "k"\neid-prefixes = ["192.0.2.128/25"]\n',
        "map-server.site[1].name", "duplicate site name a"),
    "site key typo": (
        BASE + '[map-server]\nlisten = ["198.18.1.10"]\n'
        '[[map-server.site]]\nname = "a"\nkye = "k"\neid-prefixes = ["192.0.2.0/25"]\n',
        "map-server.site[0].kye", "unknown key 'kye'; did you mean 'key'?"),
    "eid-space missing": (BASE.replace('eid-space = ["192.0.2.0/24"]', 'tun = "lisp0"'),
                          "xtr.eid-space", "required: the remote EID prefixes"),
    "eid-space empty": (BASE.replace('["192.0.2.0/24"]', "[]"), "xtr.eid-space",
                        "must not be empty"),
    "eid-space twice": (BASE.replace('["192.0.2.0/24"]', '["192.0.2.0/24", "192.0.2.0/24"]'),
                        "xtr.eid-space[1]", "duplicate prefix 192.0.2.0/24"),
    # vxlan
    "vni twice": (BASE + VXLAN + VXLAN.replace("vxl100", "vxl101"), "vxlan[1].vni",
                  "duplicate vni 100 (also at vxlan[0])"),
    "device is a tun": (BASE + VXLAN.replace("vxl100", "lisp0"), "vxlan[0].device",
                        "device name lisp0 is already used by xtr.tun"),
    "local is not ours": (BASE + VXLAN.replace("198.18.1.10", "198.18.1.11"), "vxlan[0].local",
                          "198.18.1.11 is neither one of underlay.rlocs nor an EID assigned"),
    "local is an EID not assigned": (BASE + DB + VXLAN.replace("198.18.1.10", "192.0.2.10"),
                                     "vxlan[0].local", "is neither one of underlay.rlocs"),
    "flood family": (BASE + VXLAN + 'flood = ["2001:2::20"]\n', "vxlan[0].flood[0]",
                     "IPv6 address 2001:2::20, but local (198.18.1.10) is IPv4"),
    "static vtep family": (BASE + VXLAN
                           + 'static = [{ mac = "02:00:00:00:00:02", vtep = "2001:2::20" }]\n',
                           "vxlan[0].static[0].vtep", "IPv6 address 2001:2::20, but local"),
    "flood to self": (BASE + VXLAN + 'flood = ["198.18.1.10"]\n', "vxlan[0].flood[0]",
                      "this VTEP's own address"),
    "flood over the fast path's room": (
        BASE + VXLAN + "flood = [" + ", ".join(f'"198.18.2.{n}"' for n in range(1, 66)) + "]\n",
        "vxlan[0].flood", "holds 65 items; at most 64 fit"),
    "statics over the map-cache limit": (
        BASE + "map-cache-limit = 1\n" + "".join(
            f'[[xtr.static-mapping]]\neid-prefix = "192.0.2.{n}/32"\naction = "drop"\n'
            for n in (1, 2)),
        "xtr.static-mapping", "2 static mappings do not fit in map-cache-limit 1"),
    "flood twice": (BASE + VXLAN + 'flood = ["198.18.2.10", "198.18.2.10"]\n',
                    "vxlan[0].flood[1]", "duplicate VTEP 198.18.2.10"),
    "mac with 5 octets": (BASE + VXLAN + _static("02:00:00:00:00"),
                          "vxlan[0].static[0].mac", "'02:00:00:00:00' is not a MAC address"),
    "mac with dashes": (BASE + VXLAN + _static("02-00-00-00-00-02"),
                        "vxlan[0].static[0].mac", "is not a MAC address (6 octets"),
    "multicast mac": (BASE + VXLAN + _static("01:00:5e:00:00:01"),
                      "vxlan[0].static[0].mac", "01:00:5e:00:00:01 is a multicast MAC"),
    "mac twice": (BASE + VXLAN + 'static = [{ mac = "02:00:00:00:00:02", vtep = "198.18.2.10" },'
                  ' { mac = "02:00:00:00:00:02", vtep = "198.18.2.11" }]\n',
                  "vxlan[0].static[1].mac", "duplicate mac 02:00:00:00:00:02"),
    "static vtep is local": (BASE + VXLAN + 'static = [{ mac = "02:00:00:00:00:02", '
                             'vtep = "198.18.1.10" }]\n', "vxlan[0].static[0].vtep",
                             "198.18.1.10 is this VTEP's own address (local)"),
    "device is a followed underlay interface": (
        BASE.replace('rlocs = ["198.18.1.10"]', 'interfaces = ["eth0"]')
        + VXLAN.replace("vxl100", "eth0"), "vxlan[0].device",
        "eth0 is an underlay interface (underlay.interfaces[0]); lispd creates this device"),
    # [daemon]
    "metrics-listen without port": (_metrics("127.0.0.1"), "daemon.metrics-listen",
                                    "127.0.0.1 has no port; write 127.0.0.1:PORT"),
    "metrics-listen IPv6 without port": (_metrics("[2001:db8::1]"), "daemon.metrics-listen",
                                         "[2001:db8::1] has no port; write [2001:db8::1]:PORT"),
    "metrics-listen IPv6 without brackets": (
        _metrics("2001:db8::1:9100"), "daemon.metrics-listen",
        "'2001:db8::1:9100': an IPv6 address goes in brackets, as in [2001:db8::1]:9100"),
    "metrics-listen IPv4 in brackets": (_metrics("[127.0.0.1]:9100"), "daemon.metrics-listen",
                                        "brackets are for an IPv6 address; write 127.0.0.1:PORT"),
    "metrics-listen name": (_metrics("localhost:9100"), "daemon.metrics-listen",
                            "'localhost' is not an IPv4 or IPv6 address"),
    "metrics-listen port 0": (_metrics("127.0.0.1:0"), "daemon.metrics-listen",
                              "port 0 is out of range 1..65535"),
    "metrics-listen port too big": (_metrics("[::1]:65536"), "daemon.metrics-listen",
                                    "port 65536 is out of range 1..65535"),
    "metrics-listen port not a number": (_metrics("127.0.0.1:http"), "daemon.metrics-listen",
                                         "port 'http' is not a number"),
    "metrics-listen empty": (_metrics(""), "daemon.metrics-listen",
                             "'' is not an IPv4 or IPv6 address"),
    "metrics-listen not a string": ('[daemon]\nmetrics-listen = 9100\n' + BASE,
                                    "daemon.metrics-listen",
                                    "expected a string, got an integer (9100)"),
    "offloads not a choice": ('[daemon]\noffloads = "maybe"\n' + BASE, "daemon.offloads",
                              "'maybe' is not one of 'auto', 'off'"),
    "offloads a boolean": ('[daemon]\noffloads = false\n' + BASE, "daemon.offloads",
                           "expected a string, got a boolean (false)"),
    "ready-timeout negative": ('[daemon]\nready-timeout = -1\n' + BASE, "daemon.ready-timeout",
                               "-1 is out of range 0..600 seconds"),
    "ready-timeout too long": ('[daemon]\nready-timeout = 601\n' + BASE, "daemon.ready-timeout",
                               "601 is out of range 0..600 seconds"),
    "ready-timeout a string": ('[daemon]\nready-timeout = "15s"\n' + BASE,
                               "daemon.ready-timeout",
                               "expected a number of seconds, got a string ('15s')"),
    # static mappings and what they refer to
    "static outside eid-space": (
        BASE + _negative("198.51.100.0/24"), "xtr.static-mapping[0].eid-prefix",
        "198.51.100.0/24 is outside the eid-space of instance-id 0 (192.0.2.0/24): nothing is "
        "routed to it through the TUN, so it would never be used"),
    "static outside the eid-space of its instance": (
        BASE + _instance(7, "lisp7", 107).replace("192.0.2.0/24", "203.0.113.0/24")
        + _negative("192.0.2.0/25", extra="instance-id = 7\n"),
        "xtr.static-mapping[0].eid-prefix",
        "192.0.2.0/25 is outside the eid-space of instance-id 7 (203.0.113.0/24)"),
    "static of the other family": (
        BASE + _negative("2001:db8::/64"), "xtr.static-mapping[0].eid-prefix",
        "2001:db8::/64 is outside the eid-space of instance-id 0"),
    "native-forward without proxy-etrs": (
        BASE + _negative("192.0.2.0/25", "native-forward"), "xtr.static-mapping[0].action",
        "native-forward sends through xtr.proxy-etrs and there are none: packets would be "
        "dropped"),
    "send-map-request without map-resolvers": (
        BASE + _negative("192.0.2.0/25", "send-map-request"), "xtr.static-mapping[0].action",
        "send-map-request needs xtr.map-resolvers to send Map-Requests to"),
    "static rlocs of a family this node lacks": (
        BASE + '[[xtr.static-mapping]]\neid-prefix = "192.0.2.0/25"\n'
        'rlocs = [{ address = "2001:2::1" }, { address = "2001:2::2" }]\n',
        "xtr.static-mapping[0].rlocs",
        "all its RLOCs are IPv6, but this node has no IPv6 RLOC"),
    "static rloc twice": (
        BASE + '[[xtr.static-mapping]]\neid-prefix = "192.0.2.0/25"\n'
        'rlocs = [{ address = "198.18.2.1" }, { address = "198.18.2.1", weight = 5 }]\n',
        "xtr.static-mapping[0].rlocs[1].address", "duplicate RLOC 198.18.2.1"),
    "static for a local prefix": (
        BASE + DB + '[[xtr.static-mapping]]\neid-prefix = "192.0.2.10/32"\n'
        'rlocs = [{ address = "198.18.2.1" }]\n', "xtr.static-mapping[0].eid-prefix",
        "duplicate eid-prefix 192.0.2.10/32 in instance-id 0 (also at xtr.database-mapping[0])"),
    "static priority": (
        BASE + '[[xtr.static-mapping]]\neid-prefix = "192.0.2.0/25"\n'
        'rlocs = [{ address = "198.18.2.1", priority = 300 }]\n',
        "xtr.static-mapping[0].rlocs[0].priority", "300 is out of range 0..255"),
    "static instance-id too big": (
        BASE + _negative("192.0.2.0/25", extra="instance-id = 16777216\n"),
        "xtr.static-mapping[0].instance-id", "16777216 is out of range 0..16777215"),
    # more ranges
    "instance instance-id too big": (
        BASE + _instance(16777216, "lisp7", 107), "xtr.instance[0].instance-id",
        "16777216 is out of range 0..16777215"),
    "xtr register interval too long": (BASE + "register-interval = 3601\n",
                                       "xtr.register-interval", "3601 is out of range 1..3600"),
    "probe interval too long": (BASE + "rloc-probe-interval = 3600.5\n",
                                "xtr.rloc-probe-interval", "3600.5 is out of range 0..3600"),
    "tun mtu too big": (BASE + "tun-mtu = 65536\n", "xtr.tun-mtu",
                        "65536 is out of range 576..65535"),
    "ageing too long": (BASE + VXLAN + "ageing = 2147483648\n", "vxlan[0].ageing",
                        "2147483648 is out of range 1..2147483647"),
    "map-server register interval": (
        BASE + MAP_SERVER + "register-interval = 0\n", "map-server.register-interval",
        "0 is out of range 1..3600"),
    # map-server sites
    "site instance-id too big": (
        BASE + MAP_SERVER + _site("a", '"192.0.2.0/24"', "instance-id = 16777216\n"),
        "map-server.site[0].instance-id", "16777216 is out of range 0..16777215"),
    "site empty key": (
        BASE + MAP_SERVER + _site("a", '"192.0.2.0/24"').replace('key = "k"', 'key = ""'),
        "map-server.site[0].key", "an empty key authenticates nothing"),
    "site empty name": (
        BASE + MAP_SERVER + _site(" ", '"192.0.2.0/24"'), "map-server.site[0].name",
        "a site needs a name"),
    "site prefix with host bits": (
        BASE + MAP_SERVER + _site("a", '"192.0.2.1/24"'), "map-server.site[0].eid-prefixes[0]",
        "192.0.2.1/24 has host bits set; did you mean 192.0.2.0/24?"),
    "site prefix twice in a site": (
        BASE + MAP_SERVER + _site("a", '"192.0.2.0/24", "192.0.2.0/24"'),
        "map-server.site[0].eid-prefixes[1]",
        "duplicate eid-prefix 192.0.2.0/24 in instance-id 0 "
        "(also at map-server.site[0].eid-prefixes[0])"),
    "site prefix in two sites": (
        BASE + MAP_SERVER + _site("a", '"192.0.2.0/25"')
        + _site("b", '"192.0.2.128/25", "192.0.2.0/25"'),
        "map-server.site[1].eid-prefixes[1]",
        "duplicate eid-prefix 192.0.2.0/25 in instance-id 0 "
        "(also at map-server.site[0].eid-prefixes[0])"),
}


def test_a_misspelt_required_key_is_one_problem_not_two() -> None:
    (problem,) = problems_of(BASE + DB.replace("eid-prefix", "eid_prefix"))
    assert problem.path == "xtr.database-mapping[0].eid_prefix"


@pytest.mark.parametrize(("text", "path", "message"), CASES.values(), ids=CASES.keys())
def test_check(text: str, path: str, message: str) -> None:
    assert message in problem_at(text, path).message


MAPPING_SYSTEM = """\
[underlay]
rlocs = ["198.18.0.1"]

[xtr]
eid-space = ["192.0.2.0/24"]
map-resolvers = ["198.18.0.1"]
proxy-etrs = ["198.18.0.7"]
rloc-probe-interval = 0.5

[[xtr.map-server]]
address = "198.18.0.1"
key = "s3cret"
key-id = "hmac-sha1"
proxy-reply = true

[map-server]
listen = ["198.18.0.1"]
register-interval = 20

[[map-server.site]]
name = "cloud-a"
key = "s3cret"
eid-prefixes = ["192.0.2.0/24", "2001:db8::/48"]
accept-more-specifics = true
"""


def test_mapping_system_keys() -> None:
    config = parse(MAPPING_SYSTEM)
    assert config.xtr is not None and config.map_server is not None
    assert config.xtr.map_resolvers == (IPv4Address("198.18.0.1"),)
    assert config.xtr.proxy_etrs == (IPv4Address("198.18.0.7"),)
    assert config.xtr.rloc_probe_interval == 0.5
    assert config.xtr.subscribe and config.xtr.solicit_map_request
    (peer,) = config.xtr.map_servers
    assert (peer.address, peer.key, peer.key_id, peer.proxy_reply) == (
        IPv4Address("198.18.0.1"), "s3cret", "hmac-sha1", True)
    assert config.map_server.register_interval == 20
    (site,) = config.map_server.sites
    assert site.name == "cloud-a" and site.accept_more_specifics and site.instance_id == 0
    assert site.eid_prefixes == (IPv4Network("192.0.2.0/24"), IPv6Network("2001:db8::/48"))


def test_keys_stay_out_of_repr() -> None:
    config = parse(MAPPING_SYSTEM)
    assert "s3cret" not in repr(config)


def test_followed_interfaces_and_mappings_on_the_nodes_rlocs() -> None:
    text = (
        '[underlay]\ninterfaces = ["ul0"]\n[xtr]\neid-space = ["192.0.2.0/24"]\n'
        'map-resolvers = ["198.18.0.1"]\n'
        '[[xtr.database-mapping]]\neid-prefix = "192.0.2.10/32"\nassign = true\n'
    )
    config = parse(text)
    assert config.underlay.interfaces == ("ul0",) and config.underlay.follows_interfaces
    assert config.xtr is not None and config.xtr.database_mappings[0].rlocs == ()


def test_map_server_alone_is_something_to_do() -> None:
    text = '[underlay]\nrlocs = ["198.18.0.1"]\n[map-server]\nlisten = ["198.18.0.1"]\n'
    assert parse(text).map_server is not None


@pytest.mark.parametrize(
    ("second", "path", "message"),
    [
        (_instance(7, "lisp8", 108), "xtr.instance[1].instance-id",
         "duplicate instance-id 7 (also at xtr.instance[0])"),
        (_instance(8, "lisp7", 108), "xtr.instance[1].tun",
         "device name lisp7 is already used by xtr.instance[0].tun"),
        (_instance(8, "lisp8", 107), "xtr.instance[1].table",
         "duplicate table 107 (also at xtr.instance[0])"),
        (_instance(8, "lisp8", 108, '"lan7"'), "xtr.instance[1].interfaces[0]",
         "lan7 already belongs to instance-id 7 (xtr.instance[0].interfaces[0])"),
        (_instance(8, "lan7", 108), "xtr.instance[1].tun",
         "lan7 is a LAN interface (xtr.instance[0].interfaces[0]); lispd creates this device"),
    ],
)
def test_instances_clash(second: str, path: str, message: str) -> None:
    text = BASE + _instance(7, "lisp7", 107, '"lan7"') + second
    assert problem_at(text, path).message == message


def test_instance_tun_equal_to_the_default_tun() -> None:
    text = BASE + _instance(7, "lisp0", 107)
    assert problem_at(text, "xtr.instance[0].tun").message == (
        "device name lisp0 is already used by xtr.tun"
    )


def test_what_is_allowed_is_not_reported() -> None:
    parse(
        BASE + DB.replace("/32", "/25").replace("10/", "0/")
        # the same prefix in another instance, an assigned EID used as VTEP
        + DB.replace("rlocs", "instance-id = 7\nrlocs")
        + _instance(7, "lisp7", 107)
        + '[[xtr.database-mapping]]\neid-prefix = "192.0.2.99/32"\nassign = true\n'
        + 'rlocs = [{ address = "198.18.1.10" }]\n'
        + VXLAN.replace("198.18.1.10", "192.0.2.99")
        # the same VTEP in flood and static, a negative mapping without action
        + 'flood = ["192.0.2.20"]\nstatic = [{ mac = "02:00:00:00:00:02", vtep = "192.0.2.20" }]\n'
        + '[[xtr.static-mapping]]\neid-prefix = "192.0.2.128/25"\n'
    )


def test_static_mappings_and_sites_that_are_allowed() -> None:
    parse(
        BASE.replace("[xtr]", "[xtr]\nproxy-etrs = [\"198.18.0.7\"]\n"
                     "map-resolvers = [\"198.18.0.1\"]")
        # covering the whole eid-space, or only part of it, is still used
        + _negative("0.0.0.0/0", "native-forward")
        + _negative("192.0.2.0/23", "send-map-request")
        # one usable locator is enough
        + '[[xtr.static-mapping]]\neid-prefix = "192.0.2.0/25"\n'
        + 'rlocs = [{ address = "2001:2::1" }, { address = "198.18.2.1" }]\n'
        # the same prefix in two instances, for two sites
        + _instance(7, "lisp7", 107)
        + _negative("192.0.2.0/25", extra="instance-id = 7\n")
        + MAP_SERVER
        + _site("a", '"192.0.2.0/24"')
        + _site("b", '"192.0.2.0/24"', "instance-id = 7\n")
        # a more specific prefix in another site: the longest match picks it
        + _site("c", '"192.0.2.0/25"')
    )


def test_log_format_auto_and_metrics_listen_forms() -> None:
    for text, expected in [
        ("127.0.0.1:9100", (IPv4Address("127.0.0.1"), 9100)),
        ("[::]:1", (IPv6Address("::"), 1)),
        ("[2001:db8::1]:65535", (IPv6Address("2001:db8::1"), 65535)),
    ]:
        daemon = parse(f'[daemon]\nlog-format = "auto"\nmetrics-listen = "{text}"\n' + BASE).daemon
        assert (daemon.log_format, daemon.metrics_listen) == ("auto", expected)


def test_offloads_auto_by_default_and_off_when_asked() -> None:
    assert parse(BASE).daemon.offloads == "auto"
    assert parse('[daemon]\noffloads = "auto"\n' + BASE).daemon.offloads == "auto"
    assert parse('[daemon]\noffloads = "off"\n' + BASE).daemon.offloads == "off"


def test_a_bad_offloads_is_one_line_naming_the_key() -> None:
    with pytest.raises(ConfigError) as raised:
        parse('[daemon]\noffloads = "maybe"\n' + BASE, "lispd.toml")
    assert str(raised.value) == ("lispd.toml:2: daemon.offloads: 'maybe' is not one of "
                                 "'auto', 'off'")


def test_vni_zero_and_ipv6_vtep_are_fine() -> None:
    text = '[underlay]\nrlocs = ["2001:2::10"]\n' + VXLAN.replace("100\n", "0\n").replace(
        "198.18.1.10", "2001:2::10") + 'flood = ["2001:2::20"]\n'
    assert parse(text).vxlan[0].vni == 0


def test_a_key_without_a_field_is_refused_when_declared() -> None:
    with pytest.raises(TypeError, match="weigth"):
        Table(RlocConfig, (Key("weigth", integer(0, 255)),))


# --- properties -------------------------------------------------------------------------

TOML_VALUES = st.one_of(
    st.integers(-(2**63), 2**63 - 1).map(str),
    st.booleans().map(lambda b: str(b).lower()),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.text(st.characters(codec="utf-8", exclude_characters='"\\'), max_size=20).map(
        lambda s: f'"{s}"'
    ),
    st.sampled_from(['[]', '[1, "a"]', '{}', '{ a = 1 }', '["192.0.2.0/24"]', '"198.18.1.10"']),
)


@given(st.integers(0, 10_000), TOML_VALUES)
def test_any_value_anywhere_is_a_clean_result(seed: int, value: str) -> None:
    """Put any TOML value in place of any value of a valid file: a Config or a ConfigError."""
    lines = FULL.splitlines()
    keyed = [n for n, line in enumerate(lines) if re.match(r"[a-z-]+ = ", line)]
    n = keyed[seed % len(keyed)]
    lines[n] = lines[n].split(" = ")[0] + " = " + value
    text = "\n".join(lines) + "\n"
    try:
        config = parse(text)
    except ConfigError as error:
        assert all(problem.line is not None for problem in error.problems if problem.path)
    else:
        assert isinstance(config, Config)


@given(st.lists(st.tuples(st.integers(0, 3), st.booleans()), min_size=1, max_size=6))
def test_lines_of_repeated_tables_with_padding(shapes: list[tuple[int, bool]]) -> None:
    """Blank lines, comments and inline or multi-line arrays do not throw the lines off."""
    text = BASE
    expected: dict[str, int] = {}
    for index, (padding, multiline) in enumerate(shapes):
        text += "\n# a comment [[xtr.database-mapping]]\n" * padding
        text += "[[xtr.database-mapping]]\n"
        text += f'eid-prefix = "192.0.2.{index}/32"\n'
        expected[f"xtr.database-mapping[{index}].eid-prefix"] = len(text.splitlines())
        if multiline:
            text += 'rlocs = [\n  { address = "198.18.1.10" },\n\n'
            text += '  { address = "198.18.1.11" },\n]\n'
        else:
            text += 'rlocs = [{ address = "198.18.1.10" }, { address = "198.18.1.11" }]\n'
        expected[f"xtr.database-mapping[{index}].rlocs[1].address"] = len(text.splitlines()) - (
            1 if multiline else 0
        )
    lines = key_lines(text)
    assert {path: lines[path] for path in expected} == expected
    # and the problems land there: 198.18.1.11 is not one of the underlay RLOCs
    reported = {p.path: p.line for p in problems_of(text)}
    assert {p: reported[p] for p in expected if p.endswith("address")} == {
        p: line for p, line in expected.items() if p.endswith("address")
    }


def test_the_flood_and_served_itr_limits_are_the_fast_paths() -> None:
    assert lib.LISPD_MAX_FLOOD == MAX_FLOOD
    assert lib.LISPD_MAX_SERVED_ITRS == MAX_SERVED_ITRS


def test_a_key_of_the_wrong_type_is_not_echoed() -> None:
    text = BASE + '[[xtr.map-server]]\naddress = "198.18.1.9"\nkey = 31415926535\n'
    with pytest.raises(ConfigError) as refused:
        parse(text)
    assert "expected a string, got an integer" in str(refused.value)
    assert "31415926535" not in str(refused.value)
