"""Figures and the eps-sweep summary."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from bigroc.sweep import best_eps, name_sources, write_summary
from bigroc.viz import amplified_change, save_label_histograms


def test_amplified_change_is_ten_times_the_absolute_difference():
    base = torch.full((3, 3, 4, 4), 100, dtype=torch.uint8)
    boosted = base.clone()
    boosted[1] += 5
    boosted[2] -= 30
    delta = amplified_change(base, boosted, 10)
    assert (delta[0] == 0).all() and (delta[1] == 50).all() and (delta[2] == 255).all()  # clipped


def test_grid_rejects_mismatched_batches():
    with pytest.raises(ValueError, match="uint8"):
        amplified_change(torch.zeros(2, 3, 4, 4, dtype=torch.uint8), torch.zeros(2, 3, 4, 4), 10)


def test_label_histogram_figure(tmp_path):
    from PIL import Image

    path = save_label_histograms(tmp_path / "h.png", {"none": [5, 1, 0], "mean": [2, 2, 2]})
    image = np.asarray(Image.open(path).convert("RGB"), dtype=float)
    assert image.shape[1] > image.shape[0] > 150  # a wide bar chart
    colours = {tuple(c) for c in image.reshape(-1, 3)[::7].round(-1)}
    assert len(colours) > 5 and image.std() > 20  # two bar colours, axes and text on white


def _job(root, num, gen, eps, fid):
    d = root / str(num)
    d.mkdir()
    (d / "metrics.json").write_text(json.dumps({
        "generator": gen, "eps": eps, "steps": 30, "base/fid": 50.0, "boosted/fid": fid,
        "base/kid_mean": 0.05, "boosted/kid_mean": fid / 1000}))


def test_sweep_summary_table_plot_and_best_eps(tmp_path):
    for num, (gen, eps, fid) in enumerate([("vae", 0.5, 40.0), ("vae", 1.0, 30.0), ("vae", 2.0, 35.0),
                                           ("sngan", 0.5, 20.0), ("sngan", 1.0, 25.0)]):
        _job(tmp_path, num, gen, eps, fid)
    (tmp_path / "5").mkdir()  # a job that died: no metrics.json, skipped
    paths = write_summary(tmp_path)
    assert sorted(p.name for p in paths) == ["summary.csv", "summary.md", "summary.png"]
    lines = (tmp_path / "summary.csv").read_text().splitlines()
    assert len(lines) == 6 and "boosted/fid" in lines[0]
    md = (tmp_path / "summary.md").read_text()
    assert "best eps for vae (lowest boosted FID): 1" in md
    assert "best eps for sngan (lowest boosted FID): 0.5" in md
    assert best_eps([{"generator": "g", "eps": 3, "boosted/fid": 1.0}]) == {"g": 3}


def test_sweep_summary_of_nothing_writes_nothing(tmp_path):
    assert write_summary(tmp_path) == []
    assert list(tmp_path.iterdir()) == []


def test_before_after_figure_is_labelled_and_not_blank(tmp_path):
    from PIL import Image

    from bigroc.data.cifar10 import CLASSES as CIFAR10_CLASSES
    from bigroc.viz import save_before_after

    rng = torch.Generator().manual_seed(0)
    base = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8, generator=rng)
    boosted = (base.int() + 9).clamp(0, 255).to(torch.uint8)
    path = save_before_after(tmp_path / "grid.png", base, boosted, torch.tensor([0, 3, 5, 9]), CIFAR10_CLASSES)
    image = np.asarray(Image.open(path).convert("L"), dtype=float)
    height, width = image.shape
    assert width > height > 200  # four columns of three rows, titles and row labels around them
    assert image.std() > 20  # images on a white page, not a blank one
    # The rows and titles are drawn with matplotlib: the labels' ink is left of the first image.
    assert (image[:, : width // 12] < 128).any()


def test_one_generator_name_over_several_files_is_told_apart_by_stem():
    rows = [{"generator": "samples", "generator_checkpoint": "/x/gan_a.npz", "eps": 1.0, "boosted/fid": 5.0},
            {"generator": "samples", "generator_checkpoint": "/x/gan_b.npz", "eps": 1.0, "boosted/fid": 3.0},
            {"generator": "samples", "generator_checkpoint": "/x/gan_b.npz", "eps": 2.0, "boosted/fid": 4.0},
            {"generator": "vae", "generator_checkpoint": "shipped:generator_cifar10_vae", "eps": 2.0,
             "boosted/fid": 9.0}]
    named = name_sources(rows)
    assert [r["generator"] for r in named] == ["samples:gan_a", "samples:gan_b", "samples:gan_b", "vae"]
    assert best_eps(named) == {"samples:gan_a": 1.0, "samples:gan_b": 1.0, "vae": 2.0}
