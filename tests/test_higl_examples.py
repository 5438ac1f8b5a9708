"""End-to-end runs of the HIGL examples with tiny flags (real gymnasium envs, a few seconds each)."""
import importlib.util
import json
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


def _load(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "examples" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_pointmaze_example_end_to_end_and_resume(tmp_path):
    pytest.importorskip("gymnasium_robotics")
    example = _load("higl_pointmaze")
    flags = [
        "--total-steps", "200", "--warmup-steps", "60", "--eval-every", "100", "--eval-episodes", "2",
        "--max-episode-steps", "40", "--batch-size", "8", "--seq-len", "2", "--d-model", "16", "--latent-dim", "8",
        "--frames-per-batch", "50", "--num-envs", "2", "--k", "4", "--seeds", "0", "--out-dir", str(tmp_path),
        "--checkpoint-every", "100",
    ]  # fmt: skip
    results = example.main(flags)
    assert {r["algo"] for r in results["runs"]} == {"higl", "sac", "sac_her"}
    for run in results["runs"]:
        assert run["steps"] >= 200 and run["updates"] > 0 and run["curve"]
        assert 0.0 <= run["final_success_rate"] <= 1.0
        # every evaluation is also run with StallEscape, at the same steps
        assert [s for s, _ in run["curve_stall_escape"]] == [s for s, _ in run["curve"]]
        assert 0.0 <= run["final_success_rate_stall_escape"] <= 1.0
    assert (tmp_path / "learning_curves.png").stat().st_size > 0
    for algo in ("higl", "sac", "sac_her"):
        assert (tmp_path / f"ckpt_{algo}_seed0.pt").is_file()
    saved = json.loads((tmp_path / "results.json").read_text())
    assert set(saved["summary"]) == {"higl", "sac", "sac_her"}
    assert all(len(summary["per_seed_stall_escape"]) == 1 for summary in saved["summary"].values())
    assert 0.0 <= saved["random_policy_success_rate"] <= 1.0
    # resume to a longer budget continues from the checkpoints instead of restarting
    resumed = example.main(flags[:1] + ["300"] + flags[2:] + ["--resume", "--algos", "sac"])
    sac_run = [r for r in resumed["runs"] if r["algo"] == "sac"][0]
    before = [r for r in saved["runs"] if r["algo"] == "sac"][0]
    assert sac_run["steps"] >= 300 and list(sac_run["curve"][0]) == before["curve"][0]
    assert len(sac_run["curve"]) > len(before["curve"])
    # a checkpoint of other networks is refused, not loaded silently into fresh ones
    from torchrl_skills.utils import CheckpointError

    other = flags[:1] + ["400"] + flags[2:] + ["--resume", "--algos", "higl", "--d-model", "32"]
    with pytest.raises(CheckpointError, match="loss does not match the one built here"):
        example.main(other)


@pytest.mark.parametrize(
    "options",
    [["--goal-space", "residual"], ["--goal-space", "sphere"], ["--goal-space", "relative"],
     ["--landmarks", "10", "--high-action-scale", "1.0"], ["--encoder-input", "position", "--critic-window"]],
)
def test_pointmaze_example_other_designs(tmp_path, options):
    pytest.importorskip("gymnasium_robotics")
    example = _load("higl_pointmaze")
    results = example.main([
        "--algos", "higl", *options, "--total-steps", "100", "--warmup-steps", "50",
        "--eval-every", "100", "--eval-episodes", "2", "--max-episode-steps", "30", "--batch-size", "8",
        "--seq-len", "2", "--d-model", "16", "--latent-dim", "8", "--frames-per-batch", "50", "--num-envs", "2",
        "--k", "4", "--seeds", "0", "--out-dir", str(tmp_path), "--logger", "none",
    ])  # fmt: skip
    assert results["runs"][0]["updates"] > 0


def test_pointmaze_stall_escape_evaluation_leaves_training_unchanged(tmp_path):
    """The extra StallEscape evaluation draws from its own generator: the plain curve is the one without it."""
    pytest.importorskip("gymnasium_robotics")
    example = _load("higl_pointmaze")
    flags = [*_tiny_higl(total_steps=100, eval_every=50, max_episode_steps=30), "--logger", "none"]
    with_escape = example.main([*flags, "--out-dir", str(tmp_path / "with")])["runs"][0]
    without = example.main([*flags, "--no-stall-escape", "--out-dir", str(tmp_path / "without")])["runs"][0]
    assert len(with_escape["curve_stall_escape"]) == 2 and without["curve_stall_escape"] == []
    assert without["final_success_rate_stall_escape"] is None
    assert with_escape["curve"] == without["curve"]
    # networks, optimizers, replay and random state end equal too
    from torchrl_skills.utils import load_checkpoint

    a, b = (load_checkpoint(tmp_path / name / "ckpt_higl_seed0.pt") for name in ("with", "without"))
    tensors_a, tensors_b = list(_tensors(a)), list(_tensors(b))
    assert len(tensors_a) > 10 and all(torch.equal(x, y) for x, y in zip(tensors_a, tensors_b, strict=True))


def test_pointmaze_stall_escape_collect_drives_stuck_training_envs(tmp_path):
    """--stall-escape-collect: stuck training envs escape (logged), and what is learned changes with it."""
    pytest.importorskip("gymnasium_robotics")
    example = _load("higl_pointmaze")
    flags = [*_tiny_higl(total_steps=200, eval_every=100, max_episode_steps=60), "--no-stall-escape"]
    example.main([*flags, "--stall-escape-collect", "--out-dir", str(tmp_path / "with")])
    example.main([*flags, "--logger", "none", "--out-dir", str(tmp_path / "without")])
    (log,) = (tmp_path / "with" / "logs").glob("*/scalars/collect_escapes.csv")
    escapes = [float(line.split(",")[1]) for line in log.read_text().split()]
    assert len(escapes) == 2 and escapes[-1] >= escapes[0] > 0
    from torchrl_skills.utils import load_checkpoint

    a, b = (load_checkpoint(tmp_path / name / "ckpt_higl_seed0.pt") for name in ("with", "without"))
    assert not all(torch.equal(x, y) for x, y in zip(_tensors(a), _tensors(b), strict=True))


def _tiny_higl(total_steps, eval_every, max_episode_steps):
    """A HIGL run of seconds on seed 0: 2 envs, tiny networks, 2 evaluation episodes."""
    return ["--algos", "higl", "--total-steps", str(total_steps), "--warmup-steps", "50", "--eval-every", str(eval_every),
            "--eval-episodes", "2", "--max-episode-steps", str(max_episode_steps), "--batch-size", "8",
            "--seq-len", "2", "--d-model", "16", "--latent-dim", "8", "--frames-per-batch", "50",
            "--num-envs", "2", "--k", "4", "--seeds", "0"]  # fmt: skip


def _tensors(obj):
    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, dict):
        for key in sorted(obj, key=str):
            if key != "state":  # the run state differs by the escape curve itself
                yield from _tensors(obj[key])
    elif isinstance(obj, (list, tuple)):
        for item in obj:
            yield from _tensors(item)


def test_pointmaze_high_action_scale_defaults_per_goal_space():
    pytest.importorskip("gymnasium_robotics")
    example = _load("higl_pointmaze")
    default = example.parse_args([])
    assert default.goal_space == "landmark" and default.high_action_scale == 0.0  # the route alone
    relative = example.parse_args(["--goal-space", "relative", "--subgoal-distance", "1.2"])
    assert relative.high_action_scale == 1.2  # the straight line needs the correction
    assert example.parse_args(["--high-action-scale", "0.5"]).high_action_scale == 0.5
    with pytest.raises(SystemExit):
        example.parse_args(["--high-action-scale", "-1"])


def test_carracing_example_end_to_end(tmp_path):
    pytest.importorskip("Box2D")
    example = _load("higl_carracing")
    results = example.main([
        "--total-steps", "60", "--warmup-steps", "20", "--max-episode-steps", "30", "--batch-size", "4",
        "--seq-len", "3", "--d-model", "16", "--latent-dim", "8", "--eval-episodes", "2", "--num-envs", "2",
        "--frames-per-batch", "20", "--k", "4", "--grayscale", "--frame-stack", "3", "--augment-pad", "2",
        "--num-threads", "1", "--out-dir", str(tmp_path),
    ])  # fmt: skip
    assert results["steps"] == 60 and results["updates"] == 15  # utd 0.25 x 3 batches of 20 (the first reaches the warm-up)
    assert isinstance(results["final_eval_return"], float) and isinstance(results["random_actions_return"], float)
    assert (tmp_path / "learning_curve.png").is_file() and (tmp_path / "checkpoint.pt").is_file()


def test_carracing_throttle_action_maps_to_gas_or_brake():
    pytest.importorskip("Box2D")
    import torch

    example = _load("higl_carracing")
    args = example.parse_args(["--max-episode-steps", "30"])
    env = example.make_env(args, 2, [0, 1])
    native = example.make_env(args, 2, [0, 1], native_actions=True)
    assert env.action_spec.shape == (2, 2) and (env.action_spec.space.low == -1).all()
    assert native.action_spec.shape == (2, 3)  # CarRacing's own [steer, gas, brake]
    mapped = example.ThrottleAction()._inv_apply_transform(torch.tensor([[0.5, 0.8], [-0.2, -0.6], [0.0, 0.0]]))
    torch.testing.assert_close(mapped, torch.tensor([[0.5, 0.8, 0.0], [-0.2, 0.0, 0.6], [0.0, 0.0, 0.0]]))
    # full throttle drives: more track tiles than full brake on the same two tracks
    returns = []
    for throttle in (1.0, -1.0):
        td = env.reset()
        total = 0.0
        for _ in range(30):
            td["action"] = torch.tensor([[0.0, throttle]] * 2)
            td = env.step(td)
            total += td["next", "reward"].sum().item()
            td = td["next"]
        returns.append(total)
    assert returns[0] > returns[1] + 5  # measured: 27.9 against 6.8 (the two cars together)
    env.close()
    native.close()


def test_carracing_frame_skip_repeats_the_action_and_sums_rewards():
    pytest.importorskip("Box2D")
    import torch

    example = _load("higl_carracing")
    skipped = example.make_env(example.parse_args(["--frame-skip", "4", "--max-episode-steps", "10"]), 2, [3, 4])
    plain = example.make_env(example.parse_args(["--max-episode-steps", "10"]), 2, [3, 4])
    assert example.agent_steps(example.parse_args(["--frame-skip", "4"]), 10) == 3
    action = torch.tensor([[0.3, 1.0], [-0.5, 0.7]])
    td, ref = skipped.reset(), plain.reset()
    rewards = []
    for _ in range(3):  # 12 frames asked, the time limit stops both cars after 10
        td["action"] = action
        td = skipped.step(td)
        rewards.append(td["next", "reward"])
        td = td["next"]
    total = torch.zeros(2, 1)
    for _ in range(10):
        ref["action"] = action
        ref = plain.step(ref)
        total += ref["next", "reward"]
        ref = ref["next"]
    torch.testing.assert_close(sum(rewards), total)  # rewards summed over the repeated frames
    assert rewards[0].abs().sum() > 0 and torch.equal(td["observation"], ref["observation"])  # the same last frame
    assert td["done"].all() and ref["done"].all()
    skipped.close()
    plain.close()


def test_pointmaze_merge_of_parallel_runs(tmp_path):
    pytest.importorskip("gymnasium_robotics")
    example = _load("higl_pointmaze")
    flags = ["--total-steps", "50", "--warmup-steps", "20", "--eval-every", "50", "--eval-episodes", "2",
             "--max-episode-steps", "20", "--batch-size", "4", "--seq-len", "2", "--d-model", "16", "--latent-dim", "8",
             "--frames-per-batch", "50", "--num-envs", "2", "--k", "4", "--algos", "sac", "--logger", "none"]  # fmt: skip
    example.main([*flags, "--seeds", "0", "--out-dir", str(tmp_path / "a")])
    example.main([*flags, "--seeds", "1", "--out-dir", str(tmp_path / "b")])
    merged = example.main(["--merge", str(tmp_path / "a"), str(tmp_path / "b"), "--out-dir", str(tmp_path / "all")])
    assert sorted(r["seed"] for r in merged["runs"]) == [0, 1]
    assert merged["summary"]["sac"]["seeds"] == [0, 1] and (tmp_path / "all" / "learning_curves.png").is_file()


def test_pointmaze_summary_counts_finished_runs_only():
    """A run stopped part-way (kept for --resume) has no final success rate yet."""
    example = _load("higl_pointmaze")
    run = lambda seed, steps, final: {"algo": "sac", "seed": seed, "steps": steps, "final_success_rate": final,  # noqa: E731
                                      "wall_time_s": 1.0, "curve": [[steps, final]]}  # fmt: skip
    results = {"config": {"total_steps": 100}, "runs": [run(0, 100, 0.2), run(1, 100, 0.4), run(2, 30, 0.9)]}
    summary = example.summarize(results, ["sac"])["sac"]
    assert summary["seeds"] == [0, 1] and summary["per_seed"] == [0.2, 0.4] and summary["unfinished_seeds"] == [2]
    assert summary["mean_final_success_rate"] == pytest.approx(0.3)
