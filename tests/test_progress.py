"""Progress lines a log file can show: the rule (30 s or 10% since the last line, plus a final
line) on a fake clock, and an entry whose piped output shows progress while it runs."""

from __future__ import annotations

import re
import subprocess
import time

import pytest

from bigroc.progress import Progress, clock_text
from cli import BOOST_FAST, entry


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def stage(total: int | None, **kw) -> tuple[Progress, FakeClock, list[str]]:
    clock, lines = FakeClock(), []
    return Progress("reference statistics", total, clock=clock, write=lines.append, **kw).start(), clock, lines


def test_a_line_every_tenth_of_the_stage_and_a_final_one():
    p, clock, lines = stage(1000)
    for _ in range(1000):
        clock.now += 0.01        # 10 s in all: never 30 s between lines
        p.update(1)
    p.close()
    assert len(lines) == 10      # 100, 200, ..., 1000; close adds nothing new
    assert lines[0] == "reference statistics: 100/1000 images (10%), 100 images/s, elapsed 0:01, left 0:09"
    assert lines[-1].startswith("reference statistics: 1000/1000 images (100%)")


def test_a_line_every_30_s_when_the_stage_is_slow():
    p, clock, lines = stage(10_000)
    for _ in range(100):         # 1% each 10 s
        clock.now += 10
        p.update(100)
    assert len(lines) == 33      # every 30 s (every 3rd update) and every 10%: never further apart
    assert lines[0] == "reference statistics: 300/10000 images (3%), 10 images/s, elapsed 0:30, left 16:10"


def test_close_gives_the_final_count_once():
    p, clock, lines = stage(1000)
    clock.now = 5
    p.update(50)
    assert lines == []
    clock.now = 7
    p.close()
    assert lines == ["reference statistics: 50/1000 images (5%), 7.14 images/s, elapsed 0:07, left 2:13"]
    p.close()
    assert len(lines) == 1


def test_batches_report_images_per_second_and_unknown_totals_no_time_left():
    clock, lines = FakeClock(), []
    p = Progress("training epoch 1/3", None, unit="batches", clock=clock, write=lines.append).start()
    clock.now = 40
    p.update(1, images=128)
    assert lines == ["training epoch 1/3: 1 batches, 3.2 images/s, elapsed 0:40"]
    runs, clock, lines = stage(27, unit="runs")
    clock.now = 250
    runs.update(5)
    assert lines == ["reference statistics: 5/27 runs (19%), 50 s/run, elapsed 4:10, left 18:20"]


@pytest.mark.parametrize("seconds, text", [(0, "0:00"), (59.6, "1:00"), (3599, "59:59"), (3723, "1:02:03")])
def test_clock_text(seconds, text):
    assert clock_text(seconds) == text


LINE = re.compile(r"^(boosting and scoring|calibrat\w+ .*|reference statistics .*): \d+/\d+ \w+ \(\d+%\), "
                  r".* elapsed \d+:\d\d")


def test_piped_run_boost_shows_progress_while_it_runs(external_samples, cifar_root, tmp_path):
    """Output to a pipe (as under Slurm or nohup): progress lines arrive before the process ends."""
    args = ["generator=samples", f"generator.path={external_samples / 'gc_sngan_res.npz'}", "labels=predicted",
            "classifier.checkpoint=shipped:classifier_cifar10_l2", f"data.root={cifar_root}", "logger=none",
            *[a for a in BOOST_FAST if not a.startswith(("trainer.enable_progress_bar", "batch_size", "num_samples"))],
            "num_samples=24", "batch_size=4", f"hydra.run.dir={tmp_path / 'run'}"]
    proc = entry("run_boost.py", args, tmp_path, env={"BIGROC_CACHE": str(tmp_path / "cache")},
                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
    seen, while_running = [], []
    deadline = time.monotonic() + 600
    for line in proc.stdout:
        seen.append(line.rstrip())
        if LINE.match(line) and proc.poll() is None:
            while_running.append(line.rstrip())
        assert time.monotonic() < deadline, seen
    assert proc.wait(timeout=60) == 0, "\n".join(seen[-30:])
    stages = {line.split(":")[0].split(" (")[0] for line in while_running}
    assert {"reference statistics", "boosting and scoring"} <= stages, "\n".join(seen)
    assert any(line.startswith("calibrat") for line in seen), "\n".join(seen)
    assert not any("━" in line or "GPU available" in line for line in seen), "\n".join(seen)
    assert any(line.startswith("FID") for line in seen), "\n".join(seen)   # the table at the end


def test_external_results_counts_its_runs(tmp_path, monkeypatch):
    """benchmarks/external_results.py's loop over runs gives progress lines (runs faked)."""
    import math
    from pathlib import Path

    import bigroc.progress

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import external_results as ext

    def fake_run(cmd, cwd, check):
        """A multirun: one metrics.json per (path, swept value)."""
        args = dict(a.split("=", 1) for a in cmd if "=" in a)
        paths = args["generator.path"].split(",")
        jobs = math.prod(len(v.split(",")) for k, v in args.items() if k != "generator.path")
        for i, (path, _) in enumerate((p, j) for p in paths for j in range(jobs)):
            (Path(args["hydra.sweep.dir"]) / str(i)).mkdir(parents=True)
            (Path(args["hydra.sweep.dir"]) / str(i) / "metrics.json").write_text(
                f'{{"eps": {ext.MAIN_EPS}, "generator_checkpoint": "{path}"}}')

    lines = []
    monkeypatch.setattr(ext.subprocess, "run", fake_run)
    monkeypatch.setattr(ext, "linf_matched_eps", lambda run_dir: 0.01)
    monkeypatch.setattr(bigroc.progress, "print_line", lines.append)
    paths = {g.name: tmp_path / f"{g.name}.npz" for g in ext.GROUPS}
    ext.run_all(list(ext.GROUPS), paths, tmp_path / "out", [], quick=True)
    groups, unconditional = len(ext.GROUPS), sum(not g.conditional for g in ext.GROUPS)
    total = 5 * groups + 2 * unconditional  # eps, confident, steps7, small, linf; debias x2
    assert len(lines) == 6 and all(line.startswith("external results: ") for line in lines), lines  # a line a variant
    assert lines[-1].startswith(f"external results: {total}/{total} runs (100%)"), lines


def test_external_results_runs_only_the_variants_named(tmp_path, monkeypatch):
    """The README's grid command (--only eps,confident,eps_more): those multiruns and no other,
    each with its settings as the outermost loop (before the sample files)."""
    from pathlib import Path

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import external_results as ext

    commands = []

    def fake_run(cmd, cwd, check):
        commands.append(cmd)
        args = dict(a.split("=", 1) for a in cmd if "=" in a)
        sweep = Path(args["hydra.sweep.dir"])
        for i in range(ext._jobs_per_path([a for a in cmd if a.startswith(("epsilon=", "attack."))]) * len(ext.GROUPS)):
            (sweep / str(i)).mkdir(parents=True)
            (sweep / str(i) / "metrics.json").write_text("{}")

    monkeypatch.setattr(ext.subprocess, "run", fake_run)
    paths = {g.name: tmp_path / f"{g.name}.npz" for g in ext.GROUPS}
    ext.run_all(list(ext.GROUPS), paths, tmp_path / "out", [], quick=False, only=("eps", "confident", "eps_more"))
    assert [Path(dict(a.split("=", 1) for a in c if "=" in a)["hydra.sweep.dir"]).name for c in commands] == [
        "eps", "confident", "eps_more"]
    first = [c[c.index("-m") + 1] for c in commands]
    assert first == ["epsilon=1,2", "epsilon=2,4,1", "epsilon=4,0.5,0.25,3,0.1"]
    assert "attack.stop_at=0.8,0.95" in commands[1]
    ext.run_all(list(ext.GROUPS), paths, tmp_path / "out", [], quick=False, only=("eps", "confident", "eps_more"))
    assert len(commands) == 3  # every run finished: a second call runs nothing
