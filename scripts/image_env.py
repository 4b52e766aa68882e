"""Make a Python environment that can import what the GPU image has, and nothing else.

    .venv/bin/python scripts/image_env.py /tmp/image-python

The GPU machines ship Python with torch, timm and a few more (IMAGE below, from
../shared/DESIGN.md), and not the project, asv, torch-tb-profiler, Ray or anything
else the development .venv holds. A command meant for the image is rehearsed in CI
under this environment, so that it cannot quietly come to depend on something the
image lacks. It costs a second and no disk: a venv without pip whose site-packages
holds a link to each entry of the development .venv's site-packages that the image's
packages or their dependencies provide, and nothing else: no other package, and none
of the `.pth` files (so not the editable install of this project). A module the image
lacks is then as absent as on the image (`importlib.util.find_spec` says None, an
optional import falls back), in every process started with its `bin/python` (the
runner's workers, pytest's subprocesses).

What it cannot imitate: the image's Python is 3.12 and its torch 2.11; here the
interpreter and the wheels are the development .venv's.
"""
from __future__ import annotations

import importlib.metadata as md
import re
import subprocess
import sys
import sysconfig
from pathlib import Path

#: distributions on the GPU image (DESIGN.md, "Running on a GPU machine"); their
#: dependencies are there too, since pip installed them
IMAGE = ("torch", "torchvision", "triton", "timm", "numpy", "pandas", "scipy", "matplotlib",
         "seaborn", "jinja2", "rich", "nvidia-ml-py", "tensorboard", "pytest")

def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def image_closure(names=IMAGE) -> set[str]:
    """The image's distributions and, recursively, what they require (extras left out)."""
    seen, todo = set(), [_norm(n) for n in names]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        try:
            dist = md.distribution(name)
        except md.PackageNotFoundError:
            continue  # not in this .venv: nothing of it to allow or block
        seen.add(name)
        for req in dist.requires or []:
            if "extra ==" in req.replace("'", '"').replace('extra=="', 'extra == "'):
                continue
            m = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", req)
            if m:
                todo.append(_norm(m.group(1)))
    return seen


def blocked_modules() -> set[str]:
    """Top-level modules installed here whose every distribution is off the image."""
    allowed = image_closure()
    return {mod for mod, dists in md.packages_distributions().items()
            if not any(_norm(d) in allowed for d in dists)}


def build(target: Path) -> Path:
    """Create the environment at `target`; returns its python."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", "--clear", str(target)],
                   check=True)
    python = target / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; "
                                "print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    here = Path(sysconfig.get_paths()["purelib"])
    blocked, allowed = blocked_modules(), image_closure()
    for entry in here.iterdir():
        name = entry.name
        if name.endswith(".pth") or name == "__pycache__":
            continue
        if name.endswith((".dist-info", ".egg-info")):
            dist = _norm(name.rsplit(".", 1)[0].split("-")[0])
            if dist not in allowed:
                continue
        elif name.split(".")[0] in blocked:
            continue
        (site / name).symlink_to(entry)
    return python


if __name__ == "__main__":
    if len(sys.argv) != 2 or sys.argv[1].startswith("-"):
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        raise SystemExit(2)
    print(build(Path(sys.argv[1])))
