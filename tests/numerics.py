"""How tests compare results of iterated computations, and why these bounds.

Two runs of the same maths can differ by rounding: another kernel family (AVX2, AVX-512 or
AMX oneDNN kernels; Intel or AMD cores), another batch shape (the library picks another
blocking), another summation order. One float32 PGD step turns a rounding difference of
~1e-7 in the gradient into ~1e-8 in the pixels. Over many float32 steps, though, a ReLU whose
input sits within rounding of zero can flip, or an L-inf gradient entry near zero can change
sign; the steps that follow carry a small but real change of direction. How often that
happens depends on the CPU: on the Xeon (AVX-512/AMX) one image of six ended 9e-3 away in L2
after ten steps, on the EPYC (AMD, AVX-512) three images 2e-4 away and, at L-inf, 120 pixels of
one image a full step apart. No float32 bound both holds on every host and stays tight.

So iterated PGD is compared in **float64** (``assert_float64_iterates_agree``): rounding is
then ~1e-16, nine orders below a flipped ReLU's reach, and every image must agree to
``ITERATED_F64_L2``. What is left is the maths: MadryLab's projection (``torch.renorm``) adds
1e-7 to the norm it divides by, which moves its result by ~1e-7 of eps (measured 8.6e-8 after
ten steps at eps 0.5 on the EPYC, with its AVX-512 kernels and with AVX2 ones); a wrong step
rule, sign, projection, clamp or iterate moves images by a good part of a step (``test_madry_crosscheck.py`` requires the check to
reject each). One float32 step is still checked per pixel (``ONE_STEP_ATOL``): there no
flip can compound.

Feature interpolation iterates the same way (normalised L2 steps, best iterate) and is
compared in float64 too, with the same bound.

Results compared across a kill and resume on one machine stay bit-exact: the same process
runs the same kernels on the same shapes, so no rounding difference exists to tolerate.
"""

from __future__ import annotations

import torch

ONE_STEP_ATOL = 1e-5  # measured ~6e-8 (one ulp near 0.5) on AVX2 and AVX-512 kernels
ITERATED_F64_L2 = 1e-6  # measured <= 8.6e-8 after ten steps (EPYC; AVX-512 and AVX2 kernels)


def assert_float64_iterates_agree(got: torch.Tensor, expected: torch.Tensor) -> None:
    """Every image (N, ...) of two float64 iterated results agrees to ``ITERATED_F64_L2`` in L2."""
    assert got.dtype == expected.dtype == torch.float64, (got.dtype, expected.dtype)
    dist = (got - expected).flatten(1).norm(dim=1)
    assert (dist <= ITERATED_F64_L2).all(), f"images lie {dist.tolist()} apart (bound {ITERATED_F64_L2})"
