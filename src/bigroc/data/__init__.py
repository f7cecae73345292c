"""Data: CIFAR-10 (pickle layout) and its DataModule; batch augmentation; resumable loading."""

from bigroc.data.augment import random_crop_flip
from bigroc.data.cifar10 import CIFAR10DataModule, read_cifar10
from bigroc.data.generated import GeneratedDataModule, index_batches, shard_range
from bigroc.data.loader import ResumableLoader

__all__ = [
    "CIFAR10DataModule", "GeneratedDataModule", "ResumableLoader", "index_batches",
    "random_crop_flip", "read_cifar10", "shard_range",
]
