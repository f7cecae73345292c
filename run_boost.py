"""Boost a generator's samples with a robust classifier (BIGRoC) and score both versions.

    python run_boost.py                                          # the default job
    python run_boost.py generator=sngan generator.checkpoint=netG_100000.pth epsilon=0.5
    python run_boost.py generator=samples generator.path=samples.npz num_samples=10000
    python run_boost.py experiment=imagenet128_adm_g generator.path=admnet_guided_imagenet128.npz \
        classifier.checkpoint=imagenet_l2_3_0.pt metrics.path=VIRTUAL_imagenet128_labeled.npz
    python run_boost.py -m generator=vae epsilon=0.25,0.5,1,2     # eps sweep + summary plot
    python run_boost.py trainer=ddp                               # all GPUs of the machine

Writes to the run directory: metrics.json (base/... and boosted/... scores, settings),
summary.md (the table of scores the run prints last), samples_base.npz and
samples_boosted.npz (ADM layout), grid_before_after.png and label_histograms.png. A killed
run started again with the same command (and run directory) resumes from the batches it
had finished. Progress comes as plain lines when the output is a file or a pipe.
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

    from bigroc import progress
    from bigroc.run_state import (DIGEST_KEY, check_run_dir, clean_finished_run, prepare_run_dir, recorded_setting,
                                  run_settings)

    # 1. Compose: the settings, and what the run directory already holds (only read; before
    # Lightning is imported, so a refused setting is answered in seconds).
    out_dir = Path(HydraConfig.get().runtime.output_dir)
    progress.set_enabled(cfg.trainer.enable_progress_bar)  # every stage's progress lines, not only the bar's
    attack = instantiate(cfg.attack)  # an AttackSpec, checked
    settings = run_settings(cfg, attack)
    if check_run_dir(out_dir, settings) == "done":
        clean_finished_run(out_dir, settings[DIGEST_KEY])
        score_if_unscored(cfg, out_dir)
        return
    # 2. Build every part once, checked, before the first write.
    from bigroc import report
    from bigroc.entry import launched_rank_zero, quiet_lightning, start_run_record
    from bigroc.lit.progress import progress_callbacks
    from bigroc.loggers import finish_loggers, log_run
    from bigroc.pipeline import build_job, choose_batch_size, run_job
    from bigroc.storage import ChunkStore
    from bigroc.summary_table import score_table

    quiet_lightning()  # after Lightning's import: its messages once, through the job's handlers
    job = build_job(cfg, attack)
    if not job.scores:
        print(job.scoring.reason)
    logger = instantiate(cfg.logger) if cfg.get("logger") else False
    bar, bar_on = progress_callbacks("boosting and scoring" if job.scores else "boosting",
                                     cfg.trainer.enable_progress_bar)
    trainer = instantiate(cfg.trainer, logger=logger, callbacks=bar, enable_progress_bar=bar_on)
    recorded = [recorded_setting(out_dir, k) for k in ("batch_size_used", "batch_size_choice")]
    batch, choice = choose_batch_size(job, trainer.strategy.root_device, None if None in recorded else recorded)
    settings = {**settings, "batch_size_used": batch, "batch_size_choice": choice}
    if launched_rank_zero():  # DDP processes that Lightning starts find the directory ready
        prepare_run_dir(out_dir, settings)
        start_run_record(out_dir, cfg)
    # 3. Run: boost and score every seed, samples and figures on disk.
    result = run_job(job, trainer, out_dir, settings)
    # 4. Report: metrics.json, summary.md, the experiment logger, the table of scores.
    if trainer.is_global_zero:
        report.write_metrics(out_dir, result.metrics)
        report.write_summary(out_dir, result.metrics)
        report.remove_chunks(ChunkStore(out_dir / ".chunks"))
        log_run(logger, result.metrics, result.figures, cfg)
        print(score_table(result.metrics))
    finish_loggers(logger)


def score_if_unscored(cfg: DictConfig, out_dir) -> None:
    """A finished run saved without scores (no reference data then) is scored from its saved
    samples once the data is there; a scored one is left alone."""
    from hydra.utils import instantiate

    from bigroc import report
    from bigroc.score_files import is_unscored, score_finished_run
    from bigroc.scoring import prepare_scoring
    from bigroc.summary_table import score_table

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
    report.write_summary(out_dir, metrics)
    print(f"scored the saved samples of {out_dir}:\n{score_table(metrics)}")


if __name__ == "__main__":
    main()
