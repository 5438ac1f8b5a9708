from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

warnings.filterwarnings("ignore", message=".*AdroitHand.*")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples"))
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Scripts called in-process set their own thread count (plan_to_goals.py: 2); the next test
    runs with one thread again, so that the test processes launched beside it do not compete with
    two OpenMP threads of this one."""
    yield
    torch.set_num_threads(1)


@pytest.fixture(scope="session", autouse=True)
def minari_store(tmp_path_factory):
    """Every test writes Minari datasets into a throw-away local store."""
    root = tmp_path_factory.mktemp("minari_store")
    patch = pytest.MonkeyPatch()
    patch.setenv("MINARI_DATASETS_PATH", str(root))
    yield root
    patch.undo()


def _random_maze_episodes(num_episodes: int, length: int, seed: int, teleport_at: int | None = None):
    """Episodes of the real PointMaze env under smooth random actions (an Ornstein-Uhlenbeck walk)."""
    import gymnasium as gym
    import gymnasium_robotics
    from minari.data_collector import EpisodeBuffer

    gym.register_envs(gymnasium_robotics)
    env = gym.make("PointMaze_UMaze-v3", continuing_task=True, max_episode_steps=10 * length)
    rng = np.random.default_rng(seed)
    buffers = []
    for ep in range(num_episodes):
        obs, _ = env.reset(seed=seed + ep)
        observations = {k: [v] for k, v in obs.items()}
        actions = []
        a = np.zeros(2)
        for t in range(length):
            a = np.clip(0.8 * a + 0.4 * rng.standard_normal(2), -1, 1)
            obs, *_ = env.step(a.astype(np.float32))
            if teleport_at is not None and ep == 0 and t == teleport_at:
                obs = {k: v.copy() for k, v in obs.items()}
                obs["observation"][:2] += 5.0  # a reset inside the episode, as in D4RL
            for k in observations:
                observations[k].append(obs[k])
            actions.append(a.astype(np.float32))
        buffers.append(
            EpisodeBuffer(
                observations={k: np.stack(v) for k, v in observations.items()},
                actions=np.stack(actions),
                rewards=np.zeros(length),
                terminations=np.zeros(length, dtype=bool),
                truncations=np.eye(1, length, length - 1, dtype=bool)[0],
            )
        )
    return env, buffers


def make_tiny_dataset(dataset_id: str, num_episodes: int = 6, length: int = 60, seed: int = 0, teleport_at=None):
    import minari

    env, buffers = _random_maze_episodes(num_episodes, length, seed, teleport_at)
    minari.create_dataset_from_buffers(dataset_id, buffers, env=env, algorithm_name="random-ou")
    return dataset_id


@pytest.fixture(scope="session")
def tiny_dataset(minari_store):
    """12 episodes x 60 steps of the real PointMaze UMaze env, in the local Minari store."""
    return make_tiny_dataset("torchrl_skills/tests/tiny-v0", num_episodes=12)


@pytest.fixture(scope="session")
def teleport_dataset(minari_store):
    """Like ``tiny_dataset`` but episode 0 jumps by 5 in x and y after step 20."""
    return make_tiny_dataset("torchrl_skills/tests/teleport-v0", num_episodes=2, length=40, teleport_at=20)


@pytest.fixture(scope="session")
def generated_dataset(minari_store):
    """A small dataset from the package's own PointMaze generator (waypoints + PD controller)."""
    from torchrl_skills.data.pointmaze import generate_pointmaze_dataset

    return generate_pointmaze_dataset("umaze", num_steps=6000, episode_length=300, seed=0, progress=False)
