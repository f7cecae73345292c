"""Files that survive kills: atomic writes, chunk store, streamed ADM npz files."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bigroc.storage import ChunkStore, atomic_write, npz_header, quantize, read_npz_array, save_npz, to_nhwc, write_samples


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path):
    path = tmp_path / "metrics.json"
    path.write_text("old")

    def broken(tmp):
        tmp.write_text("half")
        raise KeyboardInterrupt  # a kill in the middle of the write

    with pytest.raises(KeyboardInterrupt):
        atomic_write(path, broken)
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def test_quantize_rounds_to_nearest_and_clamps():
    x = torch.tensor([-0.1, 0.0, 0.5 / 255, 0.6 / 255, 0.5, 1.0, 1.2]).view(1, 1, 1, -1)
    assert quantize(x).flatten().tolist() == [0, 0, 0, 1, 128, 255, 255]


def test_chunk_store_round_trip_and_mismatch(tmp_path):
    store = ChunkStore(tmp_path / "chunks")
    idx = torch.arange(10, 14)
    base = torch.randint(0, 256, (4, 3, 8, 8), dtype=torch.uint8)
    boosted = torch.randint(0, 256, (4, 3, 8, 8), dtype=torch.uint8)
    labels = torch.tensor([1, 2, 3, 4])
    assert store.load(idx) is None
    store.save(idx, base, boosted, labels)
    got = store.load(idx)
    assert torch.equal(got["base"], base) and torch.equal(got["boosted"], boosted)
    assert torch.equal(got["labels"], labels)
    assert store.load(torch.tensor([10, 11, 12, 99])) is None  # same name, other indices
    store._path(idx).write_bytes(b"truncated by a kill")
    assert store.load(idx) is None


def test_write_samples_streams_a_standard_npz(tmp_path):
    parts = [(np.full((3, 4, 4, 3), i, np.uint8), np.arange(3) + i) for i in range(3)]
    path = write_samples(tmp_path / "s.npz", 9, iter(parts))
    with np.load(path) as f:
        assert f["arr_0"].shape == (9, 4, 4, 3) and f["arr_0"].dtype == np.uint8
        assert f["arr_0"][:, 0, 0, 0].tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
        assert f["arr_1"].tolist() == [0, 1, 2, 1, 2, 3, 2, 3, 4]


def test_write_samples_refuses_a_wrong_count_and_leaves_nothing(tmp_path):
    parts = [(np.zeros((2, 4, 4, 3), np.uint8), np.zeros(2))]
    with pytest.raises(ValueError, match="expected 3"):
        write_samples(tmp_path / "s.npz", 3, iter(parts))
    assert list(tmp_path.iterdir()) == []


def test_save_npz_and_to_nhwc(tmp_path):
    x = torch.randint(0, 256, (2, 3, 5, 6), dtype=torch.uint8)
    save_npz(tmp_path / "a.npz", arr_0=to_nhwc(x))
    with np.load(tmp_path / "a.npz") as f:
        assert np.array_equal(f["arr_0"], x.permute(0, 2, 3, 1).numpy())


def test_npz_members_are_memory_mapped_when_stored(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(5, 16, 12, 3), dtype=np.uint8)
    arrays = {"arr_0": images, "arr_1": np.arange(5), "mu": rng.normal(size=4),
              "sigma": np.asfortranarray(rng.normal(size=(4, 4))), "none": np.zeros((0, 3), np.float32)}
    np.savez(tmp_path / "stored.npz", **arrays)
    np.savez_compressed(tmp_path / "packed.npz", **arrays)
    write_samples(tmp_path / "streamed.npz", 5, [(images[:2], np.arange(2)), (images[2:], np.arange(2, 5))])
    for name in ("stored.npz", "packed.npz", "streamed.npz"):
        keys = ("arr_0", "arr_1") if name == "streamed.npz" else arrays
        for key in keys:
            got = read_npz_array(tmp_path / name, key)
            assert np.array_equal(got, arrays[key]) and got.dtype == arrays[key].dtype, (name, key)
            assert npz_header(tmp_path / name, key) == (arrays[key].shape, arrays[key].dtype)
            assert isinstance(got, np.memmap) == (name != "packed.npz" and got.size > 0)
