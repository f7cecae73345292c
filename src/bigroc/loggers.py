"""Experiment-logger helpers shared by the entry points."""

from __future__ import annotations

import sys
from typing import Any


def wandb_logger(*, project: str, name: str | None = None, group: str | None = None, offline: bool = True,
                 save_dir: str | None = None, log_model: bool = False) -> Any:
    """Lightning's W&B logger, without the ``anonymous`` argument W&B now warns about."""
    from lightning.pytorch.loggers import WandbLogger

    logger = WandbLogger(project=project, name=name, group=group, offline=offline, save_dir=save_dir,
                         log_model=log_model)
    logger._wandb_init.pop("anonymous", None)
    return logger


def finish_loggers(logger: Any) -> None:
    """Close the W&B run (if any) so each Hydra multirun job gets a run of its own."""
    if logger:
        logger.finalize("success")
    wandb = sys.modules.get("wandb")
    if wandb is not None and wandb.run is not None:
        wandb.finish()


def log_run(logger: Any, metrics: dict, figures: dict, cfg: Any) -> None:
    """Send a finished boosting run to the experiment logger: config, scalars, figures."""
    if not logger:
        return
    from omegaconf import OmegaConf

    logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
    logger.log_metrics({k: v for k, v in metrics.items()
                        if isinstance(v, (int, float)) and not isinstance(v, bool)})
    if hasattr(logger, "log_image"):  # W&B
        for name, path in figures.items():
            logger.log_image(key=f"figures/{name}", images=[str(path)])
    if hasattr(logger, "save"):
        logger.save()
