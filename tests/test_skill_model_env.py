"""SkillModelEnv: the running-minimum reward, batch shapes, the transition and input checks."""
from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict
from torch import nn

from torchrl_skills.envs.skill_model_env import GoalDistanceCost, SkillModelEnv
from torchrl_skills.modules import SkillModel


class _UnitPrior(nn.Module):
    """p(z | s) = N(0, I) for every state."""

    def __init__(self, z_dim: int):
        super().__init__()
        self.z_dim = z_dim

    def forward(self, state):
        shape = (*state.shape[:-1], self.z_dim)
        return state.new_zeros(shape), state.new_ones(shape)


class _ShiftWorldModel(nn.Module):
    """s_T = s_0 + z (skill = displacement)."""

    def forward(self, state, skill):
        return state + skill, torch.ones_like(state)


def linear_skill_model(dim: int = 2) -> SkillModel:
    """A real SkillModel whose prior is N(0, 1) everywhere and whose world model is ``s' = s + z``.

    The two networks the planning env calls (``skill_prior``, ``skill_world_model``) are swapped
    for these closed-form ones, so the planner's optimum is known: ``eps = z = g - s``.
    """
    model = SkillModel(state_dim=dim, action_dim=2, z_dim=dim, hidden_dim=8)
    model.skill_prior = _UnitPrior(dim)
    model.skill_world_model = _ShiftWorldModel()
    return model


def reset(env: SkillModelEnv, state: torch.Tensor, goal: torch.Tensor):
    return env.reset(TensorDict({"observation": state, "goal": goal}, batch_size=state.shape[:-1]))


def test_linear_toy_model_is_linear():
    model = linear_skill_model()
    s, eps = torch.randn(5, 2), torch.randn(5, 2)
    z = model.skill_from_noise(s, eps)
    torch.testing.assert_close(z, eps)
    loc, _ = model.skill_world_model(s, z)
    torch.testing.assert_close(loc, s + eps)


def step_through(env, td, actions, key):
    """Steps ``env`` through ``actions`` one at a time: the rewards and the values of ``key`` after each step."""
    rewards, values = [], []
    for a in actions:
        td = env.step(td.set("action", a))
        rewards.append(td["next", "reward"].item())
        values.append(td["next", key].item())
        td = td["next"]
    return rewards, values


def test_running_min_reward_telescopes_hand_built():
    """Distances 9 -> 1 -> 6.25 -> 0.04 -> 1.44: rewards 8, 0, 0.96, 0 (sum d_0 - min d = 8.96)."""
    lam = 10.0
    env = SkillModelEnv(linear_skill_model(), eps_penalty=lam)
    eps = torch.tensor([[2.0, 0.0], [-1.5, 0.0], [2.3, 0.0], [-1.0, 0.0]])
    td = reset(env, torch.zeros(2), torch.tensor([3.0, 0.0]))
    assert td["min_cost"].item() == pytest.approx(9.0)
    rewards, mins = step_through(env, td, eps, "min_cost")
    penalties = lam * eps.pow(2).mean(-1)
    expected = torch.tensor([8.0, 0.0, 0.96, 0.0]) - penalties
    torch.testing.assert_close(torch.tensor(rewards), expected, atol=1e-4, rtol=0)
    assert mins == pytest.approx([1.0, 1.0, 0.04, 0.04], abs=1e-5)
    assert sum(rewards) + penalties.sum().item() == pytest.approx(9.0 - 0.04, abs=1e-4)


def test_progress_discount_weights_each_decrease_hand_built():
    """The distances of the test above with gamma = 0.5: rewards 8, 0, 0.25 * 0.96, 0 minus the penalties."""
    lam = 10.0
    env = SkillModelEnv(linear_skill_model(), eps_penalty=lam, progress_discount=0.5)
    assert env.progress_discount == 0.5 and "progress_weight" in env.observation_spec.keys()
    eps = torch.tensor([[2.0, 0.0], [-1.5, 0.0], [2.3, 0.0], [-1.0, 0.0]])
    td = reset(env, torch.zeros(2), torch.tensor([3.0, 0.0]))
    assert td["progress_weight"].item() == 1.0
    rewards, weights = step_through(env, td, eps, "progress_weight")
    expected = torch.tensor([8.0, 0.0, 0.25 * 0.96, 0.0]) - lam * eps.pow(2).mean(-1)
    torch.testing.assert_close(torch.tensor(rewards), expected, atol=1e-4, rtol=0)
    assert weights == [0.5, 0.25, 0.125, 0.0625]
    # the planner's tensor path scores the same sequence the same way
    state, goal, start_cost = torch.zeros(1, 2), torch.tensor([[3.0, 0.0]]), torch.tensor([[9.0]])
    total = env.transition.returns(state, eps.unsqueeze(0), goal, start_cost)
    assert total.item() == pytest.approx(sum(rewards), abs=1e-4)
    # without a discount the env keeps the paper's keys
    assert "progress_weight" not in SkillModelEnv(linear_skill_model()).observation_spec.keys()
    for bad in (0.0, 1.5, -0.5):
        with pytest.raises(ValueError, match="progress_discount must lie in"):
            SkillModelEnv(linear_skill_model(), progress_discount=bad)


@pytest.mark.parametrize("batch", [(), (7,), (3, 7)])
def test_rollout_sum_telescopes_and_shapes(batch):
    torch.manual_seed(0)
    model = SkillModel(state_dim=6, action_dim=2, z_dim=8, hidden_dim=32)
    lam = 2.5
    env = SkillModelEnv(model, xy_indices=(2, 4), eps_penalty=lam)
    assert env.batch_size == torch.Size([]) and not env.batch_locked
    state, goal = torch.randn(*batch, 6), torch.randn(*batch, 2)
    td = reset(env, state, goal)
    horizon = 5
    rollout = env.rollout(horizon, auto_reset=False, tensordict=td, break_when_any_done=False)
    assert rollout.shape == torch.Size([*batch, horizon])
    assert rollout["action"].shape == (*batch, horizon, 8)
    assert rollout["next", "observation"].shape == (*batch, horizon, 6)
    assert rollout["next", "reward"].shape == (*batch, horizon, 1)
    assert rollout["next", "min_cost"].shape == (*batch, horizon, 1)
    assert not rollout["next", "done"].any()
    # distances recomputed from the rollout's states, independently of the env's bookkeeping
    states = torch.cat([state.unsqueeze(-2), rollout["next", "observation"]], dim=-2)
    d = (states[..., [2, 4]] - goal.unsqueeze(-2)).pow(2).sum(-1)
    penalty = lam * rollout["action"].pow(2).mean(-1).sum(-1)
    total = rollout["next", "reward"].squeeze(-1).sum(-1)
    torch.testing.assert_close(total + penalty, d[..., 0] - d.min(-1).values, atol=1e-4, rtol=1e-4)


def test_step_is_prior_then_world_model_mean():
    torch.manual_seed(1)
    model = SkillModel(state_dim=4, action_dim=2, z_dim=8, hidden_dim=32)
    env = SkillModelEnv(model)
    s, g, eps = torch.randn(10, 4), torch.randn(10, 2), torch.randn(10, 8)
    out = env.step(reset(env, s, g).set("action", eps))["next"]
    loc, scale = model.skill_prior(s)
    expected, _ = model.skill_world_model(s, loc + scale * eps)
    torch.testing.assert_close(out["observation"], expected)
    torch.testing.assert_close(out["goal"], g)
    # the TensorDictModule handed to ModelBasedEnvBase computes the same transition
    via_module = env.world_model(reset(env, s, g).set("action", eps))
    torch.testing.assert_close(via_module["observation"], out["observation"])
    torch.testing.assert_close(via_module["reward"], out["reward"])


def test_sampled_world_model_differs_from_mean():
    torch.manual_seed(2)
    model = SkillModel(state_dim=4, action_dim=2, z_dim=8, hidden_dim=32)
    mean_env, sample_env = SkillModelEnv(model), SkillModelEnv(model, sample_world_model=True)
    td = reset(mean_env, torch.randn(200, 4), torch.randn(200, 2)).set("action", torch.randn(200, 8))
    mean = mean_env.step(td.clone())["next", "observation"]
    a = sample_env.step(td.clone())["next", "observation"]
    b = sample_env.step(td.clone())["next", "observation"]
    assert not torch.allclose(a, mean) and not torch.allclose(a, b)
    # samples are centred on the mean: the average error is far below one std
    _, scale = model.skill_world_model(td["observation"], model.skill_from_noise(td["observation"], td["action"]))
    assert ((a - mean) / scale).mean().abs() < 0.3


def test_custom_cost_and_goal_dim():
    model = SkillModel(state_dim=4, action_dim=2, z_dim=8, hidden_dim=32)

    def full_state_cost(state, goal):
        return (state - goal).abs().sum(-1, keepdim=True)

    env = SkillModelEnv(model, cost=full_state_cost, goal_dim=4)
    td = reset(env, torch.ones(3, 4), torch.zeros(3, 4))
    torch.testing.assert_close(td["min_cost"], torch.full((3, 1), 4.0))
    assert env.rollout(2, auto_reset=False, tensordict=td).shape == (3, 2)
    env = SkillModelEnv(model, cost=GoalDistanceCost((1, 3), state_dim=4))  # goal_dim read from the cost
    assert env.goal_dim == 2


def test_clear_errors():
    model = SkillModel(state_dim=4, action_dim=2, z_dim=8, hidden_dim=32)
    env = SkillModelEnv(model)
    with pytest.raises(ValueError, match="goal"):
        reset(env, torch.zeros(3, 4), torch.zeros(3, 3))
    with pytest.raises(ValueError, match="state"):
        reset(env, torch.zeros(3, 5), torch.zeros(3, 2))
    with pytest.raises(KeyError, match="goal"):
        env.reset(TensorDict({"observation": torch.zeros(4)}))
    with pytest.raises(KeyError, match="reset"):
        env.step(TensorDict({"observation": torch.zeros(4), "goal": torch.zeros(2), "action": torch.zeros(8)}))
    with pytest.raises(ValueError, match="out of range"):
        SkillModelEnv(model, xy_indices=(0, 4))
    with pytest.raises(ValueError, match="goal_dim"):
        SkillModelEnv(model, cost=lambda s, g: (s - g).sum(-1, keepdim=True))
    with pytest.raises(ValueError, match="eps_penalty"):
        SkillModelEnv(model, eps_penalty=-1.0)
    with pytest.raises(TypeError, match="SkillModel"):
        SkillModelEnv(nn.Linear(2, 2))

