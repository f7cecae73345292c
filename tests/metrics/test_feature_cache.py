"""FeatureCache: the same uint8 images give the same features without running Inception again."""

from __future__ import annotations

import torch
from torch import nn

from bigroc.metrics.feature_cache import FeatureCache


class Counted(nn.Module):
    """The real network, counting how many batches it was run on."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net, self.calls = net, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.net(x)


def test_equal_images_are_read_back_and_changed_ones_recomputed(inception, real_images, real_features, tmp_path):
    net = Counted(inception)
    cache = FeatureCache(net, tmp_path / "features", tag="fid_helper")
    u8 = real_images[:4]
    first = cache(u8)
    again = cache(u8.clone())
    assert net.calls == 1 and torch.equal(first, again)
    torch.testing.assert_close(again, real_features[:4], rtol=0, atol=1e-4)

    changed = u8.clone()
    changed[0, 0, 0, 0] ^= 1  # one level in one pixel
    cache(changed)
    assert net.calls == 2 and len(list((tmp_path / "features").glob("*.pt"))) == 2
    # Another network tag never reads these files.
    assert FeatureCache(net, tmp_path / "features", tag="torch_fidelity").key(u8) != cache.key(u8)


def test_a_damaged_file_is_computed_again_and_replaced(inception, real_images, tmp_path):
    net = Counted(inception)
    cache = FeatureCache(net, tmp_path, tag="fid_helper")
    u8 = real_images[4:6]
    expected = cache(u8)
    path = tmp_path / f"{cache.key(u8)}.pt"
    path.write_bytes(b"not a tensor")
    assert torch.equal(cache(u8), expected) and net.calls == 2
    assert torch.equal(torch.load(path, weights_only=True), expected)
    assert not list(tmp_path.glob(".*tmp*"))  # written atomically, nothing left behind


def test_an_unwritable_folder_warns_once_and_still_returns_the_features(tmp_path):
    import pytest

    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    net = Counted(torch.nn.Flatten())
    cache = FeatureCache(net, blocker / "features", tag="flat")
    u8 = torch.randint(0, 256, (2, 3, 4, 4), dtype=torch.uint8)
    with pytest.warns(UserWarning, match="cannot cache features") as record:
        first, second = cache(u8), cache(u8)
    assert len(record) == 1 and net.calls == 2
    assert torch.equal(first, u8.flatten(1)) and torch.equal(second, first)
