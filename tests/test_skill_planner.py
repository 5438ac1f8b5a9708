"""make_skill_planner (TorchRL's CEMPlanner over SkillModelEnv) and the SkillMPCPolicy executor."""
from __future__ import annotations

import gymnasium as gym
import gymnasium_robotics
import pytest
import torch
from tensordict import TensorDict
from test_skill_model_env import linear_skill_model
from torchrl.envs import GymEnv, TransformedEnv
from torchrl.modules import CEMPlanner

from torchrl_skills.envs.skill_model_env import SkillModelEnv
from torchrl_skills.modules import SkillModel
from torchrl_skills.modules.skill_planner import SkillCEMPlanner, SkillMPCPolicy, make_skill_planner

gym.register_envs(gymnasium_robotics)


def small_model(seed: int = 0) -> SkillModel:
    torch.manual_seed(seed)
    return SkillModel(state_dim=4, action_dim=2, z_dim=8, hidden_dim=32)


def test_make_skill_planner_defaults():
    planner = make_skill_planner(small_model())
    assert isinstance(planner, CEMPlanner) and isinstance(planner.env, SkillModelEnv)
    assert (planner.planning_horizon, planner.num_candidates, planner.top_k, planner.optim_steps) == (3, 1000, 200, 10)
    assert planner.env.eps_penalty == 10.0
    with pytest.raises(ValueError, match="top_k"):
        make_skill_planner(small_model(), num_candidates=10, top_k=20)
    with pytest.raises(TypeError, match="env_kwargs"):
        make_skill_planner(planner.env, eps_penalty=1.0)


def test_cem_reaches_goal_of_linear_world_model():
    """World model s' = s + eps: with one skill and a tiny penalty the optimum is eps = g - s."""
    torch.manual_seed(0)
    model = linear_skill_model()
    planner = make_skill_planner(model, planning_horizon=1, num_candidates=500, top_k=50, eps_penalty=1e-3)
    start = torch.tensor([[0.0, 0.0], [1.0, -1.0], [0.5, 0.5]])
    goal = torch.tensor([[1.5, -1.0], [0.0, 0.0], [-1.0, 1.0]])
    td = planner(planner.env.reset(TensorDict({"observation": start, "goal": goal}, [3])))
    reached = start + td["action"]
    assert (reached - goal).norm(dim=-1).max() < 0.1


def test_cem_receding_horizon_reaches_goal_of_linear_world_model():
    """Three skills planned, the first executed, replanned: the linear world model reaches the goal."""
    torch.manual_seed(0)
    model = linear_skill_model()
    planner = make_skill_planner(model, planning_horizon=3, num_candidates=1000, top_k=100, eps_penalty=0.05)
    goal, state = torch.tensor([3.0, -1.5]), torch.zeros(2)
    for i in range(5):
        eps = planner(planner.env.reset(TensorDict({"observation": state, "goal": goal}, [])))["action"]
        assert eps.shape == (2,)
        if i == 0:  # the first skill heads for the goal
            assert torch.cosine_similarity(eps, goal, dim=0) > 0.99
        state = state + eps
    assert (state - goal).norm() < 0.1


def make_policy_env(max_episode_steps: int, replan_every: int, planner=True):
    model = small_model()
    base = GymEnv("PointMaze_UMaze-v3", continuing_task=False, max_episode_steps=max_episode_steps)
    planner = make_skill_planner(model, num_candidates=32, top_k=4, optim_steps=2) if planner else None
    policy = SkillMPCPolicy(model, planner, replan_every=replan_every, action_spec=base.action_spec)
    return model, policy, TransformedEnv(base, policy.make_tensordict_primer())


def test_executor_replans_every_replan_every_steps_and_stops_at_episode_end():
    model, policy, env = make_policy_env(max_episode_steps=25, replan_every=10)
    env.set_seed(0)
    rollout = env.rollout(100, policy)  # stops at the time limit (truncation) after 25 steps
    assert rollout.shape == (25,) and rollout["next", "done"][-1].item()
    steps = rollout["skill_step"].squeeze(-1)
    assert steps.tolist() == list(range(10)) * 2 + list(range(5))
    assert len(policy.planning_times) == 3  # at steps 0, 10, 20
    # between replans the skill is constant, and the action is the policy mean for that skill
    skill = rollout["next", "skill"]
    for start in (0, 10, 20):
        assert (skill[start : start + 5] == skill[start]).all()
    assert not torch.equal(skill[0], skill[10])
    state = rollout["observation"].float()
    loc, _ = model.skill_policy(state, skill)
    torch.testing.assert_close(rollout["action"], loc.clamp(-1, 1))


def test_executor_replans_at_reset_inside_a_rollout():
    _, policy, env = make_policy_env(max_episode_steps=25, replan_every=10)
    env.set_seed(1)
    rollout = env.rollout(40, policy, break_when_any_done=False)  # an auto-reset after step 25
    steps = rollout["skill_step"].squeeze(-1).tolist()
    assert steps == list(range(10)) * 2 + list(range(5)) + list(range(10)) + list(range(5))
    assert len(policy.planning_times) == 5


def test_executor_in_a_torchrl_collector():
    from torchrl.collectors import Collector  # SyncDataCollector in earlier torchrl releases

    _, policy, env = make_policy_env(max_episode_steps=25, replan_every=10)
    # the env already carries the policy's primer; the examples opt out of torchrl's auto-registration too
    collector = Collector(env, policy, frames_per_batch=20, total_frames=40, auto_register_policy_transforms=False)
    policy.planning_times.clear()  # the collector runs the policy once at construction to read its outputs
    batches = [batch.clone() for batch in collector]
    collector.shutdown()
    steps = torch.cat([b["skill_step"].reshape(-1) for b in batches]).tolist()
    # 25-step episodes: replans at 0, 10, 20, then at the reset (step 25) and 10 steps later
    assert steps == list(range(10)) * 2 + list(range(5)) + list(range(10)) + list(range(5))
    assert len(policy.planning_times) == 5


def test_executor_batched_only_replans_where_needed():
    model = small_model()
    planner = make_skill_planner(model, num_candidates=32, top_k=4, optim_steps=2)
    policy = SkillMPCPolicy(model, planner, replan_every=5)
    old_skill = torch.randn(3, 8)
    td = TensorDict(
        {
            "observation": torch.randn(3, 4, dtype=torch.float64),
            "desired_goal": torch.randn(3, 2, dtype=torch.float64),
            "skill": old_skill,
            "skill_step": torch.tensor([[0], [3], [4]]),
            "skill_end": torch.zeros(3, 4),
        },
        [3],
    )
    out = policy(td)
    new_skill = out["next", "skill"]
    assert not torch.equal(new_skill[0], old_skill[0]) and torch.equal(new_skill[1:], old_skill[1:])
    assert out["next", "skill_step"].squeeze(-1).tolist() == [1, 4, 0]
    assert out["action"].shape == (3, 2) and len(policy.planning_times) == 1
    expected_end, _ = model.skill_world_model(td["observation"][:1].float(), new_skill[:1])
    torch.testing.assert_close(out["next", "skill_end"][:1], expected_end)


def test_prior_baseline_draws_skills_from_the_prior():
    _, policy, env = make_policy_env(max_episode_steps=20, replan_every=10, planner=False)
    rollout = env.rollout(20, policy)
    assert len(policy.planning_times) == 2
    assert not torch.equal(rollout["next", "skill"][0], rollout["next", "skill"][10])


def test_executor_errors_name_the_fix():
    model = small_model()
    policy = SkillMPCPolicy(model, make_skill_planner(model, num_candidates=8, top_k=2, optim_steps=1))
    td = TensorDict({"observation": torch.zeros(4), "desired_goal": torch.zeros(2)})
    with pytest.raises(KeyError, match="make_tensordict_primer"):
        policy(td.clone())
    primed = policy.make_tensordict_primer()(td.clone())
    with pytest.raises(KeyError, match="desired_goal"):
        policy(primed.exclude("desired_goal"))
    with pytest.raises(ValueError, match="goal of size 3"):
        policy(primed.clone().set("desired_goal", torch.zeros(3)))
    with pytest.raises(ValueError, match="state of size 5"):
        policy(primed.clone().set("observation", torch.zeros(5)))
    with pytest.raises(ValueError, match="different SkillModel"):
        SkillMPCPolicy(small_model(1), make_skill_planner(model))
    with pytest.raises(ValueError, match="replan_every"):
        SkillMPCPolicy(model, None, replan_every=0)


def test_eps_bound_keeps_candidates_in_the_box():
    """A far goal makes CEM push the noise out; with eps_bound it stops at the bound."""
    torch.manual_seed(0)
    planner = make_skill_planner(linear_skill_model(), num_candidates=500, top_k=50, eps_penalty=0.01, eps_bound=1.0)
    td = planner.env.reset(TensorDict({"observation": torch.zeros(2), "goal": torch.tensor([10.0, 0.0])}, []))
    eps = planner(td)["action"]
    assert eps.abs().max() <= 1.0 and eps[0] > 0.9
    with pytest.raises(ValueError, match="eps_bound"):
        make_skill_planner(linear_skill_model(), eps_bound=0.0)


@pytest.mark.parametrize(
    "env_kwargs",
    [{}, {"eps_bound": 1.0}, {"sample_world_model": True}, {"progress_discount": 0.5}],
    ids=["mean", "bounded", "sampled", "discounted"],
)
@pytest.mark.parametrize("batch", [(), (3,)], ids=["unbatched", "batch3"])
def test_tensor_imagination_gives_torchrl_cem_plans(env_kwargs, batch):
    # SkillCEMPlanner imagines on tensors; TorchRL's generic path rolls the env out. Same draws,
    # same elites: the same plan, exactly.
    model = small_model()
    kw = dict(num_candidates=64, top_k=8, optim_steps=3, eps_penalty=0.5, **env_kwargs)
    fast, generic = make_skill_planner(model, **kw), make_skill_planner(model, use_env_rollout=True, **kw)
    assert isinstance(fast, SkillCEMPlanner) and isinstance(fast, CEMPlanner)
    td = fast.env.reset(TensorDict({"observation": torch.randn(*batch, 4), "goal": torch.randn(*batch, 2)}, batch))
    torch.manual_seed(1)
    a = fast(td.clone())["action"]
    torch.manual_seed(1)
    b = generic(td.clone())["action"]
    assert a.shape == (*batch, 8)
    torch.testing.assert_close(a, b, rtol=0, atol=1e-6)


@pytest.mark.parametrize("batch", [(), (3,)], ids=["unbatched", "batch3"])
def test_select_best_returns_the_first_noise_of_the_highest_scoring_candidate(batch):
    # The candidates are drawn in CEMPlanner's order, so they can be redrawn here by hand: the
    # returned noise must be the first skill of the argmax-return candidate over all iterations.
    model = small_model()
    kw = dict(num_candidates=64, top_k=8, optim_steps=3, eps_penalty=0.5)
    planner = make_skill_planner(model, select="best", **kw)
    td = planner.env.reset(TensorDict({"observation": torch.randn(*batch, 4), "goal": torch.randn(*batch, 2)}, batch))
    torch.manual_seed(1)
    got = planner(td.clone())["action"]

    torch.manual_seed(1)
    state, goal = td["observation"].unsqueeze(-2), td["goal"].unsqueeze(-2).expand(*batch, 64, 2)
    min_cost = td["min_cost"].unsqueeze(-2).expand(*batch, 64, 1)
    means, stds = torch.zeros(*batch, 1, 3, 8), torch.ones(*batch, 1, 3, 8)
    seen, scores = [], []
    for _ in range(3):
        actions = means + stds * torch.randn(*batch, 64, 3, 8)
        returns = planner.env.transition.returns(state, actions, goal, min_cost)
        seen.append(actions), scores.append(returns)
        elites = actions.gather(-3, returns.topk(8, dim=-2).indices.unsqueeze(-1).expand(*batch, 8, 3, 8))
        means, stds = elites.mean(-3, keepdim=True), elites.std(-3, keepdim=True)
    seen, scores = torch.cat(seen, -3), torch.cat(scores, -2)
    winner = scores.argmax(-2, keepdim=True).unsqueeze(-1).expand(*batch, 1, 3, 8)
    expected = seen.gather(-3, winner)[..., 0, 0, :]
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)
    # TorchRL's choice, the mean of the last elites, is another noise.
    torch.manual_seed(1)
    mean_plan = make_skill_planner(model, **kw)(td.clone())["action"]
    assert not torch.allclose(mean_plan, got)
    with pytest.raises(ValueError, match="select"):
        make_skill_planner(model, select="median")
    with pytest.raises(ValueError, match="tensor path"):
        make_skill_planner(model, select="best", use_env_rollout=True)


def test_mean_only_paths_equal_the_gaussian_means():
    model = small_model()
    s, z = torch.randn(7, 4), torch.randn(7, 8)
    torch.testing.assert_close(model.skill_world_model.mean(s, z), model.skill_world_model(s, z)[0])
    torch.testing.assert_close(model.skill_policy.mean(s, z), model.skill_policy(s, z)[0])


def test_stall_recovery_draws_the_next_skill_of_a_stuck_episode_from_the_prior():
    model = small_model()
    planner = make_skill_planner(model, num_candidates=32, top_k=4, optim_steps=2)
    policy = SkillMPCPolicy(model, planner, replan_every=5, stall_distance=0.5)
    assert sorted(policy.make_tensordict_primer().primers.keys()) == [
        "skill", "skill_count", "skill_end", "skill_start", "skill_step"
    ]  # fmt: skip
    state = torch.tensor([[0.0, 0.0, 0.1, 0.2], [1.0, 0.0, 0.3, 0.4], [0.1, 0.0, 0.5, 0.6], [0.0, 0.0, 0.7, 0.8]])
    td = TensorDict(
        {
            "observation": state,
            "desired_goal": torch.ones(4, 2),
            "skill": torch.zeros(4, 8),
            # episode 0 starts (count 0), 1 moved 1.0, 2 moved 0.1 (stuck), 3 is mid-skill
            "skill_step": torch.tensor([[0], [0], [0], [2]]),
            "skill_end": torch.zeros(4, 4),
            "skill_start": torch.zeros(4, 2),
            "skill_count": torch.tensor([[0], [3], [3], [3]]),
        },
        [4],
    )
    torch.manual_seed(0)
    out = policy(td.clone())
    assert policy.stall_recoveries == 1 and policy.planning_sizes == [2]  # the planner ran for episodes 0 and 1
    torch.manual_seed(0)
    eps = torch.randn(3, 8)  # the prior draw comes first, one row per replanning episode
    torch.testing.assert_close(out["next", "skill"][2], model.skill_from_noise(state[2:3], eps[2:3])[0])
    expected_end, _ = model.skill_world_model(state[2:3], out["next", "skill"][2:3])
    torch.testing.assert_close(out["next", "skill_end"][2:3], expected_end)
    assert torch.equal(out["next", "skill"][3], td["skill"][3])
    # the carried start position and skill count move on only where a skill started
    torch.testing.assert_close(out["next", "skill_start"], torch.cat([state[:3, :2], torch.zeros(1, 2)]))
    assert out["next", "skill_count"].squeeze(-1).tolist() == [1, 4, 4, 3]
    # without stall recovery the same input plans all three
    plain = SkillMPCPolicy(model, planner, replan_every=5)
    plain(td.exclude("skill_start", "skill_count"))
    assert plain.planning_sizes == [3] and "skill_start" not in plain.make_tensordict_primer().primers.keys()


def test_stall_recovery_in_a_rollout_never_replaces_the_first_plan_of_an_episode():
    model = small_model()
    base = GymEnv("PointMaze_UMaze-v3", continuing_task=False, max_episode_steps=25)
    planner = make_skill_planner(model, num_candidates=32, top_k=4, optim_steps=2)
    # every skill moves less than 1e6: each replan but the first of an episode is a recovery
    policy = SkillMPCPolicy(model, planner, replan_every=10, action_spec=base.action_spec, stall_distance=1e6)
    env = TransformedEnv(base, policy.make_tensordict_primer())
    env.set_seed(0)
    rollout = env.rollout(40, policy, break_when_any_done=False)  # replans at 0, 10, 20 | reset at 25, 35
    assert len(policy.planning_times) == 2 and policy.stall_recoveries == 3
    assert rollout["next", "skill_count"].squeeze(-1)[[0, 10, 20, 24, 25, 35]].tolist() == [1, 2, 3, 3, 1, 2]
    with pytest.raises(ValueError, match="stall_distance must be > 0"):
        SkillMPCPolicy(model, planner, stall_distance=0.0)
    with pytest.raises(ValueError, match="position_indices"):
        SkillMPCPolicy(model, planner, stall_distance=0.3, position_indices=(0, 4))


def test_stall_check_inside_a_skill_switches_a_stuck_episode_to_a_prior_skill_at_once():
    model = small_model()
    planner = make_skill_planner(model, num_candidates=32, top_k=4, optim_steps=2)
    policy = SkillMPCPolicy(model, planner, replan_every=30, stall_distance=0.3, stall_check_every=10)
    # 10 steps into their skills: episode 0 moved 0.05 (< 0.3 * 10 / 30 = 0.1: stuck), episode 1
    # moved 0.15 (not stuck), episode 2 is at step 5 (no check), episode 3 at step 20 moved 0.15
    # (< 0.2: stuck), episode 4 moved 0.05 but is done (frozen; never replanned)
    state = torch.zeros(5, 4)
    state[:, 0] = torch.tensor([0.05, 0.15, 0.0, 0.15, 0.05])
    td = TensorDict(
        {
            "observation": state,
            "desired_goal": torch.ones(5, 2),
            "skill": torch.arange(5.0).unsqueeze(-1).expand(5, 8).clone(),
            "skill_step": torch.tensor([[10], [10], [5], [20], [10]]),
            "skill_end": torch.zeros(5, 4),
            "skill_start": torch.zeros(5, 2),
            "skill_count": torch.ones(5, 1, dtype=torch.int64),
            "done": torch.tensor([[False], [False], [False], [False], [True]]),
        },
        [5],
    )
    out = policy(td)
    assert policy.stall_recoveries == 2 and policy.planning_sizes == []  # prior skills only: no planner call
    assert out["skill_started"].squeeze(-1).tolist() == [True, False, False, True, False]
    assert out["next", "skill_step"].squeeze(-1).tolist() == [1, 11, 6, 1, 11]  # the new skills restart their count
    for k in (1, 2, 4):
        assert torch.equal(out["next", "skill"][k], td["skill"][k])
    for k in (0, 3):
        assert not torch.equal(out["next", "skill"][k], td["skill"][k])
    torch.testing.assert_close(out["next", "skill_start"][[0, 3]], state[[0, 3], :2])
    assert out["next", "skill_count"].squeeze(-1).tolist() == [2, 1, 1, 2, 1]
    # a regular replan checks the full period's distance, as without the in-skill check
    td["skill_step"] = torch.zeros(5, 1, dtype=torch.int64)
    td["observation"][:, 0] = torch.tensor([0.25, 0.35, 0.25, 0.35, 0.0])
    td["done"][:] = False
    out = policy(td)
    assert out["skill_started"].all() and policy.stall_recoveries == 2 + 3 and policy.planning_sizes == [2]
    with pytest.raises(ValueError, match="set stall_distance too"):
        SkillMPCPolicy(model, planner, stall_check_every=10)
    with pytest.raises(ValueError, match="stall_check_every must be a positive"):
        SkillMPCPolicy(model, planner, stall_distance=0.3, stall_check_every=0)


def test_stall_check_in_a_rollout_marks_each_new_skill():
    model = small_model()
    base = GymEnv("PointMaze_UMaze-v3", continuing_task=False, max_episode_steps=40)
    planner = make_skill_planner(model, num_candidates=32, top_k=4, optim_steps=2)
    # nothing moves 1e6: every check after the first plan of an episode finds a stall
    policy = SkillMPCPolicy(
        model, planner, replan_every=10, action_spec=base.action_spec, stall_distance=1e6, stall_check_every=4
    )
    env = TransformedEnv(base, policy.make_tensordict_primer())
    env.set_seed(0)
    rollout = env.rollout(40, policy)
    started = rollout["skill_started"].squeeze(-1).nonzero().squeeze(-1).tolist()
    assert started == [0, 4, 8, 12, 16, 20, 24, 28, 32, 36]  # each new skill is checked 4 steps in
    assert len(policy.planning_times) == 1 and policy.stall_recoveries == 9


def test_progress_discount_makes_the_first_skill_cover_more_of_the_way():
    # s' = s + eps towards a goal 6 away, 3 skills: the paper's objective (best end over the horizon)
    # splits the way evenly between the skills, the cheapest split under the noise penalty (measured:
    # first skill 1.71 for three seeds); with gamma = 0.5 the first skill's progress weighs most, so
    # the executed skill covers about half of the way (measured: 3.13-3.46)
    first = {}
    for gamma in (1.0, 0.5):
        torch.manual_seed(0)
        planner = make_skill_planner(
            linear_skill_model(), num_candidates=1000, top_k=100, eps_penalty=1.0, progress_discount=gamma
        )
        td = planner.env.reset(TensorDict({"observation": torch.zeros(2), "goal": torch.tensor([6.0, 0.0])}, []))
        first[gamma] = planner(td)["action"][0].item()
    assert 1.4 < first[1.0] < 2.1
    assert first[0.5] > 2.8
