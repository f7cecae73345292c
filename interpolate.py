"""Interpolate between images in a robust classifier's feature space (paper, section 4).

    python interpolate.py source=a.png target=b.png                # the shipped robust classifier
    python interpolate.py pairs='[[3,10],[7,42]]' data.root=DIR    # CIFAR-10 test images by index
    python interpolate.py source=a.png target=b.png compare.checkpoint=standard.safetensors

Each frame starts at the source and takes `steps` PGD steps, inside the L2 ball of radius
c * ||x_t - x_s||_2 ([0, 1] pixel units), towards the classifier's features of the target.
Writes to the run directory: interpolation.npz (arr_0: the frames, uint8 NHWC, in the order
of c) and interpolation.png (source, frames, target) per pair (pair000/, ... for several),
comparison.png with a second classifier, interpolations.png for several pairs, metrics.json
(feature distance of every frame).
"""

import hydra
from omegaconf import DictConfig, OmegaConf

from bigroc.entry import refusals_in_one_line


@hydra.main(config_path="conf", config_name="interpolate", version_base="1.3")
@refusals_in_one_line
def main(cfg: DictConfig) -> None:
    from pathlib import Path

    from hydra.core.hydra_config import HydraConfig
    from hydra.utils import instantiate

    from bigroc import interpolation_io as job
    from bigroc.entry import quiet_lightning, start_run_record
    from bigroc.feature_interpolation import interpolate
    from bigroc.loggers import finish_loggers, log_run
    from bigroc.report import write_metrics
    from bigroc.run_state import DIGEST_KEY, config_digest, finished_result

    quiet_lightning()  # after Lightning's import: its messages once, through the job's handlers

    out_dir = Path(HydraConfig.get().runtime.output_dir)
    c, layers, weights = (OmegaConf.to_container(cfg[k]) if OmegaConf.is_config(cfg[k])
                          else None if cfg[k] is None else [cfg[k]]  # one value: c=0.5, layers=layer3
                          for k in ("c", "layers", "layer_weights"))
    if len(cfg.labels) != 2 or cfg.labels[0] == cfg.labels[1]:
        raise ValueError(f"labels must be two different names (classifier, compare), got {list(cfg.labels)}")
    pairs = job.read_pairs(source=cfg.source, target=cfg.target, pairs=cfg.pairs, root=cfg.data.root)
    classifiers = {cfg.labels[0]: instantiate(cfg.classifier)}
    if cfg.compare.checkpoint is not None:
        classifiers[cfg.labels[1]] = instantiate(cfg.compare)
    digest = config_digest(cfg, [cfg.source, cfg.target, cfg.classifier.checkpoint, cfg.compare.checkpoint])
    if finished_result(out_dir, "metrics.json", digest):
        print(f"{out_dir} already holds this interpolation; nothing to do")
        return
    start_run_record(out_dir, cfg)

    runs = {}
    for label, classifier in classifiers.items():
        frames = interpolate(classifier, pairs.sources, pairs.targets, c, steps=cfg.steps,
                             step_size=cfg.step_size, layers=layers, weights=weights,
                             batch_size=cfg.batch_size, progress=f"interpolation ({label})")
        runs[label] = job.measure(classifier, frames, pairs, layers=layers, weights=weights)

    # Everything is computed before the first file is written.
    figures = job.save_outputs(out_dir, pairs, runs, c)
    settings = {"c": c, "steps": cfg.steps, "step_size": cfg.step_size, "layer_weights": weights,
                "classifier": cfg.classifier.checkpoint, "compare": cfg.compare.checkpoint,
                "labels": list(runs), DIGEST_KEY: digest}
    metrics = {**settings, **job.summary(pairs, runs, c)}
    write_metrics(out_dir, metrics)
    logger = instantiate(cfg.logger) if cfg.get("logger") else False
    log_run(logger, metrics, figures, cfg)
    finish_loggers(logger)
    for label in runs:  # the same keys as metrics.json and W&B
        key = f"{label}/relative_feature_distance"
        print(f"{key} (feature distance to the target / the source's), by c:",
              {k.split("@")[1]: round(v, 3) for k, v in metrics.items() if k.startswith(key + "@")})


if __name__ == "__main__":
    main()
