"""BIGRoC on the published generators' samples (shared/data/external-samples): every family
group, a few images each, boosted by the shipped classifier. The full table is
benchmarks/external_results.py; here the pipeline is kept honest on real outside images."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from bigroc.boost import bigroc, debias_shift
from bigroc.models import attack_ready, load_classifier, shipped_classifier

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
from external_groups import GROUPS, pooled, write_group  # noqa: E402


def test_groups_cover_every_set_once(external_samples):
    names = [s for g in GROUPS for s in g.sets]
    assert len(names) == len(set(names))
    assert sorted(names) == sorted(p.stem for p in external_samples.glob("*.npz"))
    assert all(g.jpeg == all(s.endswith("_JPEG") for s in g.sets) for g in GROUPS)
    assert sum(len(pooled(g, external_samples)["arr_0"]) for g in GROUPS) == 2907


def test_group_file_is_not_rewritten_when_unchanged(external_samples, tmp_path):
    group = GROUPS[-2]  # the conditional one: images and labels
    path = write_group(group, external_samples, tmp_path, per_set=4)
    stamp = path.stat().st_mtime_ns
    assert write_group(group, external_samples, tmp_path, per_set=4).stat().st_mtime_ns == stamp
    with np.load(path) as z:
        assert z["arr_0"].shape == (12, 32, 32, 3) and z["arr_1"].tolist() == [0, 0, 0, 0] * 3
    write_group(group, external_samples, tmp_path, per_set=5)
    with np.load(path) as z:
        assert len(z["arr_0"]) == 15


@pytest.mark.parametrize("group", GROUPS, ids=[g.name for g in GROUPS])
def test_boosting_raises_target_probability_within_the_ball(external_samples, group):
    torch.manual_seed(0)
    arrays = pooled(group, external_samples, per_set=6)
    x = torch.from_numpy(arrays["arr_0"]).permute(0, 3, 1, 2).float() / 255
    classifier = attack_ready(load_classifier(shipped_classifier()))
    with torch.no_grad():
        logits = classifier(x)
    if group.conditional:
        y, shift = torch.from_numpy(arrays["arr_1"]), None
    else:
        y, shift = None, debias_shift(logits)
    eps = 1.0
    x_boost, y = bigroc(classifier, x, y, eps=eps, steps=5, logit_shift=shift)
    delta = (x_boost - x).flatten(1).norm(dim=1)
    assert bool((delta <= eps * (1 + 1e-5)).all()) and float(x_boost.min()) >= 0 and float(x_boost.max()) <= 1
    assert float(delta.mean()) > 0.5 * eps  # the step rule walks most of the way out
    with torch.no_grad():
        before = logits.softmax(1).gather(1, y[:, None]).squeeze(1)
        after = classifier(x_boost).softmax(1).gather(1, y[:, None]).squeeze(1)
    assert float(after.mean()) > float(before.mean()) + 0.1
    assert float((after > before).float().mean()) > 0.9


@pytest.mark.slow
def test_results_script_quick_mode_runs_every_variant(external_samples, tmp_path):
    """The README's two commands of the script: --quick, and the settings after -- of the full table."""
    out = tmp_path / "external"
    cmd = [sys.executable, "benchmarks/external_results.py", "--quick", "--samples", str(external_samples),
           "--out", str(out), "--figures", str(tmp_path / "figures"),
           "--", "trainer.precision=bf16-mixed", "metrics.precision=bf16"]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    table = json.loads((out / "results.json").read_text())
    assert sorted(table) == sorted(g.name for g in GROUPS)
    for name, r in table.items():
        assert r["main"]["boosted/target_prob"] > r["main"]["base/target_prob"], name
        assert r["linf"]["norm"] == "linf" and r["linf"]["eps"] >= 1 / 255
        assert r["steps7"]["steps"] == 7 and "cifar10_l2_small" in r["small"]["classifier"]
        assert (r["debias"]["none"] is None) == r["conditional"]
