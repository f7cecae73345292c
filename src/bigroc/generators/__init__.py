"""Image sources to boost: latent generators (one module per family) and stored samples.

``build_generator(name, checkpoint=..., random_init=..., **keys)`` builds any registered
source (``GENERATORS``); every ``conf/generator/*.yaml`` targets it. All sources return
float NCHW images in [0, 1], deterministic per ``(seed, index)``.
"""

from bigroc.generators.base import Generator, ImageSource
from bigroc.generators.registry import GENERATORS, build_generator

__all__ = ["GENERATORS", "Generator", "ImageSource", "build_generator"]
