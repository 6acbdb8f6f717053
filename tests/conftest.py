"""Shared fixtures: one smoke sweep per test session, reused by every test that reads its output."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory):
    """Generated datasets go to a fresh cache, so tests never depend on a user's ~/.cache."""
    os.environ["BSNB_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    yield


def bsnb(*args, timeout=600, **kw) -> subprocess.CompletedProcess:
    """Run the ``bsnb`` command line in a subprocess, as a user would."""
    return subprocess.run([sys.executable, "-m", "bsnb.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT, **kw)


@pytest.fixture(scope="session")
def smoke(tmp_path_factory):
    """The smoke profile run once into a temporary folder: (output folder, completed process)."""
    out = tmp_path_factory.mktemp("smoke")
    proc = bsnb("run", "smoke", "--out", out)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return out, proc
