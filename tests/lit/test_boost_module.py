"""The Boost LightningModule on stored samples with a tiny classifier (no Inception here:
scoring runs through the command-line tests)."""

from __future__ import annotations

import lightning as L
import numpy as np
import pytest
import torch

from bigroc.attacks import AttackSpec
from bigroc.data import GeneratedDataModule
from bigroc.generators import build_generator
from bigroc.storage import ChunkStore
from bigroc.lit.boost_module import Boost
from bigroc.models import build_classifier


def samples(tmp_path, n=10, labels=True, num_classes=10):
    g = np.random.default_rng(0)
    arrays = {"arr_0": g.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)}
    if labels:
        arrays["arr_1"] = np.arange(n) % num_classes
    np.savez(tmp_path / "s.npz", **arrays)
    return build_generator("samples", path=str(tmp_path / "s.npz"), num_classes=num_classes)


def run(module, n=10, batch_size=4):
    trainer = L.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, inference_mode=False,
                        use_distributed_sampler=False, enable_model_summary=False)
    trainer.test(module, datamodule=GeneratedDataModule(n, batch_size), verbose=False)
    return module.final


ATTACK = AttackSpec(eps=0.5, steps=3)


def test_conditional_source_keeps_its_labels_and_raises_target_probability(tiny_classifier, tmp_path):
    module = Boost(samples(tmp_path), tiny_classifier, ATTACK, grid_size=6)
    final = run(module)
    assert final["labels/histogram"] == [1] * 10
    assert final["boosted/target_prob"] > final["base/target_prob"]
    assert 0 < final["boosted/delta_l2"] <= 0.5 + 0.05  # quantisation adds a little
    assert module.calibration == {}  # nothing to calibrate: labels come with the images
    base, boosted, grid_labels = module.grid
    assert base.shape == boosted.shape == (6, 3, 32, 32) and base.dtype == torch.uint8 and grid_labels.shape == (6,)


def test_unconditional_source_calibrates_each_debiasing(tiny_classifier, tmp_path):
    module = Boost(samples(tmp_path, labels=False), tiny_classifier, ATTACK, debias="balanced",
                   calibration_samples=8)
    final = run(module)
    assert set(module.calibration) == {"none", "mean", "balanced"}
    assert all(sum(h) == 8 for h in module.calibration.values())
    assert sum(final["labels/histogram"]) == 10
    assert module.logit_shift.shape == (10,)


def test_predicted_labels_on_a_conditional_source(tiny_classifier, tmp_path):
    source = samples(tmp_path)
    module = Boost(source, tiny_classifier, ATTACK, labels="predicted", debias="none", grid_size=10)
    run(module)
    assert module.calibration and torch.equal(module.logit_shift, torch.zeros(10))
    x, own = source.sample(10)
    with torch.no_grad():
        predicted = tiny_classifier.eval()(x).argmax(1)
    used = module.grid[2]  # the targets of the first images, as boosted
    assert torch.equal(used, predicted) and not torch.equal(used, own)  # the classifier's, not the source's


def test_finished_chunks_are_read_back_not_recomputed(tiny_classifier, tmp_path):
    store = ChunkStore(tmp_path / "chunks")
    first = run(Boost(samples(tmp_path), tiny_classifier, ATTACK, chunks=store))
    assert len(store.chunks()) == 3

    class Refuses(torch.nn.Module):  # any boosting attempt would fail
        num_classes = 10

        def forward(self, x):
            raise AssertionError("recomputed a finished batch")

    module = Boost(samples(tmp_path), tiny_classifier, ATTACK, chunks=store)
    module._boost_batch = Refuses()
    assert run(module) == first


@pytest.mark.parametrize("kwargs, match", [
    ({"labels": "generator"}, "labels=generator needs a conditional source"),
    ({"labels": "oracle"}, "labels must be one of"),
    ({"debias": "median"}, "debias must be one of"),
])
def test_bad_settings(tiny_classifier, tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        Boost(samples(tmp_path, labels=False), tiny_classifier, ATTACK, **kwargs)


def test_class_count_mismatch_names_both(tmp_path):
    classifier = build_classifier("resnet18", num_classes=100, width=0.125)
    with pytest.raises(ValueError, match="predicts 100 classes but the generator's data has 10"):
        Boost(samples(tmp_path), classifier, ATTACK)


class SmallFeatures(torch.nn.Module):
    """A small fixed feature network (uint8 images -> 16-d), counting the batches it ran on."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv, self.calls = torch.nn.Conv2d(3, 16, 8, stride=8), 0

    def forward(self, u8: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.conv(u8.float() / 255).mean((2, 3))


def test_a_second_eps_reads_the_base_features_back_from_the_cache(tiny_classifier, tmp_path):
    from bigroc.metrics import FeatureCache, ReferenceStats
    from bigroc.scoring import Scoring, ScoringSpec

    net = SmallFeatures()
    reference = ReferenceStats.from_features(torch.randn(40, 16))

    def boost(eps: float, base_features=None) -> dict:
        scoring = Scoring(features=net, base_features=base_features or net, reference=reference, info={},
                          spec=ScoringSpec(kid_subset_size=4, pr_k=3))
        return run(Boost(samples(tmp_path), tiny_classifier, AttackSpec(eps=eps, steps=3), scoring=scoring))

    uncached = boost(0.5)
    cache = FeatureCache(net, tmp_path / "features", tag="small")
    first = boost(0.5, cache)
    calls = net.calls
    second = boost(1.0, cache)
    assert net.calls - calls == 3  # the boosted batches only: the base ones came from disk
    assert len(list((tmp_path / "features").glob("*.pt"))) == 3
    base = [k for k in first if k.startswith("base/")]
    assert {k: first[k] for k in base} == {k: second[k] for k in base} == {k: uncached[k] for k in base}
    assert second["boosted/fid"] != first["boosted/fid"]


def test_bf16_boosting_leaves_the_generators_images_in_float32(tiny_classifier, tmp_path):
    """trainer.precision=bf16-mixed is the attack's precision: a latent generator's images (the
    base of every score) and the reported target probabilities stay those of float32."""
    source = build_generator("cgan", random_init=True)  # conditional: the same targets in both runs
    chunks = {p: ChunkStore(tmp_path / p) for p in ("32-true", "bf16-mixed")}
    finals = {}
    for precision, store in chunks.items():
        module = Boost(source, tiny_classifier, ATTACK, chunks=store, calibration_samples=8)
        trainer = L.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, inference_mode=False,
                            use_distributed_sampler=False, enable_model_summary=False, precision=precision)
        trainer.test(module, datamodule=GeneratedDataModule(8, 4), verbose=False)
        finals[precision] = module.final
    idx = torch.arange(4)
    assert torch.equal(chunks["32-true"].load(idx)["base"], chunks["bf16-mixed"].load(idx)["base"])
    assert finals["32-true"]["base/target_prob"] == finals["bf16-mixed"]["base/target_prob"]


def test_the_batch_size_changes_no_result(tiny_classifier, tmp_path):
    """What batch_size=auto relies on: every image is boosted and measured on its own, so the
    written images and the run's numbers are those of any other batch size (float64 here, so
    the comparison holds on every CPU's kernels)."""
    classifier = tiny_classifier.double()
    results = {}
    for batch_size in (3, 10):
        chunks = ChunkStore(tmp_path / f"b{batch_size}")
        module = Boost(samples(tmp_path, labels=False), classifier, ATTACK, calibration_samples=8, chunks=chunks)
        module.double()
        final = run(module, batch_size=batch_size)
        images = torch.cat([torch.from_numpy(np.load(p)["boosted"]) for p in sorted(chunks.root.glob("*.npz"))])
        results[batch_size] = (final, images)
    (small, x_small), (large, x_large) = results[3], results[10]
    assert torch.equal(x_small, x_large)
    assert small["labels/histogram"] == large["labels/histogram"]
    for key in ("base/target_prob", "boosted/target_prob", "boosted/delta_l2"):
        assert small[key] == pytest.approx(large[key], rel=1e-6), key  # float32 running means
