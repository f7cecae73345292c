"""Adversarially train a robust classifier (Madry et al.) for BIGRoC.

    python train_robust.py --cfg job         # print the composed configuration

The training loop is being built; for now the job composes its configuration and builds
the classifier and the training attack.
"""

import hydra
from omegaconf import DictConfig, OmegaConf


@hydra.main(config_path="conf", config_name="train_robust", version_base="1.3")
def main(cfg: DictConfig) -> None:
    from hydra.utils import instantiate

    print(OmegaConf.to_yaml(cfg, resolve=True))
    classifier = instantiate(cfg.classifier)
    instantiate(cfg.train_attack)
    n_params = sum(p.numel() for p in classifier.parameters()) / 1e6
    print(f"classifier: {cfg.classifier.arch}, {n_params:.1f}M parameters")


if __name__ == "__main__":
    main()
