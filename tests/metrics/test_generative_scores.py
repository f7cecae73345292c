"""GenerativeScores: same numbers for any batching, order, sharding or process count."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from torchmetrics.image.fid import FrechetInceptionDistance

from bigroc.metrics import GenerativeScores, ReferenceStats, frechet_distance, kid, precision_recall
from bigroc.metrics.fid_infinity import fid_infinity
from bigroc.metrics.maths import inception_score, moments_from_sums

D = 32
N = 80
DDP_KEPT = 40
SETTINGS = {"max_features": 50, "kid_subsets": 4, "kid_subset_size": 25, "pr_k": 3}


class PassThrough(torch.nn.Module):
    num_features = D

    def forward(self, x):
        return x


def features(n: int, seed: int, shift: float = 0.0) -> torch.Tensor:
    mix = torch.randn(D, D, generator=torch.Generator().manual_seed(7)) / math.sqrt(D)
    return torch.randn(n, D, generator=torch.Generator().manual_seed(seed)) @ mix + shift


@pytest.fixture(scope="module")
def data() -> dict[str, torch.Tensor]:
    return {"real": features(120, seed=1), "fake": features(N, seed=2, shift=0.3),
            "logits": torch.randn(N, 1008, generator=torch.Generator().manual_seed(3)) * 3}


def make(data, with_is: bool = False, **overrides) -> GenerativeScores:
    settings = {**SETTINGS, **overrides}
    reference = ReferenceStats.from_features(data["real"], max_features=settings["max_features"])
    return GenerativeScores(reference, with_is=with_is, **settings)


def feed(metric: GenerativeScores, data, order: torch.Tensor, batch: int, with_is: bool = False) -> None:
    for idx in order.split(batch):
        metric.update(data["fake"][idx], idx, data["logits"][idx] if with_is else None)


def one_shot(data, max_features: int = SETTINGS["max_features"]) -> dict[str, float]:
    """The scores straight from the maths functions on all fake features at once."""
    real, fake = data["real"], data["fake"].double()
    mu, sigma = moments_from_sums(fake.sum(0), fake.T @ fake, fake.shape[0])
    ref = ReferenceStats.from_features(real, max_features=max_features)
    kept = data["fake"][:max_features]
    kid_mean, kid_std = kid(ref.features, kept, SETTINGS["kid_subsets"], SETTINGS["kid_subset_size"])
    precision, recall = precision_recall(ref.features, kept, k=SETTINGS["pr_k"])
    fid_inf = fid_infinity([kept], ref.mu, ref.sigma, draws=0)["value"][0]
    values = {"fid": frechet_distance(ref.mu, ref.sigma, mu, sigma), "fid_inf": fid_inf, "kid_mean": kid_mean,
              "kid_std": kid_std, "precision": precision, "recall": recall}
    return {k: float(v) for k, v in values.items()}


def test_equals_one_shot_computation(data):
    metric = make(data)
    feed(metric, data, torch.arange(N), batch=N)
    result = metric.compute()
    assert set(result) == {"fid", "fid_inf", "kid_mean", "kid_std", "precision", "recall"}
    assert result == pytest.approx(one_shot(data), rel=1e-9)
    assert 0 < result["precision"] < 1 and 0 < result["recall"] < 1 and result["kid_std"] > 0


def test_independent_of_batch_split_and_update_order(data):
    reference = make(data)
    feed(reference, data, torch.arange(N), batch=N)
    shuffled = make(data)
    feed(shuffled, data, torch.randperm(N, generator=torch.Generator().manual_seed(0)), batch=7)
    assert shuffled.compute() == pytest.approx(reference.compute(), rel=1e-9)


def test_max_features_cap(data):
    metric = make(data, max_features=30)
    feed(metric, data, torch.randperm(N, generator=torch.Generator().manual_seed(1)), batch=9)
    kept = torch.cat(metric.kept_indices)
    assert sorted(kept.tolist()) == list(range(30)) and sum(len(f) for f in metric.kept_features) == 30
    result, expected = metric.compute(), one_shot(data, max_features=30)
    assert result == pytest.approx(expected, rel=1e-9)  # KID/PR on the first 30, FID on all 80
    assert int(metric.num_samples) == N


def test_fid_equals_torchmetrics(data):
    expected = FrechetInceptionDistance(feature=PassThrough(), reset_real_features=False)
    expected.update(data["real"], real=True)
    expected.update(data["fake"], real=False)
    metric = make(data)
    feed(metric, data, torch.arange(N), batch=16)
    assert metric.compute()["fid"] == pytest.approx(expected.compute().item(), rel=1e-6)


@pytest.mark.parametrize("layout", ["interleaved", "blocks"])
def test_merged_shards_equal_one_instance(data, layout):
    single = make(data, with_is=True)
    feed(single, data, torch.arange(N), batch=N, with_is=True)
    shards = [torch.arange(N)[r::2] if layout == "interleaved" else torch.arange(N).chunk(2)[r] for r in (0, 1)]
    parts = [make(data, with_is=True) for _ in shards]
    for part, shard in zip(parts, shards):
        feed(part, data, shard.flip(0), batch=6, with_is=True)  # shards arrive in any order
    parts[1].merge_state(parts[0])
    assert parts[1].compute() == pytest.approx(single.compute(), rel=1e-9)


def test_inception_score_on_the_first_max_features(data):
    metric = make(data, with_is=True)
    feed(metric, data, torch.randperm(N, generator=torch.Generator().manual_seed(2)), batch=11, with_is=True)
    result = metric.compute()
    is_mean, is_std = inception_score(data["logits"][: SETTINGS["max_features"]], splits=10)
    assert (result["is_mean"], result["is_std"]) == pytest.approx((is_mean.item(), is_std.item()), rel=1e-10)
    assert not hasattr(make(data), "kept_logits")  # no logits kept without with_is


def test_rejects_malformed_updates(data):
    metric, fake = make(data), data["fake"][:4]
    with pytest.raises(ValueError, match="features must be"):
        metric.update(fake[:, :5], torch.arange(4))
    with pytest.raises(ValueError, match="indices must be integer"):
        metric.update(fake, torch.arange(4.0))
    with pytest.raises(ValueError, match="with_is=False"):
        metric.update(fake, torch.arange(4), data["logits"][:4])
    with pytest.raises(ValueError, match="with_is=True"):
        make(data, with_is=True).update(fake, torch.arange(4))


def test_repeated_indices_warn_and_count_once_for_kid_pr(data):
    metric = make(data)
    feed(metric, data, torch.arange(N), batch=N)
    metric.update(data["fake"][:3], torch.arange(3))  # as a padding distributed sampler would
    with pytest.warns(UserWarning, match="more than once"):
        result = metric.compute()
    expected = one_shot(data)
    assert {k: result[k] for k in ("kid_mean", "precision", "recall")} == pytest.approx(
        {k: expected[k] for k in ("kid_mean", "precision", "recall")}, rel=1e-9)


def test_reset_keeps_the_reference(data):
    metric = make(data)
    feed(metric, data, torch.arange(N), batch=N)
    first = metric.compute()
    metric.reset()
    feed(metric, data, torch.arange(N), batch=N)
    assert metric.compute() == pytest.approx(first, rel=1e-12)
    assert not any(name.startswith("reference") for name in metric.state_dict())


def _ddp_worker(rank: int, world: int, init_file: str, out_dir: str, data: dict) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        results = {}
        # blocks: rank 1 holds 40..79 and keeps no KID/PR/IS rows; idle: rank 1 never updates
        layouts = {"interleaved": torch.arange(N)[rank::world], "blocks": torch.arange(N).chunk(world)[rank],
                   "idle": torch.arange(N) if rank == 0 else None}
        for layout, mine in layouts.items():
            metric = make(data, with_is=True, max_features=DDP_KEPT)
            if mine is not None:
                feed(metric, data, mine, batch=7, with_is=True)
            results[layout] = metric.compute()
        torch.save(results, Path(out_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_two_processes_give_the_numbers_of_one(data, tmp_path):
    single = make(data, with_is=True, max_features=DDP_KEPT)
    feed(single, data, torch.arange(N), batch=N, with_is=True)
    expected = single.compute()
    torch.multiprocessing.spawn(_ddp_worker, args=(2, str(tmp_path / "init"), str(tmp_path), data), nprocs=2)
    for rank in (0, 1):
        results = torch.load(tmp_path / f"rank{rank}.pt", weights_only=True)
        for layout, result in results.items():
            assert result == pytest.approx(expected, rel=1e-9), (rank, layout)
