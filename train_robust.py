"""Adversarially train a robust classifier (Madry et al.) for BIGRoC.

    python train_robust.py experiment=cpu_cifar10_l2 data.root=DIR   # ~1 h on 2 CPU cores
    python train_robust.py experiment=madry_cifar10_l2 data.root=DIR # the paper's ResNet-50 (GPU)
    python train_robust.py -m epsilon=0.25,0.5                       # one job (and W&B run) each

Leaves the classifier at <run dir>/classifier.safetensors with classifier.json beside it
(architecture, normalisation, training recipe, test accuracies, wall time, machine).
"""

import hydra
from omegaconf import DictConfig

from bigroc.entry import refusals_in_one_line


@hydra.main(config_path="conf", config_name="train_robust", version_base="1.3")
@refusals_in_one_line
def main(cfg: DictConfig) -> None:
    import sys
    from pathlib import Path

    import lightning as L
    from hydra.core.hydra_config import HydraConfig
    from hydra.utils import instantiate

    from bigroc.entry import checked_resume_path, quiet_lightning
    from bigroc.lit import export_trained
    from bigroc.lit.progress import progress_callbacks
    from bigroc.lit.signals import EXIT_STATUS, SIGTERMException, StopOnSigterm
    from bigroc.loggers import finish_loggers

    quiet_lightning()  # after Lightning's import: its messages once, through the job's handlers

    ckpt_path = checked_resume_path(cfg.ckpt_path, Path(cfg.checkpoint.dirpath))
    L.seed_everything(cfg.seed, workers=True)
    data = instantiate(cfg.data)
    # _convert_="object": the AttackSpec arrives as itself, not as a DictConfig copy of it
    module = instantiate(cfg.module, classifier=instantiate(cfg.classifier), attack=instantiate(cfg.attack),
                         _convert_="object")
    logger = instantiate(cfg.logger) if cfg.get("logger") else False
    stop = StopOnSigterm(Path(cfg.checkpoint.dirpath) / "last.ckpt")
    bar, bar_on = progress_callbacks("final test", cfg.trainer.enable_progress_bar)  # plain lines in a log file
    trainer = instantiate(cfg.trainer, logger=logger, callbacks=[instantiate(cfg.checkpoint), stop, *bar],
                          enable_progress_bar=bar_on)

    try:
        trainer.fit(module, datamodule=data, ckpt_path=ckpt_path, weights_only=True)
    except SIGTERMException:
        finish_loggers(logger)
        sys.exit(EXIT_STATUS)
    train_seconds = module.train_seconds  # summed over the processes of a resumed run
    test_metrics = trainer.test(module, datamodule=data, verbose=False)[0] if cfg.test else {}

    if trainer.is_global_zero:
        out_dir = Path(HydraConfig.get().runtime.output_dir)
        path = export_trained(module, data, trainer, out_dir=out_dir, test_metrics=test_metrics,
                              train_seconds=train_seconds, madry_layout=cfg.export_madry)
        if test_metrics:  # one line, not Lightning's table
            print(", ".join(f"{k} {v:.4f}" for k, v in test_metrics.items()))
        print(f"exported {path} ({train_seconds / 60:.1f} min of training)")
    finish_loggers(logger)


if __name__ == "__main__":
    main()
