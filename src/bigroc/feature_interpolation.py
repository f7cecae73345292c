"""Robust-feature interpolation (section 4 of the BIGRoC paper): pure tensor functions.

A frame at ratio ``c`` is the source image x_s moved, by projected gradient descent inside
the L2 ball of radius eps = c * ||x_t - x_s||_2 around x_s, towards the classifier's
features of the target x_t at several depths. With a robust classifier the frames take on
the target's shapes and colours; with a standard one they stay noisy copies of the source.

Feature distance. For taps F_1..F_L with weights w_1..w_L,

    D(x, x_t) = sum_i w_i * ||F_i(x) - F_i(x_t)||_2^2 / size(F_i),

each layer's squared distance divided by its number of elements (per image), so a
layer-1 map with 16x more values than a layer-4 map does not drown it out and equal
default weights give every depth a comparable say. Images are float NCHW in [0, 1];
eps and step sizes are in [0, 1] pixel units.
"""

from __future__ import annotations

import re
from contextlib import contextmanager
from typing import Iterator, Sequence

import torch
from torch import nn

from bigroc.attacks import descend, eval_mode, madry_step_size
from bigroc.checks import check_attack_args, check_images
from bigroc.progress import Progress, print_line, silent

STAGE = re.compile(r"(model\.)?layer\d+")


class _AllTapped(Exception):
    """Raised by the last tap to fire: the rest of the forward pass is not needed."""


def stage_names(classifier: nn.Module) -> list[str]:
    """The ResNet stages of ``classifier`` as named by ``named_modules()``.

    A :class:`bigroc.models.Classifier` gives ``["model.layer1", ..., "model.layer4"]``.
    """
    return [name for name, _ in classifier.named_modules() if STAGE.fullmatch(name)]


def resolve_layers(classifier: nn.Module, layers: Sequence[str] | str | None = None) -> list[str]:
    """Full module names of the taps: the stages by default, else ``layers``.

    A name is any entry of ``classifier.named_modules()`` (``model.layer3``,
    ``model.layer3.1``); a bare stage name (``layer3``) means ``model.layer3``.
    """
    stages = stage_names(classifier)
    listing = f"stages: {', '.join(stages) or 'none'} (or any name in classifier.named_modules())"
    if layers is None:
        if not stages:
            raise ValueError(f"{type(classifier).__name__} has no ResNet stages (layer1..layer4); "
                             "pass layers=[...] naming modules of classifier.named_modules()")
        return stages
    names = [layers] if isinstance(layers, str) else list(layers)
    if not names:
        raise ValueError(f"layers is empty; name at least one module, {listing}")
    modules = dict(classifier.named_modules())
    resolved = []
    for name in names:
        full = name if name and name in modules else f"model.{name}"
        if not isinstance(name, str) or full not in modules:
            raise ValueError(f"unknown layer {name!r}; {listing}")
        resolved.append(full)
    if len(set(resolved)) != len(resolved):
        raise ValueError(f"layers name a module twice: {resolved}")
    return resolved


@contextmanager
def _tapped(classifier: nn.Module, layers: Sequence[str]) -> Iterator[dict[str, torch.Tensor]]:
    """Forward hooks on the modules ``layers`` (full names); removed on exit.

    Yields a dict filled, during each forward pass, with every tapped module's output. The
    pass stops (with :class:`_AllTapped`) as soon as every tap has fired, so the head never
    runs: a CIFAR network then works at any image size, and no time goes to the logits.
    """
    modules = dict(classifier.named_modules())
    store: dict[str, torch.Tensor] = {}

    def hook(name: str):
        def record(module: nn.Module, args, output: torch.Tensor) -> None:
            if not isinstance(output, torch.Tensor):
                raise ValueError(f"layer {name} returns a {type(output).__name__}, not a tensor; "
                                 "tap a module that returns one")
            # A copy: a later in-place op (ReLU(inplace=True)) must not change what we keep.
            store[name] = output.clone()
            if len(store) == len(layers):
                raise _AllTapped

        return record

    handles = [modules[name].register_forward_hook(hook(name)) for name in layers]
    try:
        yield store
    finally:
        for handle in handles:
            handle.remove()


def features(classifier: nn.Module, x: torch.Tensor, layers: Sequence[str]) -> list[torch.Tensor]:
    """One forward pass; each tapped module's output flattened per image.

    Shape:
        x: (N, 3, H, W) in [0, 1]; returns one (N, D_i) tensor per layer, in ``layers`` order.
    """
    with _tapped(classifier, layers) as store:
        try:
            classifier(x)
        except _AllTapped:
            pass
    missing = [name for name in layers if name not in store]
    if missing:
        raise ValueError(f"layers {missing} were not reached by the classifier's forward pass")
    return [store[name].flatten(1) for name in layers]


def layer_distances(feats: Sequence[torch.Tensor], goal: Sequence[torch.Tensor]) -> torch.Tensor:
    """Per image and layer, ||F_i(x) - F_i(x_t)||_2^2 / size(F_i): (N, L)."""
    return torch.stack([(f - g).pow(2).mean(dim=1) for f, g in zip(feats, goal)], dim=1)


def feature_distance(
    classifier: nn.Module,
    x: torch.Tensor,
    target: torch.Tensor,
    *,
    layers: Sequence[str] | None = None,
) -> torch.Tensor:
    """Per-layer feature distances of images to targets, without gradients.

    Shape:
        x, target: (N, 3, H, W) in [0, 1]; returns (N, L), L = number of layers (default:
        the stages). Weight and sum the columns for the interpolation's objective.
    """
    names = resolve_layers(classifier, layers)
    with torch.no_grad(), eval_mode(classifier):
        return layer_distances(features(classifier, x, names), features(classifier, target, names))


def _check_pair(source: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate a source/target pair; both as (N, 3, H, W) batches."""
    for name, img in (("source", source), ("target", target)):
        if not isinstance(img, torch.Tensor):
            raise ValueError(f"{name} must be a torch.Tensor image, got {type(img).__name__}")
    if source.shape != target.shape:
        raise ValueError(f"source and target must have one shape, got {tuple(source.shape)} and "
                         f"{tuple(target.shape)}; resize one of them")
    if source.dim() == 3:
        source, target = source[None], target[None]
    check_images(source, name="source")
    check_images(target, name="target")
    return source, target.to(source.device, source.dtype)


def _check_ratios(c: Sequence[float] | float) -> list[float]:
    ratios = [c] if isinstance(c, (int, float)) else list(c)
    if not ratios:
        raise ValueError("c is empty; give at least one ratio in [0, 1]")
    for r in ratios:
        if isinstance(r, bool) or not isinstance(r, (int, float)) or not 0.0 <= r <= 1.0:
            raise ValueError(f"every c must be a number in [0, 1] (eps = c * ||x_t - x_s||_2), got {r!r}")
    return [float(r) for r in ratios]


def _check_weights(weights: Sequence[float] | None, layers: Sequence[str]) -> torch.Tensor:
    if weights is None:
        return torch.ones(len(layers))
    w = [float(v) for v in weights]
    if len(w) != len(layers):
        raise ValueError(f"got {len(w)} layer weights for {len(layers)} layers {list(layers)}; "
                         "give one weight per layer")
    if not all(v >= 0 and v != float("inf") for v in w) or sum(w) == 0:
        raise ValueError(f"layer weights must be finite, >= 0 and not all 0, got {w}")
    return torch.tensor(w)


def interpolate(
    classifier: nn.Module,
    source: torch.Tensor,
    target: torch.Tensor,
    c: Sequence[float] | float,
    *,
    steps: int,
    step_size: float | None = None,
    layers: Sequence[str] | None = None,
    weights: Sequence[float] | None = None,
    batch_size: int | None = None,
    progress: str | None = None,
) -> torch.Tensor:
    """Frames from ``source`` towards ``target`` in the classifier's feature space.

    For each ratio c and image, PGD from x_s minimises the weighted feature distance D
    (module docstring) to x_t over {x : ||x - x_s||_2 <= c * ||x_t - x_s||_2, x in [0, 1]},
    with normalised-gradient L2 steps; each frame is the iterate of lowest D seen, so no
    frame is further from the target's features than the source is. c = 0 returns the
    source exactly. The model runs in eval mode (its mode is restored) and no parameter
    gets a gradient; calling inside ``torch.no_grad()`` is fine.

    Args:
        classifier: takes [0, 1] images (normalisation inside), e.g. a robust ResNet.
        source, target: float images in [0, 1], both (3, H, W) or both (N, 3, H, W).
        c: ratios in [0, 1], one frame per ratio (in this order).
        steps: PGD steps per frame.
        step_size: step length in [0, 1] pixel units, the same for every frame; default
            2.5 * eps / steps per frame (Madry et al.), so the path can cross its ball.
        layers: module names to match (see :func:`resolve_layers`); default the stages.
        weights: one weight >= 0 per layer (default all 1).
        batch_size: frames optimised together (default all); results do not depend on it.
        progress: the stage's name in plain progress lines (:mod:`bigroc.progress`); None: no lines.

    Returns:
        Frames of shape (len(c), *source.shape): (len(c), 3, H, W) for one image, else
        (len(c), N, 3, H, W); in [0, 1], frame k within c_k * ||x_t - x_s||_2 of x_s.

    Raises:
        ValueError: mismatched or bad images, c outside [0, 1], bad layers or weights.
        RuntimeError: called inside ``torch.inference_mode()`` (gradients are needed).
    """
    if torch.is_inference_mode_enabled():
        raise RuntimeError("interpolation needs input gradients, which torch.inference_mode forbids; "
                           "call it outside inference_mode (torch.no_grad() is fine)")
    single = isinstance(source, torch.Tensor) and source.dim() == 3
    xs, xt = _check_pair(source, target)
    ratios = _check_ratios(c)
    names = resolve_layers(classifier, layers)
    w = _check_weights(weights, names).to(xs.device, xs.dtype)
    check_attack_args(eps=0.0, steps=steps, step_size=0.0 if step_size is None else step_size, norm="l2")
    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int)
                                   or batch_size < 1):
        raise ValueError(f"batch_size must be an integer >= 1 or None, got {batch_size!r}")

    # One job per (ratio, image), ratio-major: job k * N + i is frame k of image i.
    n = len(xs)
    starts, goals = xs.repeat(len(ratios), 1, 1, 1), xt.repeat(len(ratios), 1, 1, 1)
    ratio = torch.tensor(ratios, dtype=xs.dtype, device=xs.device).repeat_interleave(n)
    eps = (ratio * (goals - starts).flatten(1).norm(dim=1)).view(-1, 1, 1, 1)
    size = batch_size or len(starts)
    parts = []
    write = print_line if progress else silent
    with eval_mode(classifier), Progress(progress or "", len(starts), unit="frames", write=write) as bar:
        for i in range(0, len(starts), size):
            parts.append(_match_features(classifier, starts[i:i + size], goals[i:i + size], eps[i:i + size],
                                         steps=steps, step_size=step_size, layers=names, weights=w))
            bar.update(len(parts[-1]))
    frames = torch.cat(parts)
    frames = frames.view(len(ratios), n, *xs.shape[1:])
    return frames[:, 0] if single else frames


def _match_features(
    classifier: nn.Module,
    x: torch.Tensor,
    goal: torch.Tensor,
    eps: torch.Tensor,
    *,
    steps: int,
    step_size: float | None,
    layers: Sequence[str],
    weights: torch.Tensor,
) -> torch.Tensor:
    """PGD for one batch of frames: x, goal (B, 3, H, W); per-frame radii eps (B, 1, 1, 1)."""
    with torch.no_grad():
        goal_feats = features(classifier, goal, layers)

    def loss_fn(x_adv: torch.Tensor) -> torch.Tensor:
        return layer_distances(features(classifier, x_adv, layers), goal_feats) @ weights

    step = madry_step_size(eps, steps) if step_size is None else step_size
    return descend(loss_fn, x, eps=eps, steps=steps, step_size=step, norm="l2", use_best=True)
