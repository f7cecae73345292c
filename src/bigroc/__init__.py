"""BIGRoC: boost the images of any trained generator with a robust classifier.

Images are float NCHW tensors in [0, 1]; ``eps`` and ``step_size`` are in [0, 1] pixel
units. The algorithm lives in :mod:`bigroc.boost`, the attack in :mod:`bigroc.attacks`,
classifiers and their checkpoints in :mod:`bigroc.models`.
"""

__version__ = "0.1.0"
