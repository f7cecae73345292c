"""Progress a log file can show: plain lines, one every 30 s or every 10% of a stage at most.

    reference statistics (cifar10 train): 2500/10000 images (25%), 41.3 images/s, elapsed 1:00, left 3:02

A rich bar draws only on a terminal; under Slurm, nohup or CI the output is a file and a
long stage would show nothing until it ends. :class:`Progress` prints a line when 30 s have
passed or another 10% of the stage is done since its last line, and a final line when the
stage closes. :func:`set_enabled` silences every stage (``trainer.enable_progress_bar=false``);
processes of ranks other than 0 print nothing.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Callable

EVERY_S = 30.0          # a line at least this often (seconds), while updates come
EVERY_FRACTION = 0.1    # ... and at least every tenth of the stage
_enabled = True
log = logging.getLogger(__name__)


def set_enabled(on: bool) -> None:
    """Print progress lines (``True``, the default) or none at all."""
    global _enabled
    _enabled = bool(on)


def print_line(line: str) -> None:
    """One progress line, out at once: through the job's log handlers where logging is set
    up (the console, and the run's log file with a time stamp), else to standard output."""
    from bigroc.entry import launched_rank_zero

    if not (_enabled and launched_rank_zero()):
        return
    if logging.getLogger().handlers and log.isEnabledFor(logging.INFO):
        log.info(line)
    else:
        print(line, file=sys.stdout, flush=True)


def silent(line: str) -> None:
    """A writer that drops the line: a stage that is to print nothing."""


def clock_text(seconds: float) -> str:
    """``1:02`` (m:ss) or ``1:02:03`` (h:mm:ss) for a duration in seconds."""
    minutes, s = divmod(int(round(seconds)), 60)
    h, m = divmod(minutes, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def _rate_text(count: float, seconds: float, unit: str) -> str:
    """``41.3 images/s``, or ``12.5 s/run`` when a unit takes more than a second."""
    if count <= 0 or seconds <= 0:
        return f"- {unit}/s"
    rate = count / seconds
    if rate >= 1 or unit == "images":
        return f"{rate:.3g} {unit}/s"
    return f"{1 / rate:.3g} s/{_SINGULAR.get(unit, unit)}"


_SINGULAR = {"batches": "batch", "runs": "run", "images": "image", "frames": "frame"}


class Progress:
    """Plain progress lines for one stage of ``total`` units (images, batches, runs).

    ``update(n, images=k)`` counts ``n`` units done and, where units are not images, the
    ``k`` images they held (the rate is in images/s when images are counted). A line is
    written (``write``, default :func:`print_line`) when ``every_s`` seconds of ``clock`` have
    passed or ``every_fraction`` of ``total`` is done since the last line; ``close`` writes
    the final line unless the last one already said it. ``total=None``: no percentage or
    time left, lines by time alone. Also a context manager (``start`` / ``close``).
    """

    def __init__(self, stage: str, total: int | None, *, unit: str = "images", every_s: float = EVERY_S,
                 every_fraction: float = EVERY_FRACTION, clock: Callable[[], float] = time.monotonic,
                 write: Callable[[str], None] | None = None) -> None:
        self.stage, self.total, self.unit = stage, total, unit
        self.every_s, self.every_fraction, self.clock = every_s, every_fraction, clock
        self.write = write or print_line
        self.done, self.images = 0, 0
        self._start = self._last_time = None
        self._last_done = 0
        self._written = False

    def start(self) -> Progress:
        self._start = self._last_time = self.clock()
        return self

    def update(self, n: int = 1, images: int | None = None) -> None:
        """``n`` more units done (holding ``images`` images, where units are not images)."""
        if self._start is None:
            self.start()
        self.done += n
        self.images += n if self.unit == "images" else (images or 0)
        now = self.clock()
        step = self.every_fraction * self.total if self.total else float("inf")
        if now - self._last_time >= self.every_s or self.done - self._last_done >= step:
            self._emit(now)

    def close(self) -> None:
        """The final line (done, rate, elapsed), unless the last line already gave this count."""
        if self._start is not None and not (self._written and self._last_done == self.done):
            self._emit(self.clock())

    def line(self, now: float) -> str:
        """``stage: done/total unit (pct%), rate, elapsed m:ss, left m:ss`` at time ``now``."""
        elapsed = now - self._start
        count = f"{self.done}/{self.total} {self.unit}" if self.total else f"{self.done} {self.unit}"
        parts = [f"{self.stage}: {count}" + (f" ({100 * self.done / self.total:.0f}%)" if self.total else "")]
        parts.append(_rate_text(self.images, elapsed, "images") if self.images
                     else _rate_text(self.done, elapsed, self.unit))
        parts.append(f"elapsed {clock_text(elapsed)}")
        if self.total and self.done:
            parts.append(f"left {clock_text(elapsed / self.done * max(self.total - self.done, 0))}")
        return ", ".join(parts)

    def _emit(self, now: float) -> None:
        self.write(self.line(now))
        self._last_time, self._last_done, self._written = now, self.done, True

    def __enter__(self) -> Progress:
        return self.start()

    def __exit__(self, *exc) -> None:
        if exc[0] is None:  # a stage that failed has no final count to give
            self.close()
