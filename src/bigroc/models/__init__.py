"""Classifiers (CIFAR and ImageNet ResNets behind a normaliser) and their checkpoints."""

from bigroc.models.checkpoints import infer_arch, load_classifier, save_classifier
from bigroc.models.classifier import Classifier, InputNormalize, build_classifier
from bigroc.models.resnet import CifarResNet, ImageNetResNet

__all__ = [
    "CifarResNet",
    "Classifier",
    "ImageNetResNet",
    "InputNormalize",
    "build_classifier",
    "infer_arch",
    "load_classifier",
    "save_classifier",
]
