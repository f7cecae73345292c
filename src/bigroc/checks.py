"""Input validation shared by the engine: one clear ``ValueError`` per kind of bad input."""

from __future__ import annotations

import torch

NORMS = ("l2", "linf")


def check_images(x: torch.Tensor, *, name: str = "x") -> None:
    """Require float NCHW images with 3 channels, finite, in [0, 1]."""
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor of images, got {type(x).__name__}")
    if x.dim() != 4 or x.shape[1] != 3:
        raise ValueError(
            f"{name} must be a 4-D NCHW batch with 3 channels, got shape {tuple(x.shape)}; "
            "add a batch dimension with x[None] or move channels first with x.permute(0, 3, 1, 2)"
        )
    if not x.is_floating_point():
        raise ValueError(
            f"{name} must be a float tensor in [0, 1], got dtype {x.dtype}; "
            "convert uint8 images with x.float() / 255"
        )
    if x.numel() == 0:
        raise ValueError(f"{name} is empty (shape {tuple(x.shape)}); pass at least one image")
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or infinite values; images must be finite")
    lo, hi = float(x.min()), float(x.max())
    if lo < 0.0 or hi > 1.0:
        raise ValueError(
            f"{name} values must lie in [0, 1], got [{lo:.4g}, {hi:.4g}]; "
            "map [-1, 1] generator output with (x + 1) / 2"
        )


def check_labels(y: torch.Tensor, *, batch: int, num_classes: int, name: str = "y") -> None:
    """Require integer class indices of shape (batch,) in [0, num_classes)."""
    if not isinstance(y, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor of class indices, got {type(y).__name__}")
    if y.dim() != 1 or y.shape[0] != batch:
        raise ValueError(
            f"{name} must have shape ({batch},), one label per image, got {tuple(y.shape)}"
        )
    if y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
        raise ValueError(f"{name} must hold integer class indices, got dtype {y.dtype}")
    if batch and (int(y.min()) < 0 or int(y.max()) >= num_classes):
        raise ValueError(
            f"{name} holds labels in [{int(y.min())}, {int(y.max())}] but the classifier has "
            f"{num_classes} classes; labels must lie in [0, {num_classes - 1}]"
        )


MAX_STEPS = 10_000


def check_attack_args(*, eps: float, steps: int, step_size: float, norm: str) -> None:
    """Require eps >= 0, 1 <= steps <= MAX_STEPS, step_size >= 0 and a known norm."""
    if not isinstance(eps, (int, float)) or not eps >= 0 or eps == float("inf"):
        raise ValueError(f"eps must be a finite number >= 0 in [0, 1] pixel units, got {eps!r}")
    if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= MAX_STEPS:
        raise ValueError(f"steps must be an integer in [1, {MAX_STEPS}] (PGD settles within a few hundred), "
                         f"got {steps!r}")
    if not isinstance(step_size, (int, float)) or not step_size >= 0 or step_size == float("inf"):
        raise ValueError(f"step_size must be a finite number >= 0, got {step_size!r}")
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
