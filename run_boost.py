"""Boost a generator's samples with a robust classifier (BIGRoC).

    python run_boost.py                      # default configuration
    python run_boost.py epsilon=0.5 steps=7  # any knob of conf/boost.yaml
    python run_boost.py --cfg job            # print the composed configuration

The generate -> boost -> score -> log pipeline is being built; for now the job composes
its configuration, builds the classifier and the attack, and reports what it would run.
"""

import hydra
from omegaconf import DictConfig, OmegaConf


@hydra.main(config_path="conf", config_name="boost", version_base="1.3")
def main(cfg: DictConfig) -> None:
    from hydra.utils import instantiate

    print(OmegaConf.to_yaml(cfg, resolve=True))
    classifier = instantiate(cfg.classifier)
    attack = instantiate(cfg.attack)
    n_params = sum(p.numel() for p in classifier.parameters()) / 1e6
    source = cfg.classifier.checkpoint or "random initialisation (set classifier.checkpoint)"
    print(f"classifier: {cfg.classifier.arch}, {n_params:.1f}M parameters, from {source}")
    print(f"attack: {attack}")


if __name__ == "__main__":
    main()
