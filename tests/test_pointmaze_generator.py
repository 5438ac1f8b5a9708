"""Tests of the PointMaze dataset generator (torchrl_skills.data.pointmaze).

Every test writes into its own temporary Minari store (MINARI_DATASETS_PATH) and
uses small datasets (a few thousand steps, well under a second each to generate).
"""
from __future__ import annotations

import contextlib
import logging

import numpy as np
import pytest
import torch

torch.set_num_threads(1)

import gymnasium as gym  # noqa: E402
import gymnasium_robotics  # noqa: E402
import minari  # noqa: E402
from gymnasium_robotics.envs.maze.maps import LARGE_MAZE, OPEN, U_MAZE  # noqa: E402

from torchrl_skills.data import pointmaze  # noqa: E402
from torchrl_skills.data.pointmaze import (  # noqa: E402
    DEFAULT_NUM_STEPS,
    FULL_NUM_STEPS,
    MazeGrid,
    WaypointController,
    ensure_pointmaze_dataset,
    generate_pointmaze_dataset,
    main,
    pointmaze_dataset_id,
)

gym.register_envs(gymnasium_robotics)


@pytest.fixture
def store(tmp_path, monkeypatch):
    root = tmp_path / "minari"
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(root))
    return root


def _generate(maze="medium", num_steps=3000, **kwargs):
    kwargs.setdefault("progress", False)
    return generate_pointmaze_dataset(maze, num_steps=num_steps, **kwargs)


# ----------------------------------------------------------------------------- planner


def test_planner_umaze_hand_checked_path():
    planner = MazeGrid(U_MAZE)
    # Row 1 is the top corridor, row 3 the bottom one, joined through column 3.
    expected = [(1, 1), (1, 2), (1, 3), (2, 3), (3, 3), (3, 2), (3, 1)]
    assert planner.shortest_path((1, 1), (3, 1)) == expected
    assert planner.shortest_path((3, 1), (1, 1)) == expected[::-1]
    w = planner.width
    assert planner.distance[1 * w + 1, 3 * w + 1] == 6
    assert planner.next_cell[1 * w + 1, 3 * w + 1] == 1 * w + 2
    assert planner.next_cell[2 * w + 3, 2 * w + 3] == 2 * w + 3  # already there
    # Walls are never reachable.
    assert planner.distance[0, 1 * w + 1] == -1
    assert planner.next_cell[1 * w + 1, 2 * w + 1] == -1
    with pytest.raises(ValueError, match="No path"):
        planner.shortest_path((1, 1), (2, 1))
    # Waypoints: next cell centre, or the goal itself inside the goal cell.
    np.testing.assert_allclose(planner.next_waypoint([-1.0, 1.0], [-1.1, -0.9]), [0.0, 1.0])
    np.testing.assert_allclose(planner.next_waypoint([-0.8, -1.2], [-1.1, -0.9]), [-1.1, -0.9])


def test_planner_open_room_is_manhattan():
    planner = MazeGrid(OPEN)
    free = np.flatnonzero(planner.free.ravel())
    rows, cols = np.divmod(free, planner.width)
    manhattan = np.abs(rows[:, None] - rows[None]) + np.abs(cols[:, None] - cols[None])
    np.testing.assert_array_equal(planner.distance[np.ix_(free, free)], manhattan)


def test_planner_next_cell_is_a_shortest_path_step():
    planner = MazeGrid(LARGE_MAZE)
    c, g = np.nonzero(planner.distance > 0)
    nxt = planner.next_cell[c, g]
    assert (nxt >= 0).all()
    # Each step moves to a 4-neighbour and gets exactly one cell closer to the goal.
    (r0, c0), (r1, c1) = np.divmod(c, planner.width), np.divmod(nxt, planner.width)
    np.testing.assert_array_equal(np.abs(r0 - r1) + np.abs(c0 - c1), 1)
    np.testing.assert_array_equal(planner.distance[nxt, g], planner.distance[c, g] - 1)


def test_planner_matches_env_geometry():
    env = gym.make("PointMaze_Medium-v3")
    try:
        maze = env.unwrapped.maze
        planner = MazeGrid.from_env(env)
        for index in range(planner.n_cells):
            rowcol = np.array(planner.rowcol(index))
            np.testing.assert_allclose(planner.cell_centres[index], maze.cell_rowcol_to_xy(rowcol))
        rng = np.random.default_rng(0)
        for xy in rng.uniform(-3.99, 3.99, size=(200, 2)):
            row, col = maze.cell_xy_to_rowcol(xy)
            assert planner.cell_index(xy) == row * planner.width + col
    finally:
        env.close()


def test_controller_pd_law_and_clipping():
    controller = WaypointController(MazeGrid(U_MAZE), kp=2.0, kd=0.5, action_noise=0.0)
    # In the goal cell the waypoint is the goal: a = kp * (goal - pos) - kd * vel.
    action = controller([-1.0, -1.0, 0.2, -0.2], [-0.9, -1.1])
    np.testing.assert_allclose(action, [2 * 0.1 - 0.5 * 0.2, 2 * -0.1 + 0.5 * 0.2], atol=1e-6)
    assert action.dtype == np.float32
    np.testing.assert_array_equal(controller([-1.0, 1.0, 0.0, 0.0], [-1.0, -1.0]), [1.0, 0.0])
    noisy = WaypointController(MazeGrid(U_MAZE), action_noise=5.0, seed=0)
    actions = np.stack([noisy([-1.0, -1.0, 0.0, 0.0], [-1.0, -1.0]) for _ in range(100)])
    assert (np.abs(actions) <= 1).all() and actions.std() > 0.5


# ----------------------------------------------------------------------------- dataset


def test_dataset_ids():
    assert pointmaze_dataset_id("medium") == "torchrl_skills/pointmaze/medium-v0"
    assert pointmaze_dataset_id("Large", full=True) == "torchrl_skills/pointmaze/large-full-v0"
    assert pointmaze_dataset_id("umaze", num_steps=DEFAULT_NUM_STEPS) == "torchrl_skills/pointmaze/umaze-v0"
    assert pointmaze_dataset_id("umaze", num_steps=FULL_NUM_STEPS).endswith("umaze-full-v0")
    assert pointmaze_dataset_id("umaze", num_steps=3000) == "torchrl_skills/pointmaze/umaze-3000steps-v0"
    for maze in pointmaze.MAZES:
        for full in (False, True):
            namespace, name, version = minari.dataset.minari_dataset.parse_dataset_id(
                pointmaze_dataset_id(maze, full=full)
            )
            assert namespace == "torchrl_skills/pointmaze" and version == 0
            assert name == (f"{maze}-full" if full else maze)


def test_generated_dataset_is_a_valid_minari_dataset(store):
    dataset_id = _generate("medium", num_steps=3000)
    assert dataset_id == "torchrl_skills/pointmaze/medium-3000steps-v0"
    assert (store / dataset_id / "data" / "main_data.hdf5").exists()
    assert "torchrl_skills/pointmaze" in minari.namespace.list_local_namespaces()
    # No scratch directory is left behind in the store.
    assert sorted(p.name for p in store.iterdir()) == ["torchrl_skills"]

    dataset = minari.load_dataset(dataset_id)
    assert dataset.total_steps == 3000 and dataset.total_episodes == 3
    steps = 0
    for episode in dataset.iterate_episodes():
        n = len(episode.actions)
        steps += n
        assert n == 1000
        obs = episode.observations
        assert obs["observation"].shape == (n + 1, 4)
        assert obs["achieved_goal"].shape == (n + 1, 2)
        assert obs["desired_goal"].shape == (n + 1, 2)
        np.testing.assert_array_equal(obs["achieved_goal"], obs["observation"][:, :2])
        assert episode.actions.shape == (n, 2)
        assert np.abs(episode.actions).max() <= 1.0
        assert episode.rewards.shape == episode.terminations.shape == episode.truncations.shape == (n,)
        assert not episode.terminations.any()
        assert episode.truncations[-1] and not episode.truncations[:-1].any()
        assert episode.infos["success"].shape == (n + 1,)
        # Sparse reward: 1 exactly when the current goal is reached.
        np.testing.assert_array_equal(episode.rewards, episode.infos["success"][1:])
        # Speed is clipped to 5 m/s before each 0.01 s step (one step of acceleration
        # adds a little): no jumps inside an episode.
        assert np.abs(np.diff(obs["observation"][:, :2], axis=0)).max() < 0.06
    assert steps == 3000

    env = dataset.recover_environment()
    assert env.spec.id == "PointMaze_Medium-v3" and env.spec.max_episode_steps == 1000
    assert env.spec.kwargs["continuing_task"] and env.spec.kwargs["reset_target"]
    env.close()
    eval_env = dataset.recover_environment(eval_env=True)
    assert not eval_env.spec.kwargs["reset_target"]
    eval_env.close()

    meta = dataset.storage.metadata[pointmaze.GENERATOR_METADATA_KEY]
    assert meta["num_steps"] == 3000 and meta["maze"] == "medium" and meta["seed"] == 0
    assert meta["action_noise"] == pointmaze.DEFAULT_ACTION_NOISE
    assert "Goal-reaching rate" in dataset.storage.metadata["description"]


def test_controller_reaches_goals(store):
    # Measured: 1.0 on every maze (no timeout over 20k steps each); 0.9 leaves margin.
    dataset_id = _generate("large", num_steps=4000, episode_length=1000, seed=1)
    dataset = minari.load_dataset(dataset_id)
    meta = dataset.storage.metadata[pointmaze.GENERATOR_METADATA_KEY]
    assert meta["goal_reaching_rate"] >= 0.9
    # The large maze's longest paths take about 400 steps, so goals keep being reached.
    assert meta["goals_reached"] >= 15
    rewards = sum(episode.rewards.sum() for episode in dataset.iterate_episodes())
    assert rewards == meta["goals_reached"]


def test_last_episode_is_shorter_and_steps_exact(store):
    dataset = minari.load_dataset(_generate("umaze", num_steps=2500, episode_length=1000))
    lengths = [len(episode.actions) for episode in dataset.iterate_episodes()]
    assert lengths == [1000, 1000, 500] and dataset.total_steps == 2500
    assert dataset[2].truncations[-1]


def test_generation_is_deterministic(store):
    first = minari.load_dataset(_generate("umaze", num_steps=1500, seed=3, dataset_id="test/a-v0"))
    second = minari.load_dataset(_generate("umaze", num_steps=1500, seed=3, dataset_id="test/b-v0"))
    third = minari.load_dataset(_generate("umaze", num_steps=1500, seed=4, dataset_id="test/c-v0"))
    for e1, e2 in zip(first.iterate_episodes(), second.iterate_episodes()):
        np.testing.assert_array_equal(e1.observations["observation"], e2.observations["observation"])
        np.testing.assert_array_equal(e1.actions, e2.actions)
    assert not np.array_equal(first[0].actions, third[0].actions)


def test_existing_dataset_and_overwrite(store):
    dataset_id = _generate("umaze", num_steps=1000)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        _generate("umaze", num_steps=1000)
    assert _generate("umaze", num_steps=1000, seed=7, overwrite=True) == dataset_id
    meta = minari.load_dataset(dataset_id).storage.metadata[pointmaze.GENERATOR_METADATA_KEY]
    assert meta["seed"] == 7


def test_ensure_does_not_regenerate(store, monkeypatch):
    dataset_id = ensure_pointmaze_dataset("umaze", num_steps=1000, progress=False)
    data_file = store / dataset_id / "data" / "main_data.hdf5"
    mtime = data_file.stat().st_mtime_ns

    def fail(*args, **kwargs):
        raise AssertionError("ensure_pointmaze_dataset regenerated an existing dataset")

    monkeypatch.setattr(pointmaze, "generate_pointmaze_dataset", fail)
    assert ensure_pointmaze_dataset("umaze", num_steps=1000) == dataset_id
    with pytest.warns(UserWarning, match="different generator settings.*--maze umaze --num-steps 1000 --overwrite"):
        assert ensure_pointmaze_dataset("umaze", num_steps=1000, seed=5) == dataset_id
    assert data_file.stat().st_mtime_ns == mtime


def test_bad_inputs(store):
    with pytest.raises(ValueError, match="Unknown PointMaze maze 'hard'.*large, medium, umaze"):
        _generate("hard")
    with pytest.raises(ValueError, match="Unknown PointMaze maze"):
        ensure_pointmaze_dataset("hard")
    with pytest.raises(ValueError, match="at least episode_length"):
        _generate("umaze", num_steps=500, episode_length=1000)
    with pytest.raises(ValueError, match="positive integer"):
        _generate("umaze", num_steps=0)
    with pytest.raises(ValueError, match="action_noise"):
        _generate("umaze", num_steps=1000, action_noise=-1.0)
    with pytest.raises(ValueError, match="Malformed Minari dataset id"):
        _generate("umaze", num_steps=1000, dataset_id="no version/")
    assert not store.exists() or not any(store.iterdir())


def test_cli(store, capsys):
    main(["--maze", "umaze", "--num-steps", "2000", "--seed", "1", "--no-progress"])
    out = capsys.readouterr().out
    assert "torchrl_skills/pointmaze/umaze-2000steps-v0 (generated)" in out
    assert str(store) in out and "2000 / 2" in out and "goal-reaching rate" in out
    main(["--maze", "umaze", "--num-steps", "2000", "--no-progress"])
    assert "already present" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["--maze", "hard"])
    with pytest.raises(SystemExit):
        main(["--maze", "umaze", "--full", "--num-steps", "2000"])


# ----------------------------------------------------------------------------- torchrl


@contextlib.contextmanager
def _fill_minari_memmap():
    """Works around torchrl 0.14.1's MinariExperienceReplay storing zeros.

    It fills an in-memory TensorDict and then calls ``memmap_like``, which creates an
    empty (zero) memory map of the same structure: every entry reads back as zero.
    ``memmap`` copies the content instead.
    """
    from tensordict import TensorDict

    original = TensorDict.memmap_like

    def memmap_like(self, prefix=None, copy_existing=False, **kwargs):
        return self.memmap(prefix, copy_existing=copy_existing, **kwargs)

    TensorDict.memmap_like = memmap_like
    try:
        yield
    finally:
        TensorDict.memmap_like = original


@pytest.fixture
def quiet_torchrl():
    from torchrl._utils import logger

    level = logger.level
    logger.setLevel(logging.WARNING)
    yield
    logger.setLevel(level)


def _load_replay(dataset_id, root):
    from torchrl.data.datasets import MinariExperienceReplay

    return MinariExperienceReplay(
        dataset_id, batch_size=8, load_from_local_minari=True, root=root
    )


def test_minari_experience_replay_reads_dataset(store, tmp_path, quiet_torchrl):
    dataset_id = _generate("medium", num_steps=3000)
    with _fill_minari_memmap():
        replay = _load_replay(dataset_id, tmp_path / "torchrl")
    assert len(replay) == 3000
    data = replay[:]
    dataset = minari.load_dataset(dataset_id)
    for i, episode in enumerate(dataset.iterate_episodes()):
        part = data[i * 1000 : (i + 1) * 1000]
        assert (part["episode"] == i).all()
        obs = episode.observations
        for key in ("observation", "achieved_goal", "desired_goal"):
            np.testing.assert_array_equal(part["observation", key].numpy(), obs[key][:-1])
            np.testing.assert_array_equal(part["next", "observation", key].numpy(), obs[key][1:])
        np.testing.assert_array_equal(part["action"].numpy(), episode.actions)
        np.testing.assert_array_equal(part["next", "reward"].squeeze(-1).numpy(), episode.rewards)
        np.testing.assert_array_equal(part["next", "truncated"].squeeze(-1).numpy(), episode.truncations)
    assert data["next", "done"].sum() == 3
    sample = replay.sample()
    assert sample["observation", "observation"].shape == (8, 4)
    assert sample["action"].shape == (8, 2)


@pytest.mark.xfail(
    reason="torchrl 0.14.1 MinariExperienceReplay memmaps with memmap_like (contentless): "
    "all data reads back as zeros",
    strict=False,
)
def test_minari_experience_replay_without_workaround(store, tmp_path, quiet_torchrl):
    replay = _load_replay(_generate("umaze", num_steps=2000), tmp_path / "torchrl")
    assert replay[:]["action"].abs().sum() > 0


def test_custom_layout_generates_and_loads(store):
    from torchrl_skills.data import SkillDataset

    layout = [
        [1, 1, 1, 1, 1, 1],
        [1, 0, 0, 0, 0, 1],
        [1, 0, 1, 1, 0, 1],
        [1, 0, 0, 1, 0, 1],
        [1, 1, 1, 1, 1, 1],
    ]
    dataset_id = _generate(layout, num_steps=1200, episode_length=400, seed=3)
    assert dataset_id.startswith("torchrl_skills/pointmaze/custom-")
    stored = minari.load_dataset(dataset_id).storage.metadata["torchrl_skills_generator"]
    assert stored["maze_map"] == layout
    assert stored["goal_reaching_rate"] >= 0.95
    data = SkillDataset(dataset_id, seq_len=10, batch_size=4, valid_fraction=0.0)
    xy = data.train_buffer[:]["observation"][:, :2]
    grid = MazeGrid(layout)
    # every visited position lies in a free cell of the custom layout
    rows, cols = grid.cell_rowcol(xy.numpy())
    assert grid.free[rows, cols].all()
    assert ensure_pointmaze_dataset(layout, num_steps=1200, episode_length=400, seed=3) == dataset_id
    with pytest.raises(ValueError, match="rectangular"):
        _generate([[1, 1], [1, 0, 1]])
    with pytest.raises(SystemExit):
        main(["--maze-map", "[[1,1,1],[1,1,1],[1,1,1]]", "--no-progress"])
