"""scripts/uv_args.py: pip's configuration handed to uv, so both install the same."""
import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("uv_args", ROOT / "scripts" / "uv_args.py")
uv_args = importlib.util.module_from_spec(spec)
spec.loader.exec_module(uv_args)


def test_indexes_links_and_constraints_become_uv_flags():
    args = uv_args.uv_args({"find-links": "/opt/wheels", "constraint": "/etc/c.txt",
                            "extra-index-url": "file:///a/simple file:///b/simple",
                            "cert": "/etc/ssl/certs/ca.crt", "default-timeout": "180",
                            "trusted-host": "mirror.local"})
    assert args == ["--index-strategy", "unsafe-best-match", "--find-links", "/opt/wheels",
                    "--constraint", "/etc/c.txt", "--extra-index-url", "file:///a/simple",
                    "--extra-index-url", "file:///b/simple", "--allow-insecure-host",
                    "mirror.local"]


def test_a_setting_uv_cannot_follow_sends_the_install_to_pip():
    with pytest.raises(SystemExit, match="'prefer-binary'"):
        uv_args.uv_args({"prefer-binary": "true"})


def test_pips_own_list_is_read_with_variables_winning(monkeypatch):
    listed = ("global.find-links='/opt/wheels'\n:env:.find-links='/srv/wheels'\n"
              "global.extra-index-url='file:///opt/pypi/simple'\n")
    monkeypatch.setattr(uv_args.subprocess, "run",
                        lambda *a, **k: type("Done", (), {"stdout": listed})())
    assert uv_args.pip_settings() == {"find-links": "/srv/wheels",
                                      "extra-index-url": "file:///opt/pypi/simple"}
