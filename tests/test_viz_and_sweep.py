"""Figures and the eps-sweep summary."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from bigroc.sweep import best_eps, write_summary
from bigroc.viz import before_after_grid, save_label_histograms


def test_grid_rows_show_base_boosted_and_amplified_delta():
    base = torch.full((3, 3, 4, 4), 100, dtype=torch.uint8)
    boosted = base.clone()
    boosted[1] += 5
    grid = before_after_grid(base, boosted, amplify=10, pad=1, scale=1)
    assert grid.shape == (3 * 5 + 1, 3 * 5 + 1, 3)
    cell = lambda r, i: grid[1 + r * 5: 5 + r * 5, 1 + i * 5: 5 + i * 5]  # noqa: E731
    assert (cell(0, 1) == 100).all() and (cell(1, 1) == 105).all()
    assert (cell(2, 0) == 0).all() and (cell(2, 1) == 50).all()


def test_grid_rejects_mismatched_batches():
    with pytest.raises(ValueError, match="uint8"):
        before_after_grid(torch.zeros(2, 3, 4, 4, dtype=torch.uint8), torch.zeros(2, 3, 4, 4))


def test_label_histogram_figure(tmp_path):
    path = save_label_histograms(tmp_path / "h.png", {"none": [5, 1, 0], "mean": [2, 2, 2]})
    assert path.stat().st_size > 1000


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
