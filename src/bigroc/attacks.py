"""Projected gradient descent in an L2 or L-inf ball: pure tensor functions.

Images are float NCHW in [0, 1]; ``eps`` and ``step_size`` are in [0, 1] pixel units.
Every iterate is projected back into the eps-ball around the input and clamped to
[0, 1]. The attack follows MadryLab's ``robustness`` steps (normalised gradient step,
projection, clamp; no random start unless asked), but sums the per-sample losses so the
result for one image does not depend on the rest of its batch.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from bigroc.checks import check_attack_args, check_images, check_labels
from bigroc.precision import autocast
from bigroc.precision import resolve as resolve_precision

# Guards the division by a zero gradient or a zero perturbation.
_TINY = 1e-10

LossFn = Callable[[torch.Tensor], torch.Tensor]


def _per_sample_norm(t: torch.Tensor) -> torch.Tensor:
    """L2 norm of each sample of ``t`` (N, ...) shaped (N, 1, ..., 1) for broadcasting."""
    return t.flatten(1).norm(dim=1).view(-1, *([1] * (t.dim() - 1)))


@dataclass(frozen=True)
class AttackSpec:
    """An attack's hyperparameters, as configured under ``conf/attack/``.

    ``stop_at`` and ``doubt_step`` make boosting confidence-aware (off by default, see
    :func:`confidence_rules`); training and evaluation attacks ignore them.

    Boosting runs it targeted (:func:`bigroc.boost.bigroc`), adversarial training
    untargeted (:func:`pgd`). ``eps`` and ``step_size`` are in [0, 1] pixel units;
    ``step_size=None`` means each use's default: :attr:`boost_step_size` (``eps / steps``)
    or :attr:`madry_step_size` (``2.5 * eps / steps``). These are the only places the
    default step rules live.
    """

    eps: float
    steps: int
    step_size: float | None = None
    norm: str = "l2"
    random_start: bool = False
    use_best: bool = False
    stop_at: float | None = None
    doubt_step: bool = False

    def __post_init__(self) -> None:
        step = 0.0 if self.step_size is None else self.step_size
        check_attack_args(eps=self.eps, steps=self.steps, step_size=step, norm=self.norm)
        check_confidence_args(self.stop_at, self.doubt_step)

    @property
    def boost_step_size(self) -> float:
        """The step boosting uses: ``step_size``, or the paper's ``eps / steps`` when unset."""
        return self.step_size if self.step_size is not None else self.eps / self.steps

    @property
    def madry_step_size(self) -> float:
        """The step of attacks that must cross the ball (training, evaluation, interpolation):
        ``step_size``, or Madry et al.'s ``2.5 * eps / steps`` when unset."""
        return self.step_size if self.step_size is not None else madry_step_size(self.eps, self.steps)


def madry_step_size(eps, steps: int):
    """2.5 * eps / steps (a float, or per-sample tensors of radii): Madry et al.'s step."""
    return 2.5 * eps / steps


def l2_step(x: torch.Tensor, grad: torch.Tensor, step_size: float) -> torch.Tensor:
    """Move each sample ``step_size`` along its L2-normalised ``grad`` (ascent)."""
    return x + step_size * grad / (_per_sample_norm(grad) + _TINY)


def l2_project(x: torch.Tensor, x0: torch.Tensor, eps: float) -> torch.Tensor:
    """Project ``x`` onto {||x - x0||_2 <= eps} per sample, then clamp to [0, 1].

    Clamping cannot leave the ball: [0, 1] holds ``x0``, so clamping moves every pixel
    towards it. The projection is therefore idempotent.
    """
    delta = x - x0
    scale = torch.clamp(eps / (_per_sample_norm(delta) + _TINY), max=1.0)
    return torch.clamp(x0 + delta * scale, 0.0, 1.0)


def linf_step(x: torch.Tensor, grad: torch.Tensor, step_size: float) -> torch.Tensor:
    """Move every pixel ``step_size`` along the sign of ``grad`` (ascent)."""
    return x + step_size * torch.sign(grad)


def linf_project(x: torch.Tensor, x0: torch.Tensor, eps: float) -> torch.Tensor:
    """Clip ``x`` to the box {||x - x0||_inf <= eps}, then clamp to [0, 1]."""
    return torch.clamp(torch.clamp(x, x0 - eps, x0 + eps), 0.0, 1.0)


_STEPS = {"l2": (l2_step, l2_project), "linf": (linf_step, linf_project)}


def check_confidence_args(stop_at: float | None, doubt_step: bool) -> None:
    """``stop_at`` in (0, 1) or None; ``doubt_step`` a bool."""
    if stop_at is not None and (isinstance(stop_at, bool) or not isinstance(stop_at, (int, float))
                                or not 0 < stop_at < 1):
        raise ValueError(f"attack.stop_at must be a probability in (0, 1) or null, got {stop_at!r}; e.g. "
                         "attack.stop_at=0.9")
    if not isinstance(doubt_step, bool):
        raise ValueError(f"attack.doubt_step must be true or false, got {doubt_step!r}")


def confidence_rules(stop_at: float | None, doubt_step: bool) -> tuple[LossFn | None, LossFn | None]:
    """:func:`descend`'s ``moving`` and ``step_scale`` for a targeted cross-entropy loss.

    The loss of a targeted attack is -log p(target), so p = exp(-loss):
    - ``stop_at``: an image moves while p < ``stop_at``; from the first iterate where p
      reaches it, it keeps that iterate (an image already there is returned unchanged);
    - ``doubt_step``: each image's step is scaled by its remaining doubt, 1 - p.
    """
    moving = None if stop_at is None else (lambda loss: loss > -math.log(stop_at))
    scale = (lambda loss: -torch.expm1(-loss)) if doubt_step else None  # 1 - p, exact near p = 1
    return moving, scale


def check_in_ball(x_adv: torch.Tensor, x0: torch.Tensor, *, eps: float, norm: str) -> None:
    """Raise ``RuntimeError`` unless every ``x_adv`` lies in [0, 1] and its eps-ball around ``x0``.

    The tolerance covers float32 rounding of the projection (a relative 1e-5 of eps), not
    any real excursion; results are checked before they are saved.
    """
    delta = (x_adv - x0).flatten(1)
    size = delta.norm(dim=1) if norm == "l2" else delta.abs().amax(dim=1)
    if not torch.isfinite(x_adv).all() or x_adv.min() < 0 or x_adv.max() > 1:
        raise RuntimeError("boosted images are not finite images in [0, 1]; nothing of this batch was saved")
    if (size > eps * (1 + 1e-5) + 1e-6).any():
        raise RuntimeError(f"boosted images left the {norm} ball of eps {eps} (largest perturbation "
                           f"{float(size.max()):.6g}); nothing of this batch was saved")


def random_perturb(
    x0: torch.Tensor, eps: float, norm: str, generator: torch.Generator | None = None
) -> torch.Tensor:
    """A random start inside the ball, clamped to [0, 1].

    L2: a point on the sphere of radius eps (MadryLab's choice); L-inf: uniform in the box.
    """
    if norm == "l2":
        noise = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
        return torch.clamp(x0 + eps * noise / (_per_sample_norm(noise) + _TINY), 0.0, 1.0)
    noise = torch.rand(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
    return torch.clamp(x0 + eps * (2.0 * noise - 1.0), 0.0, 1.0)


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put ``model`` (and every submodule) in eval mode, then restore each one's mode."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for m, was_training in modes:
            m.training = was_training


def descend(
    loss_fn: LossFn,
    x: torch.Tensor,
    *,
    eps: float | torch.Tensor,
    steps: int,
    step_size: float | torch.Tensor,
    norm: str = "l2",
    x_start: torch.Tensor | None = None,
    use_best: bool = False,
    moving: LossFn | None = None,
    step_scale: LossFn | None = None,
) -> torch.Tensor:
    """Projected gradient descent on ``loss_fn`` inside the eps-ball around ``x``.

    Args:
        loss_fn: maps images (N, 3, H, W) to per-sample losses (N,) to minimise. Sample i's
            loss must depend on image i only, so the steps are independent of the batch.
        x: centre of the ball, (N, 3, H, W) in [0, 1].
        eps, step_size: ball radius and step length, in [0, 1] pixel units; floats, or
            per-sample tensors of shape (N, 1, 1, 1) (one radius per image).
        steps: number of gradient steps.
        norm: ``"l2"`` (normalised-gradient step) or ``"linf"`` (sign step).
        x_start: first iterate (default ``x``); it is projected into the ball first.
        use_best: return each sample's iterate of lowest loss (MadryLab's ``use_best``;
            one more forward pass) instead of the last one.
        moving: maps the losses (N,) of the current iterates to whether each sample still
            moves (bool (N,)); a sample that stops keeps its iterate to the end. The loop
            ends early once none moves. None: every sample takes every step.
        step_scale: maps the losses (N,) to a factor (N,) of each sample's step length.

    Returns:
        The last (or best) iterate, detached, (N, 3, H, W) in [0, 1] and within the ball.
    """
    if torch.is_inference_mode_enabled():
        raise RuntimeError("projected descent needs input gradients, which torch.inference_mode "
                           "forbids; run outside it (Lightning: Trainer(inference_mode=False))")
    step, project = _STEPS[norm]
    x0 = x.detach()
    x_adv = project(x0 if x_start is None else x_start.detach(), x0, eps)
    best: tuple[torch.Tensor, torch.Tensor] | None = None
    still = torch.ones(x0.shape[0], dtype=torch.bool, device=x0.device)
    for _ in range(steps):
        x_adv.requires_grad_(True)
        with torch.enable_grad():  # also inside no_grad evaluation loops
            losses = loss_fn(x_adv)
            # Gradient w.r.t. the input only: parameters get no .grad and their gradients
            # are never computed.
            (grad,) = torch.autograd.grad(losses.sum(), [x_adv])
        if not bool(torch.isfinite(losses).all() & torch.isfinite(grad).all()):
            raise ValueError("the loss or its input gradient is not finite (NaN or inf): the model's weights or "
                             "normaliser are damaged, or its precision overflowed")
        with torch.no_grad():
            losses = losses.detach()
            if use_best:
                best = _keep_lowest(x_adv.detach(), losses, best)
            size = step_size if step_scale is None else step_size * _per_sample(step_scale(losses), x0)
            moved = project(step(x_adv, -grad, size), x0, eps)
            if moving is None:
                x_adv = moved
                continue
            still &= moving(losses)
            x_adv = torch.where(_per_sample(still, x0), moved, x_adv.detach())
            if not still.any():
                break
    if use_best:
        with torch.no_grad():
            x_adv = _keep_lowest(x_adv, loss_fn(x_adv), best)[0]
    return x_adv.detach()


def _per_sample(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """(N,) values shaped (N, 1, ..., 1) to broadcast over ``like``'s samples."""
    return values.view(-1, *([1] * (like.dim() - 1)))


def _keep_lowest(
    x: torch.Tensor, loss: torch.Tensor, best: tuple[torch.Tensor, torch.Tensor] | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per sample, the (iterate, loss) of lower loss; ties keep the earlier iterate."""
    if best is None:
        return x.clone(), loss.clone()
    better = loss < best[1]
    mask = better.view(-1, *([1] * (x.dim() - 1)))
    return torch.where(mask, x, best[0]), torch.where(better, loss, best[1])


def num_classes_of(model: nn.Module, x: torch.Tensor) -> int:
    """The model's class count: its ``num_classes`` attribute, else one forward pass."""
    n = getattr(model, "num_classes", None)
    if isinstance(n, int):
        return n
    with torch.no_grad(), eval_mode(model):
        return int(model(x[:1]).shape[1])


def pgd(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eps: float,
    steps: int,
    step_size: float,
    norm: str = "l2",
    targeted: bool = True,
    random_start: bool = False,
    use_best: bool = False,
    generator: torch.Generator | None = None,
    precision: str = "32",
    stop_at: float | None = None,
    doubt_step: bool = False,
) -> torch.Tensor:
    """Projected gradient descent (targeted) or ascent (untargeted) on cross-entropy.

    The model runs in eval mode for the attack and gets back the mode it had; no gradient
    accumulates in its parameters; everything runs on ``x.device``.

    Args:
        model: classifier taking [0, 1] images (normalisation inside) and returning logits.
        x: images, float (N, 3, H, W) in [0, 1].
        y: class indices (N,): the target when ``targeted``, else the true labels.
        eps: radius of the ball, in [0, 1] pixel units (L2 norm over all C*H*W values,
            or the per-pixel bound for ``"linf"``).
        steps: number of PGD steps (>= 1).
        step_size: length of each step in [0, 1] pixel units.
        norm: ``"l2"`` or ``"linf"``.
        targeted: minimise cross-entropy to ``y`` (True) or maximise it (False).
        random_start: start from a random point of the ball (for adversarial training).
        use_best: return each sample's iterate of best loss, not the last (MadryLab's
            training default); costs one more forward pass.
        generator: random source for ``random_start``.
        precision: ``"32"``, ``"bf16"`` (the model's passes under bf16 autocast on
            ``x.device``; the steps, projection and result stay float32) or ``"auto"``
            (bf16 where the device has bf16 units: :mod:`bigroc.precision`).
        stop_at, doubt_step: confidence-aware steps of a targeted attack
            (:func:`confidence_rules`): stop each image once p(target) >= ``stop_at``; scale
            each step by 1 - p(target).

    Returns:
        x_adv: float (N, 3, H, W) in [0, 1] with ||x_adv - x|| <= eps per sample.

    Raises:
        ValueError: bad images, labels or attack arguments, with what to fix.
    """
    check_images(x)
    check_attack_args(eps=eps, steps=steps, step_size=step_size, norm=norm)
    y = y.to(x.device) if isinstance(y, torch.Tensor) else y
    check_labels(y, batch=x.shape[0], num_classes=num_classes_of(model, x))
    check_confidence_args(stop_at, doubt_step)
    if not targeted and (stop_at is not None or doubt_step):
        raise ValueError("stop_at and doubt_step measure p(target): they apply to targeted attacks (boosting) only")
    moving, step_scale = confidence_rules(stop_at, doubt_step)
    sign = 1.0 if targeted else -1.0
    cast = resolve_precision(precision, x.device.type)

    def loss_fn(x_adv: torch.Tensor) -> torch.Tensor:
        with autocast(cast, x.device.type):
            logits = model(x_adv)
        return sign * F.cross_entropy(logits.float(), y, reduction="none")

    x_start = random_perturb(x, eps, norm, generator) if random_start else None
    with eval_mode(model):
        return descend(
            loss_fn, x, eps=eps, steps=steps, step_size=step_size, norm=norm, x_start=x_start,
            use_best=use_best, moving=moving, step_scale=step_scale,
        )
