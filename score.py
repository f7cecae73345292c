"""Score images already on disk (FID, sFID, KID, precision/recall, IS) against a reference.

    python score.py samples=samples.npz data.root=data            # any ADM-style .npz
    python score.py samples=outputs/boost/vae/RUN_DIR data.root=data  # a run's base and boosted samples
    python score.py samples=samples.npz metrics=reference_npz metrics.path=VIRTUAL_imagenet128_labeled.npz

Writes scores.json to the run directory (outputs/score/DATE/TIME/) and prints the scores.
"""

import hydra
from omegaconf import DictConfig

from bigroc.entry import refusals_in_one_line


@hydra.main(config_path="conf", config_name="score", version_base="1.3")
@refusals_in_one_line
def main(cfg: DictConfig) -> None:
    import json
    from pathlib import Path

    from hydra.core.hydra_config import HydraConfig
    from hydra.utils import instantiate

    from bigroc.entry import quiet_lightning
    from bigroc.report import write_json
    from bigroc.score_files import score_samples
    from bigroc.scoring import prepare_scoring

    quiet_lightning()  # after Lightning's import: its messages once, through the job's handlers

    target = Path(cfg.samples).expanduser()
    if not target.exists():
        raise ValueError(f"samples={cfg.samples} does not exist; give an .npz or a run directory")
    scoring, why_not = prepare_scoring(instantiate(cfg.metrics), cfg.data.root, download=cfg.data.download)
    if scoring is None:
        raise ValueError(why_not)
    scores = {**score_samples(target, scoring), **scoring.info, "samples": str(target)}
    out_dir = Path(HydraConfig.get().runtime.output_dir)
    write_json(out_dir / "scores.json", scores)
    print(json.dumps({k: round(v, 4) for k, v in scores.items() if isinstance(v, float)}))


if __name__ == "__main__":
    main()
