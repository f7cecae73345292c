"""What identifies a boosting run, and the rules that keep one run's files apart from another's.

- :func:`run_identity`: everything in the config that changes a run's images or scores
  (generator, classifier, attack, labels and debiasing, calibration, metrics, sample count,
  seeds, batch size, precision), resolved, plus a stamp (size, modification time) of every
  file the settings name, so a replaced checkpoint is another run.
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
import re
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

SETTINGS_FILE = "settings.json"
METRICS_FILE = "metrics.json"
DIGEST_KEY = "run_digest"
# Settings that change where things are cached, not what a run computes.
_NOT_RESULTS = {"metrics": ("cache_dir", "cache_base_features")}
_FILE_KEYS = (("generator", "checkpoint"), ("generator", "path"), ("generator", "labels"),
              ("classifier", "checkpoint"), ("metrics", "path"))


def _container(node: Any) -> Any:
    return OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node


def _stamp(value: Any) -> list[int] | None:
    """(size, mtime_ns) of a file, (entries, mtime_ns) of a folder; None if absent."""
    text = str(value)
    if text.startswith("shipped:"):
        from importlib.resources import files

        text = str(files("bigroc") / "weights" / f"{text.removeprefix('shipped:')}.safetensors")
    path = Path(text).expanduser()
    try:
        info = path.stat()
        size = len(os.listdir(path)) if path.is_dir() else info.st_size
    except OSError:
        return None
    return [int(size), int(info.st_mtime_ns)]


def run_identity(cfg: DictConfig) -> dict[str, Any]:
    """Everything that changes the run's images or scores, as plain JSON-able values."""
    groups = {name: _container(cfg.get(name)) for name in ("generator", "classifier", "attack", "metrics",
                                                           "calibration")}
    for group, keys in _NOT_RESULTS.items():
        if isinstance(groups[group], dict):
            groups[group] = {k: v for k, v in groups[group].items() if k not in keys}
    files = {f"{g}.{k}": _stamp(groups[g][k]) for g, k in _FILE_KEYS
             if isinstance(groups[g], dict) and groups[g].get(k) is not None}
    seeds = _container(cfg.seeds) if cfg.get("seeds") is not None else [cfg.seed]
    return {**groups, "labels": cfg.labels, "debias": cfg.debias, "num_samples": cfg.num_samples,
            "seeds": seeds, "batch_size": cfg.batch_size, "precision": str(cfg.trainer.precision),
            "files": files}


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


def run_settings(cfg: DictConfig, a: Any) -> dict[str, Any]:
    """The settings recorded in metrics.json, checked, with the run's digest; ``a`` is the
    run's :class:`~bigroc.attacks.AttackSpec` (validated, and the one rule for its step)."""
    seeds = cfg.seeds if cfg.get("seeds") is not None else [cfg.seed]
    if isinstance(seeds, str) or not hasattr(seeds, "__len__") or len(seeds) == 0:
        raise ValueError(f"seeds must be a non-empty list of integers, e.g. seeds=[0,1,2]; got {seeds!r}")
    return {
        "eps": float(a.eps), "steps": int(a.steps), "step_size": float(a.boost_step_size), "norm": a.norm,
        "generator": cfg.generator.name,
        "generator_checkpoint": cfg.generator.get("checkpoint") or cfg.generator.get("path"),
        "classifier": cfg.classifier.checkpoint,
        "num_samples": ALL if cfg.num_samples == ALL else _integer(cfg.num_samples, "num_samples", 1),
        "seeds": [_integer(s, "seed", 0, 2**32 - 1) for s in seeds],
        "labels": cfg.labels, "debias": cfg.debias,
        "calibration_samples": _integer(cfg.calibration.samples, "calibration.samples", 1),
        "calibration_seed": _integer(cfg.calibration.seed, "calibration.seed", 0, 2**32 - 1),
        "batch_size": _integer(cfg.batch_size, "batch_size", 1),
        "precision": str(cfg.trainer.precision),
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


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"{path} is unreadable ({err}); move the run directory away or choose another "
                         "hydra.run.dir") from None


def check_run_dir(out_dir: Path, settings: dict[str, Any]) -> str:
    """``"done"`` if ``out_dir`` holds this run's finished results, else ``"go"``.

    A finished run of other settings, or chunks (or a settings file) of another run, is an
    error: resuming would mix two runs and writing would replace one. Only reads.
    """
    settings = json.loads(json.dumps(settings))  # the form they take on disk
    digest, chunks = settings[DIGEST_KEY], out_dir / ".chunks"
    metrics = out_dir / METRICS_FILE
    if metrics.exists():
        done = _read_json(metrics)
        if done.get(DIGEST_KEY) == digest:
            return "done"
        what = (f"other settings ({_differences(done, settings)} differ)" if DIGEST_KEY in done
                else "no settings digest (an earlier bigroc wrote it)")
        raise ValueError(f"{out_dir} holds a finished run with {what}; nothing was changed: choose another "
                         "hydra.run.dir")
    recorded = chunks / SETTINGS_FILE
    if recorded.exists():
        before = _read_json(recorded)
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


_TEMPORARY = re.compile(r"^\..+\.tmp(\d+)$")  # bigroc.storage.atomic_write's names


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


def remove_stale_temporaries(folder: Path) -> list[Path]:
    """Delete half-written files that killed processes left under ``folder``."""
    removed = []
    for path in folder.rglob(".*.tmp*"):
        match = _TEMPORARY.match(path.name)
        if match and path.is_file() and not _alive(int(match.group(1))):
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
