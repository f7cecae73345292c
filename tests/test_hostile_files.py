"""Every file bigroc reads, made to hurt: memory stays bounded by the file's size, a FIFO or a
device is refused by name without being opened, and each refusal is one line naming the file
and the fix."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from bigroc.generators.samples import MAX_SIDE, SampleSource
from bigroc.generators.weights import load_into, read_weights
from bigroc.interpolation_io import read_image
from bigroc.metrics.reference_npz import read_reference_npz
from bigroc.models import load_classifier, save_classifier
from bigroc.safe_load import read_torch_file
from bigroc.storage import read_npz_array
from files import (checkpoint_bomb, declare_member_size, legacy_checkpoint, npy_with_lying_header,
                   png_with_text_bomb, png_with_truncated_stream, rezip)

ROOT = Path(__file__).resolve().parents[1]


def one_line(err: pytest.ExceptionInfo, *names: str) -> str:
    """The refusal's text, after checking it is one line naming every one of ``names``."""
    text = str(err.value)
    assert "\n" not in text and all(n in text for n in names), text
    return text


def folder_of_pngs(folder: Path, n: int = 3, size: int = 8) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(folder / f"img_{i:03d}.png")
    return folder


def peak_growth_mb(code: str) -> tuple[str, float]:
    """(stdout, growth of the peak resident memory in MB) of ``code`` run after importing torch
    and bigroc in a fresh interpreter."""
    script = ("import resource, torch, bigroc.safe_load\n"
              "base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
              f"{code}\n"
              "print('PEAK', (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024)\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    out, peak = done.stdout.rsplit("PEAK", 1)
    return out.strip(), float(peak)


# --- 1. torch checkpoints: memory follows the file, not what it declares ----------------------

def test_a_deflated_checkpoint_bomb_is_refused_before_it_is_unpacked(tmp_path):
    path = checkpoint_bomb(tmp_path / "bomb.pt", unpacked=256 << 20)
    assert path.stat().st_size < 2 << 20
    out, growth = peak_growth_mb(
        "from bigroc.safe_load import read_torch_file\n"
        f"try:\n    read_torch_file({str(path)!r}, what='classifier checkpoint')\n"
        "except ValueError as err:\n    print(err)")
    assert "bomb.pt" in out and "compressed" in out and "torch.save" in out, out
    assert growth < 100, f"reading grew the peak memory by {growth:.0f} MB"


def test_compressed_members_of_a_real_checkpoint_are_named(tmp_path):
    torch.save({"w": torch.arange(6.0)}, tmp_path / "plain.pt")
    path = rezip(tmp_path / "plain.pt", tmp_path / "deflated.pt", compress=zipfile.ZIP_DEFLATED)
    with pytest.raises(ValueError) as err:
        read_torch_file(path, what="classifier checkpoint")
    assert "compressed" in one_line(err, "deflated.pt", "data.pkl", "torch.save")


def test_members_declaring_more_than_the_file_holds_are_refused(tmp_path):
    torch.save({"w": torch.arange(6.0)}, tmp_path / "plain.pt")
    path = declare_member_size(rezip(tmp_path / "plain.pt", tmp_path / "liar.pt"), "data/0", 3 << 30)
    with pytest.raises(ValueError) as err:
        read_torch_file(path, what="classifier checkpoint")
    assert "declare" in one_line(err, "liar.pt", str(3 << 30))


def test_a_symlink_member_of_a_checkpoint_is_named(tmp_path):
    torch.save({"w": torch.arange(6.0)}, tmp_path / "plain.pt")
    path = rezip(tmp_path / "plain.pt", tmp_path / "linked.pt", symlink="data/0")
    with pytest.raises(ValueError) as err:
        read_torch_file(path, what="classifier checkpoint")
    assert "symbolic link" in one_line(err, "linked.pt", "data/0")


def test_a_legacy_checkpoint_declaring_a_huge_storage_is_refused_in_bounded_memory(tmp_path):
    path = legacy_checkpoint(tmp_path / "legacy.pt", numel=1 << 30, stored=4)  # 4 GiB declared, 16 B held
    out, growth = peak_growth_mb(
        "from bigroc.safe_load import read_torch_file\n"
        f"try:\n    read_torch_file({str(path)!r}, what='classifier checkpoint')\n"
        "except ValueError as err:\n    print(err)")
    assert "legacy.pt" in out and str(4 << 30) in out and "\n" not in out, out
    assert growth < 100, f"reading grew the peak memory by {growth:.0f} MB"


def test_real_legacy_and_zip_checkpoints_still_load(tmp_path, tiny_classifier):
    state = tiny_classifier.model.state_dict()
    torch.save(state, tmp_path / "zip.pt")
    torch.save({"model": state, "epoch": 3}, tmp_path / "legacy.pt", _use_new_zipfile_serialization=False)
    for name in ("zip.pt", "legacy.pt"):
        loaded = read_torch_file(tmp_path / name, what="classifier checkpoint")
        got = loaded.get("model", loaded)
        assert all(torch.equal(got[k], v) for k, v in state.items())
    crafted = read_torch_file(legacy_checkpoint(tmp_path / "small.pt", numel=5), what="checkpoint")
    assert crafted["weight"].tolist() == [0.0, 1.0, 2.0, 3.0, 4.0]


# --- 2. labels files ---------------------------------------------------------------------------

def test_a_lying_npy_header_is_refused_before_allocation(tmp_path):
    labels = npy_with_lying_header(tmp_path / "liar.npy", (1 << 40,))  # 8 TiB declared
    with pytest.raises(ValueError) as err:
        SampleSource(folder_of_pngs(tmp_path / "f"), labels=labels)
    assert "declares" in one_line(err, "liar.npy")


def test_an_npz_named_npy_is_named_as_an_archive(tmp_path):
    path = tmp_path / "labels.npy"
    with open(path, "wb") as f:
        np.savez(f, arr_0=np.arange(3))
    with pytest.raises(ValueError) as err:
        SampleSource(folder_of_pngs(tmp_path / "f"), labels=path)
    assert "npz archive" in one_line(err, "labels.npy", ".npy", "text file")


def test_object_label_arrays_are_refused_by_name(tmp_path):
    path = tmp_path / "objects.npy"
    np.save(path, np.array([0, "1", None], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError) as err:
        SampleSource(folder_of_pngs(tmp_path / "f"), labels=path)
    assert "object" in one_line(err, "objects.npy")


def test_non_utf8_labels_name_the_line(tmp_path):
    path = tmp_path / "labels.txt"
    path.write_bytes(b"1\n2\n\xff\xfe3\n")
    with pytest.raises(ValueError) as err:
        SampleSource(folder_of_pngs(tmp_path / "f"), labels=path)
    one_line(err, "labels.txt", "line 3", "UTF-8")


@pytest.mark.parametrize("value", ["1" * 30, "-" + "9" * 19, "99"])
def test_a_label_out_of_range_names_the_line_and_the_range(tmp_path, value):
    path = tmp_path / "labels.txt"
    path.write_text(f"1\n{value}\n2\n")
    with pytest.raises(ValueError) as err:
        SampleSource(folder_of_pngs(tmp_path / "f"), labels=path)
    one_line(err, "labels.txt", "line 2", "[0, 10)")


# --- 3. images ---------------------------------------------------------------------------------

def test_a_png_declaring_9000x9000_is_refused_by_interpolate_from_its_header(tmp_path):
    Image.new("L", (9000, 9000)).save(tmp_path / "huge.png")  # ~79 KB on disk
    out, growth = peak_growth_mb(
        "from bigroc.interpolation_io import read_image\n"
        f"try:\n    read_image({str(tmp_path / 'huge.png')!r})\n"
        "except ValueError as err:\n    print(err)")
    assert "huge.png" in out and f"{MAX_SIDE} per side" in out, out
    assert growth < 100, f"reading grew the peak memory by {growth:.0f} MB"


@pytest.mark.parametrize("reader", ["folder", "interpolate"])
def test_a_png_text_chunk_bomb_is_named(tmp_path, reader):
    folder = folder_of_pngs(tmp_path / "f")
    bomb = png_with_text_bomb(folder / "img_bomb.png")
    with pytest.raises(ValueError) as err:
        SampleSource(folder) if reader == "folder" else read_image(bomb)
    assert "text chunk" in one_line(err, "img_bomb.png")


def test_a_truncated_zlib_stream_with_valid_crcs_is_found_before_the_run(tmp_path):
    folder = folder_of_pngs(tmp_path / "f", size=32)
    png_with_truncated_stream(folder / "img_cut.png")
    Image.open(folder / "img_cut.png").verify()  # the checksums alone find nothing
    with pytest.raises(ValueError) as err:
        SampleSource(folder)
    assert "damaged or incomplete" in one_line(err, "img_cut.png")
    with pytest.raises(ValueError, match="img_cut.png cannot be decoded"):
        read_image(folder / "img_cut.png")


@pytest.mark.parametrize("reader", ["folder", "interpolate"])
def test_a_float_tiff_named_png_is_refused(tmp_path, reader):
    folder = folder_of_pngs(tmp_path / "f")
    Image.fromarray(np.full((8, 8), 0.5, np.float32)).save(folder / "img_float.png", format="TIFF")
    with pytest.raises(ValueError) as err:
        SampleSource(folder) if reader == "folder" else read_image(folder / "img_float.png")
    assert "mode F" in one_line(err, "img_float.png")


def test_interpolate_scales_sixteen_bit_images_like_the_sample_reader(tmp_path):
    levels = np.array([[0, 257 * 64], [257 * 128, 65535]], dtype=np.uint16).repeat(4, 0).repeat(4, 1)
    Image.fromarray(levels).save(tmp_path / "deep.png")
    x = read_image(tmp_path / "deep.png")
    assert (x[:, ::4, ::4] * 255).round()[0].tolist() == [[0, 64], [128, 255]]


# --- 4. files that are not regular files -------------------------------------------------------

def _fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


def _classifier_with_fifo_sidecar(tmp_path: Path) -> Path:
    from bigroc.models import build_classifier

    path = tmp_path / "clf.safetensors"
    save_classifier(build_classifier("resnet18", width=0.125), path, meta={})
    (tmp_path / "clf.json").unlink()
    _fifo(tmp_path / "clf.json")
    return path


NOT_REGULAR = {
    "samples npz": (lambda d: SampleSource(_fifo(d / "s.npz")), "s.npz"),
    "labels file": (lambda d: SampleSource(folder_of_pngs(d / "f"), labels=_fifo(d / "y.txt")), "y.txt"),
    "npy labels": (lambda d: SampleSource(folder_of_pngs(d / "f"), labels=_fifo(d / "y.npy")), "y.npy"),
    "torch file": (lambda d: read_torch_file(_fifo(d / "c.pt"), what="checkpoint"), "c.pt"),
    "classifier .pt": (lambda d: load_classifier(_fifo(d / "c.pt")), "c.pt"),
    "classifier safetensors": (lambda d: load_classifier(_fifo(d / "c.safetensors")), "c.safetensors"),
    "classifier sidecar": (lambda d: load_classifier(_classifier_with_fifo_sidecar(d)), "clf.json"),
    "generator checkpoint": (lambda d: read_weights(_fifo(d / "g.pth"), "cgan", "a CGAN32"), "g.pth"),
    "generator safetensors": (lambda d: read_weights(_fifo(d / "g.safetensors"), "vae", "a VAE"), "g.safetensors"),
    "interpolate source": (lambda d: read_image(_fifo(d / "src.png")), "src.png"),
    "image in a folder": (lambda d: (_fifo(folder_of_pngs(d / "f") / "img_x.png"), SampleSource(d / "f")), "img_x.png"),
    "reference npz": (lambda d: read_reference_npz(_fifo(d / "ref.npz")), "ref.npz"),
    "npz member reader": (lambda d: read_npz_array(_fifo(d / "m.npz"), "arr_0"), "m.npz"),
}


@pytest.mark.timeout(20)
@pytest.mark.parametrize("case", sorted(NOT_REGULAR))
def test_a_fifo_is_refused_by_name_without_being_opened(tmp_path, case):
    read, name = NOT_REGULAR[case]
    with pytest.raises(ValueError) as err:
        read(tmp_path)
    assert "named pipe" in one_line(err, name, "regular file")


@pytest.mark.timeout(20)
def test_a_device_in_an_image_folder_is_refused_by_name(tmp_path):
    folder = folder_of_pngs(tmp_path / "f")
    (folder / "img_zero.png").symlink_to("/dev/zero")
    with pytest.raises(ValueError) as err:
        SampleSource(folder)
    assert "character device" in one_line(err, "img_zero.png", "regular file")


# --- 5, 6. classifier weights and sidecars -----------------------------------------------------

@pytest.mark.parametrize("dtype", [torch.int64, torch.int8, torch.bool])
@pytest.mark.parametrize("suffix", [".safetensors", ".pt"])
def test_classifier_weights_that_are_not_floats_are_refused_by_name(tiny_classifier, tmp_path, dtype, suffix):
    path = tmp_path / f"clf{suffix}"
    if suffix == ".safetensors":
        from safetensors.torch import save_file

        save_classifier(tiny_classifier, path, meta={})
        state = {k: v.contiguous() for k, v in tiny_classifier.state_dict().items()}
        state["model.conv1.weight"] = state["model.conv1.weight"].to(dtype)
        save_file(state, str(path))
        key = "model.conv1.weight"
    else:
        state = tiny_classifier.model.state_dict()
        state["conv1.weight"] = state["conv1.weight"].to(dtype)
        torch.save(state, path)
        key = "conv1.weight"
    with pytest.raises(ValueError) as err:
        load_classifier(path)
    dtype_name = str(dtype).removeprefix("torch.")
    one_line(err, f"clf{suffix}", f"weight '{key}' is {dtype_name}, not a floating-point tensor")


def test_batchnorm_step_counters_stay_integer(tiny_classifier, tmp_path):
    path = tmp_path / "clf.pt"
    torch.save(tiny_classifier.model.state_dict(), path)
    assert any(k.endswith("num_batches_tracked") for k in tiny_classifier.model.state_dict())
    load_classifier(path)


def test_generator_weights_that_are_not_floats_are_refused_by_name(tmp_path):
    from bigroc.generators.cgan import CGAN32

    model = CGAN32(ngf=4)
    state = model.state_dict()
    key = next(k for k, v in state.items() if k.endswith("weight"))
    state[key] = state[key].to(torch.int64)
    with pytest.raises(ValueError) as err:
        load_into(model, state, tmp_path / "g.pt", "a CGAN32")
    one_line(err, "g.pt", f"weight '{key}' is int64, not a floating-point tensor")


SIDECARS = {
    "input_size text": ({"input_size": "abc"}, "input_size"),
    "input_size huge": ({"input_size": 10 ** 9}, "input_size"),
    "input_size bool": ({"input_size": True}, "input_size"),
    "width text": ({"width": "wide"}, "width"),
    "mean short": ({"mean": [0.5]}, "mean"),
    "not an object": ([1, 2], "JSON object"),
}


@pytest.mark.parametrize("case", sorted(SIDECARS))
def test_a_sidecar_of_wrong_types_names_the_key(tiny_classifier, tmp_path, case):
    content, key = SIDECARS[case]
    path = tmp_path / "clf.safetensors"
    save_classifier(tiny_classifier, path, meta={})
    side = tmp_path / "clf.json"
    side.write_text(json.dumps({**json.loads(side.read_text()), **content} if isinstance(content, dict) else content))
    with pytest.raises(ValueError) as err:
        load_classifier(path)
    one_line(err, "clf.json", key)


def test_a_sidecar_that_is_not_utf8_is_named(tiny_classifier, tmp_path):
    path = tmp_path / "clf.safetensors"
    save_classifier(tiny_classifier, path, meta={})
    (tmp_path / "clf.json").write_bytes(b'{"note": "\xff"}')
    with pytest.raises(ValueError) as err:
        load_classifier(path)
    one_line(err, "clf.json", "UTF-8")


# --- 7. npz members ----------------------------------------------------------------------------

def test_a_symlink_member_of_a_samples_npz_is_named(tmp_path):
    np.savez(tmp_path / "plain.npz", arr_0=np.zeros((2, 8, 8, 3), np.uint8))
    path = rezip(tmp_path / "plain.npz", tmp_path / "linked.npz", symlink="arr_0.npy")
    with pytest.raises(ValueError) as err:
        SampleSource(path)
    assert "symbolic link" in one_line(err, "linked.npz", "arr_0.npy")
