"""Train a generator on CIFAR-10 and export it for boosting.

    python train_generator.py model=vae data.root=DIR             # bigroc's convolutional VAE
    python train_generator.py experiment=cpu_vae data.root=DIR    # a VAE on 2 CPU cores, ~15 min
    python train_generator.py model=sngan data.root=DIR           # mimicry-layout SNGAN + EMA
    python train_generator.py model=cgan_pd data.root=DIR         # cGAN with projection discriminator
    python train_generator.py ... ckpt_path=OLD_RUN/checkpoints/last.ckpt   # resume

Leaves <run dir>/generator.safetensors (EMA weights when kept) and generator.json (family,
settings, recipe, data, wall time, machine, command, and the boost overrides that load it),
plus a fixed-latent sample grid per epoch in <run dir>/samples/.
"""

import hydra
from omegaconf import DictConfig

from bigroc.entry import refusals_in_one_line


@hydra.main(config_path="conf", config_name="train_generator", version_base="1.3")
@refusals_in_one_line
def main(cfg: DictConfig) -> None:
    import sys
    import time
    from pathlib import Path

    import lightning as L
    from hydra.core.hydra_config import HydraConfig
    from hydra.utils import instantiate

    from bigroc.entry import checked_resume_path, quiet_lightning
    from bigroc.lit.export import export_generator
    from bigroc.lit.progress import progress_callbacks
    from bigroc.lit.signals import EXIT_STATUS, SIGTERMException, StopOnSigterm
    from bigroc.loggers import finish_loggers

    quiet_lightning()  # after Lightning's import: its messages once, through the job's handlers

    ckpt_path = checked_resume_path(cfg.ckpt_path, Path(cfg.checkpoint.dirpath))
    L.seed_everything(cfg.seed, workers=True)
    data = instantiate(cfg.data)
    module = instantiate(cfg.module)
    logger = instantiate(cfg.logger) if cfg.get("logger") else False
    stop = StopOnSigterm(Path(cfg.checkpoint.dirpath) / "last.ckpt")
    bar, bar_on = progress_callbacks("test", cfg.trainer.enable_progress_bar)  # plain lines in a log file
    trainer = instantiate(cfg.trainer, logger=logger, callbacks=[instantiate(cfg.checkpoint), stop, *bar],
                          enable_progress_bar=bar_on)

    start = time.perf_counter()
    try:
        trainer.fit(module, datamodule=data, ckpt_path=ckpt_path, weights_only=True)
    except SIGTERMException:
        finish_loggers(logger)
        sys.exit(EXIT_STATUS)
    train_seconds = time.perf_counter() - start

    if trainer.is_global_zero:
        out_dir = Path(HydraConfig.get().runtime.output_dir)
        path = export_generator(module, data, trainer, out_dir=out_dir, train_seconds=train_seconds)
        print(f"exported {path} ({train_seconds / 60:.1f} min of training)")
    finish_loggers(logger)


if __name__ == "__main__":
    main()
