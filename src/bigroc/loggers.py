"""Experiment-logger helpers shared by the entry points."""

from __future__ import annotations

import sys
from typing import Any


def finish_loggers(logger: Any) -> None:
    """Close the W&B run (if any) so each Hydra multirun job gets a run of its own."""
    if logger:
        logger.finalize("success")
    wandb = sys.modules.get("wandb")
    if wandb is not None and wandb.run is not None:
        wandb.finish()
