"""generator=diffusers on tiny, randomly initialised pipelines written with ``save_pretrained``:
an unconditional DDPM and DDIM (UNet2DModel, 32x32) and a class-conditional DiT (a latent
transformer + AutoencoderKL, 4x4 latents decoded to 32x32). Nothing touches the network."""

from __future__ import annotations

import json
import os
import shutil
import socket
import sys

import numpy as np
import pytest
import torch
from cli import entry

from bigroc.generators import build_generator
from bigroc.generators.diffusers_pipeline import initial_noise, step_generators
from generator_checks import TOL, check_properties


def tiny_unet(**extra):
    from diffusers import UNet2DModel

    return UNet2DModel(sample_size=32, in_channels=3, out_channels=3, layers_per_block=1, block_out_channels=(8, 16),
                       norm_num_groups=4, attention_head_dim=8, down_block_types=("DownBlock2D", "AttnDownBlock2D"),
                       up_block_types=("AttnUpBlock2D", "UpBlock2D"), **extra)


def tiny_dit_pipeline():
    """DiT with 1000 classes (DiTPipeline's null class is 1000) and learned sigma; 4x4x4 latents."""
    from diffusers import AutoencoderKL, DDIMScheduler, DiTPipeline, DiTTransformer2DModel

    transformer = DiTTransformer2DModel(num_attention_heads=2, attention_head_dim=8, in_channels=4, out_channels=8,
                                        num_layers=1, sample_size=4, patch_size=2, num_embeds_ada_norm=1000)
    vae = AutoencoderKL(down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
                        block_out_channels=(8, 8, 8, 8), layers_per_block=1, latent_channels=4, norm_num_groups=4,
                        sample_size=32)
    return DiTPipeline(transformer, vae, DDIMScheduler(num_train_timesteps=100), id2label={0: "zero", 1: "one"})


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """Saved pipelines by kind: ddpm, ddim, dit, and ones bigroc refuses."""
    diffusers = pytest.importorskip("diffusers")
    root = tmp_path_factory.mktemp("pipelines")
    torch.manual_seed(0)
    pipes = {
        "ddpm": diffusers.DDPMPipeline(tiny_unet(), diffusers.DDPMScheduler()),
        "ddim": diffusers.DDIMPipeline(tiny_unet(), diffusers.DDIMScheduler()),
        "dit": tiny_dit_pipeline(),
        "score_sde": diffusers.ScoreSdeVePipeline(tiny_unet(), diffusers.ScoreSdeVeScheduler()),
        "class_unet": diffusers.DDPMPipeline(tiny_unet(num_class_embeds=10), diffusers.DDPMScheduler()),
        "ldm": diffusers.LDMPipeline(diffusers.VQModel(block_out_channels=(8,), norm_num_groups=4, latent_channels=3,
                                                       num_vq_embeddings=8), tiny_unet(), diffusers.DDIMScheduler()),
    }
    for kind, pipe in pipes.items():
        pipe.save_pretrained(root / kind)
    return root


@pytest.fixture
def offline(monkeypatch):
    """HF_HUB_OFFLINE, and every socket connection recorded and refused."""
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    attempts = []

    def refuse(self, address, *args):
        attempts.append(address)
        raise OSError("network use in a test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    return attempts


def build(folders, kind: str, **keys):
    return build_generator("diffusers", checkpoint=str(folders / kind), **keys)


@pytest.mark.parametrize("kind, scheduler, steps", [  # PNDM takes >= 4 steps (13 network calls for 4)
    ("ddpm", None, 3), ("ddim", None, 3), ("ddpm", "EulerAncestralDiscreteScheduler", 3), ("ddim", "PNDMScheduler", 4)])
def test_unconditional_pipeline_is_a_deterministic_source(folders, kind, scheduler, steps):
    source = build(folders, kind, num_inference_steps=steps, scheduler=scheduler)
    assert source.pipeline == f"{kind.upper()}Pipeline" and source.image_shape == (32, 32)
    assert source.num_classes == 10 and len(source) > 10**12
    assert type(source.scheduler).__name__ == (scheduler or f"{kind.upper()}Scheduler")
    check_properties(source, conditional=False, size=32)  # stochastic steps (DDPM, Euler ancestral) included


def test_dit_is_conditional_with_labels_index_mod_num_classes(folders):
    source = build(folders, "dit", num_inference_steps=2, num_classes=10)
    assert source.conditional and source.guidance_scale == 4.0  # DiTPipeline's default
    check_properties(source, conditional=True, size=32)
    whole = build(folders, "dit", num_inference_steps=1, guidance_scale=1.0)  # the model's own 1000 classes
    assert whole.num_classes == 1000 and torch.equal(whole.labels(torch.tensor([999, 1000, 2001])),
                                                     torch.tensor([999, 0, 1]))


@pytest.mark.parametrize("kind", ["ddpm", "dit"])
def test_matches_the_diffusers_pipeline_on_the_same_noise(folders, kind, monkeypatch):
    """The loop here equals the pipeline's own __call__ when that starts from the same initial
    noise and gets the same per-row generators (DDPM draws fresh noise every step)."""
    import diffusers
    from diffusers.pipelines.ddpm import pipeline_ddpm
    from diffusers.pipelines.dit import pipeline_dit

    idx, seed, steps = torch.tensor([5, 0, 9]), 3, 4
    source = build(folders, kind, num_inference_steps=steps, **({"num_classes": 10} if kind == "dit" else {}))
    x, y = source.generate(idx, seed)
    noise = initial_noise(idx, seed, source.noise_shape)
    drawn = []
    monkeypatch.setattr(pipeline_ddpm if kind == "ddpm" else pipeline_dit, "randn_tensor",
                        lambda shape, **kw: drawn.append(shape) or noise.clone())
    pipe = diffusers.DiffusionPipeline.from_pretrained(folders / kind, local_files_only=True)
    pipe.set_progress_bar_config(disable=True)
    if kind == "ddpm":
        out = pipe(batch_size=3, generator=step_generators(idx, seed), num_inference_steps=steps, output_type="np")
    else:
        out = pipe(class_labels=y.tolist(), num_inference_steps=steps, output_type="np")
    assert drawn == [tuple(noise.shape)]
    torch.testing.assert_close(x, torch.from_numpy(out.images).permute(0, 3, 1, 2), atol=TOL, rtol=0)


def count_calls(module: torch.nn.Module) -> list[int]:
    batches = []
    module.register_forward_hook(lambda m, args, kwargs, out: batches.append(len(args[0])), with_kwargs=True)
    return batches


def test_num_inference_steps_and_scheduler_are_honoured(folders):
    idx = torch.tensor([1, 2])
    images = {}
    for steps, scheduler in [(2, None), (5, None), (2, "DDIMScheduler")]:
        source = build(folders, "ddpm", num_inference_steps=steps, scheduler=scheduler)
        calls = count_calls(source.unet)
        images[steps, scheduler] = source.generate(idx, seed=0)[0]
        assert calls == [2] * steps
    assert type(source.scheduler).__name__ == "DDIMScheduler"
    assert not torch.allclose(images[2, None], images[5, None]) and not torch.allclose(images[2, None],
                                                                                       images[2, "DDIMScheduler"])
    for scale, batch in [(4.0, 4), (1.0, 2)]:  # guidance runs the conditional and null-class halves together
        dit = build(folders, "dit", num_inference_steps=3, num_classes=10, guidance_scale=scale)
        calls = count_calls(dit.transformer)
        dit.generate(idx, seed=0)
        assert calls == [batch] * 3
    assert build(folders, "ddpm").num_inference_steps == 1000 and build(folders, "ddim").num_inference_steps == 50


def test_networks_are_submodules_so_to_moves_them(folders):
    source, dit = build(folders, "ddim", num_inference_steps=1), build(folders, "dit", num_inference_steps=1)
    assert {id(p) for p in source.parameters()} == {id(p) for p in source.unet.parameters()}
    assert {id(p) for p in dit.parameters()} == {id(p) for m in (dit.transformer, dit.vae) for p in m.parameters()}
    assert not any(p.requires_grad for p in dit.parameters()) and not dit.training


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_on_cuda_images_match_the_cpu(folders):
    for kind, keys in [("ddpm", {}), ("dit", {"num_classes": 10})]:
        source = build(folders, kind, num_inference_steps=3, **keys)
        idx = torch.tensor([0, 7, 3])
        on_cpu = source.generate(idx, seed=2)[0]
        x, y = source.to("cuda").generate(idx, seed=2)
        assert x.device.type == "cuda" and (y is None or y.device.type == "cuda")
        torch.testing.assert_close(x.cpu(), on_cpu, atol=1e-3, rtol=0)


def test_hub_id_is_read_from_the_local_cache_only(folders, tmp_path, monkeypatch, offline):
    import huggingface_hub.constants

    repo = tmp_path / "hub" / "models--tiny--ddpm"  # the layout `huggingface-cli download tiny/ddpm` writes
    shutil.copytree(folders / "ddpm", repo / "snapshots" / "0123abcd")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0123abcd")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    x, _ = build_generator("diffusers", checkpoint="tiny/ddpm", num_inference_steps=2).sample(2)
    assert x.shape == (2, 3, 32, 32)
    for missing in ["tiny/absent", str(tmp_path / "no" / "folder")]:
        with pytest.raises(FileNotFoundError, match="neither a folder nor a hub id in the local Hugging Face cache") \
                as err:
            build_generator("diffusers", checkpoint=missing)
        text = str(err.value)
        assert "\n" not in text and repr(missing) in text and f"hf download {missing}" in text
        assert "save_pretrained(DIR)" in text
    assert offline == []


@pytest.mark.parametrize("kind, keys, match", [
    ("ddpm", {"scheduler": "NoSuchScheduler"}, "is not a diffusers scheduler class; compatible with this pipeline's "
                                               "DDPMScheduler: .*DDIMScheduler"),
    ("ddpm", {"scheduler": "UNet2DModel"}, "'UNet2DModel' is not a diffusers scheduler class"),
    ("ddpm", {"num_inference_steps": 0}, "num_inference_steps must be an integer >= 1, got 0"),
    ("ddpm", {"num_inference_steps": 1001}, "num_inference_steps=1001: DDPMScheduler refuses it"),
    ("ddpm", {"guidance_scale": 2.0}, "guidance_scale applies to class-conditional DiT"),
    ("ddpm", {"random_init": True}, "exclude each other"),
    ("dit", {"num_classes": 1001}, "this DiT knows 1000 classes"),
    ("dit", {"guidance_scale": 0.5}, "guidance_scale must be >= 1"),
    ("score_sde", {}, "ScoreSdeVePipeline is not supported: its corrector's step size averages"),
    ("class_unet", {}, "unet is class-conditional"),
    ("ldm", {}, r"LDMPipeline \(components: scheduler, unet, vqvae\) is not supported"),
    ("not_a_pipeline", {}, "is not a diffusers pipeline folder \\(it has no model_index.json\\)"),
    ("broken", {}, "diffusers could not load the pipeline"),
])
def test_bad_settings_are_refused_in_one_line(folders, tmp_path, offline, kind, keys, match):
    (tmp_path / "not_a_pipeline").mkdir()
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "model_index.json").write_text("{not json")
    where = folders if (folders / kind).exists() else tmp_path
    with pytest.raises(ValueError, match=match) as err:
        build_generator("diffusers", checkpoint=str(where / kind), **keys)
    assert "\n" not in str(err.value) and offline == []


def test_without_weights_or_diffusers(monkeypatch):
    with pytest.raises(ValueError, match="has no weights: set generator.checkpoint"):
        build_generator("diffusers")
    monkeypatch.setitem(sys.modules, "diffusers", None)  # as if not installed
    with pytest.raises(ImportError, match="needs the diffusers package: pip install diffusers"):
        build_generator("diffusers", random_init=True)


@pytest.mark.parametrize("kind, labels", [("ddpm", "auto"), ("dit", "generator")])
def test_run_boost_boosts_a_diffusers_pipeline(folders, tmp_path, kind, labels):
    out = tmp_path / "run"
    args = ["generator=diffusers", f"generator.checkpoint={folders / kind}", "generator.num_inference_steps=2",
            f"labels={labels}", "metrics=none", "logger=none", "num_samples=4", "batch_size=4", "steps=2",
            "calibration.samples=4", "grid_size=0", "trainer.enable_progress_bar=false", f"hydra.run.dir={out}"]
    if kind == "dit":
        args.append("generator.num_classes=10")
    done = entry("run_boost.py", args, tmp_path, env={"HF_HUB_OFFLINE": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Loading pipeline components" not in done.stdout + done.stderr  # no loader chatter
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["generator"] == "diffusers" and metrics["generator_checkpoint"] == str(folders / kind)
    with np.load(out / "samples_base.npz") as f:
        assert f["arr_0"].shape == (4, 32, 32, 3) and f["arr_0"].dtype == np.uint8
        if kind == "dit":
            assert f["arr_1"].tolist() == [0, 1, 2, 3]  # index % num_classes


def test_run_identity_covers_every_file_of_the_pipeline(folders, tmp_path):
    """A pipeline re-saved into the same folder is another run (a resume must not mix weights)."""
    from bigroc.run_state import _stamp

    folder = tmp_path / "pipe"
    shutil.copytree(folders / "ddim", folder)
    before = _stamp(folder)
    weights = next(p for p in sorted(folder.rglob("*.safetensors")))
    weights.write_bytes(weights.read_bytes())  # same bytes, a new write
    os.utime(weights, ns=(1, 1))
    assert _stamp(folder) != before
    assert any(row[0].endswith(".safetensors") for row in before)
