"""examples/train_ant_expert.py: TorchRL SAC on online-ant-v0 + GymXYWrapper, at toy sizes."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("ogbench")

SCRIPT = Path(__file__).resolve().parents[1] / "examples" / "train_ant_expert.py"
TINY = ["--random-steps", "100", "--frames-per-batch", "50", "--batch-size", "16", "--hidden", "16", "16",
        "--eval-every", "100", "--eval-episodes", "2", "--eval-steps", "20", "--ckpt-every", "100",
        "--buffer-size", "1000", "--threads", "1", "--no-progress"]  # fmt: skip


def run(*args, check=True):
    out = subprocess.run([sys.executable, str(SCRIPT), *TINY, *args], capture_output=True, text=True, timeout=300)
    if check:
        assert out.returncode == 0, out.stderr[-2000:]
    return out


def test_trains_writes_expert_and_resumes(tmp_path):
    import torch

    from torchrl_skills.modules.direction_expert import load_direction_expert

    run("--steps", "200", "--out-dir", str(tmp_path))
    for name in ("checkpoint.pt", "expert.pt", "learning_curve.png", "metrics.json"):
        assert (tmp_path / name).is_file(), name
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["env_steps"] == 200 and metrics["updates"] == 100  # one update per step after the random ones
    expert = load_direction_expert(tmp_path / "expert.pt")
    assert expert.settings["env"] == "online-ant-v0" and expert.settings["steps"] == 200
    assert expert(torch.zeros(3, 27).numpy(), torch.ones(3, 2).numpy()).shape == (3, 8)

    # --resume continues from the checkpoint's step, with the replay buffer it had
    out = run("--steps", "300", "--out-dir", str(tmp_path), "--resume")
    assert "resumed from" in out.stdout and "at env step 200" in out.stdout
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=False)
    assert state["frames"] == 300 and state["updates"] == 200 and len(state["history"]["eval_step"]) == 3


def test_bad_input_is_one_line(tmp_path):
    out = run("--out-dir", str(tmp_path / "none"), "--resume", check=False)
    assert out.returncode != 0 and "Traceback" not in out.stderr and "no checkpoint" in out.stderr


def test_sigterm_checkpoints_at_the_step_reached_and_says_how_to_continue(tmp_path):
    import re
    import signal
    import time

    import torch

    proc = subprocess.Popen(
        [sys.executable, str(SCRIPT), *TINY, "--steps", "100000", "--ckpt-every", "100000", "--out-dir", str(tmp_path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.time() + 120
    # the CSV logger writes the first training episode's return once the run is under way
    while not list(tmp_path.rglob("episode_return.csv")) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 143, stderr[-2000:]
    assert "Traceback" not in stderr
    match = re.search(r"stopped at env step (\d+); checkpoint (\S+); continue with python \S*train_ant_expert.py .*--ckpt-every 100000 .*--resume$", stderr.strip())
    assert match, stderr[-2000:]
    state = torch.load(match.group(2), weights_only=False)
    assert state["frames"] == int(match.group(1)) > 0  # the checkpoint holds the step reached, not an older one


@pytest.mark.parametrize(
    "args, message",
    [(["--seq-len", "0"], "--seq-len"), (["--candidates", "50", "--elites", "60"], "--elites (60) must be <= --candidates")],
)
def test_antmaze_example_bad_options_are_one_line(args, message):
    script = SCRIPT.parent / "ogbench_antmaze.py"
    out = subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "Traceback" not in out.stderr and message in out.stderr, out.stderr
