"""Reading files that anyone may have made: no file can run code by being read.

- :func:`restricted_pickle_load`: a pickle whose globals must come from a short allow-list
  (the CIFAR-10 batches need three numpy names); anything else is refused by name.
- :func:`read_torch_file`: ``torch.load(weights_only=True)``, with one-line errors that
  tell a damaged or foreign file from a real pickle that holds Python objects beyond
  tensors (which only full unpickling could read, and which can run code). Full unpickling
  happens only where the caller passes ``allow_unsafe_pickle=True``. Before torch reads a
  byte, what the file declares is bounded by its size: a zip checkpoint's members must be
  stored (torch.save never compresses) and sum to no more than the file; a legacy one's
  pickle is walked, allocating nothing, and its storages must fit in the bytes after it.
- :func:`regular_file`: a user's path must name a regular file; a FIFO or a device is
  refused from ``stat`` alone (opening a FIFO blocks until someone writes to it).
- :func:`read_json_object`, :func:`check_float_weights`: sidecars and weights, checked.

Every refusal is one line, ``<file>: <what is wrong>; <how to fix>``, raised as ValueError.
"""

from __future__ import annotations

import json
import os
import pickle
import stat
import warnings
import zipfile
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterable, Mapping

_KINDS = {stat.S_IFIFO: "a named pipe (FIFO)", stat.S_IFCHR: "a character device", stat.S_IFBLK: "a block device",
          stat.S_IFSOCK: "a socket", stat.S_IFDIR: "a directory", stat.S_IFLNK: "a symbolic link"}


def regular_file(path: str | os.PathLike, what: str) -> Path:
    """``path`` as a Path when it names a regular file (symlinks followed), never opened here.

    Refused (ValueError, one line naming the path and ``what`` was expected): a missing
    path, a FIFO, a device, a socket or a directory.
    """
    path = Path(path)
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise ValueError(f"{path}: no such file; give the path of the {what}") from None
    except OSError as err:
        raise ValueError(f"{path}: cannot be read ({err.strerror}); give the path of a readable {what}") from None
    if not stat.S_ISREG(mode):
        kind = _KINDS.get(stat.S_IFMT(mode), "not a file")
        raise ValueError(f"{path}: {kind}, not a regular file; give the path of the {what} itself (a regular file)")
    return path


def zip_symlink(zf: zipfile.ZipFile) -> str | None:
    """The name of the first member whose external attributes say it is a symbolic link."""
    return next((i.filename for i in zf.infolist() if stat.S_ISLNK(i.external_attr >> 16)), None)


def read_json_object(path: Path, what: str) -> dict:
    """The JSON object in ``path``; refused by name when it is not a regular file, not UTF-8,
    not JSON, or not an object (``{...}``)."""
    path = regular_file(path, what)
    try:
        value = json.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: byte {err.start} is not UTF-8 text; save the {what} as UTF-8 JSON") from None
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err}); fix the {what} or delete it") from None
    if not isinstance(value, dict):
        raise ValueError(f"{path}: holds a JSON {type(value).__name__}, not a JSON object ({{...}}); "
                         f"fix the {what} or delete it")
    return value


def check_float_weights(state: Mapping[str, Any], path: str | os.PathLike, *,
                        integer_ok: Callable[[str], bool]) -> None:
    """Refuse a tensor of ``state`` that is not floating-point (int, bool, complex): loading
    would cast it silently and the network would compute nothing useful. ``integer_ok(key)``
    names the entries that are integer by nature (BatchNorm's ``num_batches_tracked``)."""
    import torch

    for key, value in state.items():
        if isinstance(value, torch.Tensor) and not value.is_floating_point() and not integer_ok(key):
            dtype = str(value.dtype).removeprefix("torch.")
            raise ValueError(f"{path}: weight '{key}' is {dtype}, not a floating-point tensor; the file was "
                             "written wrongly or is not a network's weights: export the float weights again")


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


RESAVE = "re-save it with torch.save (a state dict of tensors)"
_METHODS = {zipfile.ZIP_DEFLATED: "deflate", zipfile.ZIP_BZIP2: "bzip2", zipfile.ZIP_LZMA: "lzma"}


def _check_zip_checkpoint(path: Path, what: str) -> None:
    """Refuse a zip checkpoint whose members torch would unpack beyond the file's size:
    compressed members (torch.save stores them; deflate can declare GiB in KB), members
    that declare more bytes than the file holds, and symbolic-link members."""
    size = path.stat().st_size
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
            link = zip_symlink(zf)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as err:
        raise ValueError(f"{path} is not a readable {what} (a damaged zip archive: {err}); {RESAVE}") from None
    if link is not None:
        raise ValueError(f"{path}: member {link} is a symbolic link, which torch.save never writes; {RESAVE}")
    packed = next((i for i in infos if i.compress_type != zipfile.ZIP_STORED), None)
    if packed is not None:
        raise ValueError(f"{path}: member {packed.filename} is compressed ({_METHODS.get(packed.compress_type, packed.compress_type)}), which "
                         f"torch.save never does and which can unpack to far more than the file; {RESAVE}")
    declared = sum(i.file_size for i in infos)
    if declared > size:
        big = max(infos, key=lambda i: i.file_size)
        raise ValueError(f"{path}: its members declare {declared} bytes ({big.filename}: {big.file_size}) but the "
                         f"file holds {size}: it is damaged or crafted; {RESAVE}")


class _Stub:
    """Stands in for every global a walked pickle names: nothing is imported or run."""

    def __new__(cls, *args: Any, **kwargs: Any) -> "_Stub":
        return object.__new__(cls)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __call__(self, *args: Any, **kwargs: Any) -> "_Stub":
        return _Stub()

    def __setstate__(self, state: Any) -> None:
        pass

    def __setitem__(self, key: Any, value: Any) -> None:
        pass

    def append(self, value: Any) -> None:
        pass

    def extend(self, values: Any) -> None:
        pass

    def add(self, value: Any) -> None:
        pass


class _StorageType:
    def __init__(self, name: str) -> None:
        self.name = name


class _Bounded:
    """A file whose reads never ask for more than the bytes left: a pickle that declares a
    4 GiB string allocates what the file holds, then fails as truncated."""

    def __init__(self, f: BinaryIO, size: int) -> None:
        self.f, self.size = f, size

    def read(self, n: int = -1) -> bytes:
        left = max(0, self.size - self.f.tell())
        return self.f.read(left if n is None or n < 0 else min(n, left))

    def readline(self) -> bytes:
        return self.f.readline()


class _StorageWalker(pickle._Unpickler):  # the pure-Python unpickler: every read goes through _Bounded
    """Walks a legacy torch pickle, recording each storage's (key, bytes) from its persistent
    id ``('storage', type, key, location, numel, ...)`` without allocating it."""

    dispatch = dict(pickle._Unpickler.dispatch)

    def __init__(self, file: _Bounded) -> None:
        super().__init__(file, encoding="latin1")  # Python 2 str never fails to decode
        self.file, self.storages = file, {}

    def find_class(self, module: str, name: str) -> Any:
        return _StorageType(name) if module == "torch" and name.endswith("Storage") else _Stub

    def persistent_load(self, pid: Any) -> Any:
        if isinstance(pid, tuple) and len(pid) >= 5 and pid[0] in ("storage", b"storage"):
            storage_type, key, numel = pid[1], pid[2], pid[4]
            if not isinstance(storage_type, _StorageType) or type(numel) is not int or numel < 0:
                raise pickle.UnpicklingError(f"a malformed storage record {pid[:5]!r}")
            self.storages[key] = numel * _element_size(storage_type.name)
        return _Stub()

    def load_bytearray8(self) -> None:  # the one opcode that allocates before it reads
        n = int.from_bytes(self.read(8), "little")
        if n > self.file.size:
            raise pickle.UnpicklingError("pickle data was truncated")
        self.append(bytearray(self.read(n)))

    dispatch[pickle.BYTEARRAY8[0]] = load_bytearray8


def _element_size(storage_type: str) -> int:
    import torch
    from torch.storage import _get_dtype_from_pickle_storage_type

    try:
        return torch._utils._element_size(_get_dtype_from_pickle_storage_type(storage_type))
    except (KeyError, RuntimeError) as err:
        raise pickle.UnpicklingError(f"unknown storage type {storage_type}") from err


def _check_legacy_checkpoint(path: Path, what: str) -> None:
    """Refuse a legacy (pickle) checkpoint whose storages, as its pickle declares them, need
    more bytes than follow the pickle: torch would allocate them before reading."""
    import tarfile

    from torch.serialization import MAGIC_NUMBER

    size = path.stat().st_size
    if tarfile.is_tarfile(path):
        raise ValueError(f"{path}: a tar archive (torch's pre-1.0 format), which is not read; {RESAVE}")
    try:
        with open(path, "rb") as raw:
            # magic number, protocol version, system info, the object (with the storages'
            # persistent ids), the storage keys; then the storages' raw bytes.
            walkers = [_StorageWalker(_Bounded(raw, size)) for _ in range(5)]
            pickles = [w.load() for w in walkers]
            if pickles[0] != MAGIC_NUMBER:
                raise pickle.UnpicklingError("no torch magic number")
            left = size - raw.tell()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError,
            OverflowError, MemoryError, RecursionError, UnicodeDecodeError) as err:
        raise ValueError(f"{path} is not a readable {what} (damaged, or another format): a legacy torch pickle "
                         f"that cannot be walked ({type(err).__name__}: {str(err)[:120]}); {RESAVE}") from None
    declared = sum(walkers[3].storages.values())
    if declared > left:
        raise ValueError(f"{path}: its pickle declares {declared} bytes of tensors but only {left} bytes follow "
                         f"it: the file is truncated or crafted; {RESAVE}")


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
        ValueError: one line, naming the file: not a regular file, not a torch file,
            damaged, declaring more tensor bytes than it holds, or holding objects beyond
            tensors.
    """
    import torch

    path = regular_file(path, what)
    with open(path, "rb") as f:
        head = f.read(2)
    # torch.save writes a zip archive ("PK") or, in the legacy format, a raw pickle
    # (opcode PROTO, 0x80): anything else is not a torch file, whatever unpickling says.
    if head != b"PK" and head[:1] != b"\x80":
        raise ValueError(f"{path} is not a readable PyTorch checkpoint: it starts with {head!r}, not a torch.save "
                         f"zip archive or pickle (a {what} was expected)")
    (_check_zip_checkpoint if head == b"PK" else _check_legacy_checkpoint)(path, what)
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
