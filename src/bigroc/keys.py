"""Metric keys, logged and saved as ``stage/quantity``: one place, used everywhere."""

TRAIN_LOSS = "train/loss"
TRAIN_ADV_ACC = "train/adv_acc"
TRAIN_LR = "train/lr"
TRAIN_IMAGES_PER_SEC = "train/images_per_sec"


def clean_acc(stage: str) -> str:
    """``val/clean_acc``, ``test/clean_acc``."""
    return f"{stage}/clean_acc"


def adv_acc(stage: str, eps: float) -> str:
    """``val/adv_acc@0.5``: accuracy under untargeted PGD at radius ``eps``."""
    return f"{stage}/adv_acc@{eps:g}"

BASE = "base"          # the generator's images
BOOSTED = "boosted"    # the same images after BIGRoC


def score(stage: str, quantity: str) -> str:
    """``base/fid``, ``boosted/kid_mean``, ``boosted/target_prob``."""
    return f"{stage}/{quantity}"
