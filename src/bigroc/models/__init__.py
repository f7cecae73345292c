"""Classifiers (CIFAR and ImageNet ResNets behind a normaliser) and their checkpoints."""

from bigroc.models.checkpoints import classifier_from_config, infer_arch, load_classifier, shipped_classifier
from bigroc.models.export import save_classifier, save_madry_checkpoint
from bigroc.models.classifier import Classifier, InputNormalize, build_classifier
from bigroc.models.fast import attack_ready
from bigroc.models.resnet import CifarResNet, ImageNetResNet

__all__ = [
    "attack_ready",
    "CifarResNet",
    "Classifier",
    "ImageNetResNet",
    "InputNormalize",
    "build_classifier",
    "classifier_from_config",
    "infer_arch",
    "load_classifier",
    "save_classifier",
    "save_madry_checkpoint",
    "shipped_classifier",
]
