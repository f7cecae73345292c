"""What the Hydra entry points share: refusals in one line, and the run's record and log.

A refusal (bad input, a missing or damaged file, a directory that cannot be written) is
printed as one line, ``error: ...``, and the process exits with status 2, leaving the disk
as it was (a run directory this process created is removed again); the full trace comes
with ``HYDRA_FULL_ERROR=1``. SIGTERM (``kill``, ``timeout``, a scheduler) stops the job
wherever it is, within the running tensor operation: what was finished stays on disk (a
boosting run's batches, a training's checkpoint) and the process exits with status 143, as
a shell reports a process ended by SIGTERM; only a finished run exits with 0. Entries that run with ``hydra.output_subdir: null``
write Hydra's ``.hydra/`` record and the job's log file themselves, once their inputs are
checked (:func:`start_run_record`), so a refused run changes nothing on disk.
"""

from __future__ import annotations

import functools
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any, Callable

REFUSALS = (ValueError, OSError)
SIGTERM_EXIT = 128 + signal.SIGTERM  # what a shell reports for a process ended by SIGTERM
LOG_FORMAT = "[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"
# Lightning's advertisements, notes about defaults nobody set and its machinery (the
# accelerators it found, device and process set-up), and what libraries say of themselves on
# import (numexpr's thread count, matplotlib's first font scan): not events of the run.
NOISE = ("\N{ELECTRIC LIGHT BULB} Tip:", "was configured so 100% of the batches", "NumExpr defaulting to",
         "generated new fontManager", "GPU available: ", "TPU available: ", "HPU available: ",
         "CUDA_VISIBLE_DEVICES: [", "to estimate number of stepping batches", "Initializing distributed: ",
         "All distributed processes registered", "Your model can run with static graph optimizations",
         "that has Tensor Cores. To properly utilize them")


class _DropNoise(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(n in message for n in NOISE)


def quiet_libraries() -> None:
    """One line per event: Lightning's tips dropped from the job's handlers, known deprecation
    warnings from inside the libraries not shown, every other warning on one line.
    (:func:`quiet_lightning` does the rest.)"""
    import warnings

    for handler in logging.getLogger().handlers:
        handler.addFilter(_DropNoise())
    warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated")
    # the index batches of a boosting run need no loader workers (images are made on the device)
    warnings.filterwarnings("ignore", message=r".*does not have many workers which may be a bottleneck")
    warnings.formatwarning = _one_line_warning


def _one_line_warning(message, category, filename, lineno, line=None) -> str:
    """A warning as the user reads it: what happened, without the source line that raised it."""
    return f"warning: {message}\n"


def quiet_lightning() -> None:
    """Import Lightning and take away the stderr handlers it adds to its loggers, so its
    messages reach the console once, through the job's handlers (whose filters drop
    :data:`NOISE`); warnings stay one line each (Lightning's import sets its own format)."""
    import warnings

    import lightning.pytorch  # noqa: F401 - the import adds the handlers

    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logger = logging.getLogger(name)
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
        logger.propagate = True
    warnings.formatwarning = _one_line_warning


def _one_line(err: BaseException) -> str:
    return " ".join(line.strip() for line in str(err).splitlines() if line.strip())


def _refusal(err: BaseException) -> BaseException | None:
    """The refusal behind ``err``: itself, or what Hydra's ``instantiate`` wrapped."""
    from hydra.errors import InstantiationException

    if isinstance(err, REFUSALS):
        return err
    if isinstance(err, InstantiationException):
        cause = err.__cause__
        return cause if isinstance(cause, REFUSALS) else err  # a wrong config key is a refusal too
    return None


class Terminated(BaseException):
    """SIGTERM arrived. A BaseException, so no ``except Exception`` on the way swallows it."""


def _raise_terminated(signum: int, frame: Any) -> None:
    raise Terminated


def refusals_in_one_line(task: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """Wrap a ``@hydra.main`` task: refusals print one line and exit with status 2 (a run
    directory this process created is removed); SIGTERM stops the task and exits with 143."""
    from bigroc.run_dir import undo_new_run_dir

    @functools.wraps(task)
    def run(cfg: Any) -> Any:
        quiet_libraries()
        signal.signal(signal.SIGTERM, _raise_terminated)  # Lightning's own handler calls it too
        try:
            return task(cfg)
        except Terminated:
            print("stopped by SIGTERM: what was finished is saved; the same command resumes the run",
                  file=sys.stderr, flush=True)
            sys.exit(SIGTERM_EXIT)
        except Exception as err:  # noqa: BLE001 - sorted below: refusals, or re-raised
            refusal = _refusal(err)
            if refusal is None or os.environ.get("HYDRA_FULL_ERROR") == "1":
                raise
            undo_new_run_dir()
            print(f"error: {_one_line(refusal)}", file=sys.stderr, flush=True)
            sys.exit(2)

    return run


def launched_rank_zero() -> bool:
    """False in the processes a launcher started for ranks other than 0 (before the trainer
    knows its rank): Lightning's DDP children, torchrun and Slurm tasks."""
    return all(os.environ.get(name, "0") == "0" for name in ("RANK", "LOCAL_RANK", "NODE_RANK", "SLURM_PROCID"))


def start_run_record(out_dir: Path, cfg: Any) -> None:
    """Hydra's ``.hydra/`` record (config, hydra, overrides) and the job's log file."""
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf

    from bigroc.storage import atomic_write

    hydra_cfg = HydraConfig.get()
    record = out_dir / ".hydra"
    record.mkdir(parents=True, exist_ok=True)
    texts = {"config.yaml": OmegaConf.to_yaml(cfg),
             "hydra.yaml": OmegaConf.to_yaml(OmegaConf.create({"hydra": hydra_cfg})),
             "overrides.yaml": OmegaConf.to_yaml(hydra_cfg.overrides.task)}
    for name, text in texts.items():
        atomic_write(record / name, lambda tmp, text=text: tmp.write_text(text))
    handler = logging.FileHandler(out_dir / f"{hydra_cfg.job.name}.log")
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    handler.addFilter(_DropNoise())
    logging.getLogger().addHandler(handler)


def checked_resume_path(ckpt_path: str | None, checkpoint_dir: Path) -> str | None:
    """The Lightning checkpoint a training resumes from, read weights-only once to check it.

    ``last`` means ``checkpoint_dir/last.ckpt`` and must exist: a fresh start is another
    command (no ``ckpt_path``), never a silent fallback.
    """
    if ckpt_path is None:
        return None
    from bigroc.safe_load import read_torch_file

    path = checkpoint_dir / "last.ckpt" if str(ckpt_path) == "last" else Path(ckpt_path).expanduser()
    if not path.is_file():
        why = f"ckpt_path={ckpt_path}: {path} does not exist"
        raise ValueError(f"{why}; nothing to resume (to start afresh, leave ckpt_path unset)")
    state = read_torch_file(path, what="Lightning training checkpoint")
    if not isinstance(state, dict) or "state_dict" not in state or "loops" not in state:
        raise ValueError(f"{path} is not a Lightning training checkpoint (no state_dict and loops); pass the "
                         "checkpoints/last.ckpt of an earlier run as ckpt_path")
    return str(path)
