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
    make_ogbench_policy,
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
    assert td["terminated"].all() and not td["truncated"].any() and td["task_id"].view(-1).tolist() == [3, 1]
    with pytest.raises(ValueError, match="run from 1 to 5"):
        env.set_episodes([0, 1], [0, 1])
    with pytest.raises(ValueError, match="one task and one seed per slot"):
        env.set_episodes([1], [0])


def test_reset_entries_choose_the_episodes_and_partial_resets():
    from tensordict import TensorDict

    env = OGBenchMazeEnv(NAME, num_envs=3, task_ids=[1, 1, 1], seeds=[5, 6, 7])
    td = env.reset(TensorDict(task_id=torch.tensor([4, 0, 2]), episode_seed=torch.tensor([9, 9, 9]), batch_size=[3]))
    # a task id of 0 keeps the slot's task; one episode seed gives one start and goal, whatever the slot
    assert td["task_id"].view(-1).tolist() == [4, 1, 2]
    alone = OGBenchMazeEnv(NAME, num_envs=1, task_ids=[4], seeds=[9]).reset()
    assert torch.equal(alone["observation"][0], td["observation"][0])
    assert torch.equal(alone["desired_goal"][0], td["desired_goal"][0])
    # torchrl's "_reset" mask resets only its slots (as a collector or rollout does on done slots)
    first = td["observation"].clone()
    td = step_mdp(env.step(td.set("action", torch.ones(3, 2))))
    moved = td["observation"].clone()
    reset = env.reset(td.set("_reset", torch.tensor([[False], [True], [False]])))
    assert torch.equal(reset["observation"][[0, 2]], moved[[0, 2]])
    assert torch.equal(reset["observation"][1], first[1])  # slot 1 replays its episode
    with pytest.raises(ValueError, match="run from 1 to 5"):
        env.reset(TensorDict(task_id=torch.tensor([6, 1, 1]), batch_size=[3]))
    with pytest.raises(ValueError, match="non-negative"):
        OGBenchMazeEnv(NAME, seeds=[-1])


def test_actions_are_clipped_as_in_ogbench():
    # OGBench's PointMaze moves by 0.2 * action unclipped; its evaluation loop clips to [-1, 1]
    env = OGBenchMazeEnv(NAME, num_envs=2, task_ids=[1, 1], seeds=[0, 0])
    td = env.step(env.reset().set("action", torch.tensor([[5.0, -5.0], [1.0, -1.0]])))
    assert torch.equal(td["next", "observation"][0], td["next", "observation"][1])


def test_ant_goal_observation_depends_only_on_the_episode_seed():
    # OGBench settles the ant with random actions from its action space while resetting: without
    # seeding that space, the goal observation's joints would differ between equal episode seeds
    env = OGBenchMazeEnv("antmaze-medium-navigate-v0", num_envs=2, task_ids=[2, 2], seeds=[7, 7])
    td = env.reset()
    assert td["goal"].shape == (2, 29) and torch.equal(td["goal"][0], td["goal"][1])
    assert torch.equal(td["desired_goal"], td["goal"][:, :2])


def _sequential_gymnasium(tasks_seeds):
    """The same episodes in plain gymnasium, one at a time, with the same oracle actions."""
    policy = OGBenchOraclePolicy(NAME)
    out = []
    for task, seed in tasks_seeds:
        env = make_ogbench_env(NAME)
        np.random.seed(seed % 2**32)
        env.action_space.seed(seed)
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
    batched = evaluate_ogbench(policy, NAME, episodes_per_task=1, seed=3, progress=False)
    one_by_one = evaluate_ogbench(policy, NAME, episodes_per_task=1, seed=3, num_envs=1, progress=False)
    assert batched.episodes == one_by_one.episodes  # seeds, successes, steps, final distances, goals
    assert all(np.array_equal(a, b) for a, b in zip(batched.paths, one_by_one.paths))
    # the oracle solves every task within the env's 1000 steps, as the env itself reports
    assert batched.success_rate == 1.0 and batched.task_success() == {t: 1.0 for t in range(1, 6)}
    reference = _sequential_gymnasium([(ep["task"], ep["episode_seed"]) for ep in batched.episodes])
    assert reference == [(ep["success"], ep["steps"]) for ep in batched.episodes]
    # paths start at the reset position and end within the success radius
    for ep, path in zip(batched.episodes, batched.paths):
        assert len(path) == ep["steps"] + 1 and np.linalg.norm(path[-1] - ep["goal"]) <= 1.0


def test_skill_policy_plans_are_recorded():
    from torchrl_skills.modules import SkillModel, SkillMPCPolicy

    torch.manual_seed(0)
    # an untrained skill model drawing skills from its prior (its primer is added by the evaluator)
    policy = SkillMPCPolicy(SkillModel(state_dim=2, action_dim=2, z_dim=4, hidden_dim=16), None, replan_every=100)
    result = evaluate_ogbench(policy, NAME, episodes_per_task=1, tasks=[1], progress=False)
    (ep,), (plan,), (path,) = result.episodes, result.plans, result.paths
    assert ep["success"] or ep["steps"] == 1000  # failures end at env.spec.max_episode_steps
    assert plan.shape == (-(-ep["steps"] // 100), 4)  # one row per (re)planning step
    assert np.allclose(plan[:, :2], path[: ep["steps"] : 100])  # planned from where the agent stood
    assert result.plan_steps[0].tolist() == list(range(0, ep["steps"], 100))
    # each skill's planned progress, realised progress and end error, by hand from the records
    tracking = result.skill_tracking(100)
    full = (np.arange(len(plan)) + 1) * 100 <= ep["steps"]
    reached = path[(np.arange(len(plan)) + 1)[full] * 100]
    assert tracking["skills"] == full.sum() > 0
    assert np.allclose(tracking["planned"], np.linalg.norm(plan[full, 2:] - plan[full, :2], axis=-1))
    assert np.allclose(tracking["realised"], np.linalg.norm(reached - plan[full, :2], axis=-1))
    assert np.allclose(tracking["end_error"], np.linalg.norm(reached - plan[full, 2:], axis=-1))
    assert tracking["median_end_error"] == pytest.approx(float(np.median(tracking["end_error"])))
    summary, line = result.skill_tracking_summary(100)
    assert summary["skills"] == tracking["skills"] and line.startswith("skills: planned progress")


def test_skills_started_inside_a_period_are_recorded_at_their_step_and_tracked_from_it():
    from torchrl_skills.modules import SkillModel, SkillMPCPolicy

    torch.manual_seed(0)
    # nothing moves 1e6 m: after the first plan, every check 7 steps into a skill starts a prior skill
    model = SkillModel(state_dim=2, action_dim=2, z_dim=4, hidden_dim=16)
    policy = SkillMPCPolicy(model, None, replan_every=100, stall_distance=1e6, stall_check_every=7)
    result = evaluate_ogbench(policy, NAME, episodes_per_task=1, tasks=[1], progress=False)
    (ep,), (plan,), (path,), (steps,) = result.episodes, result.plans, result.paths, result.plan_steps
    assert steps.tolist() == list(range(0, ep["steps"], 7)) and len(plan) == len(steps)
    assert np.allclose(plan[:, :2], path[steps])
    # realised progress: where the agent was replan_every steps after each plan
    tracking = result.skill_tracking(100)
    full = steps + 100 < len(path)
    assert tracking["skills"] == full.sum() > 0
    assert np.allclose(tracking["realised"], np.linalg.norm(path[steps[full] + 100] - plan[full, :2], axis=-1))
    # results without plan_steps (older reports) keep plan i at step i * replan_every
    result.plan_steps = []
    assert result.skill_tracking(7)["realised"].tolist() == tracking_by_period(plan, path, 7)


def tracking_by_period(plan, path, period):
    ends = (np.arange(len(plan)) + 1) * period
    full = ends < len(path)
    return np.linalg.norm(path[ends[full]] - plan[full, :2], axis=-1).tolist()


def test_results_are_written(tmp_path):
    result = evaluate_ogbench(OGBenchOraclePolicy(NAME), NAME, episodes_per_task=1, tasks=[3, 4], progress=False)
    result.save_json(tmp_path / "r.json", extra={"note": "x"})
    report = json.loads((tmp_path / "r.json").read_text())
    assert len(report["per_episode"]) == 2 and report["note"] == "x" and report["success_rate"] == 1.0
    assert set(report["per_episode"][0]) >= {"task", "episode_seed", "success", "steps", "final_distance"}
    assert report["ci95"]["episodes_wilson"][0] <= report["success_rate"] <= report["ci95"]["episodes_wilson"][1]
    assert OGBenchResult.load_json(tmp_path / "r.json").task_success() == {3: 1.0, 4: 1.0}
    result.plans[0] = np.array([[*result.paths[0][0], *result.paths[0][20]]])  # as a skill policy records them
    result.plot(tmp_path / "r.png")
    assert (tmp_path / "r.png").stat().st_size > 10_000


def test_validation_tasks_avoid_the_evaluation_tasks():
    tasks = validation_tasks(NAME, 30, seed=0)
    env = make_ogbench_env(NAME)
    evaluation = {(tuple(t["init_ij"]), tuple(t["goal_ij"])) for t in env.unwrapped.task_infos}
    assert len(tasks) == 30 and not {(t["init_ij"], t["goal_ij"]) for t in tasks} & evaluation
    # as long as the evaluation tasks: at least the shortest one's cells of shortest path
    from torchrl_skills.data.maze_grid import MazeGrid

    grid = MazeGrid.from_ogbench(env)
    cells = lambda t: grid.distance[t["init_ij"][0] * grid.width + t["init_ij"][1], t["goal_ij"][0] * grid.width + t["goal_ij"][1]]  # noqa: E731
    shortest = min(cells(t) for t in env.unwrapped.task_infos)
    assert shortest == 6 and min(cells(t) for t in tasks) >= shortest
    assert min(cells(t) for t in validation_tasks(NAME, 30, seed=0, min_cells=2)) < shortest
    with pytest.raises(ValueError, match="pass a smaller min_cells"):
        validation_tasks(NAME, 3, min_cells=100)
    # two slots for three episodes: the last batch pads its empty slot, unrecorded
    result = evaluate_ogbench(
        OGBenchOraclePolicy(NAME), NAME, episodes_per_task=1, tasks=tasks[:3], num_envs=2, progress=False
    )
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
    policy = OGBenchOraclePolicy(NAME)
    with pytest.raises(ValueError, match="OGBench does not know"):
        evaluate_ogbench(policy, "pointmaze-tiny-navigate-v0")
    with pytest.raises(ValueError, match="episodes_per_task"):
        evaluate_ogbench(policy, NAME, episodes_per_task=0)
    with pytest.raises(ValueError, match="run from 1 to 5"):
        evaluate_ogbench(policy, NAME, tasks=[1, 6])
    with pytest.raises(ValueError, match="num_envs"):
        evaluate_ogbench(policy, NAME, num_envs=0)
    with pytest.raises(ValueError, match="replan_every must be a positive integer"):
        OGBenchResult(NAME).skill_tracking(0)
    from torchrl_skills.modules import SkillModel

    with pytest.raises(ValueError, match="use the graph cost"):
        make_ogbench_policy("planner", NAME, SkillModel(4, 2, z_dim=4, hidden_dim=8), cost=None, off_data_penalty=1.0)


def test_plot_shows_successes_and_failures_in_proportion():
    from torchrl_skills.evaluation.ogbench import _paths_to_show

    mostly_won = [True] * 43 + [False] * 7  # 0.86: two successes and a failure, not three failures
    assert [mostly_won[i] for i in _paths_to_show(mostly_won, 3)] == [True, True, False]
    mostly_lost = [False] * 47 + [True] * 3  # 0.06: still one success drawn
    assert [mostly_lost[i] for i in _paths_to_show(mostly_lost, 3)] == [True, False, False]
    assert _paths_to_show([True] * 5, 3) == [0, 1, 2] and _paths_to_show([False, False], 3) == [0, 1]
    assert _paths_to_show([False, True], 1) == [1] and _paths_to_show([], 3) == []


def test_make_ogbench_policy_wires_the_off_data_penalty():
    from torchrl_skills.envs import GraphDistanceCost, OffDataPenalty
    from torchrl_skills.modules import SkillModel

    t = torch.linspace(0, 1, 100)
    graph = GraphDistanceCost.from_trajectories(torch.stack([4 * t, 0 * t], -1), torch.zeros(100), num_nodes=20)
    model = SkillModel(4, 2, z_dim=4, hidden_dim=8)
    policy = make_ogbench_policy("planner", NAME, model, graph, candidates=8, elites=2, off_data_penalty=50.0)
    penalty = policy.planner.env.transition.skill_penalty
    assert isinstance(penalty, OffDataPenalty) and penalty.weight == 50.0 and penalty.graph is graph
    assert penalty.radius == graph.support_radius > 0 and penalty.segment_points == 3
    fixed = make_ogbench_policy("planner", NAME, model, graph, candidates=8, elites=2, off_data_penalty=50.0,
                                off_data_radius=0.0)  # fmt: skip
    assert fixed.planner.env.transition.skill_penalty.radius == 0.0
    assert penalty.detour_slack is None
    detours = make_ogbench_policy("planner", NAME, model, graph, candidates=8, elites=2, off_data_penalty=50.0,
                                  detour_slack=1.5)  # fmt: skip
    assert detours.planner.env.transition.skill_penalty.detour_slack == 1.5
    with pytest.raises(ValueError, match="set off_data_penalty > 0 too"):
        make_ogbench_policy("planner", NAME, model, graph, candidates=8, elites=2, detour_slack=1.5)
    assert make_ogbench_policy("planner", NAME, model, graph, candidates=8, elites=2).planner.env.transition.skill_penalty is None


def test_make_ogbench_policy_wires_stall_recovery():
    from torchrl_skills.modules import SkillModel

    model = SkillModel(4, 2, z_dim=4, hidden_dim=8)
    assert make_ogbench_policy("planner", NAME, model, candidates=8, elites=2, stall_distance=0.3).stall_distance == 0.3
    for off in (None, 0.0):  # the examples' 0 means off
        policy = make_ogbench_policy("planner", NAME, model, candidates=8, elites=2, stall_distance=off)
        assert policy.stall_distance is None and "skill_count" not in policy.make_tensordict_primer().primers.keys()


def test_make_ogbench_policy_wires_the_in_skill_stall_check_and_the_upright_guard():
    from torchrl_skills.modules import SkillModel, SkillMPCPolicy, UprightGuard

    model = SkillModel(29, 8, z_dim=4, hidden_dim=8)
    ant = "antmaze-medium-navigate-v0"
    policy = make_ogbench_policy("planner", ant, model, candidates=8, elites=2, stall_distance=0.3,
                                 stall_check_every=10, min_up=0.8)  # fmt: skip
    assert isinstance(policy, UprightGuard) and policy.min_up == 0.8
    assert isinstance(policy.td_module, SkillMPCPolicy) and policy.stall_check_every == 10
    plain = make_ogbench_policy("planner", ant, model, candidates=8, elites=2, stall_distance=0.3, stall_check_every=0)
    assert isinstance(plain, SkillMPCPolicy) and plain.stall_check_every is None
    assert isinstance(make_ogbench_policy("prior", ant, model, min_up=0.5), UprightGuard)
    with pytest.raises(ValueError, match="has no ant"):
        make_ogbench_policy("planner", NAME, SkillModel(4, 2, z_dim=4, hidden_dim=8), candidates=8, elites=2, min_up=0.8)



def test_make_ogbench_policy_wires_the_progress_discount_and_the_noise_bound():
    from torchrl.data import Bounded
    from tensordict import TensorDict

    from torchrl_skills.modules import SkillModel

    torch.manual_seed(0)
    model = SkillModel(4, 2, z_dim=4, hidden_dim=8)
    plain = make_ogbench_policy("planner", NAME, model, candidates=8, elites=2).planner
    assert plain.env.progress_discount == 1.0 and not isinstance(plain.env.action_spec, Bounded)
    planner = make_ogbench_policy(
        "planner", NAME, model, candidates=16, elites=4, progress_discount=0.5, eps_bound=0.25
    ).planner
    assert planner.env.progress_discount == 0.5 and isinstance(planner.env.action_spec, Bounded)
    state = torch.zeros(3, 4)
    td = planner.env.reset(TensorDict({"observation": state, "goal": torch.full((3, 2), 5.0)}, batch_size=[3]))
    eps = planner(td).get("action")
    assert eps.shape == (3, 4) and eps.abs().max().item() <= 0.25 + 1e-6  # the plan keeps within the bound
    assert plain(td.exclude("progress_weight")).get("action").abs().max().item() > 0.25  # unbounded, it does not
