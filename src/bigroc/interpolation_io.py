"""What interpolate.py reads and writes: image pairs in; frames, strips, figures, metrics out.

Per pair (the run directory for one pair, ``pair000/``, ``pair001/``, ... for several):
``interpolation.npz`` (``arr_0``: the frames, uint8 (len(c), H, W, 3) in the order of c;
``c``; ``source`` and ``target`` uint8 (H, W, 3)) and ``interpolation.png`` (source,
frames, target in a row); with a second classifier, ``interpolation_compare.npz/.png``.
In the run directory: ``comparison.png`` (the two classifiers' strips, labelled),
``interpolations.png`` (every pair, when there are several) and ``metrics.json``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from bigroc.feature_interpolation import feature_distance, resolve_layers
from bigroc.storage import quantize, save_npz, to_nhwc
from bigroc.viz import save_strips_figure

PAIR_FILE = "interpolation"
COMPARE_SUFFIX = "_compare"


@dataclass
class Pairs:
    """Source and target images, float (N, 3, H, W) in [0, 1], and a name for each pair."""

    sources: torch.Tensor
    targets: torch.Tensor
    names: list[str]


@dataclass
class Interpolation:
    """One classifier's frames (C, N, 3, H, W) and their feature distances to the targets.

    ``per_layer``: (C, N, L) element-normalised squared distances; ``total``: (C, N) their
    weighted sum (the objective); ``at_source``: (N,) the total of the source itself.
    """

    frames: torch.Tensor
    per_layer: torch.Tensor
    total: torch.Tensor
    at_source: torch.Tensor
    layers: list[str]


def read_image(path: str | Path) -> torch.Tensor:
    """An image file (PNG, JPG, ...) as float RGB (3, H, W) in [0, 1].

    Read by :func:`bigroc.images.read_rgb8`, as sample folders are: a FIFO, an image over
    ``MAX_SIDE`` per side, a damaged, float or text-bomb file is refused in one line.
    """
    from bigroc.images import read_rgb8

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"image file {path} does not exist")
    return torch.from_numpy(read_rgb8(path).copy()).permute(2, 0, 1).float() / 255


def image_pair(source: str, target: str) -> Pairs:
    """One pair from two image files of one size."""
    xs, xt = read_image(source), read_image(target)
    if xs.shape != xt.shape:
        raise ValueError(f"source {source} is {xs.shape[2]}x{xs.shape[1]} but target {target} is "
                         f"{xt.shape[2]}x{xt.shape[1]} (width x height); give images of one size")
    return Pairs(xs[None], xt[None], [f"{Path(source).name} -> {Path(target).name}"])


def cifar10_pairs(root: str, pairs: Sequence[Sequence[int]]) -> Pairs:
    """Pairs of CIFAR-10 test-split images by index: [[source, target], ...]."""
    from bigroc.data.cifar10 import CLASSES, read_cifar10

    if not pairs or any(len(p) != 2 or not all(isinstance(i, int) and not isinstance(i, bool) for i in p)
                        for p in pairs):
        raise ValueError(f"pairs must be a list of [source, target] index pairs, e.g. [[3,10],[7,42]], "
                         f"got {pairs}")
    x, y = read_cifar10(root, "test")
    bad = [i for p in pairs for i in p if not 0 <= i < len(x)]
    if bad:
        raise ValueError(f"CIFAR-10 test indices must lie in [0, {len(x)}), got {bad}")
    src, dst = [p[0] for p in pairs], [p[1] for p in pairs]
    names = [f"#{s} {CLASSES[y[s]]} -> #{t} {CLASSES[y[t]]}" for s, t in zip(src, dst)]
    return Pairs(x[src].float() / 255, x[dst].float() / 255, names)


def read_pairs(*, source: str | None, target: str | None, pairs: Any, root: str) -> Pairs:
    """The run's input: ``source`` and ``target`` files, or CIFAR-10 index ``pairs``."""
    if pairs is not None:
        if source is not None or target is not None:
            raise ValueError("give either source=IMG target=IMG or pairs=[[i,j],...], not both")
        return cifar10_pairs(root, [list(p) for p in pairs])
    if source is None or target is None:
        raise ValueError("give source=IMG and target=IMG (image files of one size), "
                         "or pairs=[[i,j],...] (CIFAR-10 test indices under data.root)")
    return image_pair(source, target)


def measure(classifier: torch.nn.Module, frames: torch.Tensor, pairs: Pairs, *,
            layers: Sequence[str] | None, weights: Sequence[float] | None) -> Interpolation:
    """Feature distances of every frame (C, N, 3, H, W) to its target."""
    names = resolve_layers(classifier, layers)
    w = torch.ones(len(names)) if weights is None else torch.tensor([float(v) for v in weights])
    count = frames.shape[0]
    goals = pairs.targets.repeat(count, 1, 1, 1)
    per_layer = feature_distance(classifier, frames.flatten(0, 1), goals, layers=names)
    per_layer = per_layer.view(count, -1, len(names)).cpu()
    at_source = feature_distance(classifier, pairs.sources, pairs.targets, layers=names).cpu() @ w
    return Interpolation(frames.cpu(), per_layer, per_layer @ w, at_source, names)


def strip(frames: torch.Tensor, source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """uint8 (C + 2, 3, H, W): source, frames (C, 3, H, W), target."""
    return quantize(torch.cat([source[None], frames, target[None]]))


def save_pair(folder: Path, stem: str, frames: torch.Tensor, source: torch.Tensor,
              target: torch.Tensor, c: Sequence[float]) -> Path:
    """``<stem>.npz`` (the exact pixels) and ``<stem>.png`` (the strip, each column titled
    with its c) of one pair's frames (C, 3, H, W)."""
    folder.mkdir(parents=True, exist_ok=True)
    save_npz(folder / f"{stem}.npz", arr_0=to_nhwc(quantize(frames)), c=np.asarray(c, dtype=np.float64),
             source=to_nhwc(quantize(source[None]))[0], target=to_nhwc(quantize(target[None]))[0])
    return save_strips_figure(folder / f"{stem}.png", {"": strip(frames, source, target)}, strip_columns(c),
                              title="frames towards the target's features, eps = c * ||x_t - x_s||_2")


def strip_columns(c: Sequence[float]) -> list[str]:
    return ["source", *(f"c={r:g}" for r in c), "target"]


def save_outputs(out_dir: Path, pairs: Pairs, runs: Mapping[str, Interpolation],
                 c: Sequence[float]) -> dict[str, Path]:
    """Every file of the module docstring; returns the figures to log, by name."""
    labels = list(runs)
    several = len(pairs.names) > 1
    figures: dict[str, Path] = {}
    for i, name in enumerate(pairs.names):
        folder = out_dir / f"pair{i:03d}" if several else out_dir
        for label in labels:
            stem = PAIR_FILE if label == labels[0] else PAIR_FILE + COMPARE_SUFFIX
            save_pair(folder, stem, runs[label].frames[:, i], pairs.sources[i], pairs.targets[i], c)
        if not several:
            figures[PAIR_FILE] = folder / f"{PAIR_FILE}.png"
    columns = strip_columns(c)
    names = [n.replace(" -> ", "\n-> ") for n in pairs.names]  # two lines beside a row
    row = lambda label, i: strip(runs[label].frames[:, i], pairs.sources[i], pairs.targets[i])  # noqa: E731
    if several:
        figures["interpolations"] = save_strips_figure(
            out_dir / "interpolations.png", {n: row(labels[0], i) for i, n in enumerate(names)},
            columns, title=f"{labels[0]} classifier: frames towards the target's features")
    if len(labels) > 1:
        rows = {(f"{label}\n{n}" if several else label): row(label, i)
                for i, n in enumerate(names) for label in labels}
        figures["comparison"] = save_strips_figure(
            out_dir / "comparison.png", rows, columns,
            title="feature interpolation, eps = c * ||x_t - x_s||_2: " + " vs ".join(labels))
    return figures


def summary(pairs: Pairs, runs: Mapping[str, Interpolation], c: Sequence[float]) -> dict[str, Any]:
    """metrics.json's results: per pair and classifier the distances per frame, and flat
    means over pairs (``<label>/feature_distance@c=0.5`` and the same relative to the
    source's distance) for the experiment logger."""
    radius = (pairs.targets - pairs.sources).flatten(1).norm(dim=1)
    out: dict[str, Any] = {}
    for label, run in runs.items():
        relative = run.total / run.at_source.clamp_min(1e-12)
        for k, r in enumerate(c):
            out[f"{label}/feature_distance@c={r:g}"] = float(run.total[k].mean())
            out[f"{label}/relative_feature_distance@c={r:g}"] = float(relative[k].mean())
    out["pairs"] = [{
        "name": name,
        "pixel_distance": float(radius[i]),
        "eps": [float(r * radius[i]) for r in c],
        **{label: {
            "layers": run.layers,
            "feature_distance_at_source": float(run.at_source[i]),
            "feature_distance": run.total[:, i].tolist(),
            "per_layer": {layer: run.per_layer[:, i, j].tolist() for j, layer in enumerate(run.layers)},
        } for label, run in runs.items()},
    } for i, name in enumerate(pairs.names)]
    return out
