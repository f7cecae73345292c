"""BIGRoC (Algorithm 2 of the paper) and the logit debiasing of unconditional generators."""

from __future__ import annotations

import torch
from torch import nn

from bigroc.attacks import AttackSpec, eval_mode, pgd
from bigroc.checks import check_images


def debias_shift(logits: torch.Tensor, a: float = 1.0) -> torch.Tensor:
    """The paper's label calibration: d_c = a - mean_x(logit_c(x)).

    After adding ``d`` every class has mean logit ``a`` over the calibration set, so
    ``argmax(logits + d)`` no longer favours classes the classifier over-predicts on
    generated images.

    Shape:
        logits: (N, C) classifier logits of N generated calibration images.
        returns: (C,).
    """
    if not isinstance(logits, torch.Tensor) or logits.dim() != 2 or logits.shape[0] == 0:
        shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise ValueError(f"logits must be a non-empty (N, C) tensor, got {shape}")
    if not torch.isfinite(logits).all():
        raise ValueError("logits contain NaN or infinite values")
    return a - logits.detach().mean(dim=0)


def label_balance(labels: torch.Tensor, num_classes: int) -> float:
    """Total-variation distance between the label histogram and the uniform one (0 = balanced)."""
    counts = torch.bincount(labels.flatten().long(), minlength=num_classes).double()
    return 0.5 * (counts / counts.sum() - 1.0 / num_classes).abs().sum().item()


def balanced_shift(logits: torch.Tensor, iters: int = 500) -> torch.Tensor:
    """The shift ``d`` that makes ``argmax(logits + d)`` as close to uniform as it can.

    Equal mean logits (:func:`debias_shift`) do not give equal label counts: on real GAN
    samples a class can still take several times its share. Starting from the mean shift,
    each iteration lowers the shift of over-predicted classes and raises that of
    under-predicted ones in proportion to their excess share, with a decaying step; the
    shift whose labels are closest to uniform (total variation) is returned.

    Shape:
        logits: (N, C) classifier logits of N generated calibration images.
        returns: (C,).
    """
    d = debias_shift(logits)
    logits = logits.detach().double()
    num, num_classes = logits.shape
    scale = logits.std().clamp_min(1e-6)
    best, best_tv = d.clone(), float("inf")
    shift = d.double()
    for t in range(iters):
        labels = (logits + shift).argmax(dim=1)
        share = torch.bincount(labels, minlength=num_classes).double() / num
        tv = 0.5 * (share - 1.0 / num_classes).abs().sum().item()
        if tv < best_tv:
            best, best_tv = shift.clone(), tv
        if tv == 0:
            break
        shift = shift - scale / (1.0 + t / 25.0) * (share - 1.0 / num_classes)
    return best.to(d.dtype)


def predict_targets(
    classifier: nn.Module, x: torch.Tensor, logit_shift: torch.Tensor | None = None
) -> torch.Tensor:
    """Targets for unconditional images: argmax(logits(x) + logit_shift), shape (N,)."""
    with torch.no_grad(), eval_mode(classifier):
        logits = classifier(x)
    if logit_shift is not None:
        if not isinstance(logit_shift, torch.Tensor) or logit_shift.shape != logits.shape[1:]:
            got = tuple(logit_shift.shape) if isinstance(logit_shift, torch.Tensor) else logit_shift
            raise ValueError(
                f"logit_shift must have shape ({logits.shape[1]},), one entry per class of the "
                f"classifier, got {got}; compute it with debias_shift(calibration_logits)"
            )
        logits = logits + logit_shift.to(logits)
    return logits.argmax(dim=1)


def bigroc(
    classifier: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor | None = None,
    *,
    eps: float,
    steps: int = 30,
    step_size: float | None = None,
    norm: str = "l2",
    logit_shift: torch.Tensor | None = None,
    use_best: bool = False,
    precision: str = "32",
    stop_at: float | None = None,
    doubt_step: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Boost generated images: targeted PGD towards their class under a robust classifier.

    Args:
        classifier: robust classifier taking [0, 1] images (normalisation inside).
        x: generated images, float (N, 3, H, W) in [0, 1].
        y: class of each image (N,) for a conditional generator; ``None`` predicts it as
            ``argmax(classifier(x) + logit_shift)`` (unconditional generators).
        eps: radius of the perturbation ball in [0, 1] pixel units (images scaled to
            [-1, 1], as in the official notebooks, need twice this value there).
        steps: number of PGD steps.
        step_size: length of each step; default ``eps / steps``, the paper's choice, so
            the whole path can just reach the ball's edge.
        norm: ``"l2"`` (the paper's default) or ``"linf"``.
        logit_shift: (C,) shift added to the logits before the argmax when ``y`` is None,
            usually :func:`debias_shift` of a calibration set.
        use_best: return each image's iterate of highest target probability, not the last.
        precision: ``"32"``, ``"bf16"`` or ``"auto"``: the classifier's arithmetic in the
            attack (see :func:`bigroc.attacks.pgd`).
        stop_at: confidence-aware boosting: an image stops moving once the classifier gives
            its target a probability of at least ``stop_at`` (it keeps that iterate; one the
            classifier is already sure of is returned unchanged). None: every image takes
            every step (the paper's algorithm).
        doubt_step: scale each image's step by its remaining doubt, 1 - p(target).

    Returns:
        (x_boost, y): boosted images (N, 3, H, W) in [0, 1] within eps of ``x``, and the
        targets used (N,).
    """
    check_images(x)
    step_size = AttackSpec(eps=eps, steps=steps, step_size=step_size, norm=norm).boost_step_size
    if y is None:
        y = predict_targets(classifier, x, logit_shift)
    elif logit_shift is not None:
        raise ValueError(
            "logit_shift only applies when y is None (predicted targets); pass y or "
            "logit_shift, not both"
        )
    x_boost = pgd(classifier, x, y, eps=eps, steps=steps, step_size=step_size, norm=norm, targeted=True,
                  use_best=use_best, precision=precision, stop_at=stop_at, doubt_step=doubt_step)
    return x_boost, y.to(x.device)
