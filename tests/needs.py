"""What a test needs from the machine: skip here, fail under CI."""

from __future__ import annotations

import os
import shutil

import pytest


def require_netns() -> None:
    """Skip (or, under CI, fail) when namespaces cannot be made here."""
    problem = None
    if os.geteuid() != 0:
        problem = "needs root for network namespaces"
    elif shutil.which("ip") is None:
        problem = "needs iproute2 (`ip`)"
    if problem:
        if os.environ.get("CI"):
            pytest.fail(problem)
        pytest.skip(problem)


def require_program(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        message = f"needs `{name}` (Debian package {package}; `make test` installs it)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path
