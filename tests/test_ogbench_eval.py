"""OGBench's evaluation protocol: the batched env, the evaluator, its statistics and outputs."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

pytest.importorskip("ogbench")

from torchrl.envs.utils import check_env_specs, step_mdp  # noqa: E402

from torchrl_skills.envs import OGBenchMazeEnv, make_ogbench_env  # noqa: E402
from torchrl_skills.evaluation.ogbench import (  # noqa: E402
    OGBenchOraclePolicy,
    OGBenchResult,
    evaluate_ogbench,
    t_interval,
    validation_tasks,
    wilson_interval,
)

NAME = "pointmaze-medium-navigate-v0"


def test_env_specs_and_frozen_episodes():
    env = OGBenchMazeEnv(NAME, num_envs=2)
    check_env_specs(env)
    # task 3 starts two cells from its goal, task 1 across the maze: slot 0 finishes first
    env.set_episodes([3, 1], [0, 1])
    policy = OGBenchOraclePolicy(NAME)
    td = env.reset()
    finished_at, steps_after = None, 0
    while not td["done"].all():
        td = env.step(policy(td))
        if td["next", "done"][0] and finished_at is None:
            finished_at = td["next", "achieved_goal"][0].clone()
            assert not td["next", "done"][1]
        td = step_mdp(td)
        if finished_at is not None:
            steps_after += 1
            assert torch.equal(td["achieved_goal"][0], finished_at)  # frozen after done
    assert td["success"].all() and steps_after > 20
    with pytest.raises(ValueError, match="run from 1 to 5"):
        env.set_episodes([0, 1], [0, 1])
    with pytest.raises(ValueError, match="one task and one seed per slot"):
        env.set_episodes([1], [0])


def _sequential_gymnasium(tasks_seeds):
    """The same episodes in plain gymnasium, one at a time, with the same oracle actions."""
    policy = OGBenchOraclePolicy(NAME)
    out = []
    for task, seed in tasks_seeds:
        env = make_ogbench_env(NAME)
        np.random.seed(seed % 2**32)
        ob, info = env.reset(seed=seed, options=dict(task_id=task))
        done, success, steps = False, False, 0
        while not done:
            xy, goal = env.unwrapped.get_xy()[None], np.asarray(env.unwrapped.cur_goal_xy)[None]
            direction = policy.grid.next_waypoints(xy, goal) - xy
            direction /= np.linalg.norm(direction, axis=-1, keepdims=True) + 1e-6
            ob, _, terminated, truncated, info = env.step(np.clip(direction[0].astype(np.float32), -1, 1))
            done, steps = terminated or truncated, steps + 1
            success = bool(info["success"])
        out.append((success, steps))
    return out


def test_success_is_the_envs_own_and_batching_does_not_matter():
    policy = OGBenchOraclePolicy(NAME)
    batched = evaluate_ogbench(policy, NAME, episodes_per_task=2, seed=3, progress=False)
    one_by_one = evaluate_ogbench(policy, NAME, episodes_per_task=2, seed=3, num_envs=1, progress=False)
    key = [(ep["success"], ep["steps"], ep["episode_seed"]) for ep in batched.episodes]
    assert key == [(ep["success"], ep["steps"], ep["episode_seed"]) for ep in one_by_one.episodes]
    # the oracle solves every task within the env's 1000 steps, as the env itself reports
    assert batched.success_rate == 1.0 and batched.task_success() == {t: 1.0 for t in range(1, 6)}
    reference = _sequential_gymnasium([(ep["task"], ep["episode_seed"]) for ep in batched.episodes[:4]])
    assert reference == [(ep["success"], ep["steps"]) for ep in batched.episodes[:4]]
    # paths start at the reset position and end within the success radius
    for ep, path in zip(batched.episodes, batched.paths):
        assert len(path) == ep["steps"] + 1 and np.linalg.norm(path[-1] - ep["goal"]) <= 1.0


def test_random_actions_fail_and_results_are_written(tmp_path):
    from torchrl.envs.utils import RandomPolicy

    env = OGBenchMazeEnv(NAME)
    result = evaluate_ogbench(
        RandomPolicy(env.full_action_spec["action"][0]), NAME, episodes_per_task=1, tasks=[1, 2], progress=False
    )
    assert result.success_rate == 0.0 and all(ep["steps"] == 1000 for ep in result.episodes)
    result.save_json(tmp_path / "r.json", extra={"note": "x"})
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["success_rate"] == 0.0 and len(report["per_episode"]) == 2 and report["note"] == "x"
    result.plot(tmp_path / "r.png")
    assert (tmp_path / "r.png").stat().st_size > 10_000


def test_validation_tasks_avoid_the_evaluation_tasks():
    tasks = validation_tasks(NAME, 30, seed=0)
    env = make_ogbench_env(NAME)
    evaluation = {(tuple(t["init_ij"]), tuple(t["goal_ij"])) for t in env.unwrapped.task_infos}
    assert len(tasks) == 30 and not {(t["init_ij"], t["goal_ij"]) for t in tasks} & evaluation
    result = evaluate_ogbench(OGBenchOraclePolicy(NAME), NAME, episodes_per_task=1, tasks=tasks[:3], progress=False)
    assert [ep["task"] for ep in result.episodes] == ["val0", "val1", "val2"] and result.success_rate == 1.0


def test_statistics_and_merge():
    assert wilson_interval(50, 50)[1] == pytest.approx(1.0) and wilson_interval(50, 50)[0] == pytest.approx(0.9287, abs=1e-3)
    lo, hi = t_interval([0.8, 0.9, 1.0])
    assert lo == pytest.approx(0.9 - 4.303 * 0.1 / 3**0.5) and hi == pytest.approx(0.9 + 4.303 * 0.1 / 3**0.5)
    a = OGBenchResult(NAME, episodes=[{"task": 1, "training_seed": 0, "success": True, "steps": 1}])
    b = OGBenchResult(NAME, episodes=[{"task": 1, "training_seed": 1, "success": False, "steps": 1}])
    merged = OGBenchResult.merge([a, b])
    assert merged.success_rate == 0.5 and merged.seed_success() == {0: 1.0, 1: 0.0}
    with pytest.raises(ValueError, match="different envs"):
        OGBenchResult.merge([a, OGBenchResult("other")])


def test_bad_inputs():
    with pytest.raises(ValueError, match="OGBench does not know|Unknown OGBench"):
        OGBenchMazeEnv("pointmaze-tiny-navigate-v0")
    with pytest.raises(ValueError, match="episodes_per_task"):
        evaluate_ogbench(OGBenchOraclePolicy(NAME), NAME, episodes_per_task=0)
