"""LightningModules: thin wrappers that connect the engine, log and checkpoint."""

from bigroc.lit.export import export_generator, export_trained
from bigroc.lit.generative import GenerativeTraining
from bigroc.lit.robust_training import RobustTraining

# VAETraining, GANTraining and Boost live in modules of their own (bigroc.lit.vae_training, ...).
__all__ = ["GenerativeTraining", "RobustTraining", "export_generator", "export_trained"]
