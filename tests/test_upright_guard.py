"""UprightGuard: no torque while the ant's torso tilts; torso_up from MuJoCo quaternions."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from tensordict import TensorDict
from tensordict.nn import TensorDictModule

from torchrl_skills.modules import SkillModel, SkillMPCPolicy, UprightGuard, torso_up


def test_torso_up_is_the_rotated_z_axis():
    # a rotation by angle a about the x axis: q = (cos a/2, sin a/2, 0, 0), up-z = cos a
    angles = torch.linspace(0, math.pi, 7)
    q = torch.stack([torch.cos(angles / 2), torch.sin(angles / 2), torch.zeros(7), torch.zeros(7)], -1)
    torch.testing.assert_close(torso_up(q), torch.cos(angles))
    # a yaw (about z) never tilts; the quaternion's length does not matter
    yaw = torch.tensor([math.cos(1.0), 0.0, 0.0, math.sin(1.0)])
    torch.testing.assert_close(torso_up(yaw), torch.tensor(1.0))
    torch.testing.assert_close(torso_up(0.8 * q), torch.cos(angles))


def test_guard_zeroes_only_tilted_actions_and_keeps_the_wrapped_policy_reachable():
    model = SkillModel(state_dim=29, action_dim=8, z_dim=4, hidden_dim=16)
    policy = UprightGuard(SkillMPCPolicy(model, None, replan_every=5), min_up=0.8)
    # the wrapped policy's methods and attributes pass through, as with TorchRL's exploration wrappers
    assert sorted(policy.make_tensordict_primer().primers.keys()) == ["skill", "skill_end", "skill_step"]
    assert policy.replan_every == 5
    tilt = torch.tensor([0.0, 0.5, 0.7, 1.0])  # tilt angles about x (rad): up-z 1.0, 0.88, 0.76, 0.54
    obs = torch.randn(4, 29)
    obs[:, 3:7] = torch.stack([torch.cos(tilt / 2), torch.sin(tilt / 2), torch.zeros(4), torch.zeros(4)], -1)
    td = TensorDict(
        observation=obs, desired_goal=torch.zeros(4, 2), skill=torch.zeros(4, 4),
        skill_step=torch.zeros(4, 1, dtype=torch.int64), skill_end=torch.zeros(4, 29), batch_size=[4],
    )  # fmt: skip
    torch.manual_seed(0)
    raw = policy.td_module(td.clone())["action"]
    torch.manual_seed(0)
    out = policy(td.clone())
    assert (raw.abs() > 0).all()
    torch.testing.assert_close(out["action"][:2], raw[:2])
    assert torch.equal(out["action"][2:], torch.zeros(2, 8))
    assert policy.guarded_steps == 2
    assert ("next", "skill") in out.keys(True)  # the wrapped policy's other outputs are kept


def test_guard_errors_name_the_fix():
    policy = TensorDictModule(lambda o: torch.ones(*o.shape[:-1], 8), ["observation"], ["action"])
    with pytest.raises(ValueError, match="quaternion_indices must be the 4"):
        UprightGuard(policy, quaternion_indices=(3, 4, 5))
    with pytest.raises(ValueError, match=r"min_up is the up axis"):
        UprightGuard(policy, min_up=2.0)
    with pytest.raises(ValueError, match="pass the quaternion_indices"):
        UprightGuard(policy)(TensorDict(observation=torch.zeros(2, 5), batch_size=[2]))
    with pytest.raises(KeyError, match="observation_key="):
        UprightGuard(policy)(TensorDict(obs=torch.zeros(2, 29), batch_size=[2]))


def test_guard_reads_the_ant_torso_of_ogbench_antmaze():
    from torchrl_skills.envs.ogbench_maze import make_ogbench_env

    env = make_ogbench_env("antmaze-medium-navigate-v0")
    obs, _ = env.reset(seed=0)
    assert torso_up(torch.as_tensor(obs[3:7])) > 0.9  # starts upright (reset noise tilts it a little)
    data = env.unwrapped.data
    qpos, qvel = data.qpos.copy(), data.qvel.copy()
    qpos[3:7] = [0.0, 1.0, 0.0, 0.0]  # on its back
    env.unwrapped.set_state(qpos, qvel)
    obs = env.unwrapped.get_ob() if hasattr(env.unwrapped, "get_ob") else env.unwrapped._get_obs()
    np.testing.assert_allclose(obs[3:7], [0.0, 1.0, 0.0, 0.0], atol=1e-6)
    assert torso_up(torch.as_tensor(obs[3:7])) < -0.99
    env.close()
