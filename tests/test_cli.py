"""Every script stops cleanly and speaks clearly (issue 11).

* the shared helpers of ``torchrl_skills.utils`` (signals, one-line errors, help, output folders,
  CSV logs, checkpoint format and damage), in process;
* SIGINT / SIGTERM sent to real script processes mid-run: exit status, the one-line message, a
  checkpoint at the step reached, and a resume that matches an uninterrupted run with no
  duplicate log rows (one representative per script family: they share the helpers);
* every known error of every script: one line ``error: ...``, status 2, no traceback, no folder
  left behind.
"""
from __future__ import annotations

import csv
import importlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from torchrl_skills.utils import (
    CHECKPOINT_FORMAT_VERSION,
    ArgumentParser,
    CheckpointError,
    GracefulStop,
    Interrupted,
    OutputDir,
    RunStopped,
    UserError,
    check_finite_loss,
    load_checkpoint,
    load_module_state,
    load_training_state,
    positive_int,
    run_cli,
    save_checkpoint,
    training_state,
    truncate_csv_logs,
)

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
TINY_TRAIN = ["--z-dim", "8", "--hidden-dim", "16", "--batch-size", "8", "--seq-len", "10", "--num-threads", "1"]


# ----------------------------------------------------------------------------- helpers in process


def test_graceful_stop_sets_a_flag_then_aborts_on_a_second_signal():
    before = signal.getsignal(signal.SIGTERM)
    with GracefulStop() as stop:
        assert not stop
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop and stop.signum == signal.SIGTERM
        with pytest.raises(Interrupted) as err:
            os.kill(os.getpid(), signal.SIGINT)  # asked twice: stop at once
        assert err.value.exit_code == 130
        stopped = stop.stopped("step 7", "run/checkpoint.pt", "a note")
    assert signal.getsignal(signal.SIGTERM) is before  # handlers restored
    assert stopped.exit_code == 143
    assert stopped.message("python x.py --resume") == (
        "stopped at step 7; checkpoint run/checkpoint.pt; a note; continue with python x.py --resume"
    )


def _run_cli(main, argv, capsys, **kwargs):
    with pytest.raises(SystemExit) as exit:
        run_cli(main, argv, **kwargs)
    return exit.value.code, capsys.readouterr()


def test_run_cli_outcomes(capsys):
    def fails(argv):
        raise UserError("the problem\nand the fix")

    status, out = _run_cli(fails, [], capsys)
    assert status == 2 and out.err == "error: the problem and the fix\n"
    status, out = _run_cli(fails, ["--debug"], capsys)
    assert status == 2 and "Traceback" in out.err and out.err.endswith("error: the problem and the fix\n")
    status, out = _run_cli(lambda argv: {}["no such key"], [], capsys)  # KeyError: the argument, unquoted
    assert status == 2 and out.err == "error: no such key\n"

    def stops(argv):
        raise RunStopped(signal.SIGINT, "step 3", "ckpt.pt")

    status, out = _run_cli(stops, ["--steps", "9"], capsys, resume_flag="--resume")
    assert status == 130 and out.err.startswith("stopped at step 3; checkpoint ckpt.pt; continue with python ")
    assert out.err.rstrip().endswith("--steps 9 --resume")

    def interrupted(argv):
        raise Interrupted(signal.SIGTERM)

    status, out = _run_cli(interrupted, [], capsys, interrupted="nothing was written")
    assert status == 143 and out.err == "stopped by SIGTERM; nothing was written\n"
    assert _run_cli(lambda argv: None, [], capsys)[0] == 0
    with pytest.raises(ZeroDivisionError):  # a bug keeps its traceback
        run_cli(lambda argv: 1 / 0, [])


def test_argument_parser_shows_defaults_and_errors_in_one_line(capsys):
    p = ArgumentParser(prog="x.py", description="Does x.\n\n    x.py --steps 5   # an example\n")
    p.add_argument("--steps", type=positive_int, default=3000, help="gradient steps")
    help_text = p.format_help()
    assert "gradient steps (default: 3000)" in help_text and "\n    x.py --steps 5   # an example\n" in help_text
    assert "--debug" in help_text
    with pytest.raises(SystemExit) as exit:
        p.parse_args(["--steps", "0"])
    assert exit.value.code == 2
    assert capsys.readouterr().err == "error: argument --steps: expected an integer >= 1, got 0 (see x.py --help)\n"


def test_output_dir_removes_what_a_failed_start_created(tmp_path):
    with pytest.raises(ValueError):
        with OutputDir(tmp_path / "a" / "b"):
            (tmp_path / "a" / "b" / "logs" / "scalars").mkdir(parents=True)  # as a logger would
            raise ValueError("bad option")
    assert not (tmp_path / "a").exists()
    # a run that wrote something keeps it; a folder that existed before is never removed
    (tmp_path / "old").mkdir()
    with pytest.raises(KeyboardInterrupt):
        with OutputDir(tmp_path / "old" / "run") as out:
            (out / "checkpoint.pt").write_bytes(b"x")
            (out / "empty").mkdir()
            raise KeyboardInterrupt
    assert (tmp_path / "old" / "run" / "checkpoint.pt").exists() and not (tmp_path / "old" / "run" / "empty").exists()
    with pytest.raises(ValueError), OutputDir(tmp_path / "old"):
        raise ValueError
    assert (tmp_path / "old").is_dir()


def test_output_dir_clear_replaces_only_owned_outputs(tmp_path):
    for name in ("results.json", "planner_failures.png", "notes.txt", "logs/scalars/loss.csv"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("old")
    with OutputDir(tmp_path, owned=["results.json", "*.png", "logs"]) as out:
        assert sorted(p.name for p in out.clear()) == ["logs", "planner_failures.png", "results.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_truncate_csv_logs_of_torchrl_csv_logger(tmp_path):
    from torchrl.record.loggers import CSVLogger

    logger = CSVLogger("exp", log_dir=str(tmp_path))
    for step in range(1, 6):
        logger.log_scalar("train/loss", 0.5 * step, step=step)
        logger.log_scalar("valid", 1.0, step=step)
    loss_csv = tmp_path / "exp" / "scalars" / "train" / "loss.csv"
    with open(loss_csv, "a") as f:
        f.write("6,0.")  # a row cut by a kill in mid-write
    assert truncate_csv_logs(tmp_path / "exp", step=3) == 3 + 2
    assert loss_csv.read_text() == "1,0.5\n2,1.0\n3,1.5\n"
    assert truncate_csv_logs(tmp_path / "exp", step=3) == 0
    assert truncate_csv_logs(tmp_path / "missing", step=3) == 0


def test_resume_logger_drops_what_a_stopped_run_logged_after_its_checkpoint(tmp_path):
    from torchrl.record.loggers import CSVLogger

    from torchrl_skills.utils import resume_logger

    def scalars(logger):
        return (tmp_path / "csv" / "exp" / "scalars" / "loss.csv").read_text().splitlines()

    csv = CSVLogger("exp", log_dir=str(tmp_path / "csv"))
    for step in (1, 2, 3):  # stopped at step 3, checkpoint at 2
        csv.log_scalar("loss", float(step), step=step)
    resumed = CSVLogger("exp", log_dir=str(tmp_path / "csv"))
    resume_logger(resumed, 2)
    resumed.log_scalar("loss", 30.0, step=3)
    assert scalars(resumed) == ["1,1.0", "2,2.0", "3,30.0"]
    resume_logger(None, 2)  # no logger: nothing to do


def test_resume_logger_purges_tensorboard_events_after_the_checkpoint(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from torchrl.record.loggers import TensorboardLogger

    from torchrl_skills.utils import resume_logger

    stopped = TensorboardLogger("exp", log_dir=str(tmp_path))
    for step in (1, 2, 3):
        stopped.log_scalar("loss", float(step), step=step)
    stopped.experiment.close()
    resumed = TensorboardLogger("exp", log_dir=str(tmp_path))
    resume_logger(resumed, 2)
    resumed.log_scalar("loss", 30.0, step=3)
    resumed.experiment.close()
    events = EventAccumulator(str(tmp_path / "exp"))
    events.Reload()
    assert [(e.step, e.value) for e in events.Scalars("loss")] == [(1, 1.0), (2, 2.0), (3, 30.0)]


def test_checkpoint_format_version_and_damaged_files(tmp_path):
    path = save_checkpoint({"step": 3}, tmp_path / "ckpt.pt")
    assert load_checkpoint(path) == {"step": 3, "checkpoint_format_version": CHECKPOINT_FORMAT_VERSION}
    save_checkpoint({"format_version": 7}, tmp_path / "own.pt")  # a caller's own key is left alone
    assert load_checkpoint(tmp_path / "own.pt")["format_version"] == 7
    torch.save({"step": 3}, tmp_path / "old.pt")  # written before versions were stored: still readable
    assert load_checkpoint(tmp_path / "old.pt")["step"] == 3

    torch.save({"step": 3, "checkpoint_format_version": CHECKPOINT_FORMAT_VERSION + 1}, tmp_path / "newer.pt")
    with pytest.raises(CheckpointError, match=r"newer.pt has checkpoint format version .* upgrade"):
        load_checkpoint(tmp_path / "newer.pt")
    (tmp_path / "cut.pt").write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CheckpointError, match=r"cut.pt is truncated or corrupt") as err:
        load_checkpoint(tmp_path / "cut.pt")
    assert isinstance(err.value, ValueError) and isinstance(err.value, UserError)
    torch.save([1, 2], tmp_path / "list.pt")
    with pytest.raises(CheckpointError, match="holds a list"):
        load_checkpoint(tmp_path / "list.pt")
    with pytest.raises(FileNotFoundError, match="No checkpoint at"):
        load_checkpoint(tmp_path / "none.pt")


def test_load_module_state_refuses_other_networks_that_tensordict_would_accept():
    from tensordict import TensorDict
    from tensordict.nn import TensorDictParams

    class Loss(torch.nn.Module):  # holds its network's parameters as TorchRL's losses do
        def __init__(self, net):
            super().__init__()
            self.actor_params = TensorDictParams(TensorDict.from_module(net))

    built = Loss(torch.nn.Sequential(torch.nn.Sequential(torch.nn.Linear(2, 3))))
    other_code = {"actor_params.0.mlp.weight": torch.ones(3, 2), "actor_params.0.mlp.bias": torch.ones(3)}
    before = built.actor_params["0", "0", "weight"].clone()
    built.load_state_dict(other_code)  # the tensordict bug worked around: no error, nothing loaded
    assert torch.equal(built.actor_params["0", "0", "weight"], before)
    with pytest.raises(CheckpointError, match=r"actor does not match .*missing \['actor_params.0.0.bias'"):
        load_module_state(built, other_code, "actor")
    with pytest.raises(CheckpointError, match="other shapes"):
        load_module_state(built, {"actor_params.0.0.weight": torch.ones(4, 2), "actor_params.0.0.bias": torch.ones(3)})
    same = {"actor_params.0.0.weight": torch.ones(3, 2), "actor_params.0.0.bias": torch.zeros(3)}
    load_module_state(built, same, "actor")
    assert torch.equal(built.actor_params["0", "0", "weight"], torch.ones(3, 2))


def test_training_state_round_trip_and_refusals(tmp_path):
    from tensordict import TensorDict
    from torchrl.data import LazyTensorStorage, TensorDictReplayBuffer

    def build(width=3):
        net = torch.nn.Linear(2, width)
        rb = TensorDictReplayBuffer(storage=LazyTensorStorage(100), batch_size=2)
        return {"net": net, "optim": torch.optim.Adam(net.parameters(), lr=0.1), "rb": rb}

    parts = build()
    parts["rb"].extend(TensorDict({"x": torch.arange(7.0)}, [7]))
    parts["net"](torch.ones(1, 2)).sum().backward()
    parts["optim"].step()
    save_checkpoint(training_state(parts), tmp_path / "ck.pt")
    saved = load_checkpoint(tmp_path / "ck.pt")
    assert saved["rb"]["rows"]["x"].shape == (7,)  # only the filled rows of the 100-row storage
    restored = build()
    load_training_state(restored, saved)
    assert torch.equal(restored["net"].weight, parts["net"].weight)
    assert restored["optim"].state_dict()["state"][0]["step"] == 1
    assert len(restored["rb"]) == 7 and restored["rb"].storage[6]["x"].item() == 6.0
    with pytest.raises(CheckpointError, match=r"holds no \['high_loss'\]"):
        load_training_state({**build(), "high_loss": torch.nn.Linear(1, 1)}, saved)
    with pytest.raises(CheckpointError, match="net does not match"):
        load_training_state(build(width=4), saved)
    wider = build()
    wider["optim"].add_param_group({"params": [torch.nn.Parameter(torch.zeros(1))]})
    with pytest.raises(CheckpointError, match="optim does not match"):  # torch's ValueError, as one line
        load_training_state(wider, saved)


def test_replay_rows_oldest_first_rebuild_the_fifo_history_in_any_capacity():
    from tensordict import TensorDict
    from torchrl.data import LazyTensorStorage, TensorDictReplayBuffer

    from torchrl_skills.utils import replay_rows_oldest_first

    def buffer(capacity):
        return TensorDictReplayBuffer(storage=LazyTensorStorage(capacity), batch_size=2)

    assert replay_rows_oldest_first(buffer(4)) is None
    for written in (3, 5, 12, 13):  # not full, just full, wrapped to its start, wrapped past it
        rb = buffer(5)
        rb.extend(TensorDict({"x": torch.arange(written)}, [written]))
        rows = replay_rows_oldest_first(rb)
        assert rows["x"].tolist() == list(range(max(0, written - 5), written))
        # what train_ant_expert.py does on --resume with another --steps: a storage of another size
        for capacity in (3, 8):
            new = buffer(capacity)
            new.extend(rows)
            new.extend(TensorDict({"x": torch.tensor([100])}, [1]))  # the next write overwrites the oldest
            kept = list(range(max(0, written - 5), written)) + [100]
            assert sorted(new[:]["x"].tolist()) == sorted(kept[-capacity:])


_SAVER = """
import sys, torch
from torchrl_skills.utils import save_checkpoint
big = torch.randn(4_000_000)
for k in range(1_000_000):
    save_checkpoint({"step": k, "big": big}, sys.argv[1])
    print(k, flush=True)
"""


def test_kill_9_during_checkpoint_writes_leaves_the_previous_one_loadable(tmp_path):
    path = tmp_path / "ckpt.pt"
    proc = subprocess.Popen([sys.executable, "-c", _SAVER, str(path)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline() and proc.stdout.readline()  # two saves done, the next one is under way
    time.sleep(0.05)
    proc.kill()
    proc.wait()
    proc.stdout.close()
    assert load_checkpoint(path)["big"].shape == (4_000_000,)
    save_checkpoint({"step": 0}, path)  # the next save removes what the killed ones left
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"]


def test_check_finite_loss_names_the_step_and_the_terms(tmp_path):
    ckpt = save_checkpoint({}, tmp_path / "c.pt")
    check_finite_loss(torch.tensor(2.0), 5)
    with pytest.raises(FloatingPointError, match=r"step 5: \{'loss_qvalue': inf\}.*c.pt\) was kept. Try") as err:
        check_finite_loss(torch.tensor(float("inf")), 5, {"loss_qvalue": torch.tensor(float("inf"))}, ckpt, "Try x.")
    assert isinstance(err.value, UserError)


# ----------------------------------------------------------------------------- signals, real processes


def _launch(script, *args, tmp_path):
    """A script in its own process; stdout / stderr go to files (as in a batch job)."""
    stdout, stderr = open(tmp_path / "stdout.txt", "w"), open(tmp_path / "stderr.txt", "w")
    cmd = [sys.executable, *(["-m", script] if "." in script and not script.endswith(".py") else [str(EXAMPLES / script)])]
    proc = subprocess.Popen([*cmd, *args], stdout=stdout, stderr=stderr, cwd=ROOT)
    proc.outputs = (stdout, stderr)
    return proc


def _wait_for(proc, ready, timeout=180):
    start = time.time()
    while not ready():
        if proc.poll() is not None:
            pytest.fail(f"exited early ({proc.returncode}): {Path(proc.outputs[1].name).read_text()[-3000:]}")
        if time.time() - start > timeout:
            proc.kill()
            pytest.fail("timed out waiting for the run to start")
        time.sleep(0.1)


def _stop(proc, signum):
    proc.send_signal(signum)
    proc.wait(timeout=120)
    for f in proc.outputs:
        f.close()
    stdout, stderr = (Path(f.name).read_text() for f in proc.outputs)
    assert "Traceback" not in stderr, stderr[-3000:]
    assert "\x1b[" not in stdout and "AdroitHand" not in stderr  # no colour codes in files, no third-party notice
    return proc.returncode, stderr.strip().splitlines()[-1]


def _rows(path):
    with open(path) as f:
        return [(int(step), float(value)) for step, value in csv.reader(f)]


@pytest.mark.slow  # ~20 s on 2 cores: a real process, then two short trainings
def test_train_skill_model_stops_on_sigint_and_resumes_exactly(tiny_dataset, tmp_path):
    from train_skill_model import main as train_main

    signum = signal.SIGINT  # Ctrl-C; SIGTERM goes through the same GracefulStop (tested on HIGL below)
    out = tmp_path / "run"
    loss_csv = out / "skill_model" / "scalars" / "train" / "loss.csv"
    flags = ["--dataset", tiny_dataset, *TINY_TRAIN, "--log-every", "1", "--valid-every", "10000", "--no-progress"]
    proc = _launch("train_skill_model.py", *flags, "--steps", "100000", "--out-dir", str(out), tmp_path=tmp_path)
    _wait_for(proc, lambda: loss_csv.is_file() and len(loss_csv.read_text().splitlines()) >= 3)
    status, message = _stop(proc, signum)
    assert status == 128 + signum
    step = torch.load(out / "checkpoint.pt", weights_only=False)["step"]
    assert message.startswith(f"stopped at step {step}; checkpoint {out / 'checkpoint.pt'}; continue with python ")
    assert message.endswith(f"--out-dir {out} --resume") and (out / "losses.png").is_file()
    assert [s for s, _ in _rows(loss_csv)] == list(range(1, step + 1))  # logged up to the checkpoint, no further

    # resumed to step + 5, and the same run without interruption
    train_main([*flags, "--steps", str(step + 5), "--out-dir", str(out), "--resume"])
    train_main([*flags, "--steps", str(step + 5), "--out-dir", str(tmp_path / "straight")])
    resumed = torch.load(out / "checkpoint.pt", weights_only=False)["history"]
    straight = torch.load(tmp_path / "straight" / "checkpoint.pt", weights_only=False)["history"]
    assert resumed["step"] == straight["step"] == list(range(1, step + 6))
    assert resumed["loss"] == straight["loss"] and resumed["valid_loss"] == straight["valid_loss"]
    for name in ("train/loss.csv", "train/kl.csv", "valid/loss.csv"):  # no duplicate rows, same values
        assert _rows(out / "skill_model" / "scalars" / name) == _rows(tmp_path / "straight" / "skill_model" / "scalars" / name)


@pytest.mark.slow  # ~20 s on 2 cores: a real process, then a short resumed run
def test_higl_stops_on_sigterm_and_resumes_without_duplicate_rows(tmp_path):
    pytest.importorskip("gymnasium_robotics")
    higl = importlib.import_module("higl_pointmaze")
    out = tmp_path / "run"
    flags = [
        "--warmup-steps", "60", "--eval-every", "100", "--eval-episodes", "1", "--max-episode-steps", "40",
        "--batch-size", "8", "--seq-len", "4", "--d-model", "16", "--latent-dim", "8", "--frames-per-batch", "50",
        "--num-envs", "2", "--seeds", "0", "--algos", "sac", "--out-dir", str(out), "--no-progress",
    ]  # fmt: skip
    q_csv = out / "logs" / "sac_seed0" / "scalars" / "loss_qvalue.csv"
    proc = _launch("higl_pointmaze.py", *flags, "--total-steps", "100000", tmp_path=tmp_path)
    _wait_for(proc, lambda: q_csv.is_file() and len(q_csv.read_text().splitlines()) >= 2)
    status, message = _stop(proc, signal.SIGTERM)
    assert status == 143
    steps = torch.load(out / "ckpt_sac_seed0.pt", weights_only=False)["state"]["steps"]
    assert message.startswith(f"stopped at env step {steps} of sac seed 0; checkpoint {out / 'ckpt_sac_seed0.pt'}")
    assert message.endswith("--resume")
    assert json.loads((out / "results.json").read_text())["runs"][0]["steps"] == steps
    assert (out / "learning_curves.png").is_file() and _rows(q_csv)[-1][0] == steps

    results = higl.main([*flags, "--total-steps", str(steps + 100), "--resume"])
    assert results["runs"][0]["steps"] >= steps + 100
    logged = [s for s, _ in _rows(q_csv)]
    assert logged == sorted(set(logged)) and logged[-1] >= steps + 100  # continued, no row twice


@pytest.mark.slow  # ~25 s on 2 cores: a real process with two cars side by side, then a short resumed run
def test_higl_carracing_stops_on_sigint_and_resumes_without_duplicate_rows(tmp_path):
    pytest.importorskip("Box2D")
    carracing = importlib.import_module("higl_carracing")
    out = tmp_path / "run"
    flags = [
        "--warmup-steps", "20", "--eval-every", "100000", "--eval-episodes", "1", "--max-episode-steps", "30",
        "--batch-size", "4", "--seq-len", "2", "--d-model", "16", "--latent-dim", "8", "--num-envs", "2",
        "--frames-per-batch", "20", "--k", "4", "--grayscale", "--num-threads", "1", "--out-dir", str(out), "--no-progress",
    ]  # fmt: skip
    q_csv = out / "logs" / "higl_carracing_seed0" / "scalars" / "loss_qvalue.csv"
    proc = _launch("higl_carracing.py", *flags, "--total-steps", "100000", tmp_path=tmp_path)
    _wait_for(proc, lambda: q_csv.is_file() and len(q_csv.read_text().splitlines()) >= 2)
    status, message = _stop(proc, signal.SIGINT)
    assert status == 130
    steps = torch.load(out / "checkpoint.pt", weights_only=False)["state"]["steps"]
    assert message.startswith(f"stopped at env step {steps}; checkpoint {out / 'checkpoint.pt'}")
    assert message.endswith("--resume")
    assert json.loads((out / "results.json").read_text())["steps"] == steps and _rows(q_csv)[-1][0] == steps

    results = carracing.main([*flags, "--total-steps", str(steps + 40), "--resume"])
    assert results["steps"] == steps + 40 and (out / "learning_curve.png").is_file()
    logged = [s for s, _ in _rows(q_csv)]
    assert logged == sorted(set(logged)) and logged[-1] == steps + 40  # continued, no row twice


def test_plan_to_goals_stopped_in_training_continues_with_the_same_command(tiny_dataset, tmp_path, capsys, monkeypatch):
    import plan_to_goals
    import train_skill_model

    def stopped_training(argv):  # what train_skill_model.main raises when a signal stops it at step 7
        raise RunStopped(signal.SIGINT, "step 7", tmp_path / "skill_model" / "checkpoint.pt")

    monkeypatch.setattr(train_skill_model, "main", stopped_training)
    argv = ["--dataset", tiny_dataset, "--out-dir", str(tmp_path), "--no-progress"]
    status, out = _run_cli(plan_to_goals.main, argv, capsys)
    assert status == 130
    message = out.err.strip()
    assert message.startswith(f"stopped at training step 7; checkpoint {tmp_path / 'skill_model' / 'checkpoint.pt'}; ")
    assert "--resume" not in message and message.endswith(f"--out-dir {tmp_path} --no-progress")  # the same command


def test_generator_stopped_by_sigterm_writes_no_dataset(minari_store, tmp_path):
    proc = _launch(
        "torchrl_skills.data.pointmaze", "--maze", "umaze", "--num-steps", "5000000", "--dataset-id",
        "torchrl_skills/tests/stopped-v0", tmp_path=tmp_path,
    )  # fmt: skip
    _wait_for(proc, lambda: "step" in Path(proc.outputs[1].name).read_text())  # the progress bar is up
    status, message = _stop(proc, signal.SIGTERM)
    assert status == 143 and message == (
        "stopped by SIGTERM; no dataset was written (it is written only when complete); run the same command again"
    )
    assert not (minari_store / "torchrl_skills" / "tests" / "stopped-v0").exists()
    assert not list(minari_store.glob(".tmp-*"))


# ----------------------------------------------------------------------------- known errors


def _truncated_checkpoint(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint({"model": {"w": torch.zeros(1000)}, "step": 1}, path)
    path.write_bytes(path.read_bytes()[:200])
    return path


ERRORS = {
    "train missing dataset": ("train_skill_model", ["--dataset", "someone/nothing-v0"], "is not in the local store"),
    "train resume nothing": ("train_skill_model", ["--resume"], "to resume from: run without --resume"),
    "train seq-len 5000": ("train_skill_model", ["--dataset", "<tiny>", "--seq-len", "5000"], "seq_len <= 60"),
    "train seq-len 0": ("train_skill_model", ["--seq-len", "0"], "argument --seq-len: expected an integer >= 1"),
    "train no cuda": ("train_skill_model", ["--device", "cuda"], "pass --device cpu"),
    "train truncated": ("train_skill_model", ["--dataset", "<tiny>", "--resume", "<cut:checkpoint.pt>"], "truncated"),
    "plan missing checkpoint": ("plan_to_goals", ["--checkpoint", "missing.pt"], "leave --checkpoint out to train"),
    "plan truncated checkpoint": ("plan_to_goals", ["--checkpoint", "<cut:x.pt>"], "x.pt is truncated or corrupt"),
    "plan no cuda": ("plan_to_goals", ["--device", "cuda"], "pass --device cpu"),
    "ogbench example bad elites": ("ogbench_pointmaze", ["--elites", "9", "--candidates", "4"], "--elites (9) must be"),
    "higl resume nothing": ("higl_pointmaze", ["--resume"], "nothing to resume in"),
    "carracing resume nothing": ("higl_carracing", ["--resume"], "to resume from: run without --resume"),
    "eval without checkpoint": ("torchrl_skills.evaluation.ogbench", [], "--policy planner needs --checkpoint"),
    "eval truncated checkpoint": ("torchrl_skills.evaluation.ogbench", ["--checkpoint", "<cut:x.pt>"], "truncated"),
    "eval negative stall distance": ("torchrl_skills.evaluation.ogbench", ["--stall-distance", "-1"], "--stall-distance must be >= 0"),
    "ogbench example negative stall distance": ("ogbench_pointmaze", ["--stall-distance", "-0.5"], "--stall-distance must be >= 0"),
    "antmaze example stall check without stall distance": (
        "ogbench_antmaze", ["--stall-distance", "0", "--stall-check-every", "10"], "set --stall-distance > 0 too"),
    "antmaze example min-up out of range": ("ogbench_antmaze", ["--min-up", "1.5"], "--min-up is the z component"),
    "antmaze example tag with a slash": ("ogbench_antmaze", ["--tag", "a/b"], "argument --tag: expected letters, digits"),
    "replay missing checkpoint": ("torchrl_skills.evaluation.skill_replay", ["--checkpoint", "missing.pt"], "No checkpoint at missing.pt"),
    "replay truncated checkpoint": ("torchrl_skills.evaluation.skill_replay", ["--checkpoint", "<cut:x.pt>"], "truncated"),
    "replay no starts": ("torchrl_skills.evaluation.skill_replay", ["--checkpoint", "x.pt", "--starts", "0"], "expected an integer >= 1"),
    "ogbench data unknown": ("torchrl_skills.data.ogbench", ["--dataset", "nope"], "Unknown OGBench navigate dataset"),
    "pointmaze data bad size": ("torchrl_skills.data.pointmaze", ["--num-steps", "-3"], "expected an integer >= 1"),
}


@pytest.mark.parametrize("case", sorted(ERRORS))
def test_known_errors_print_one_line_and_exit_2(case, tiny_dataset, tmp_path, capsys):
    module, argv, expected = ERRORS[case]
    if "no cuda" in case and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    out = tmp_path / "out"
    argv = [a.replace("<tiny>", tiny_dataset) for a in argv]
    for k, arg in enumerate(argv):
        if arg.startswith("<cut:"):  # a truncated checkpoint where the script looks for one
            name = arg[5:-1]
            path = _truncated_checkpoint(out / name if name == "checkpoint.pt" else tmp_path / name)
            argv[k : k + 1] = [] if name == "checkpoint.pt" else [str(path)]
            expected = f"{path} is truncated or corrupt" if expected == "truncated" else expected
    if not module.startswith("torchrl_skills.data"):  # the generators write into the Minari store
        argv += ["--out-dir", str(out)]
    status, captured = _run_cli(importlib.import_module(module).main, argv, capsys)
    assert status == 2
    assert captured.err.count("\n") == 1 and captured.err.startswith("error: ") and expected in captured.err, captured.err
    assert "Traceback" not in captured.err
    if "<cut:checkpoint.pt>" not in ERRORS[case][1]:
        assert not out.exists(), "a failed start left its output folder behind"


def test_every_option_has_help_text_and_a_default_shown():
    import argparse

    scripts = ["train_skill_model", "plan_to_goals", "ogbench_pointmaze", "higl_pointmaze", "higl_carracing"]
    clis = ["torchrl_skills.data.pointmaze", "torchrl_skills.data.ogbench", "torchrl_skills.evaluation.ogbench",
            "torchrl_skills.evaluation.skill_replay"]  # fmt: skip
    for module in scripts + clis:
        mod = importlib.import_module(module)
        seen = {}

        def capture(self, *args, **kwargs):  # the parser the script builds, without parsing
            seen["parser"] = self
            raise SystemExit(0)

        original = argparse.ArgumentParser.parse_args
        argparse.ArgumentParser.parse_args = capture
        try:
            with pytest.raises(SystemExit):
                (mod.parse_args if module in scripts else mod.main)([])
        finally:
            argparse.ArgumentParser.parse_args = original
        parser = seen["parser"]
        assert isinstance(parser, ArgumentParser), module
        for action in parser._actions:
            if action.dest in ("help", "debug"):
                continue
            assert action.help, f"{module} {action.option_strings} has no help text"
        assert "(default: " in parser.format_help()


def test_atomic_writes_leave_a_concurrent_writers_temporary_file_alone(tmp_path):
    """Two runs resuming one model (``--tag``) write the same losses.png and JSON side by side: a
    temporary name shared between writers let one delete the other's file before its rename."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from torchrl_skills.utils import save_figure, write_text_atomic

    others = [tmp_path / ".losses.tmp.png", tmp_path / "validation.json.tmp"]  # the former shared names
    for other in others:
        other.write_text("another writer's")
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    png = save_figure(fig, tmp_path / "losses.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert write_text_atomic(tmp_path / "validation.json", '{"a": 1}').read_text() == '{"a": 1}'
    assert all(other.read_text() == "another writer's" for other in others)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([".losses.tmp.png", "losses.png", "validation.json", "validation.json.tmp"])
