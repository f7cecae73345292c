"""Files made to hurt: none runs code, none takes unbounded memory, none is read silently wrong."""

from __future__ import annotations

import errno
import pickle
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from bigroc.attacks import check_in_ball, pgd
from bigroc.data import read_cifar10
from bigroc.generators.samples import MAX_SIDE, SampleSource
from bigroc.storage import MAX_DECOMPRESSED_BYTES, atomic_write, read_npz_array
from bigroc.models import load_classifier
from bigroc.run_checks import check_classifier
from bigroc.safe_load import read_torch_file
from files import CodeRunner, compressed_npz_of_zeros, crafted_pickle, flip_middle_byte, npz_with_lying_header


def test_a_crafted_cifar_batch_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "ran"
    crafted_pickle(tmp_path / "cifar-10-batches-py" / "test_batch", marker)
    with pytest.raises(ValueError, match=r"test_batch asks to load posix\.system.*refused"):
        read_cifar10(tmp_path, "test")
    assert not marker.exists()


def test_the_real_cifar_batches_pass_the_restricted_unpickler(cifar_root):
    x, y = read_cifar10(cifar_root, "test")
    assert x.shape == (10_000, 3, 32, 32) and len(y) == 10_000


def test_code_in_a_checkpoint_is_named_and_never_run(tmp_path):
    marker = tmp_path / "ran"
    path = tmp_path / "netG.pth"
    torch.save({"model_state_dict": CodeRunner(marker)}, path)
    with pytest.raises(ValueError, match="netG.pth holds Python objects beyond tensors.*posix.system") as err:
        read_torch_file(path, what="generator checkpoint")
    assert "\n" not in str(err.value) and "re-save its tensors" in str(err.value)
    with pytest.raises(ValueError, match="classifier.allow_unsafe_pickle=true"):
        load_classifier(path)
    assert not marker.exists()


@pytest.mark.parametrize("head", [b"\x80", b"PK", b""])
def test_random_bytes_are_not_a_checkpoint(tmp_path, head):
    path = tmp_path / "weights.pt"
    path.write_bytes(head + np.random.default_rng(0).bytes(2000))
    with pytest.raises(ValueError, match="weights.pt is not a readable") as err:
        load_classifier(path)
    assert "unpickling" not in str(err.value) and "\n" not in str(err.value)


def test_a_huge_png_is_refused_from_its_header(tmp_path):
    Image.new("L", (10_000, 10_000)).save(tmp_path / "big.png")  # ~100 KB on disk
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)  # refused in our words, not Pillow's
        with pytest.raises(ValueError, match=f"big.png: .*{MAX_SIDE} per side"):
            SampleSource(tmp_path)


def test_a_decompression_bomb_npz_is_refused_before_it_is_unpacked(tmp_path):
    per_image = 32 * 32 * 3
    n = (MAX_DECOMPRESSED_BYTES // per_image // 1000 + 1) * 1000
    path = compressed_npz_of_zeros(tmp_path / "bomb.npz", (n, 32, 32, 3))
    assert path.stat().st_size < MAX_DECOMPRESSED_BYTES / 100
    with pytest.raises(ValueError, match=r"compressed and .* GiB when unpacked.*np.savez"):
        SampleSource(path)


def test_a_header_that_claims_more_images_than_stored_is_refused(tmp_path):
    path = npz_with_lying_header(tmp_path / "liar.npz", (1_000_000, 32, 32, 3), stored_images=10)
    with pytest.raises(ValueError, match=r"declares shape \(1000000, 32, 32, 3\).*damaged"):
        SampleSource(path)


def test_a_flipped_byte_fails_the_crc(tmp_path):
    path = tmp_path / "s.npz"
    np.savez(path, arr_0=np.random.default_rng(0).integers(0, 256, (64, 32, 32, 3), dtype=np.uint8))
    assert read_npz_array(path, "arr_0").shape == (64, 32, 32, 3)
    flip_middle_byte(path)
    with pytest.raises(ValueError, match="s.npz: arr_0.npy fails its CRC check"):
        SampleSource(path)


def test_sixteen_bit_greyscale_pngs_are_scaled_not_saturated(tmp_path):
    levels = np.array([[0, 257 * 64], [257 * 128, 65535]], dtype=np.uint16).repeat(16, 0).repeat(16, 1)
    Image.fromarray(levels).save(tmp_path / "deep.png")
    assert Image.open(tmp_path / "deep.png").mode.startswith("I")
    x, _ = SampleSource(tmp_path).generate(torch.tensor([0]))
    got = (x[0, :, ::16, ::16] * 255).round()
    assert got[0].tolist() == [[0, 64], [128, 255]] and torch.equal(got[0], got[2])


def test_a_truncated_png_is_named_before_the_run(tmp_path):
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(tmp_path / "a.png")
    whole = (tmp_path / "a.png").read_bytes()
    (tmp_path / "b.png").write_bytes(whole[:100])
    with pytest.raises(ValueError, match="b.png cannot be decoded.*damaged or incomplete.*remove it"):
        SampleSource(tmp_path)


def test_a_nan_classifier_and_a_zero_std_are_refused_by_name(tiny_classifier):
    broken = load_like(tiny_classifier)
    broken.model.linear.weight.data[0, 0] = float("nan")
    with pytest.raises(ValueError, match="classifier bad.pt has non-finite weights.*model.linear.weight"):
        check_classifier(broken, "bad.pt", (32, 32))
    flat = load_like(tiny_classifier)
    flat.normalizer.new_std.zero_()
    with pytest.raises(ValueError, match="normaliser std"):
        check_classifier(flat, "flat.pt", (32, 32))
    check_classifier(tiny_classifier, "good.pt", (32, 32))  # a sound one passes


def test_an_image_size_the_classifier_cannot_take_names_the_setting(tiny_classifier):
    with pytest.raises(ValueError, match=r"cannot take 64x64 images.*classifier.input_size=32"):
        check_classifier(tiny_classifier, "clf", (64, 64))
    with pytest.raises(ValueError, match="far larger than the classifier's 32x32 input"):
        check_classifier(tiny_classifier, "clf", (512, 512))


def test_non_finite_gradients_stop_the_attack(tiny_classifier, images, labels):
    broken = load_like(tiny_classifier)
    broken.model.bn1.running_var.fill_(-1.0)  # sqrt of a negative variance: NaN activations
    with pytest.raises(ValueError, match="not finite"):
        pgd(broken, images, labels, eps=0.5, steps=2, step_size=0.25)


def test_the_ball_check_catches_an_excursion(images):
    inside = images.clone()
    inside[:, 0, 0, 0] = (images[:, 0, 0, 0] + 0.3).clamp(max=1)
    check_in_ball(inside, images, eps=0.5, norm="l2")
    with pytest.raises(RuntimeError, match="left the l2 ball of eps 0.1"):
        check_in_ball(inside, images, eps=0.1, norm="l2")
    with pytest.raises(RuntimeError, match="left the linf ball"):
        check_in_ball(inside, images, eps=0.1, norm="linf")


def test_a_full_disk_names_the_file_and_keeps_the_old_one(tmp_path):
    target = tmp_path / "metrics.json"
    target.write_text("old")

    def no_space(tmp):
        tmp.write_text("half")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OSError, match="cannot write .*metrics.json: No space left on device"):
        atomic_write(target, no_space)
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def load_like(classifier):
    """A deep copy (pickle round trip of the module, made here: trusted)."""
    return pickle.loads(pickle.dumps(classifier))
