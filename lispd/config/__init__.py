"""The configuration file: one TOML file, checked as a whole before any use.

    from lispd.config import load, ConfigError
    try:
        config = load("/etc/lispd/lispd.toml")
    except ConfigError as error:
        print(error)            # one line per problem: file:line: key.path: message

`parse(text, source)` does the same for a string. The modules, in the order
a file goes through them: `positions` (key -> line), `reader` (converters
and declarative tables), `sections` (the format, section by section, with
each table's own checks), `checks` (rules between sections), `parse`.
"""

from lispd.config.model import (
    Config,
    DaemonConfig,
    DatabaseMapping,
    InstanceConfig,
    IPAddress,
    IPNetwork,
    MapServerConfig,
    MapServerPeerConfig,
    RlocConfig,
    SiteConfig,
    StaticMac,
    StaticMapping,
    UnderlayConfig,
    VxlanConfig,
    XtrConfig,
)
from lispd.config.parse import load, parse
from lispd.config.problems import ConfigError, Problem

__all__ = [
    "Config",
    "ConfigError",
    "DaemonConfig",
    "DatabaseMapping",
    "IPAddress",
    "IPNetwork",
    "InstanceConfig",
    "MapServerConfig",
    "MapServerPeerConfig",
    "Problem",
    "RlocConfig",
    "SiteConfig",
    "StaticMac",
    "StaticMapping",
    "UnderlayConfig",
    "VxlanConfig",
    "XtrConfig",
    "load",
    "parse",
]
