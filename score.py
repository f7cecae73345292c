"""Score images already on disk (FID, sFID, KID, precision/recall, IS) against a reference.

    python score.py samples=samples.npz data.root=data            # any ADM-style .npz
    python score.py samples=outputs/boost/vae/RUN_DIR data.root=data  # a run's base and boosted samples
    python score.py samples=samples.npz metrics=reference_npz metrics.path=VIRTUAL_imagenet128_labeled.npz

Writes scores.json to the run directory (outputs/score/DATE/TIME/) and prints the scores as
a table, one column per scored file (a run directory: base, boosted and the change).
"""

import hydra
from omegaconf import DictConfig

from bigroc.entry import refusals_in_one_line


@hydra.main(config_path="conf", config_name="score", version_base="1.3")
@refusals_in_one_line
def main(cfg: DictConfig) -> None:
    from pathlib import Path

    from hydra.core.hydra_config import HydraConfig
    from hydra.utils import instantiate

    from bigroc.entry import quiet_lightning
    from bigroc.report import write_json
    from bigroc.run_state import DIGEST_KEY, config_digest, finished_result
    from bigroc.score_files import image_shape_of, samples_to_score, score_samples
    from bigroc.scoring import check_reference_fits, prepare_scoring
    from bigroc.summary_table import score_table

    quiet_lightning()  # after Lightning's import: its messages once, through the job's handlers

    # Everything is checked, and the run directory read, before the reference is built.
    target = Path(cfg.samples).expanduser()
    if not target.exists():
        raise ValueError(f"samples={cfg.samples} does not exist; give an .npz or a run directory")
    stages = samples_to_score(target)
    spec = instantiate(cfg.metrics)
    for files in stages.values():
        for path in files:
            check_reference_fits(spec, image_shape_of(path))
    out_dir = Path(HydraConfig.get().runtime.output_dir)
    digest = config_digest(cfg, [p for files in stages.values() for p in files])
    if finished_result(out_dir, "scores.json", digest):
        print(f"{out_dir} already holds these scores; nothing to do")
        return
    scoring, why_not = prepare_scoring(spec, cfg.data.root, download=cfg.data.download)
    if scoring is None:
        raise ValueError(why_not)
    scores = {**score_samples(stages, scoring), **scoring.info, "samples": str(target), DIGEST_KEY: digest}
    write_json(out_dir / "scores.json", scores)
    print(score_table(scores, list(stages)))

if __name__ == "__main__":
    main()
