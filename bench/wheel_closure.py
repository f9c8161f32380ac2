"""Download the wheels a GPU machine needs for ``bench/gpu_check.sh``, with every dependency, for another
Python than this one, leaving out the packages a CUDA image ships with its torch (torch, triton, nvidia-*).

``pip download`` of a whole requirement set would also pull torch (a multi-GB CUDA build), and pip has no
"everything but" switch. So the closure is walked here: each wheel is fetched with ``--no-deps``, its
``Requires-Dist`` lines are read from the wheel itself and evaluated for the target (Python version, Linux,
x86-64), and what they name is fetched in turn. The first version fetched of a name is the one kept (one
version per name, or ``pip install --no-index`` stops).

Used by ``bench/gpu_wheels.sh``; run from the repository root:
    python -m bench.wheel_closure --python-version 3.12 --dest bench/wheels textual==8.2.8 ...
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

try:
    from packaging.markers import Marker
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name, parse_wheel_filename
except ImportError:  # pip always carries a copy
    from pip._vendor.packaging.markers import Marker  # type: ignore[no-redef]
    from pip._vendor.packaging.requirements import Requirement  # type: ignore[no-redef]
    from pip._vendor.packaging.utils import canonicalize_name, parse_wheel_filename  # type: ignore[no-redef]

# What a CUDA build of torch brings with it: the GPU machine has these, and they are gigabytes.
SKIP_NAMES = {"torch", "triton"}
SKIP_PREFIXES = ("nvidia-", "cuda-")
KEEP = {"nvidia-ml-py"}  # NVML's Python binding: small, and the GPU panel needs it
PLATFORMS = ["manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_24_x86_64", "manylinux_2_17_x86_64",
             "manylinux2014_x86_64", "manylinux1_x86_64", "linux_x86_64", "any"]


def skipped(name: str) -> bool:
    return name not in KEEP and (name in SKIP_NAMES or name.startswith(SKIP_PREFIXES))


def wheel_requirements(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as zf:
        meta = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        message = Parser().parsestr(zf.read(meta).decode())
    return message.get_all("Requires-Dist") or []


def fetch(requirement: str, dest: Path, python_version: str) -> Path:
    """One wheel, no dependencies; returns its path."""
    before = set(dest.glob("*.whl"))
    abi = "cp" + python_version.replace(".", "")
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
           "--python-version", python_version, "--implementation", "cp", "--abi", abi, "--abi", "abi3",
           "--abi", "none", *[a for p in PLATFORMS for a in ("--platform", p)], "-d", str(dest), requirement]
    subprocess.run(cmd, check=True)
    new = set(dest.glob("*.whl")) - before
    if new:
        return new.pop()
    name = canonicalize_name(Requirement(requirement).name)  # already there from an earlier run
    return next(w for w in dest.glob("*.whl") if canonicalize_name(parse_wheel_filename(w.name)[0]) == name)


def closure(roots: list[str], dest: Path, python_version: str) -> list[Path]:
    env = {"python_version": python_version, "python_full_version": python_version + ".0", "sys_platform": "linux",
           "platform_system": "Linux", "platform_machine": "x86_64", "os_name": "posix",
           "implementation_name": "cpython", "platform_python_implementation": "CPython", "extra": ""}
    dest.mkdir(parents=True, exist_ok=True)
    todo, seen, wheels = [Requirement(r) for r in roots], set(), []
    while todo:
        req = todo.pop(0)
        name = canonicalize_name(req.name)
        if name in seen or skipped(name):
            continue
        seen.add(name)
        wheel = fetch(str(req).split(";")[0].replace(f"[{','.join(sorted(req.extras))}]", ""), dest, python_version)
        wheels.append(wheel)
        for line in wheel_requirements(wheel):
            dep = Requirement(line)
            extras = req.extras or {""}
            if dep.marker is None or any(Marker(str(dep.marker)).evaluate(env | {"extra": e}) for e in extras):
                todo.append(dep)
    return wheels


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--python-version", default="3.12")
    p.add_argument("--dest", type=Path, default=Path("bench/wheels"))
    p.add_argument("requirements", nargs="+")
    args = p.parse_args()
    wheels = closure(args.requirements, args.dest, args.python_version)
    size = sum(w.stat().st_size for w in wheels) / 2**20
    print(f"{len(wheels)} wheels, {size:.1f} MiB, in {args.dest}")


if __name__ == "__main__":
    main()
