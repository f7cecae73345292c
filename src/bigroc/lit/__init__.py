"""LightningModules: thin wrappers that connect the engine, log and checkpoint."""

from bigroc.lit.export import export_trained
from bigroc.lit.generative import GenerativeTraining, export_generator  # noqa: F401  (VAETraining, GANTraining: own modules)
from bigroc.lit.robust_training import RobustTraining

__all__ = ["RobustTraining", "export_trained"]
