"""OGBench navigate datasets regenerated with OGBench's procedure (torchrl_skills.data.ogbench)."""
from __future__ import annotations

import json

import minari
import numpy as np
import pytest

pytest.importorskip("ogbench")

from torchrl_skills.data import SkillDataset  # noqa: E402
from torchrl_skills.data.maze_grid import MazeGrid  # noqa: E402
from torchrl_skills.data.ogbench import (  # noqa: E402
    ensure_ogbench_dataset,
    generate_ogbench_dataset,
    main,
    ogbench_dataset_id,
)


@pytest.fixture(scope="module")
def small_medium(minari_store):
    return generate_ogbench_dataset(
        "pointmaze-medium-navigate-v0", num_episodes=4, episode_length=400, num_envs=2, seed=0, progress=False
    )


def test_ids():
    assert ogbench_dataset_id("pointmaze-giant-navigate-v0", full=True) == "torchrl_skills/ogbench/pointmaze-giant-navigate-v0"
    assert ogbench_dataset_id("pointmaze-giant-navigate-v0").endswith("pointmaze-giant-navigate-small-v0")
    assert ogbench_dataset_id("pointmaze-giant-navigate-v0", num_episodes=500).endswith("giant-navigate-v0")
    # every size has its own validation split
    assert ogbench_dataset_id("pointmaze-large-navigate-v0", full=True, val=True).endswith("large-navigate-val-v0")
    assert ogbench_dataset_id("pointmaze-large-navigate-v0", val=True).endswith("large-navigate-small-val-v0")
    assert ogbench_dataset_id("pointmaze-large-navigate-v0", num_episodes=30, val=True).endswith("-30ep-val-v0")


def test_episodes_are_valid_minari_episodes(small_medium):
    dataset = minari.load_dataset(small_medium)
    assert dataset.total_episodes == 4 and dataset.total_steps == 1600
    for ep in dataset.iterate_episodes():
        assert ep.observations.shape == (401, 2) and ep.observations.dtype == np.float32
        assert ep.actions.shape == (400, 2) and np.abs(ep.actions).max() <= 1.0
        assert not ep.terminations.any() and ep.truncations[-1] and not ep.truncations[:-1].any()
        assert ep.infos["goal"].shape == (401, 2) and ep.infos["success"].shape == (401,)
        # the point moves by 0.2 * action per step (more only when sliding along a wall is impossible)
        assert np.linalg.norm(np.diff(ep.observations, axis=0), axis=-1).max() < 0.3
    stats = dataset.storage.metadata["torchrl_skills_generator"]
    assert stats["goal_reaching_rate"] >= 0.95 and stats["goals_reached"] >= 4
    assert stats["noise"] == 0.5 and stats["episode_length"] == 400
    # the physics decides the data: the versions it was made with are kept beside it
    import mujoco

    assert stats["software"]["mujoco"] == mujoco.__version__ and "ogbench" in stats["software"]


def test_actions_follow_the_oracle_subgoal(small_medium):
    import ogbench

    env = ogbench.make_env_and_datasets("pointmaze-medium-navigate-v0", env_only=True)
    u = env.unwrapped
    ep = next(minari.load_dataset(small_medium).iterate_episodes())
    xy, goal = ep.observations[:-1].astype(np.float64), ep.infos["goal"][:-1]
    subgoal = np.stack([u.get_oracle_subgoal(a, g)[0] for a, g in zip(xy, goal)])
    np.testing.assert_allclose(MazeGrid.from_ogbench(env).oracle_subgoal(xy, goal), subgoal)
    expected = subgoal - xy
    expected /= np.linalg.norm(expected, axis=-1, keepdims=True) + 1e-6
    # actions = clip(direction + N(0, 0.5)): unclipped entries are the direction plus noise of std 0.5
    residual = (ep.actions - expected)[np.abs(ep.actions) < 1]
    assert abs(residual.mean()) < 0.05 and 0.4 < residual.std() < 0.6
    env.close()


def test_deterministic_and_ensure_reuses(small_medium, minari_store):
    again = generate_ogbench_dataset(
        "pointmaze-medium-navigate-v0", num_episodes=4, episode_length=400, num_envs=2, seed=0, progress=False,
        dataset_id="torchrl_skills/ogbench/repeat-v0",
    )  # fmt: skip
    for a, b in zip(minari.load_dataset(small_medium).iterate_episodes(), minari.load_dataset(again).iterate_episodes()):
        np.testing.assert_array_equal(a.observations, b.observations)
        np.testing.assert_array_equal(a.actions, b.actions)
    assert ensure_ogbench_dataset("pointmaze-medium-navigate-v0", num_episodes=4) == small_medium


@pytest.mark.parametrize("state_key", [None, "observation"])
def test_round_trip_through_skill_dataset(small_medium, state_key):
    data = SkillDataset(small_medium, seq_len=20, batch_size=8, state_key=state_key)
    assert data.state_dim == 2 and data.action_dim == 2
    batch = data.sample()
    assert batch.batch_size == (8, 20)
    # consecutive states of a sampled subtrajectory are consecutive steps of one episode
    steps = (batch["next", "observation"][:, :-1] - batch["observation"][:, 1:]).abs().max()
    assert steps == 0


def test_recover_environment(small_medium):
    dataset = minari.load_dataset(small_medium)
    env = dataset.recover_environment()
    assert env.spec.id == "pointmaze-medium-v0" and env.spec.max_episode_steps == 400
    assert env.unwrapped._terminate_at_goal is False
    eval_env = dataset.recover_environment(eval_env=True)
    assert eval_env.spec.max_episode_steps == 1000 and eval_env.unwrapped._terminate_at_goal is True
    env.close()
    eval_env.close()


def test_bad_inputs(minari_store):
    with pytest.raises(ValueError, match="Unknown OGBench navigate dataset"):
        generate_ogbench_dataset("pointmaze-tiny-navigate-v0")
    with pytest.raises(ValueError, match="num_episodes must be a positive integer"):
        generate_ogbench_dataset(num_episodes=0)
    with pytest.raises(ValueError, match="episode_length must be a positive integer"):
        generate_ogbench_dataset(num_episodes=2, episode_length=-5)
    with pytest.raises(ValueError, match="noise must be >= 0"):
        generate_ogbench_dataset(num_episodes=2, noise=-0.1)
    with pytest.raises(ValueError, match="trained humanoid expert"):
        generate_ogbench_dataset("humanoidmaze-medium-navigate-v0", num_episodes=1)
    with pytest.raises(FileNotFoundError, match="train_ant_expert.py"):
        generate_ogbench_dataset("antmaze-medium-navigate-v0", num_episodes=1, expert="missing-expert.pt")
    with pytest.raises(TypeError, match="expert must be a callable"):
        generate_ogbench_dataset("antmaze-medium-navigate-v0", num_episodes=1, expert=3)
    with pytest.raises(SystemExit):
        main(["--dataset", "nope", "--no-progress"])


def test_cli(small_medium, capsys):
    main(["--dataset", "pointmaze-medium-navigate-v0", "--num-episodes", "4", "--no-progress"])
    out = capsys.readouterr().out
    assert "already present" in out and "goal-reaching rate" in out and "generated with:     mujoco " in out
    main(["--dataset", "pointmaze-medium-navigate-v0", "--num-episodes", "1", "--val", "--no-progress"])
    out = capsys.readouterr().out
    assert "pointmaze-medium-navigate-1ep-val-v0 (generated)" in out and "1001 / 1" in out


def test_evaluation_cli_builds_the_graph_cost_as_the_examples_do(small_medium, tmp_path):
    from torchrl_skills.evaluation.ogbench import main as evaluate

    out = tmp_path / "eval"
    argv = ["--policy", "random", "--cost", "graph", "--graph-dataset", small_medium, "--graph-nodes", "40",
            "--episodes-per-task", "1", "--no-progress", "--out-dir", str(out)]  # fmt: skip
    evaluate(argv + ["--graph-entry-nodes", "3"])
    report = json.loads((out / "results.json").read_text())
    assert report["episodes"] == 5 and 0 <= report["success_rate"] <= 1  # uniform actions, all 5 tasks side by side
    config = report["config"]
    # the point mazes join nodes within 10 steps, as ogbench_pointmaze.py does (the ant mazes: 20)
    assert config["graph_edge_steps"] == 10 and config["graph_entry_nodes"] == 3 and config["graph_nodes"] == 40
    evaluate(argv + ["--graph-edge-steps", "5"])
    assert json.loads((out / "results.json").read_text())["config"]["graph_edge_steps"] == 5
