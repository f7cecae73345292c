"""Figures: before/after grids, label histograms, eps-sweep plots, interpolation strips."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import torch

from bigroc.storage import atomic_write


def amplified_change(base: torch.Tensor, boosted: torch.Tensor, amplify: float) -> torch.Tensor:
    """uint8 ``amplify * |boosted - base|`` of two uint8 (N, 3, H, W) batches of one shape."""
    if (base.shape != boosted.shape or base.dim() != 4
            or base.dtype != torch.uint8 or boosted.dtype != torch.uint8):
        raise ValueError(f"need two uint8 (N, 3, H, W) batches of one shape, got "
                         f"{tuple(base.shape)} {base.dtype} and {tuple(boosted.shape)} {boosted.dtype}")
    return ((boosted.float() - base.float()).abs() * amplify).clamp(0, 255).to(torch.uint8)


def save_before_after(path: str | os.PathLike, base: torch.Tensor, boosted: torch.Tensor, labels: torch.Tensor,
                      class_names: Sequence[str] | None = None, *, amplify: float = 10.0) -> Path:
    """The before/after figure: rows "generated", "boosted" and "10x |delta|", one column per
    image titled with the class it was boosted towards.

    Args:
        base, boosted: uint8 (N, 3, H, W); labels: (N,) target classes.
    """
    diff = amplified_change(base, boosted, amplify)
    columns = [class_names[int(k)] if class_names else f"class {int(k)}" for k in labels]
    rows = {"generated": base, "boosted": boosted, f"{amplify:g}x |delta|": diff}
    return save_strips_figure(path, rows, columns, title="boosted towards the class above each column")


def tile(x: torch.Tensor, cols: int, *, pad: int = 2) -> np.ndarray:
    """uint8 images (N, 3, H, W) laid out ``cols`` to a row on white, with gaps of ``pad``:
    one uint8 (rows, cols, 3) picture."""
    n, c, h, w = x.shape
    rows = -(-n // cols)
    canvas = torch.full((c, rows * (h + pad) + pad, cols * (w + pad) + pad), 255, dtype=torch.uint8)
    for i in range(n):
        top, left = pad + (i // cols) * (h + pad), pad + (i % cols) * (w + pad)
        canvas[:, top:top + h, left:left + w] = x[i]
    return canvas.permute(1, 2, 0).numpy()


def save_png(path: str | os.PathLike, image: np.ndarray) -> Path:
    from PIL import Image

    return atomic_write(path, lambda tmp: Image.fromarray(image).save(tmp, format="PNG"))


def _save_figure(fig, path: str | os.PathLike) -> Path:
    import matplotlib.pyplot as plt

    out = atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight"))
    plt.close(fig)
    return out


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only; no display on clusters
    import matplotlib.pyplot as plt

    return plt


def save_label_histograms(path: str | os.PathLike, histograms: Mapping[str, Sequence[int]],
                          class_names: Sequence[str] | None = None, title: str = "") -> Path:
    """Grouped bars: each labelling's share of images per class (e.g. no debiasing, mean,
    balanced); shares, so sets of different sizes compare. The dashed line is uniform."""
    plt = _pyplot()
    counts = {k: np.asarray(v, dtype=float) / max(sum(v), 1) for k, v in histograms.items()}
    num_classes = len(next(iter(counts.values())))
    names = list(class_names) if class_names and len(class_names) == num_classes else [
        str(c) for c in range(num_classes)]
    fig, ax = plt.subplots(figsize=(max(6, num_classes * 0.7), 3.2))
    width = 0.8 / len(counts)
    for j, (label, c) in enumerate(counts.items()):
        ax.bar(np.arange(num_classes) + (j - (len(counts) - 1) / 2) * width, c, width, label=label)
    ax.axhline(1 / num_classes, color="k", lw=0.8, ls="--")
    ax.set_xticks(np.arange(num_classes), names, rotation=45, ha="right")
    ax.set_ylabel("share of images")
    ax.set_title(title or "label histogram")
    ax.legend(fontsize=8)
    return _save_figure(fig, path)


def save_sweep_plot(path: str | os.PathLike, rows: Sequence[Mapping], metrics=("fid", "kid_mean")) -> Path:
    """Base and boosted score against eps, one line per generator, best eps starred.

    ``rows`` are flat metric dicts with ``generator``, ``eps`` and ``base/<m>``, ``boosted/<m>``.
    """
    plt = _pyplot()
    present = [m for m in metrics if any(f"boosted/{m}" in r for r in rows)]
    fig, axes = plt.subplots(1, max(len(present), 1), figsize=(5 * max(len(present), 1), 3.5),
                             squeeze=False)
    for ax, m in zip(axes[0], present):
        for gen in sorted({str(r["generator"]) for r in rows}):
            pts = sorted((float(r["eps"]), r[f"boosted/{m}"], r.get(f"base/{m}"))
                         for r in rows if str(r["generator"]) == gen and f"boosted/{m}" in r)
            eps, boosted, base = zip(*pts)
            line, = ax.plot(eps, boosted, marker="o", label=f"{gen} boosted")
            if base[0] is not None:
                ax.axhline(base[0], color=line.get_color(), ls=":", lw=1, label=f"{gen} base")
            best = int(np.argmin(boosted))
            ax.plot([eps[best]], [boosted[best]], marker="*", ms=14, color=line.get_color())
        ax.set_xlabel("eps (L2, [0, 1] pixel units)")
        ax.set_ylabel(m)
        ax.legend(fontsize=7)
    return _save_figure(fig, path)


def save_strips_figure(path: str | os.PathLike, strips: Mapping[str, torch.Tensor],
                       columns: Sequence[str], title: str = "") -> Path:
    """Labelled rows of images, e.g. one interpolation per classifier ("robust" above
    "standard", the paper's Fig. 6) or one per image pair.

    Args:
        strips: row label -> uint8 (K, 3, H, W) images, K = len(columns) for every row.
        columns: a title per column ("source", "c=0.5", ..., "target").
    """
    plt = _pyplot()
    rows = list(strips.items())
    if any(len(images) != len(columns) for _, images in rows):
        raise ValueError(f"every strip needs {len(columns)} images, one per column, got "
                         f"{[len(images) for _, images in rows]}")
    fig, axes = plt.subplots(len(rows), len(columns), squeeze=False,
                             figsize=(0.95 * len(columns) + 0.8, 1.05 * len(rows) + 0.4))
    for r, (label, images) in enumerate(rows):
        for k, ax in enumerate(axes[r]):
            ax.imshow(images[k].permute(1, 2, 0).cpu().numpy(), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(columns[k], fontsize=8)
        axes[r][0].set_ylabel(label, fontsize=8, rotation=0, ha="right", va="center")
    if title:
        fig.suptitle(title, fontsize=9)
    return _save_figure(fig, path)
