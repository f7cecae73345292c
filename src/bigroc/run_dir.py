"""A run directory is this entry's, or empty: the rule every entry point follows.

Each entry writes a known set of names (:data:`OWN_OUTPUTS`, by Hydra job name). A run
directory that holds anything else (a user's files, the input folder, another entry's
run) is refused before Hydra or the job writes a byte, and so is one that is a file or
cannot be written. :class:`RunDirGuard` (a Hydra callback, listed under ``hydra.callbacks``
of each entry's config) makes these checks before Hydra creates the directory, and
remembers whether it did create it, so a refused run removes what it made
(:func:`undo_new_run_dir`) and leaves the disk as it was.

Temporaries (``.<name>.tmp<pid>``, :func:`bigroc.storage.atomic_write`) count as the
entry's own only when ``<name>`` is one of its outputs; only those are ever removed.

This module imports no torch: the callback runs before every job.
"""

from __future__ import annotations

import fnmatch
import os
import re
import shutil
import sys
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from hydra.experimental.callback import Callback

_COMMON = (".hydra", "wandb", "csv", "lightning_logs", "summary.md")
OWN_OUTPUTS: dict[str, tuple[str, ...]] = {
    "run_boost": ("metrics.json", "samples_base*.npz", "samples_boosted*.npz", "grid_before_after.png",
                  "label_histograms.png", ".chunks", "seed[0-9]*", "run_boost.log"),
    "score": ("scores.json", "score.log"),
    "interpolate": ("metrics.json", "interpolation*.npz", "interpolation*.png", "comparison.png",
                    "interpolations.png", "pair[0-9][0-9][0-9]", "interpolate.log"),
    "train_robust": ("classifier.safetensors", "classifier.json", "classifier_madry.pt", "checkpoints",
                     "train_robust.log"),
    "train_generator": ("generator.safetensors", "generator.json", "checkpoints", "samples",
                        "train_generator.log"),
}
TEMPORARY = re.compile(r"^\.(?P<name>.+)\.tmp(?P<pid>\d+)$")  # bigroc.storage.atomic_write's names
_PROBE = re.compile(r"^\.write-probe\d+$")

# The run directory and the outermost directory this process created for it (None: none).
_state: dict[str, Any] = {"out_dir": None, "made": None}


def is_own(name: str, job: str) -> bool:
    """Whether a top-level entry ``name`` of a run directory is one ``job`` writes."""
    temporary = TEMPORARY.match(name)
    if temporary:
        name = temporary.group("name")
    patterns = OWN_OUTPUTS.get(job, ()) + _COMMON
    return bool(_PROBE.match(name)) or any(fnmatch.fnmatchcase(name, p) for p in patterns)


def _hydra_record_job(record: Path) -> str | None:
    """The job name in ``.hydra/hydra.yaml`` (None where there is none to read)."""
    try:
        text = (record / "hydra.yaml").read_text(errors="replace")
    except OSError:
        return None
    match = re.search(r"^\s{4}name:\s*(\S+)\s*$", text, re.M)  # hydra.job.name
    return match.group(1) if match else None


def foreign_entries(out_dir: Path, job: str) -> list[str]:
    """The entries of ``out_dir`` that ``job`` did not write (sorted); [] for a new directory."""
    try:
        names = sorted(os.listdir(out_dir))
    except FileNotFoundError:
        return []
    foreign = [n for n in names if not is_own(n, job)]
    record = out_dir / ".hydra"
    if ".hydra" in names and ".hydra" not in foreign:
        other = _hydra_record_job(record) if record.is_dir() else "a file"
        if not record.is_dir() or (other is not None and other != job):
            foreign.append(f".hydra ({other}'s)")
    return foreign


def check_run_dir_is_own(out_dir: Path, job: str) -> None:
    """Refuse (ValueError, one line) a run directory that is a file, cannot be written, or
    holds anything ``job`` does not write. Only reads."""
    where = f"hydra.run.dir={out_dir}"
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"{where}: a file, not a directory; choose another hydra.run.dir")
    existing = next(p for p in (out_dir, *out_dir.parents) if p.exists())
    if not existing.is_dir():
        raise ValueError(f"{where}: {existing} is a file, not a directory; choose another hydra.run.dir")
    if not os.access(existing, os.W_OK | os.X_OK):
        what = "the directory" if existing == out_dir else f"its parent {existing}"
        raise ValueError(f"{where}: {what} cannot be written (read-only or no permission); choose a "
                         "writable hydra.run.dir")
    foreign = foreign_entries(out_dir, job)
    if foreign:
        shown = ", ".join(foreign[:4]) + (f" and {len(foreign) - 4} more" if len(foreign) > 4 else "")
        raise ValueError(f"{where} holds files {job}.py does not write ({shown}): a run directory is one run's "
                         "or empty, and nothing in it was changed; choose another hydra.run.dir")


def _first_missing(path: Path) -> Path | None:
    """The outermost directory of ``path`` that does not exist yet (None if it exists)."""
    missing = None
    for p in (path, *path.parents):
        if p.exists():
            return missing
        missing = p
    return missing


class RunDirGuard(Callback):
    """Hydra callback: the run directory is checked before Hydra creates or writes it.

    A refusal prints ``error: ...`` and exits with status 2 (Hydra would print a traceback).
    """

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        from bigroc.entry import launched_rank_zero

        if not launched_rank_zero():  # a DDP process that rank 0 started: the directory is rank 0's
            return
        out_dir = Path(str(config.hydra.run.dir)).absolute()
        _guard(out_dir, str(config.hydra.job.name))

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        if str(config.hydra.mode) == "RunMode.MULTIRUN":  # the sweep's job dirs are new: nothing to check
            out_dir = Path(str(config.hydra.runtime.output_dir))
            _state.update(out_dir=out_dir, made=out_dir)


def _guard(out_dir: Path, job: str) -> None:
    try:
        check_run_dir_is_own(out_dir, job)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr, flush=True)
        sys.exit(2)
    _state.update(out_dir=out_dir, made=_first_missing(out_dir))


def undo_new_run_dir() -> None:
    """After a refusal: remove the run directory if this process created it (with what
    this process wrote there, such as Hydra's record), and the empty parents it created."""
    out_dir, made = _state["out_dir"], _state["made"]
    _state.update(out_dir=None, made=None)
    if made is None or not out_dir.is_dir():
        return
    shutil.rmtree(out_dir, ignore_errors=True)
    for parent in out_dir.parents:  # only what this process created, and only if empty
        if made not in (parent, *parent.parents):
            break
        try:
            parent.rmdir()
        except OSError:
            break
