"""Reading files that anyone may have made: no file can run code by being read.

- :func:`restricted_pickle_load`: a pickle whose globals must come from a short allow-list
  (the CIFAR-10 batches need three numpy names); anything else is refused by name.
- :func:`read_torch_file`: ``torch.load(weights_only=True)``, with one-line errors that
  tell a damaged or foreign file from a real pickle that holds Python objects beyond
  tensors (which only full unpickling could read, and which can run code). Full unpickling
  happens only where the caller passes ``allow_unsafe_pickle=True``.
"""

from __future__ import annotations

import pickle
import warnings
from pathlib import Path
from typing import Any, BinaryIO, Iterable


class RefusedPickle(pickle.UnpicklingError):
    """A pickle asked for a global outside the allow-list."""


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file: BinaryIO, allowed: frozenset[tuple[str, str]], what: str, **kwargs) -> None:
        super().__init__(file, **kwargs)
        self.allowed, self.what = allowed, what

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self.allowed:
            raise RefusedPickle(f"{self.what} asks to load {module}.{name}, which a data file never needs; "
                                "it was refused (the file may be crafted to run code)")
        return super().find_class(module, name)


def restricted_pickle_load(file: BinaryIO, allowed: Iterable[tuple[str, str]], *, what: str,
                           encoding: str = "ASCII") -> Any:
    """``pickle.load(file)`` admitting only the ``(module, name)`` globals in ``allowed``.

    Builtin containers and scalars (dicts, lists, tuples, str, bytes, ints, floats) need
    no global and always load. ``what`` names the file in the refusal.
    """
    return _RestrictedUnpickler(file, frozenset(allowed), what, encoding=encoding).load()


def _first_line_with(text: str, *needles: str) -> str:
    for line in text.splitlines():
        if any(n in line for n in needles):
            return line.strip()[:160]
    return ""


def read_torch_file(path: Path, *, what: str, allow_unsafe_pickle: bool = False,
                    unsafe_hint: str | None = None) -> Any:
    """The object in a ``torch.save`` file, read weights-only.

    Args:
        path: the file.
        what: what the file should be (``"classifier checkpoint"``), for the errors.
        allow_unsafe_pickle: when the file holds Python objects that a weights-only load
            refuses, read it with full unpickling (runs code from the file; warns).
        unsafe_hint: how to allow that, said in the refusal (None: there is no such option,
            so the refusal says the file must hold tensors only).

    Raises:
        ValueError: one line, naming the file: not a torch file, damaged, or holding
            objects beyond tensors.
    """
    import torch

    with open(path, "rb") as f:
        head = f.read(2)
    # torch.save writes a zip archive ("PK") or, in the legacy format, a raw pickle
    # (opcode PROTO, 0x80): anything else is not a torch file, whatever unpickling says.
    if head != b"PK" and head[:1] != b"\x80":
        raise ValueError(f"{path} is not a readable PyTorch checkpoint: it starts with {head!r}, not a torch.save "
                         f"zip archive or pickle (a {what} was expected)")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        refused = _first_line_with(str(err), "GLOBAL", "Unsupported global")
        if not refused:  # garbage that happens to start like a pickle
            raise ValueError(f"{path} is not a readable {what} (damaged, or another format): "
                             f"{_first_line_with(str(err), 'Unsupported', 'error') or 'unpickling failed'}") from None
        if not allow_unsafe_pickle:
            fix = (f"if you trust the file, {unsafe_hint}" if unsafe_hint
                   else "re-save its tensors alone (a state dict) to load it")
            raise ValueError(f"{path} holds Python objects beyond tensors, which only full unpickling reads and "
                             f"which can run code ({refused}); {fix}") from None
    except Exception as err:  # zip, EOF and format errors of a truncated or foreign file
        first = str(err).splitlines()[0][:160] if str(err) else ""
        raise ValueError(f"{path} is not a readable {what} (truncated, or another format?): "
                         f"{type(err).__name__}: {first}") from None
    warnings.warn(f"loading {path} with full unpickling (allow_unsafe_pickle): it can run code", stacklevel=3)
    try:
        import dill as pickle_module  # MadryLab saved its checkpoints with dill
    except ImportError:
        pickle_module = pickle
    return torch.load(path, map_location="cpu", weights_only=False, pickle_module=pickle_module)
