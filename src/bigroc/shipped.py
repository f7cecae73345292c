"""Weights that ship inside the package (``bigroc/weights/NAME.safetensors`` + ``NAME.json``).

Configs name them ``shipped:NAME`` wherever a checkpoint path is accepted.
"""

from __future__ import annotations

import os
from pathlib import Path

PREFIX = "shipped:"


def shipped_weights(name: str) -> Path:
    """Path of the shipped file ``NAME.safetensors``; a clear error naming what exists if absent."""
    from importlib.resources import files

    folder = Path(str(files("bigroc") / "weights"))
    path = folder / f"{name}.safetensors"
    if not path.is_file():
        known = sorted(p.stem for p in folder.glob("*.safetensors"))
        raise FileNotFoundError(f"no shipped weights named {name!r}; shipped: {', '.join(known) or 'none'}")
    return path


def resolve(path: str | os.PathLike) -> Path:
    """``shipped:NAME`` -> the shipped file; any other path unchanged."""
    text = str(path)
    return shipped_weights(text.removeprefix(PREFIX)) if text.startswith(PREFIX) else Path(path)
