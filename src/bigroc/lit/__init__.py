"""LightningModules: thin wrappers that connect the engine, log and checkpoint."""

from bigroc.lit.export import export_trained
from bigroc.lit.robust_training import RobustTraining

__all__ = ["RobustTraining", "export_trained"]
