"""What identifies a boosting run, and the rules that keep one run's files apart from another's.

- :func:`run_identity`: everything in the config that changes what a run writes (generator,
  classifier, attack, labels and debiasing, calibration, metrics, sample count, seeds, batch
  size, precision, shard size, grid size), resolved, plus a stamp of every input the settings
  name: a file by (size, modification time, inode), so a replaced or rewritten checkpoint is
  another run; a folder of images by a SHA-256 of every image's name and bytes (computed
  once per process), so images rewritten in place are another run.
- :func:`run_digest`: ten hex digits of its SHA-1. The default run directory's name ends
  in it (the ``${bigroc_run_digest:}`` resolver), and ``metrics.json``, the settings file
  beside the chunks and every chunk carry it.
- :func:`check_run_dir` only reads: a finished run of these settings is ``"done"``; a
  finished run of other settings, or unfinished batches of another run, are refused, with
  nothing changed.
- :func:`prepare_run_dir` makes the run's first writes, after every input was checked.

This module imports no torch, so the resolver costs nothing at start-up.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from bigroc.batch_size import checked as checked_batch_size

SETTINGS_FILE = "settings.json"
METRICS_FILE = "metrics.json"
DIGEST_KEY = "run_digest"
# Settings that change where things are cached, not what a run computes.
_NOT_RESULTS = {"metrics": ("cache_dir", "cache_base_features", "batch_size")}
_FILE_KEYS = (("generator", "checkpoint"), ("generator", "path"), ("generator", "labels"),
              ("classifier", "checkpoint"), ("metrics", "path"))


def _container(node: Any) -> Any:
    return OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node


_FOLDER_DIGESTS: dict[tuple, str] = {}  # folder digests of this process, by the files' stat stamps
_HASH_BLOCK = 2**20


def _file_stamp(info: os.stat_result) -> list[int]:
    return [int(info.st_size), int(info.st_mtime_ns), int(info.st_ino)]


def folder_digest(folder: Path) -> str:
    """SHA-256 over the names and bytes of the image files in ``folder`` (name order).

    Entries that are not regular files (a FIFO named like an image) enter by name and kind
    only, never opened: the sample reader refuses them by name. Memoised per process by
    every file's (size, mtime_ns, inode), so the several reads of a run's identity hash once.
    """
    from bigroc.generators.samples import IMAGE_SUFFIXES

    entries = sorted((e for e in os.scandir(folder) if e.name.lower().endswith(IMAGE_SUFFIXES)),
                     key=lambda e: e.name)
    regular = [(e.name, e.is_file()) for e in entries]
    key = (str(folder.resolve()), tuple((n, f, *(_file_stamp(os.stat(folder / n)) if f else ())) for n, f in regular))
    if key not in _FOLDER_DIGESTS:
        digest = hashlib.sha256()
        for name, is_file in regular:
            digest.update(f"{name}\0{'file' if is_file else 'other'}\0".encode())
            if is_file:
                with open(folder / name, "rb") as f:
                    while block := f.read(_HASH_BLOCK):
                        digest.update(block)
        _FOLDER_DIGESTS[key] = digest.hexdigest()
    return _FOLDER_DIGESTS[key]


def tree_stamp(folder: Path) -> list[list[Any]]:
    """[relative path, size, mtime_ns, inode] of every file under ``folder`` (a model folder,
    e.g. a diffusers pipeline's; links followed, as the loader follows them), in path order."""
    rows = []
    for root, dirs, names in os.walk(folder, followlinks=True):
        dirs.sort()
        for name in sorted(names):
            path = Path(root) / name
            rows.append([path.relative_to(folder).as_posix(), *_file_stamp(path.stat())])
    return rows


def _stamp(value: Any) -> list | str | None:
    """(size, mtime_ns, inode) of a file; of a folder, :func:`folder_digest` of its images, or
    :func:`tree_stamp` of a model folder (a diffusers pipeline: ``model_index.json``); None if absent."""
    text = str(value)
    if text.startswith("shipped:"):
        from importlib.resources import files

        text = str(files("bigroc") / "weights" / f"{text.removeprefix('shipped:')}.safetensors")
    path = Path(text).expanduser()
    try:
        if path.is_dir():
            return tree_stamp(path) if (path / "model_index.json").is_file() else folder_digest(path)
        return _file_stamp(path.stat())
    except OSError:
        return None


def _named_file(group: dict[str, Any], key: str) -> Any:
    """The file a setting names: its value; for ``classifier=robustbench`` (whose checkpoint is
    ``robustbench:DATASET/THREAT/NAME``) RobustBench's ``<model_dir>/DATASET/THREAT/NAME.pt``; for
    ``generator=diffusers`` with a hub id, its snapshot folder in the local Hugging Face cache."""
    value = group[key]
    if key == "checkpoint" and str(value).startswith("robustbench:") and "model_dir" in group:
        return Path(str(group["model_dir"])) / f"{str(value).removeprefix('robustbench:')}.pt"
    if key == "checkpoint" and group.get("name") == "diffusers" and not Path(str(value)).expanduser().exists():
        from bigroc.generators.diffusers_pipeline import pipeline_folder

        try:  # a hub id: its snapshot in the local Hugging Face cache
            return pipeline_folder(str(value))
        except (FileNotFoundError, ImportError):
            return value  # no stamp: building the generator says what is missing
    return value


def run_identity(cfg: DictConfig) -> dict[str, Any]:
    """Everything that changes the run's images or scores, as plain JSON-able values."""
    groups = {name: _container(cfg.get(name)) for name in ("generator", "classifier", "attack", "metrics",
                                                           "calibration")}
    for group, keys in _NOT_RESULTS.items():
        if isinstance(groups[group], dict):
            groups[group] = {k: v for k, v in groups[group].items() if k not in keys}
    files = {f"{g}.{k}": _stamp(_named_file(groups[g], k)) for g, k in _FILE_KEYS
             if isinstance(groups[g], dict) and groups[g].get(k) is not None}
    seeds = _container(cfg.seeds) if cfg.get("seeds") is not None else [cfg.seed]
    return {**groups, "labels": cfg.labels, "debias": cfg.debias, "num_samples": cfg.num_samples,
            "seeds": seeds, "batch_size": cfg.batch_size, "precision": str(cfg.trainer.precision),
            "shard_size": cfg.samples.shard_size, "grid_size": cfg.grid_size, "files": files}


def run_digest(identity: dict[str, Any]) -> str:
    return hashlib.sha1(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:10]


def register_digest_resolver() -> None:
    """``${bigroc_run_digest:}``: the digest of the config it sits in (for run dir names)."""
    if not OmegaConf.has_resolver("bigroc_run_digest"):
        OmegaConf.register_new_resolver("bigroc_run_digest", lambda *, _root_: run_digest(run_identity(_root_)),
                                        use_cache=False)


ALL = "all"  # num_samples=all: every image of a finite source (generator=samples)


def _integer(value: Any, name: str, minimum: int, maximum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an integer, got {value!r} ({type(value).__name__}); e.g. {name}={minimum}")
    if value < minimum or (maximum is not None and value > maximum):
        bound = f">= {minimum}" if maximum is None else f"in [{minimum}, {maximum}]"
        raise ValueError(f"{name} must be {bound}, got {value}")
    return value


# Bounds past which a setting makes no sense (a typo, or a run that would never end).
MAX_SAMPLES = 10_000_000     # images per run (FID-50k needs 50 000)
MAX_CALIBRATION = 1_000_000  # images the label shift is fit on (the paper: 1000)
MAX_GRID = 1024
PRECISIONS = ("32-true", "32", "bf16-mixed")  # what the attack runs in: float32, or bf16 autocast


def _seeds(cfg: DictConfig) -> list[int]:
    seeds = cfg.seeds if cfg.get("seeds") is not None else [cfg.seed]
    if isinstance(seeds, str) or not hasattr(seeds, "__len__") or len(seeds) == 0:
        raise ValueError(f"seeds must be a non-empty list of integers, e.g. seeds=[0,1,2]; got {seeds!r}")
    seeds = [_integer(s, "seed", 0, 2**32 - 1) for s in seeds]
    repeated = sorted({s for s in seeds if seeds.count(s) > 1})
    if repeated:
        raise ValueError(f"seeds={seeds} repeats {repeated}: each seed is one pass over other images, and a repeat "
                         "would report a spread of 0; give distinct seeds, e.g. seeds=[0,1,2]")
    return seeds


def _precision(cfg: DictConfig) -> str:
    precision = str(cfg.trainer.precision)
    if precision not in PRECISIONS:
        raise ValueError(f"trainer.precision={precision} is not one boosting runs in; use 32-true (float32) or "
                         "bf16-mixed (bf16 autocast, on hardware with bf16 units)")
    return precision


def run_settings(cfg: DictConfig, a: Any) -> dict[str, Any]:
    """The settings recorded in metrics.json, checked and bounded, with the run's digest; ``a``
    is the run's :class:`~bigroc.attacks.AttackSpec` (validated, and the one rule for its step)."""
    return {
        "eps": float(a.eps), "steps": int(a.steps), "step_size": float(a.boost_step_size), "norm": a.norm,
        "stop_at": None if a.stop_at is None else float(a.stop_at), "doubt_step": bool(a.doubt_step),
        "generator": cfg.generator.name,
        "generator_checkpoint": cfg.generator.get("checkpoint") or cfg.generator.get("path"),
        "classifier": cfg.classifier.checkpoint,
        "num_samples": ALL if cfg.num_samples == ALL else _integer(cfg.num_samples, "num_samples", 1, MAX_SAMPLES),
        "seeds": _seeds(cfg),
        "labels": cfg.labels, "debias": cfg.debias,
        "calibration_samples": _integer(cfg.calibration.samples, "calibration.samples", 1, MAX_CALIBRATION),
        "calibration_seed": _integer(cfg.calibration.seed, "calibration.seed", 0, 2**32 - 1),
        "batch_size": checked_batch_size(cfg.batch_size, "batch_size"),
        "precision": _precision(cfg),
        "shard_size": _integer(cfg.samples.shard_size, "samples.shard_size", 1, MAX_SAMPLES),
        "grid_size": _integer(cfg.grid_size, "grid_size", 0, MAX_GRID),
        "metrics": _container(cfg.metrics) if cfg.metrics else None,
        DIGEST_KEY: run_digest(run_identity(cfg)),
    }


def _differences(before: dict[str, Any], now: dict[str, Any]) -> str:
    changed = sorted(k for k in now if k != DIGEST_KEY and before.get(k) != now.get(k))
    return ", ".join(changed) or "a file it reads (size or modification time)"


def _chunk_digests(chunks: Path) -> set[str]:
    """The digests the readable chunks under ``chunks`` carry (unreadable ones are recomputed)."""
    from bigroc.storage import ChunkStore

    return {d for d in map(ChunkStore.digest_of, chunks.rglob("*.npz")) if d is not None}


def read_json_object(path: Path) -> dict[str, Any]:
    """A JSON object this program wrote in a run directory, or a one-line refusal naming it."""
    from bigroc.safe_load import read_json_object as read

    return read(path, f"{path.name} of an earlier run (or choose another hydra.run.dir)")


def check_run_dir(out_dir: Path, settings: dict[str, Any]) -> str:
    """``"done"`` if ``out_dir`` holds this run's finished results, else ``"go"``.

    A finished run of other settings, or chunks (or a settings file) of another run, is an
    error: resuming would mix two runs and writing would replace one. Only reads.
    """
    settings = json.loads(json.dumps(settings))  # the form they take on disk
    digest, chunks = settings[DIGEST_KEY], out_dir / ".chunks"
    metrics = out_dir / METRICS_FILE
    if metrics.exists():
        done = read_json_object(metrics)
        if done.get(DIGEST_KEY) == digest:
            return "done"
        what = (f"other settings ({_differences(done, settings)} differ)" if DIGEST_KEY in done
                else "no settings digest (an earlier bigroc wrote it)")
        raise ValueError(f"{out_dir} holds a finished run with {what}; nothing was changed: choose another "
                         "hydra.run.dir")
    recorded = chunks / SETTINGS_FILE
    if recorded.exists():
        before = read_json_object(recorded)
        if before.get(DIGEST_KEY) != digest:
            raise ValueError(f"{out_dir} holds the unfinished batches of a run with other settings "
                             f"({_differences(before, settings)} differ); choose another hydra.run.dir, or "
                             f"resume that run, or delete {chunks}")
    others = _chunk_digests(chunks) - {digest} if chunks.exists() else set()
    if others:
        names = ", ".join(d or "none: an earlier bigroc wrote them" for d in sorted(others))
        raise ValueError(f"{chunks} holds batches of another run (digest {names}); choose another "
                         f"hydra.run.dir or delete {chunks}")
    return "go"


def _alive(pid: int) -> bool:
    if pid == os.getpid():  # this process has written nothing yet: a leftover of a reused pid
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _own_temporaries(out_dir: Path) -> list[Path]:
    """The temporaries of this program's own files: beside its outputs in the run directory
    and in each seed's folder, and anywhere in ``.chunks`` (nothing else writes there)."""
    from bigroc.run_dir import TEMPORARY, is_own

    folders = [out_dir, *(p for p in out_dir.glob("seed[0-9]*") if p.is_dir())]
    beside = [p for d in folders for p in d.glob(".*.tmp*")
              if TEMPORARY.match(p.name) and is_own(p.name, "run_boost")]
    chunks = out_dir / ".chunks"
    inside = [p for p in chunks.rglob(".*.tmp*") if TEMPORARY.match(p.name)] if chunks.is_dir() else []
    return beside + inside


def remove_stale_temporaries(out_dir: Path) -> list[Path]:
    """Delete half-written files of this program that killed processes left in a run directory."""
    from bigroc.run_dir import TEMPORARY

    removed = []
    for path in _own_temporaries(out_dir):
        if path.is_file() and not path.is_symlink() and not _alive(int(TEMPORARY.match(path.name).group("pid"))):
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def clean_finished_run(out_dir: Path, digest: str) -> None:
    """Remove what a kill during a finished run's clean-up left: temporaries, its own chunks."""
    import shutil

    remove_stale_temporaries(out_dir)
    chunks = out_dir / ".chunks"
    if chunks.exists() and _chunk_digests(chunks) <= {digest}:
        shutil.rmtree(chunks, ignore_errors=True)


def recorded_setting(out_dir: Path, key: str) -> Any:
    """A value the unfinished run in ``out_dir`` recorded beside its batches (None if none)."""
    path = out_dir / ".chunks" / SETTINGS_FILE
    return read_json_object(path).get(key) if path.exists() else None


def prepare_run_dir(out_dir: Path, settings: dict[str, Any]) -> None:
    """The run's first writes: a write probe, stale temporaries removed, the settings file."""
    from bigroc.storage import atomic_write

    out_dir.mkdir(parents=True, exist_ok=True)
    probe = out_dir / f".write-probe{os.getpid()}"
    try:
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise ValueError(f"cannot write to the run directory {out_dir} ({err.strerror}); choose a writable "
                         "hydra.run.dir") from None
    remove_stale_temporaries(out_dir)
    path = out_dir / ".chunks" / SETTINGS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda tmp: tmp.write_text(json.dumps(settings, indent=2)))


def config_digest(cfg: DictConfig, files: list[Any], skip: tuple[str, ...] = ("logger",)) -> str:
    """The digest of an entry's settings (all but ``skip``) and of the inputs ``files`` names
    (None entries ignored): what score.py and interpolate.py record and compare."""
    body = {k: _container(cfg[k]) for k in cfg if k not in skip}
    return run_digest({**body, "files": {str(f): _stamp(f) for f in files if f is not None}})


def finished_result(out_dir: Path, name: str, digest: str) -> bool:
    """True if ``out_dir/name`` holds the results of the run with ``digest``; False if there is
    none; a result of another run is refused (nothing is replaced). Only reads."""
    path = out_dir / name
    if not path.exists():
        return False
    if read_json_object(path).get(DIGEST_KEY) == digest:
        return True
    raise ValueError(f"{out_dir} holds the {name} of a run with other settings or inputs; nothing was changed: "
                     "choose another hydra.run.dir")
