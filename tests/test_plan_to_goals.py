"""The main job end to end on a tiny dataset: training, planning, baselines, JSON and plots."""
from __future__ import annotations

import json
import math

import pytest
from plan_to_goals import main as plan_main

TINY = [
    "--env", "PointMaze_UMaze-v3", "--train-steps", "5", "--batch-size", "8", "--seq-len", "10",
    "--z-dim", "8", "--hidden-dim", "16", "--episodes", "2", "--candidates", "32", "--elites", "4",
    "--iterations", "2", "--replan-every", "10", "--max-episode-steps", "35", "--plot-episodes", "2",
    "--no-progress",
]  # fmt: skip


def test_tiny_end_to_end(tiny_dataset, tmp_path):
    out = tmp_path / "out"
    report = plan_main(["--dataset", tiny_dataset, "--out-dir", str(out), *TINY])
    for name in ("results.json", "planner_trajectories.png", "prior_trajectories.png", "random_trajectories.png",
                 "summary.png", "skill_model/checkpoint.pt"):  # fmt: skip
        assert (out / name).stat().st_size > 0, name
    saved = json.loads((out / "results.json").read_text())
    assert saved["methods"].keys() == {"planner", "prior", "random"}
    for name, method in saved["methods"].items():
        s = method["summary"]
        assert s["episodes"] == 2 and 0.0 <= s["success_rate"] <= 1.0 and s["mean_final_distance"] >= 0
        for ep in method["episodes"]:
            assert 1 <= ep["steps"] <= ep["episode_steps"] <= 35
            # skill executors plan once every 10 env steps, random actions never
            assert ep["replans"] == (math.ceil(ep["episode_steps"] / 10) if name != "random" else 0)
            assert ep["success"] == (ep["min_distance"] <= 0.5)
    # every method saw the same start/goal pairs
    goals = [[ep["goal"] for ep in m["episodes"]] for m in saved["methods"].values()]
    assert goals[0] == goals[1] == goals[2]
    assert saved["methods"]["planner"]["summary"]["planning_ms_per_replan_mean"] > 0
    assert report["timing_s"]["training"] > 0

    # a second run reuses the trained checkpoint, and --checkpoint loads it without training
    again = plan_main(["--dataset", tiny_dataset, "--out-dir", str(out), *TINY, "--baselines"])
    assert again["methods"].keys() == {"planner"}
    loaded = plan_main(
        ["--checkpoint", str(out / "skill_model" / "checkpoint.pt"), "--out-dir", str(tmp_path / "b"), *TINY]
    )
    assert loaded["timing_s"]["training"] == 0
    # same seed, same model, same episodes -> same outcome, for the planner and the prior baseline
    for name in ("planner", "prior"):
        first = [(ep["goal"], ep["steps"], ep["final_distance"]) for ep in saved["methods"][name]["episodes"]]
        second = [(ep["goal"], ep["steps"], ep["final_distance"]) for ep in loaded["methods"][name]["episodes"]]
        assert first == second


def test_missing_dataset_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="local Minari store"):
        plan_main(["--dataset", "D4RL/antmaze/medium-play-v1", "--out-dir", str(tmp_path), *TINY])


def test_cuda_request_without_cuda_is_a_clear_error(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(RuntimeError, match="--device cpu"):
        plan_main(["--device", "cuda", "--out-dir", str(tmp_path), "--no-progress"])


def _towards_goal(xy, goal):
    """A deterministic controller: full speed towards the goal (walls stop it)."""
    return (2.0 * (goal - xy)).clamp(-1.0, 1.0).float()


def test_side_by_side_evaluation_gives_the_sequential_outcomes():
    # The same seeds give the same episodes whether they run 3 at a time (the last batch padded)
    # or one after the other, and the same as plain gymnasium one episode at a time.
    import gymnasium as gym
    import numpy as np
    import torch
    from plan_to_goals import make_batch_env, run_episodes
    from tensordict.nn import TensorDictModule

    policy = TensorDictModule(_towards_goal, in_keys=["achieved_goal", "desired_goal"], out_keys=["action"])
    seeds, steps = [3, 4, 5, 6, 7], 60
    batched, rollouts, _ = run_episodes(make_batch_env("PointMaze_UMaze-v3", steps, "cpu", 3), policy, seeds, steps, 0.5, "b", False)
    sequential, _, _ = run_episodes(make_batch_env("PointMaze_UMaze-v3", steps, "cpu", 1), policy, seeds, steps, 0.5, "s", False)
    assert batched == sequential
    assert [r.shape[0] for r in rollouts] == [ep["episode_steps"] for ep in batched]
    assert any(ep["success"] for ep in batched) and not all(ep["success"] for ep in batched)

    env = gym.make("PointMaze_UMaze-v3", continuing_task=False, max_episode_steps=steps)
    for ep, seed in zip(batched, seeds):
        obs, _ = env.reset(seed=seed)
        goal, n, done = obs["desired_goal"], 0, False
        while not done:
            action = _towards_goal(torch.as_tensor(obs["achieved_goal"]), torch.as_tensor(goal)).numpy()
            obs, _, terminated, truncated, _ = env.step(action)
            n, done = n + 1, terminated or truncated
        assert ep["goal"] == goal.tolist() and ep["episode_steps"] == n
        assert ep["final_distance"] == pytest.approx(float(np.linalg.norm(obs["achieved_goal"] - goal)), abs=1e-9)
