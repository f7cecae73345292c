"""Hugging Face diffusers pipelines as image sources (the optional ``diffusers`` extra).

``generator.checkpoint`` names the pipeline: a folder written by ``save_pretrained(DIR)``
or a hub id (``google/ddpm-cifar10-32``) already in the local Hugging Face cache. Both
are read with ``local_files_only=True``: nothing is ever downloaded.

Supported kinds:

- unconditional UNet pipelines, components ``unet`` (a ``UNet2DModel``) + ``scheduler``:
  DDPMPipeline, DDIMPipeline, PNDMPipeline, ... The UNet's output lives in [-1, 1].
- DiTPipeline (``transformer`` + ``vae`` + ``scheduler``): class-conditional; image ``i``
  has label ``i % num_classes``; classifier-free guidance with ``guidance_scale`` (> 1),
  the null class being the transformer's ``num_embeds_ada_norm`` (1000 for ImageNet DiT).

ScoreSdeVePipeline is refused: its corrector's step size averages gradient norms over
the batch, so an image would depend on the images it is drawn with.

The denoising loop runs here rather than in the pipelines' ``__call__`` (which it
reproduces: tests/generators/test_diffusers.py compares them), so that image ``i``
depends on ``(seed, i)`` only: its initial noise is :func:`seeded_normal`'s stream keyed
``(seed << 32) | i``, and the per-step noise of stochastic schedulers (DDPM, Euler
ancestral) comes from a CPU ``torch.Generator`` of its own, seeded from ``(seed, i)``.
``torch.Generator.manual_seed`` keeps 32 bits of a seed, so two images may, rarely,
share per-step noise, never initial noise. (DiTPipeline also gives its scheduler no
generator at all, so a stochastic scheduler would draw from the global RNG there.)
"""

from __future__ import annotations

import inspect
import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn

from bigroc.generators.base import ImageSource, as_indices, seeded_normal
from bigroc.generators.weights import check_weights_choice

DIFFUSERS_FORMAT = ("a diffusers pipeline: a save_pretrained folder or a Hugging Face hub id in the local cache; "
                    "DDPM/DDIM-style unet + scheduler, or DiT")
SUPPORTED = ("unconditional UNet pipelines (unet + scheduler: DDPMPipeline, DDIMPipeline, PNDMPipeline) and "
             "DiTPipeline (transformer + vae + scheduler)")
REFUSED = {"ScoreSdeVePipeline": "its corrector's step size averages gradient norms over the batch, so an image "
                                 "would depend on its batch"}
UNCONDITIONAL_CLASSES = 10  # num_classes of an unconditional pipeline when not given: CIFAR-10's


def _import_diffusers():
    try:
        import diffusers
    except ImportError:
        raise ImportError("generator 'diffusers' needs the diffusers package: pip install diffusers") from None
    return diffusers


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0][:200] if text else type(err).__name__


def pipeline_folder(checkpoint: str) -> Path:
    """The local folder of ``checkpoint``: itself if it exists, else its hub id's cached snapshot.

    Never touches the network (``local_files_only=True``); refuses by name a folder
    without ``model_index.json`` and an id that is not in the local cache.
    """
    path = Path(checkpoint).expanduser()
    if not path.exists():
        from huggingface_hub import constants, snapshot_download

        try:
            path = Path(snapshot_download(checkpoint, local_files_only=True))
        except Exception:  # not cached, or not a valid hub id
            raise FileNotFoundError(
                f"generator 'diffusers': {checkpoint!r} is neither a folder nor a hub id in the local Hugging Face "
                f"cache ({constants.HF_HUB_CACHE}); fetch it where the internet is reachable, with `hf download "
                f"{checkpoint}` (older huggingface_hub: `huggingface-cli download {checkpoint}`) into that cache, or "
                f"`DiffusionPipeline.from_pretrained('{checkpoint}').save_pretrained(DIR)` and "
                "generator.checkpoint=DIR") from None
    if not (path / "model_index.json").is_file():
        raise ValueError(f"{path} is not a diffusers pipeline folder (it has no model_index.json); write one with "
                         "pipeline.save_pretrained(DIR)")
    return path


def load_pipeline(checkpoint: str):
    """``DiffusionPipeline.from_pretrained`` of :func:`pipeline_folder`: offline, no remote code."""
    diffusers = _import_diffusers()
    folder = pipeline_folder(checkpoint)
    diffusers.utils.logging.disable_progress_bar()  # a run's console is one line per event
    diffusers.utils.logging.set_verbosity_error()
    try:
        return diffusers.DiffusionPipeline.from_pretrained(folder, local_files_only=True, trust_remote_code=False)
    except Exception as err:
        raise ValueError(f"{folder}: diffusers could not load the pipeline ({type(err).__name__}: "
                         f"{_first_line(err)})") from None


def choose_scheduler(current, name: str | None):
    """``current`` (``name`` None) or the scheduler class ``name`` built from ``current``'s config."""
    diffusers = _import_diffusers()
    if name is not None:
        cls = getattr(diffusers, str(name), None)
        if not (isinstance(cls, type) and issubclass(cls, diffusers.SchedulerMixin)):
            known = ", ".join(sorted(c.__name__ for c in current.compatibles))
            raise ValueError(f"generator.scheduler={name!r} is not a diffusers scheduler class; compatible with "
                             f"this pipeline's {type(current).__name__}: {known}")
        current = cls.from_config(current.config)
    if not callable(getattr(current, "step", None)):
        raise ValueError(f"scheduler {type(current).__name__} has no step(); generator 'diffusers' runs schedulers "
                         "with set_timesteps() and step() (DDPMScheduler, DDIMScheduler, ...)")
    return current


def step_generators(indices: torch.Tensor, seed: int) -> list[torch.Generator]:
    """One CPU ``torch.Generator`` per row for a scheduler's per-step noise, seeded from
    ``(seed, index)`` by NumPy's ``SeedSequence`` (a documented hash, stable across versions;
    32 bits, all that ``manual_seed`` keeps on the CPU)."""
    def row_seed(i: int) -> int:
        key = np.random.SeedSequence((int(seed) << 32) | i, spawn_key=(1,))  # spawn_key: apart from other uses
        return int(key.generate_state(1, np.uint32)[0])

    return [torch.Generator().manual_seed(row_seed(i)) for i in as_indices(indices).tolist()]


def initial_noise(indices: torch.Tensor, seed: int, shape: tuple[int, int, int]) -> torch.Tensor:
    """Per-index N(0, 1) noise of ``shape`` (C, H, W): :func:`seeded_normal` rows, (B, C, H, W) float32 CPU."""
    c, h, w = shape
    return seeded_normal(indices, seed, c * h * w).view(-1, c, h, w)


class DiffusionSource(ImageSource):
    """A scheduler's denoising loop behind the :class:`ImageSource` interface.

    Subclasses register their networks as submodules (so ``.to(device)`` moves them) and
    implement :meth:`denoise` and :meth:`decode`; ``noise_shape`` is (C, H, W) of the
    initial noise.

    Args:
        scheduler: a diffusers scheduler with ``set_timesteps`` and ``step``.
        num_inference_steps: denoising steps per image, >= 1.
        pipeline: the pipeline's class name, for messages.
    """

    noise_shape: tuple[int, int, int]

    def __init__(self, scheduler, num_inference_steps: int, pipeline: str) -> None:
        super().__init__()
        self.scheduler, self.pipeline = scheduler, pipeline
        self.num_inference_steps = int(num_inference_steps)
        self._step_takes_generator = "generator" in inspect.signature(scheduler.step).parameters
        try:  # refused step counts (more than the training timesteps, say) are named now, not mid-run
            scheduler.set_timesteps(self.num_inference_steps)
        except Exception as err:
            raise ValueError(f"generator.num_inference_steps={self.num_inference_steps}: {type(scheduler).__name__} "
                             f"refuses it ({_first_line(err)})") from None

    def __len__(self) -> int:
        return sys.maxsize

    def labels(self, indices: torch.Tensor) -> torch.Tensor | None:
        """``indices % num_classes`` for a conditional source, else None."""
        return as_indices(indices) % self.num_classes if self.conditional else None

    def denoise(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        """The network's prediction for the scheduler. Shape: x (B, C, h, w), t 0-dim -> like x."""
        raise NotImplementedError

    def decode(self, x: torch.Tensor) -> torch.Tensor:
        """Final sample (B, C, h, w) -> images (B, 3, H, W) float in [0, 1]."""
        raise NotImplementedError

    @torch.no_grad()
    def generate(self, indices: torch.Tensor, seed: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """See :meth:`ImageSource.generate`; runs in eval mode and restores the mode after."""
        idx = as_indices(indices)
        x = initial_noise(idx, seed, self.noise_shape).to(self.device)
        y = self.labels(idx)
        y = None if y is None else y.to(self.device)
        extra = {"generator": step_generators(idx, seed)} if self._step_takes_generator else {}
        was_training = self.training
        self.eval()
        try:
            self.scheduler.set_timesteps(self.num_inference_steps)
            x = x * self.scheduler.init_noise_sigma
            for t in self.scheduler.timesteps:
                out = self.denoise(self.scheduler.scale_model_input(x, t), t, y)
                x = self.scheduler.step(out, t, x, **extra).prev_sample
            images = self.decode(x)
        finally:
            self.train(was_training)
        return images.float(), y


def _to_unit(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] -> [0, 1], clamped."""
    return (x / 2 + 0.5).clamp(0.0, 1.0)


class UNetSource(DiffusionSource):
    """An unconditional ``UNet2DModel`` pipeline (DDPM, DDIM, PNDM): images in [-1, 1]."""

    def __init__(self, unet: nn.Module, scheduler, num_inference_steps: int, pipeline: str,
                 num_classes: int = UNCONDITIONAL_CLASSES) -> None:
        super().__init__(scheduler, num_inference_steps, pipeline)
        cfg = unet.config
        if cfg.in_channels != 3 or cfg.out_channels not in (3, 6):
            raise ValueError(f"{pipeline}'s unet maps {cfg.in_channels} to {cfg.out_channels} channels; bigroc needs "
                             "RGB images (3 in, 3 out, or 6 with a learned variance)")
        if int(num_classes) < 1:
            raise ValueError(f"generator.num_classes must be >= 1, got {num_classes}")
        if cfg.num_class_embeds is not None or cfg.class_embed_type is not None:
            raise ValueError(f"{pipeline}'s unet is class-conditional (class embeddings), which no unconditional "
                             f"pipeline feeds; supported: {SUPPORTED}")
        size = cfg.sample_size
        height, width = (size, size) if isinstance(size, int) else tuple(size)
        self.unet = unet
        self.noise_shape, self._shape = (3, int(height), int(width)), (int(height), int(width))
        self.image_size, self.num_classes, self.conditional = int(height), int(num_classes), False

    @property
    def image_shape(self) -> tuple[int, int]:
        return self._shape

    def denoise(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        return self.unet(x, t).sample

    def decode(self, x: torch.Tensor) -> torch.Tensor:
        return _to_unit(x)


class DiTSource(DiffusionSource):
    """DiTPipeline: a class-conditional latent transformer, decoded by its VAE.

    Args:
        transformer: ``DiTTransformer2DModel`` (``in_channels`` latent channels,
            ``out_channels`` the same or twice that (learned sigma), ``num_embeds_ada_norm``
            classes; label ``num_embeds_ada_norm`` itself is the null class of guidance).
        vae: ``AutoencoderKL``; ``decode(latents / scaling_factor)`` in [-1, 1].
        num_classes: labels are ``index % num_classes``; at most the model's classes.
        guidance_scale: classifier-free guidance, >= 1 (1: none), as DiTPipeline applies it.
    """

    def __init__(self, transformer: nn.Module, vae: nn.Module, scheduler, num_inference_steps: int,
                 pipeline: str, num_classes: int | None, guidance_scale: float) -> None:
        super().__init__(scheduler, num_inference_steps, pipeline)
        cfg = transformer.config
        known = int(cfg.num_embeds_ada_norm)
        num_classes = known if num_classes is None else int(num_classes)
        if not 1 <= num_classes <= known:
            raise ValueError(f"generator.num_classes={num_classes}, but this DiT knows {known} classes: set "
                             f"generator.num_classes to at most {known} (labels are index % num_classes)")
        if cfg.out_channels not in (cfg.in_channels, 2 * cfg.in_channels):
            raise ValueError(f"{pipeline}'s transformer gives {cfg.out_channels} channels for {cfg.in_channels} "
                             "latent channels; DiTPipeline expects the same or twice that (learned sigma)")
        if float(guidance_scale) < 1:
            raise ValueError(f"generator.guidance_scale must be >= 1 (1: no guidance), got {guidance_scale}")
        self.transformer, self.vae = transformer, vae
        self.null_class, self.guidance_scale = known, float(guidance_scale)
        latent, scale = int(cfg.sample_size), 2 ** (len(vae.config.block_out_channels) - 1)
        self.noise_shape = (int(cfg.in_channels), latent, latent)
        self.image_size, self.num_classes, self.conditional = latent * scale, num_classes, True

    def denoise(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        """The (guided) noise prediction: ``uncond + s * (cond - uncond)`` on the latent channels."""
        guided = self.guidance_scale > 1
        if guided:
            x, y = torch.cat([x, x]), torch.cat([y, torch.full_like(y, self.null_class)])
        timesteps = torch.as_tensor(t, device=x.device).reshape(1).expand(len(x))
        eps = self.transformer(x, timestep=timesteps, class_labels=y).sample[:, :self.noise_shape[0]]
        if guided:
            cond, uncond = eps.chunk(2)
            eps = uncond + self.guidance_scale * (cond - uncond)
        return eps

    def decode(self, x: torch.Tensor) -> torch.Tensor:
        return _to_unit(self.vae.decode(x / self.vae.config.scaling_factor).sample)


def default_steps(pipeline_cls: type) -> int:
    """The ``num_inference_steps`` default of the pipeline's ``__call__`` (DDPM 1000, DDIM 50, DiT 50)."""
    param = inspect.signature(pipeline_cls.__call__).parameters.get("num_inference_steps")
    if param is None or not isinstance(param.default, int):
        raise ValueError(f"{pipeline_cls.__name__} has no default num_inference_steps; set "
                         "generator.num_inference_steps")
    return param.default


def random_pipeline() -> tuple[type, dict]:
    """A tiny untrained DDIM pipeline at 32x32, the same weights every time (tests only)."""
    diffusers = _import_diffusers()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        unet = diffusers.UNet2DModel(sample_size=32, in_channels=3, out_channels=3, layers_per_block=1,
                                     block_out_channels=(16, 32), norm_num_groups=8,
                                     down_block_types=("DownBlock2D", "DownBlock2D"),
                                     up_block_types=("UpBlock2D", "UpBlock2D"))
    return diffusers.DDIMPipeline, {"unet": unet, "scheduler": diffusers.DDIMScheduler()}


def _pipeline_kind(pipeline: str, components: dict) -> str:
    """``"unet"`` or ``"dit"``, or a one-line refusal naming what is supported."""
    diffusers = _import_diffusers()
    if pipeline in REFUSED:
        raise ValueError(f"{pipeline} is not supported: {REFUSED[pipeline]}; supported: {SUPPORTED}")
    if pipeline == "DiTPipeline":
        return "dit"
    if set(components) == {"unet", "scheduler"} and isinstance(components["unet"], diffusers.UNet2DModel):
        return "unet"
    raise ValueError(f"{pipeline} (components: {', '.join(sorted(components))}) is not supported; generator "
                     f"'diffusers' runs {SUPPORTED}")


def build_diffusers(name: str, checkpoint: str | None = None, random_init: bool = False, *,
                    num_inference_steps: int | None = None, scheduler: str | None = None,
                    guidance_scale: float | None = None, num_classes: int | None = None) -> DiffusionSource:
    """A diffusers pipeline as an image source, in eval mode on the CPU.

    Args:
        checkpoint: a ``save_pretrained`` folder or a hub id in the local cache (never downloaded).
        random_init: a tiny untrained 32x32 DDIM pipeline instead, for tests only.
        num_inference_steps: denoising steps; None: the pipeline's default.
        scheduler: a diffusers scheduler class name built from the pipeline's scheduler
            config (``DDIMScheduler``); None keeps the pipeline's.
        guidance_scale: DiT only; None: DiTPipeline's default (4.0).
        num_classes: DiT: labels are ``index % num_classes`` (None: the model's classes);
            unconditional: the dataset's classes (None: 10).
    """
    check_weights_choice(name, checkpoint, random_init, DIFFUSERS_FORMAT)
    if random_init:
        pipeline_cls, components = random_pipeline()
    else:
        pipe = load_pipeline(checkpoint)
        pipeline_cls, components = type(pipe), dict(pipe.components)
    pipeline = pipeline_cls.__name__
    kind = _pipeline_kind(pipeline, components)
    steps = default_steps(pipeline_cls) if num_inference_steps is None else num_inference_steps
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"generator.num_inference_steps must be an integer >= 1, got {steps!r}")
    sched = choose_scheduler(components["scheduler"], scheduler)
    if kind == "dit":
        scale = inspect.signature(pipeline_cls.__call__).parameters["guidance_scale"].default
        source = DiTSource(components["transformer"], components["vae"], sched, steps, pipeline, num_classes,
                           scale if guidance_scale is None else guidance_scale)
    else:
        if guidance_scale is not None:
            raise ValueError(f"generator.guidance_scale applies to class-conditional DiT pipelines; {pipeline} is "
                             "unconditional: set generator.guidance_scale=null")
        source = UNetSource(components["unet"], sched, steps, pipeline,
                            UNCONDITIONAL_CLASSES if num_classes is None else num_classes)
    return source.float().eval().requires_grad_(False)  # float32, whatever the saved weights' dtype
