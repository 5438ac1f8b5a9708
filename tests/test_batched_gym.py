"""BatchedGymEnv: gymnasium envs side by side in one TorchRL env; rollout_side_by_side."""
from __future__ import annotations

import gymnasium as gym
import pytest
import torch
from tensordict import TensorDict
from torchrl.envs.utils import RandomPolicy, check_env_specs

from torchrl_skills.envs import BatchedGymEnv
from torchrl_skills.evaluation import rollout_side_by_side
from torchrl_skills.utils import import_gymnasium_robotics

gym.register_envs(import_gymnasium_robotics())
ID = "PointMaze_UMaze-v3"


def test_specs_keys_and_seeded_episodes():
    env = BatchedGymEnv(ID, 3, seeds=[5, 6, 5], info_keys=["success"], continuing_task=False, max_episode_steps=10)
    check_env_specs(env)
    env.set_episode_seeds([5, 6, 5])
    td = env.reset()
    assert set(td.keys()) >= {"observation", "achieved_goal", "desired_goal", "success", "done"}
    assert torch.equal(td["desired_goal"][0], td["desired_goal"][2])  # same seed, same episode, any slot
    alone = BatchedGymEnv(ID, 1, seeds=[6], continuing_task=False).reset()
    assert torch.equal(alone["observation"][0], td["observation"][1])
    with pytest.raises(ValueError, match="one seed per slot"):
        env.set_episode_seeds([1])


def test_finished_episodes_stay_frozen_and_reset_by_mask():
    env = BatchedGymEnv(ID, 2, seeds=[0, 1], continuing_task=False, max_episode_steps=3)
    policy = RandomPolicy(env.action_spec)
    rollout, lengths = rollout_side_by_side(env, policy, max_steps=10)
    assert rollout.shape == (2, 3) and lengths.tolist() == [3, 3] and rollout["next", "truncated"][:, -1].all()
    td = env.step(policy(rollout[:, -1]["next"].clone()))  # both done: nothing moves, reward 0
    assert torch.equal(td["next", "observation"], rollout["next", "observation"][:, -1])
    assert (td["next", "reward"] == 0).all() and td["next", "done"].all()
    done = torch.ones(2, 1, dtype=torch.bool)
    td = env.reset(TensorDict(_reset=torch.tensor([[True], [False]]), episode_seed=torch.tensor([9, 0]), done=done,
                              terminated=~done, truncated=done, batch_size=[2]))  # fmt: skip
    assert td["done"].view(-1).tolist() == [False, True]
    assert torch.equal(td["desired_goal"][0], BatchedGymEnv(ID, 1, seeds=[9]).reset()["desired_goal"][0])


def test_collector_over_batched_env():
    from torchrl.collectors import Collector

    env = BatchedGymEnv(ID, 4, continuing_task=False, max_episode_steps=5)
    collector = Collector(env, None, frames_per_batch=40, total_frames=80)
    batches = [b for b in collector]
    collector.shutdown()
    assert [b.numel() for b in batches] == [40, 40]
    assert batches[0]["next", "done"].sum() >= 4  # episodes end and the collector resets their slots


def test_seeded_random_policy_repeats_its_episodes_whatever_ran_before():
    """The "random actions" reference of the HIGL examples: the same seed gives the same rollout
    after any other use of torch's global generator (RandomPolicy would not)."""
    from torchrl_skills.evaluation import SeededRandomPolicy

    def run(seed, noise_draws):
        env = BatchedGymEnv(ID, 3, seeds=[1, 2, 3], continuing_task=False, max_episode_steps=20)
        torch.rand(noise_draws)  # whatever ran before
        rollout, _ = rollout_side_by_side(env, SeededRandomPolicy(env.action_spec, seed), max_steps=20)
        env.close()
        return rollout

    a, b, other = run(0, 1), run(0, 1000), run(1, 1)
    assert torch.equal(a["action"], b["action"]) and torch.equal(a["next", "observation"], b["next", "observation"])
    assert not torch.equal(a["action"], other["action"])
    low, high = -1.0, 1.0  # PointMaze's action box
    assert a["action"].min() >= low and a["action"].max() <= high and a["action"].std() > 0.3  # uniform in the box
    with pytest.raises(TypeError, match="bounded action spec"):
        SeededRandomPolicy(torch.zeros(2), seed=0)
