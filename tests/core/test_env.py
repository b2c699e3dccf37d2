"""The environment record: what a row says about the software that measured it."""

from __future__ import annotations

import subprocess
import sys


def test_torchvision_version_is_the_modules_own_without_importing_it():
    code = ("import sys; from bench.core import env; v = env.torchvision_version(); "
            "assert 'torchvision' not in sys.modules, 'imported'; import torchvision; "
            "assert v == torchvision.__version__, (v, torchvision.__version__); print(v)")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip()
