"""Every command README.md shows is exercised here, so the README cannot drift from the code.

``CHECKS`` says, for each command the README prints (``readme_commands``), how it is checked:

- ``AS_WRITTEN``: run exactly as printed, in a folder holding the files it names (``data/``,
  ``a.png``, ``netG_100000.pth``, ...), as a user in a checkout would run it.
- ``Shrunk(...)``: run as printed with settings appended that make it seconds long (8 images,
  3 steps, a 16-image reference, 2 training steps); a setting the command gives itself is kept,
  unless ``replace`` swaps it (a size or a placeholder a test cannot use), which the entry says.
- ``Composed(why)``: needs a GPU, a cluster or hours; Hydra composes its exact overrides
  (``--cfg job``, with a ``...`` placeholder dropped), which catches a renamed key, group or option.
- ``Make(target, recipe)``: ``make -n`` prints that recipe; the commands in it are checked here or by CI.
- ``Elsewhere(file, needle)``: another test (or CI) runs it; ``needle`` must be in ``file``.

A command the README gains without an entry, or an entry whose command left the README, fails
``test_every_readme_command_has_exactly_one_check``.
"""

from __future__ import annotations

import json
import math
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cli import BOOST_FAST
from readme_commands import readme_commands

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "src" / "bigroc" / "weights"

SCORE_SMALL = ("metrics.ref_split=test", "metrics.ref_samples=16", "metrics.kid_subset_size=4")
TRAIN_SMALL = ("debug=smoke", "trainer.enable_progress_bar=false")
GENERATOR_SMALL = ("trainer.max_steps=1", "data.batch_size=8", "data.train_size=16", "module.grid_size=2",
                   "trainer.enable_progress_bar=false")


@dataclass(frozen=True)
class Shrunk:
    extra: tuple[str, ...] = ()
    replace: dict[str, str] = field(default_factory=dict)
    cwd: str = "work"   # "bare": an empty folder beside shared/, as a fresh checkout is

    def args(self, command: str) -> list[str]:
        for old, new in self.replace.items():
            assert old in command, f"{old!r} is not in {command!r}"
            command = command.replace(old, new)
        words = shlex.split(command)
        given = {key(w) for w in words if "=" in w}
        # Hydra settings the command gives stand (Hydra's last value would win); flags go on as they are.
        return words + [e for e in self.extra if "=" not in e or key(e) not in given]


AS_WRITTEN = Shrunk()


@dataclass(frozen=True)
class Composed:
    why: str


@dataclass(frozen=True)
class Make:
    target: str
    recipe: tuple[str, ...]


@dataclass(frozen=True)
class Elsewhere:
    file: str
    needle: str


def key(word: str) -> str:
    return word.split("=", 1)[0].lstrip("+~")


GPU = "needs a CUDA GPU (trainer=gpu)"
SLOW_TEST = "tests/test_external_samples.py"
CHECKS = {
    # Results
    "python benchmarks/external_results.py -- trainer.precision=bf16-mixed metrics.precision=bf16":
        Elsewhere(SLOW_TEST, '"--", "trainer.precision=bf16-mixed", "metrics.precision=bf16"'),
    "python benchmarks/external_results.py --quick": Elsewhere(SLOW_TEST, '"--quick"'),
    "python benchmarks/external_results.py --only eps,confident,eps_more":
        Elsewhere("tests/test_progress.py", 'only=("eps", "confident", "eps_more")'),
    "python benchmarks/external_results.py": Elsewhere(SLOW_TEST, '"benchmarks/external_results.py", "--quick"'),
    # Quick start and installing
    "make run": Make("run", ("python run_boost.py",)),
    "make test": Make("test", ("python -m pytest",)),
    "make test-avx2": Make("test-avx2", ("python -m pytest tests/",)),
    "make bench": Make("bench", ("python benchmarks/bench_boost.py", "python benchmarks/bench_run.py",
                                 "python benchmarks/bench_inception.py",
                                 "python benchmarks/bench_train.py --steps 10")),
    "make setup": Make("setup", ()),  # only the venv, which every other check runs in
    "pip install -e .": Elsewhere("Makefile", "-m pip install --no-deps -e ."),
    "pip install -e '.[dev,madry,diffusers]'": Elsewhere("Makefile", "EXTRAS := dev,madry,slurm,diffusers"),
    "pip install --no-deps robustness==1.2.1.post2 robustbench==1.1.1":
        Elsewhere("Makefile", "ROBUSTNESS := robustness==1.2.1.post2 robustbench==1.1.1"),
    # Zoo models
    "python run_boost.py classifier=robustbench classifier.name=Rice2020Overfitting": Shrunk(BOOST_FAST),
    "python run_boost.py generator=diffusers generator.checkpoint=ddpm-cifar10-32 generator.num_inference_steps=100 "
    "generator.scheduler=DDIMScheduler": Shrunk(BOOST_FAST, replace={"generator.num_inference_steps=100":
                                                                    "generator.num_inference_steps=2"}),
    # Configuration
    "python run_boost.py": Shrunk(BOOST_FAST),
    "python run_boost.py seed=1": Shrunk(BOOST_FAST),
    "python run_boost.py --cfg job": AS_WRITTEN,
    "python run_boost.py classifier=resnet18_narrow epsilon=0.5 steps=7": Shrunk(BOOST_FAST),
    "python run_boost.py classifier.checkpoint=cifar_l2_0_5.pt": Shrunk(BOOST_FAST),
    "python run_boost.py -m epsilon=0.25,0.5,1,2": Shrunk(BOOST_FAST),
    # run_boost.py
    "python run_boost.py generator=sngan generator.checkpoint=netG_100000.pth epsilon=1.0": Shrunk(BOOST_FAST),
    "python run_boost.py generator=cgan_pd generator.checkpoint=netG.pth labels=generator": Shrunk(BOOST_FAST),
    "python run_boost.py generator=samples generator.path=samples.npz num_samples=10000":
        Shrunk(BOOST_FAST, replace={"num_samples=10000": "num_samples=8"}),
    "python run_boost.py generator=samples generator.path=pngs/ generator.labels=labels.txt num_samples=all":
        Shrunk(BOOST_FAST),
    "python run_boost.py -m generator=vae epsilon=0.25,0.5,1,2 generator.checkpoint=vae.safetensors":
        Shrunk(BOOST_FAST),
    "python run_boost.py -m generator=... epsilon=0.25,0.5,1,2":
        Elsewhere("README.md", "python run_boost.py -m generator=vae epsilon=0.25,0.5,1,2"),
    "python run_boost.py trainer=ddp": Composed("DDP over every GPU of the machine"),
    "python run_boost.py -m hydra/launcher=submitit_slurm ...": Composed("sends jobs to Slurm"),
    "python run_boost.py generator=samples generator.path=FILE.npz classifier.checkpoint=CKPT data.root=DIR "
    "epsilon=E steps=T num_samples=N hydra.run.dir=OUT [metrics.ref_split=test metrics.ref_samples=M]":
        Elsewhere("tests/test_run_boost_cli.py", "def test_contract_scores_and_saves_both_versions"),
    "python run_boost.py experiment=imagenet128_adm_g trainer=gpu generator.path=admnet_guided_imagenet128.npz "
    "classifier.checkpoint=imagenet_l2_3_0.pt metrics.path=VIRTUAL_imagenet128_labeled.npz": Composed(GPU),
    "python run_boost.py experiment=imagenet128_adm_g labels=predicted trainer=gpu ...": Composed(GPU),
    "python score.py samples=FILE.npz data.root=data": Shrunk(SCORE_SMALL),
    "python run_boost.py generator=vae generator.checkpoint=<run dir>/generator.safetensors":
        Elsewhere("tests/test_train_generator_cli.py", 'sidecar["boost_config"]'),
    # Results of the shipped generators, and their sweeps
    "python run_boost.py 'seeds=[0,1,2]'": Shrunk(BOOST_FAST),
    "python run_boost.py epsilon=0.5": Shrunk(BOOST_FAST),
    "python run_boost.py epsilon=2.0": Shrunk(BOOST_FAST),
    "python run_boost.py generator=cifar10_cgan_pd": Shrunk(BOOST_FAST),
    "python run_boost.py generator=cifar10_cgan_pd epsilon=2": Shrunk(BOOST_FAST),
    "python run_boost.py epsilon=0.5 classifier=cifar10_l2_small": Shrunk(BOOST_FAST),
    "python run_boost.py classifier=cifar10_l2_small": Shrunk(BOOST_FAST),
    "python run_boost.py epsilon=2.0 classifier=cifar10_l2_small": Shrunk(BOOST_FAST),
    "python run_boost.py generator=cifar10_cgan_pd classifier=cifar10_l2_small": Shrunk(BOOST_FAST),
    "python run_boost.py generator=cifar10_cgan_pd epsilon=2 classifier=cifar10_l2_small": Shrunk(BOOST_FAST),
    "python run_boost.py -m epsilon=0.5,1,2": Shrunk(BOOST_FAST),
    "python run_boost.py -m epsilon=0.5,1.0,2.0": Shrunk(BOOST_FAST),
    "python run_boost.py -m generator=cifar10_cgan_pd epsilon=1.0,2.0": Shrunk(BOOST_FAST),
    # Interpolation
    "python interpolate.py source=a.png target=b.png": AS_WRITTEN,
    "python interpolate.py 'pairs=[[3,10],[7,42]]' data.root=data": AS_WRITTEN,
    "python interpolate.py 'pairs=[[3,10],[7,42],[12,25]]' data.root=data": AS_WRITTEN,
    "python interpolate.py source=a.png target=b.png compare.checkpoint=standard.safetensors": AS_WRITTEN,
    "python interpolate.py classifier.checkpoint=CKPT source=IMG target=IMG 'c=[0.25,0.5,1.0]' hydra.run.dir=OUT":
        Elsewhere("tests/test_interpolate_cli.py", "def test_contract_one_pair_frames_strip_metrics_and_wandb"),
    # Training robust classifiers
    "python ../shared/data/cifar10/make_cifar10.py data": Shrunk(cwd="bare"),
    "python train_robust.py experiment=cpu_cifar10_l2 data.root=data": Shrunk(TRAIN_SMALL),
    "python train_robust.py experiment=cpu_cifar10_standard": Shrunk(TRAIN_SMALL),
    "python train_robust.py experiment=madry_cifar10_l2 data.root=data": Composed(GPU),
    "python train_robust.py -m epsilon=0.25,0.5 ...": Composed("a sweep of full trainings"),
    "python train_robust.py experiment=cpu_cifar10_l2 classifier=resnet18 debug=smoke data.root=data":
        Elsewhere("tests/test_train_robust_cli.py", "def test_the_readme_smoke_command_runs_as_written"),
    "python train_robust.py data.root=DIR classifier=resnet18 trainer.max_steps=N hydra.run.dir=OUT":
        Elsewhere("tests/test_train_robust_cli.py", "def test_contract"),
    "python benchmarks/eval_classifier.py --checkpoint .../classifier.safetensors --eps 0.5":
        Shrunk(("--images", "16", "--batch", "16"),
               replace={".../classifier.safetensors": str(SHIPPED / "classifier_cifar10_l2_small.safetensors")}),
    "python benchmarks/bench_train.py": Shrunk(("--settings", "cpu", "--batch", "8", "--steps", "1")),
    # Training generators
    "python train_generator.py module=vae data.root=data": Shrunk(GENERATOR_SMALL),
    "python train_generator.py experiment=cpu_vae data.root=data": Shrunk(GENERATOR_SMALL),
    "python train_generator.py module=sngan data.root=data": Shrunk(GENERATOR_SMALL),
    "python train_generator.py module=cgan_pd data.root=data": Shrunk(GENERATOR_SMALL),
    "python train_generator.py ... ckpt_path=OLD_RUN/checkpoints/last.ckpt":
        Elsewhere("tests/test_train_generator_cli.py", "ckpt_path={out / 'checkpoints' / 'last.ckpt'}"),
    # Speed
    "python benchmarks/bench_boost.py": Shrunk(("--archs", "resnet18", "--width", "0.125", "--batch", "4",
                                                "--steps", "2")),
    "python benchmarks/bench_precision.py --data-root data": Shrunk(("--images", "16")),
    "python benchmarks/bench_inception.py": Shrunk(("--images", "4", "--batch", "4")),
    "python benchmarks/bench_identity.py": Shrunk(("--images", "20")),
    "bash benchmarks/device_check.sh": Elsewhere("tests/test_benchmarks.py",
                                                 "def test_device_check_runs_in_reduced_mode_on_the_cpu"),
    "bash benchmarks/device_bundle.sh DIR": Elsewhere("tests/test_benchmarks.py", '"device_bundle.sh"), str(bundle)'),
    "bash benchmarks/device_check.sh --bundle DIR": Elsewhere("tests/test_benchmarks.py", '"--bundle", str(bundle)'),
    "python benchmarks/bench_run.py": Shrunk(("--samples", "8", "--batch", "4", "--steps", "2", "--memory-at", "8")),
}

# What each entry leaves behind, per job: the proof that it ran to the end.
PRODUCTS = {"run_boost.py": "metrics.json", "score.py": "scores.json", "train_robust.py": "classifier.json",
            "train_generator.py": "generator.json", "interpolate.py": "metrics.json"}


def test_every_readme_command_has_exactly_one_check():
    shown = readme_commands()
    missing = [c for c in shown if c not in CHECKS]
    gone = [c for c in CHECKS if c not in shown]
    assert not missing, f"README commands without a check in {__file__}: {missing}"
    assert not gone, f"checks of commands the README no longer shows: {gone}"


def test_the_reader_finds_block_inline_and_continued_commands():
    text = ("Run it:\n\n    python run_boost.py a=1   # comment\n    make run\n\n"
            "```python\npython is_not_a_command.py\n```\n\n    python x.py b=2 \\\n        c=3\n\n"
            "Or `python score.py samples=F\nx=1` inline, and `python run_boost.py a=1` again.\n")
    assert readme_commands(text) == ["python run_boost.py a=1", "make run", "python x.py b=2 c=3",
                                     "python score.py samples=F x=1"]


def selected(kind) -> list[str]:
    return [c for c, check in CHECKS.items() if isinstance(check, kind)]


@pytest.mark.parametrize("command", selected(Elsewhere))
def test_commands_run_elsewhere_are_there(command):
    check = CHECKS[command]
    assert check.needle in (ROOT / check.file).read_text(), f"{check.file} no longer holds {check.needle!r}"


@pytest.mark.parametrize("command", selected(Make))
def test_make_targets_run_what_they_say(command):
    check = CHECKS[command]
    assert command == f"make {check.target}"
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}  # under `make test`
    done = subprocess.run(["make", "--no-print-directory", "-n", "-o", ".venv/.installed", check.target], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    lines = [re.sub(r"^(\w+=\S+ )+", "", line) for line in done.stdout.splitlines()
             if not line.startswith("make: Nothing to be done")]   # VAR=... cmd
    lines = [re.sub(r"^\S*bin/python ", "python ", line) for line in lines]
    assert len(lines) == len(check.recipe) and all(line.startswith(r) for line, r in zip(lines, check.recipe)), lines


def first_job(words: list[str]) -> list[str]:
    """A multirun's first job: Hydra prints no config for a sweep (``--cfg`` excludes ``-m``)."""
    if "-m" not in words:
        return words
    return [w.split(",")[0] if swept(w) else w for w in words if w != "-m"]


def swept(word: str) -> bool:
    """``key=a,b,c``: a sweep over a list (``key=[a,b]`` is one list value)."""
    return "=" in word and "," in word.split("=", 1)[1] and not word.split("=", 1)[1].startswith("[")


@pytest.mark.parametrize("command", selected(Composed))
def test_commands_that_need_a_gpu_or_a_cluster_compose(command):
    words = first_job([w for w in shlex.split(command) if w != "..."])
    done = subprocess.run([sys.executable, str(ROOT / words[1]), *words[2:], "--cfg", "job"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip(), "nothing composed"


# ----------------------------------------------------------------------------- running them

@pytest.fixture(scope="module")
def workspace(tmp_path_factory, cifar_root, external_samples) -> Path:
    """A folder like a user's checkout: shared/ beside it, data/, and every file a command names."""
    from bigroc.generators import build_generator
    from bigroc.generators.vae import save_vae
    from bigroc.models import build_classifier, save_classifier, save_madry_checkpoint

    top = tmp_path_factory.mktemp("readme")
    (top / "shared").symlink_to(ROOT.parent / "shared")
    (top / "bare").mkdir()
    work = top / "work"
    work.mkdir()
    (work / "data").symlink_to(cifar_root)
    with np.load(external_samples / "gc_sngan_res.npz") as f:
        images = f["arr_0"][:16]
    np.savez(work / "samples.npz", images)
    np.savez(work / "FILE.npz", images)
    for name, image in (("a.png", images[0]), ("b.png", images[1])):
        Image.fromarray(image).save(work / name)
    (work / "pngs").mkdir()
    for i, image in enumerate(images[:8]):
        Image.fromarray(image).save(work / "pngs" / f"{i:03d}.png")
    (work / "labels.txt").write_text("".join(f"{i % 10}\n" for i in range(8)))
    torch.manual_seed(0)
    for family, name in (("sngan", "netG_100000.pth"), ("cgan_pd", "netG.pth")):
        net = build_generator(family, random_init=True)
        torch.save({"model_state_dict": net.state_dict(), "optimizer_state_dict": {}, "global_step": 100000},
                   work / name)
    save_vae(build_generator("vae", random_init=True).vae, work / "vae.safetensors")
    save_madry_checkpoint(build_classifier("resnet18", width=0.25), work / "cifar_l2_0_5.pt", epoch=1)
    save_classifier(build_classifier("resnet18", width=0.25), work / "standard.safetensors",
                    meta={"dataset": "untrained, for a test"})
    save_zoo_models(work)
    return work


def save_zoo_models(work: Path) -> None:
    """What the zoo commands name, with random weights: a RobustBench file in RobustBench's
    layout under models/, and a tiny DDPM pipeline saved as ddpm-cifar10-32/."""
    import diffusers

    from bigroc.models.robustbench import CIFAR10_L2, build_network, weights_path

    path = weights_path(work / "models", "cifar10", "L2", "Rice2020Overfitting")
    path.parent.mkdir(parents=True)
    torch.save(build_network(CIFAR10_L2["Rice2020Overfitting"]).state_dict(), path)
    unet = diffusers.UNet2DModel(sample_size=32, layers_per_block=1, block_out_channels=(8, 16), norm_num_groups=4,
                                 down_block_types=("DownBlock2D", "DownBlock2D"),
                                 up_block_types=("UpBlock2D", "UpBlock2D"))
    diffusers.DDPMPipeline(unet, diffusers.DDPMScheduler()).save_pretrained(work / "ddpm-cifar10-32")


# Not events of the run: warnings (Python's format, or Lightning's ``file.py:12: message``), tips, a bar
# called "Testing" or drawn into a file, the accelerators Lightning found, its model summary table.
NOT_EVENTS = re.compile(r"Warning\b|\.py:\d+: |Tip:|Testing|\N{BOX DRAWINGS HEAVY HORIZONTAL}|"
                        r"[GTH]PU available|LOCAL_RANK: |CUDA_VISIBLE_DEVICES|Trainable params|Total params|"
                        r"\bName\b.*\bType\b.*\bParams\b")


def assert_one_line_per_event(console: str, once: bool) -> None:
    """What a user reads: one line per event (:data:`NOT_EVENTS` none of them), no doubled
    log lines (``once``: one job)."""
    lines = [line.strip() for line in console.splitlines()
             if line.strip() and not line.startswith("wandb:")]   # W&B's own summary block
    assert not [line for line in lines if NOT_EVENTS.search(line)], console[-3000:]
    repeated = {line for line in lines if lines.count(line) > 1}
    assert not (once and repeated), repeated


def jobs(words: list[str]) -> int:
    """Jobs of a Hydra command: the product of the swept lists under ``-m``."""
    if "-m" not in words:
        return 1
    return math.prod(len(w.split("=", 1)[1].split(",")) for w in words if swept(w))


def products(folder: Path, name: str, since: float) -> list[Path]:
    return [p for p in folder.rglob(name) if p.stat().st_mtime >= since]


@pytest.mark.parametrize("command", selected(Shrunk))
def test_readme_command_runs(command, workspace, score_cache):
    check = CHECKS[command]
    cwd = workspace if check.cwd == "work" else workspace.parent / check.cwd
    words = check.args(command)
    assert words[0] == "python"
    script = words[1] if (cwd / words[1]).exists() else str(ROOT / words[1])
    env = os.environ | {"WANDB_MODE": "offline", "WANDB_SILENT": "true", "BIGROC_CACHE": str(score_cache)}
    start = time.time() - 1
    done = subprocess.run([sys.executable, script, *words[2:]], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, f"{' '.join(words)}\n{done.stdout[-1500:]}\n{done.stderr[-3000:]}"
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    if "--cfg" in words:
        assert "generator:" in done.stdout, done.stdout
        return
    product = PRODUCTS.get(Path(words[1]).name)
    if product:
        assert_one_line_per_event(done.stdout + done.stderr, once=jobs(words) == 1 and "seeds=" not in command)
        made = products(cwd / "outputs", product, start)
        assert len(made) == jobs(words), (product, made, done.stdout[-1500:])
        if Path(words[1]).name == "run_boost.py":
            metrics = [json.loads(p.read_text()) for p in made]
            assert all(np.isfinite(m["boosted/fid"]) and m["boosted/target_prob"] > 0 for m in metrics), metrics
    if "make_cifar10.py" in command:
        assert (cwd / "data" / "cifar-10-batches-py" / "test_batch").exists()
        shutil.rmtree(cwd / "data")
