"""The console scripts are installed and answer --version."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.parametrize("script", ["opseal", "opseal-server"])
def test_console_script_reports_its_version(script):
    """Each console script of pyproject.toml is installed beside the interpreter and runs."""
    path = Path(sys.executable).parent / script
    assert path.exists() or shutil.which(script)
    result = subprocess.run([str(path), "--version"], capture_output=True, text=True, check=True)
    assert result.stdout.startswith("opseal 0.")
