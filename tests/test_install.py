"""Install facts a new user depends on: the Python floor is the same everywhere, and
the setup script refuses an older interpreter with one clear line."""
import subprocess
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_python_floor_is_311_everywhere():
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert meta["project"]["requires-python"] == ">=3.11"  # config.py reads TOML with tomllib
    assert meta["tool"]["ruff"]["target-version"] == "py311"
    assert "Python 3.11+" in (ROOT / "README.md").read_text()


def test_setup_refuses_an_older_python(tmp_path):
    fake = tmp_path / "python3.10"
    fake.write_text('#!/bin/sh\n[ "$1" = --version ] && echo "Python 3.10.14" && exit 0\nexit 1\n')
    fake.chmod(0o755)
    out = subprocess.run(["bash", str(ROOT / "scripts" / "setup.sh")], capture_output=True,
                         text=True, env={"PATH": "/usr/bin:/bin", "PYTHON": str(fake)},
                         timeout=60)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "needs Python 3.11" in lines[0] and "3.10.14" in lines[0]
