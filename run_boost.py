"""Boost a generator's samples with a robust classifier (BIGRoC) and score both versions.

    python run_boost.py                                          # the default job
    python run_boost.py generator=sngan generator.checkpoint=netG_100000.pth epsilon=0.5
    python run_boost.py generator=samples generator.path=samples.npz num_samples=10000
    python run_boost.py experiment=imagenet128_adm_g generator.path=admnet_guided_imagenet128.npz \
        classifier.checkpoint=imagenet_l2_3_0.pt metrics.path=VIRTUAL_imagenet128_labeled.npz
    python run_boost.py -m generator=vae epsilon=0.25,0.5,1,2     # eps sweep + summary plot
    python run_boost.py trainer=ddp                               # all GPUs of the machine

Writes to the run directory: metrics.json (base/... and boosted/... scores, settings),
samples_base.npz and samples_boosted.npz (ADM layout), grid_before_after.png and
label_histograms.png. A killed run started again with the same command (and run
directory) resumes from the batches it had finished.
"""

import hydra
from omegaconf import DictConfig

from bigroc.entry import refusals_in_one_line
from bigroc.run_state import register_digest_resolver

register_digest_resolver()  # the default run directory is named after the settings


@hydra.main(config_path="conf", config_name="boost", version_base="1.3")
@refusals_in_one_line
def main(cfg: DictConfig) -> None:
    from pathlib import Path

    from hydra.core.hydra_config import HydraConfig
    from hydra.utils import instantiate

    from bigroc import report
    from bigroc.data import GeneratedDataModule
    from bigroc.entry import launched_rank_zero, start_run_record
    from bigroc.storage import ChunkStore
    from bigroc.lit.boost_module import Boost
    from bigroc.lit.progress import StageProgressBar
    from bigroc.loggers import finish_loggers, log_run
    from bigroc.run_checks import check_classifier, check_run_inputs
    from bigroc.run_state import DIGEST_KEY, check_run_dir, clean_finished_run, prepare_run_dir, run_settings
    from bigroc.scoring import check_reference_fits, prepare_scoring

    # Everything is read and checked before the run's first write (prepare_run_dir).
    out_dir = Path(HydraConfig.get().runtime.output_dir)
    settings = run_settings(cfg)
    if check_run_dir(out_dir, settings) == "done":
        clean_finished_run(out_dir, settings[DIGEST_KEY])
        score_if_unscored(cfg, out_dir)
        return
    source = instantiate(cfg.generator)
    if cfg.num_samples > len(source):
        raise ValueError(f"num_samples={cfg.num_samples} but the source holds {len(source)} images; "
                         f"lower num_samples")
    classifier = instantiate(cfg.classifier)
    check_classifier(classifier, str(cfg.classifier.checkpoint or cfg.classifier.arch), source.image_shape)
    attack = instantiate(cfg.attack)
    check_run_inputs(source, classifier, cfg.labels, cfg.debias)
    spec = instantiate(cfg.metrics) if cfg.metrics else None
    check_reference_fits(spec, source.image_shape)
    scoring, why_not = prepare_scoring(spec, cfg.data.root, download=cfg.data.download)
    if scoring is None:
        print(why_not)
    logger = instantiate(cfg.logger) if cfg.get("logger") else False
    label = "boosting and scoring" if scoring else "boosting"
    trainer = instantiate(cfg.trainer, logger=logger,
                          callbacks=[StageProgressBar(label)] if cfg.trainer.enable_progress_bar else [])
    if launched_rank_zero():  # DDP processes that Lightning starts find the directory ready
        prepare_run_dir(out_dir, settings)
        start_run_record(out_dir, cfg)

    per_seed, figures = [], {}
    for seed in settings["seeds"]:
        seed_dir = out_dir if len(settings["seeds"]) == 1 else out_dir / f"seed{seed}"
        chunks = ChunkStore(out_dir / ".chunks" / f"seed{seed}", digest=settings[DIGEST_KEY])
        module = Boost(source, classifier, attack, seed=seed, labels=cfg.labels, debias=cfg.debias,
                       calibration_samples=cfg.calibration.samples, calibration_seed=cfg.calibration.seed,
                       scores=scoring.new_scores() if scoring else None,
                       features=scoring.features if scoring else None,
                       base_features=scoring.base_features if scoring else None,
                       chunks=chunks, grid_size=cfg.grid_size)
        trainer.test(module, datamodule=GeneratedDataModule(cfg.num_samples, cfg.batch_size))
        if trainer.is_global_zero:
            seed_dir.mkdir(parents=True, exist_ok=True)
            report.merge_samples(chunks, seed_dir, cfg.num_samples, cfg.samples.shard_size)
            saved = report.save_figures(seed_dir, module.grid, module.calibration, module.final["labels/histogram"])
            prefix = "" if len(settings["seeds"]) == 1 else f"seed{seed}/"  # every seed's figures are logged
            figures.update({prefix + name: path for name, path in saved.items()})
            per_seed.append({**module.final, "debias/calibration": module.calibration})

    if trainer.is_global_zero:
        metrics = {**report.mean_over_seeds(per_seed), **settings,
                   **(scoring.info if scoring else {"scored": why_not})}
        report.write_metrics(out_dir, metrics)
        report.remove_chunks(ChunkStore(out_dir / ".chunks"))
        log_run(logger, metrics, figures, cfg)
        print({k: round(v, 4) for k, v in metrics.items() if k.startswith(("base/", "boosted/"))
               and isinstance(v, float)})
    finish_loggers(logger)


def score_if_unscored(cfg: DictConfig, out_dir) -> None:
    """A finished run saved without scores (no reference data then) is scored from its saved
    samples once the data is there; a scored one is left alone."""
    from hydra.utils import instantiate

    from bigroc import report
    from bigroc.score_files import is_unscored, score_finished_run
    from bigroc.scoring import prepare_scoring

    metrics = report.read_metrics(out_dir)
    if not (cfg.metrics and is_unscored(metrics)):
        print(f"{out_dir} already holds this run's results; nothing to do")
        return
    scoring, why_not = prepare_scoring(instantiate(cfg.metrics), cfg.data.root, download=cfg.data.download)
    if scoring is None:
        print(f"{out_dir} holds this run's samples, still unscored: {why_not}")
        return
    metrics = score_finished_run(out_dir, metrics, scoring)
    report.write_metrics(out_dir, metrics)
    print(f"scored the saved samples of {out_dir}:",
          {k: round(v, 4) for k, v in metrics.items() if k.startswith(("base/", "boosted/")) and isinstance(v, float)})


if __name__ == "__main__":
    main()
