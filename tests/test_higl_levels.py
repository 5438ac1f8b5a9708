"""HIGL's reusable parts, level by level: acting (HIGLPolicy in a collector), the semi-MDP, the combined update, learning."""
import math

import pytest
import torch
from tensordict import TensorDict
from torch import nn

from torchrl.data import Bounded
from torchrl.envs.utils import ExplorationType, set_exploration_type
from torchrl.objectives import SACLoss, SoftUpdate

from torchrl_skills.envs.hierarchical import high_level_transitions
from torchrl_skills.modules import (
    HIGLPolicy,
    LandmarkSubgoal,
    RelativeSubgoal,
    MLPEncoder,
    ResidualLatentGoal,
    SkillMIEstimator,
    make_goal_conditioned_critic,
    make_high_level_actor,
    make_high_level_value,
    make_transformer_actor,
)
from torchrl_skills.objectives import (
    HighLevelReward,
    HIGLLoss,
    LatentWindowRelabel,
    SkillMILoss,
    TemporalContrastiveLoss,
    high_level_update,
    latent_progress,
    make_high_level_loss,
)


def _higl_parts(d=8, L=3, obs_dim=4, k=5):
    encoder = MLPEncoder(obs_dim, d, num_cells=(32,), normalize=True)
    high = make_high_level_actor(["observation", "goal_observation"], 2 * obs_dim, d, num_cells=(32,))
    low = make_transformer_actor(Bounded(-1, 1, (2,)), d, d, seq_len=L, d_model=16, num_layers=1)
    policy = HIGLPolicy(encoder, high, low, goal_dim=d, k=k, goal_map=ResidualLatentGoal(encoder))
    return encoder, high, low, policy


def test_higl_policy_draws_goals_every_k_steps_and_at_each_new_episode():
    pytest.importorskip("gymnasium_robotics")
    from torchrl.collectors import Collector
    from torchrl.envs import Compose, DoubleToFloat, InitTracker, TransformedEnv, UnaryTransform

    from torchrl_skills.envs import BatchedGymEnv
    from torchrl_skills.envs.hierarchical import make_window_env
    from torchrl_skills.utils import import_gymnasium_robotics

    import_gymnasium_robotics()
    k, L, N, episode = 4, 3, 3, 9
    encoder, _, _, policy = _higl_parts(L=L, k=k)
    env = BatchedGymEnv("PointMaze_UMaze-v3", N, seeds=[0, 1, 2], max_episode_steps=episode, continuing_task=False)
    env = TransformedEnv(
        env,
        Compose(
            DoubleToFloat(),
            UnaryTransform(["desired_goal"], ["goal_observation"], fn=lambda g: torch.cat([g, torch.zeros_like(g)], -1)),
        ),
    )
    env = make_window_env(env, L, in_key="observation")
    env.append_transform(InitTracker())
    env.append_transform(policy.make_tensordict_primer())
    collector = Collector(env, policy, frames_per_batch=N * 20, total_frames=N * 20, auto_register_policy_transforms=False)
    data = next(iter(collector))
    collector.shutdown()
    assert data.shape == (N, 20)
    goal_set, age, goal = data["goal_set"].squeeze(-1), data["goal_age"].squeeze(-1), data["goal"]
    t = torch.arange(20)
    # episodes of 9 steps restart at t = 0, 9, 18; within one, a goal every k = 4 steps
    expected = ((t % episode) % k == 0).expand(N, 20)
    assert torch.equal(goal_set, expected)
    assert torch.equal(age, ((t % episode) % k + 1).expand(N, 20))
    kept = ~goal_set[:, 1:]
    assert torch.equal(goal[:, 1:][kept], goal[:, :-1][kept])  # the goal holds between draws
    assert not torch.allclose(goal[:, 0], goal[:, 4])  # a new draw changes it (a stochastic high level)
    # latent goals around E(g) on the unit sphere
    torch.testing.assert_close(goal.norm(dim=-1), torch.ones(N, 20))
    with set_exploration_type(ExplorationType.DETERMINISTIC):  # the untrained mode: E(g) itself
        td = policy(data[:, 0].exclude("goal_set").set("is_init", torch.ones(N, 1, dtype=torch.bool)))
    torch.testing.assert_close(td["goal"], encoder(data[:, 0]["goal_observation"]))


def test_high_level_transitions_two_rows_by_hand():
    # row 0: k = 2, goals at 0, 2, 4 (the last still running at the end of the batch)
    # row 1: a segment continued from the previous batch (t = 0), a goal at 1, episode end at 1, new goal at 2
    data = TensorDict(
        {
            "observation": torch.arange(10.0).reshape(2, 5, 1),
            "goal_set": torch.tensor([[1, 0, 1, 0, 1], [0, 1, 1, 0, 1]]).bool().unsqueeze(-1),
            "goal_age": torch.tensor([[1, 2, 1, 2, 1], [2, 1, 1, 2, 1]]).unsqueeze(-1),
            "high_action": torch.arange(10.0).reshape(2, 5, 1) * 10,
            "high_action_log_prob": torch.zeros(2, 5),
            "next": {
                "observation": torch.arange(1.0, 11.0).reshape(2, 5, 1),
                "reward": torch.tensor([[1.0, 2.0, 3.0, 4.0, 5.0], [1.0, 2.0, 3.0, 4.0, 5.0]]).unsqueeze(-1),
                "done": torch.tensor([[0, 0, 0, 0, 0], [0, 1, 0, 0, 0]]).bool().unsqueeze(-1),
                "terminated": torch.tensor([[0, 0, 0, 0, 0], [0, 1, 0, 0, 0]]).bool().unsqueeze(-1),
            },
        },
        [2, 5],
    )
    high = high_level_transitions(data, k=2)
    assert high.shape == (2, 3)
    assert high["mask"].tolist() == [[True, True, False], [True, True, False]]
    assert high["next", "reward"].squeeze(-1).tolist() == [[3.0, 7.0, 5.0], [2.0, 7.0, 5.0]]
    assert high["duration"].squeeze(-1).tolist() == [[2, 2, 1], [1, 2, 1]]
    assert high["high_action"].squeeze(-1).tolist() == [[0.0, 20.0, 40.0], [60.0, 70.0, 90.0]]
    assert high["observation"].squeeze(-1).tolist() == [[0.0, 2.0, 4.0], [6.0, 7.0, 9.0]]
    assert high["next", "observation"].squeeze(-1).tolist() == [[2.0, 4.0, 5.0], [7.0, 9.0, 10.0]]
    assert high["next", "terminated"].squeeze(-1).tolist() == [[False, False, False], [True, False, False]]
    # the GAE chain is cut at an episode end and before an incomplete step
    assert high["next", "done"].squeeze(-1).tolist() == [[False, True, True], [True, True, True]]
    with pytest.raises(ValueError, match=r"\[N, T\] batch"):
        high_level_transitions(data[0], k=2)


def _slices(B, S, obs_dim=4, d=8):
    return TensorDict(
        {
            "observation": torch.randn(B, S, obs_dim),
            "goal": nn.functional.normalize(torch.randn(B, S, d), dim=-1),
            "action": torch.rand(B, S, 2) * 2 - 1,
            "next": {
                "observation": torch.randn(B, S, obs_dim),
                "reward": torch.zeros(B, S, 1),
                "done": torch.zeros(B, S, 1, dtype=torch.bool),
                "terminated": torch.zeros(B, S, 1, dtype=torch.bool),
            },
        },
        [B, S],
    )


def test_higl_loss_trains_every_parameter_it_owns():
    encoder, _, low, _ = _higl_parts()
    spec = Bounded(-1, 1, (2,))
    sac = SACLoss(low, make_goal_conditioned_critic(8, 2, 8, num_cells=(32,)), num_qvalue_nets=2, action_spec=spec)
    SoftUpdate(sac, tau=0.01)  # the target networks' updater (SACLoss warns without one)
    relabel = LatentWindowRelabel(encoder, 3, goal_relabel_prob=0.5, relabel_horizon=4)
    mi = SkillMILoss(SkillMIEstimator(8, 8))
    loss = HIGLLoss(relabel, sac, TemporalContrastiveLoss(encoder, similarity="cosine", temperature=0.1),
                    positive_offset=3, mi_loss=mi, mi_coef=0.5)  # fmt: skip
    out = loss(_slices(16, relabel.slice_len))
    assert set(k for k in out.keys() if k.startswith("loss_")) == {
        "loss_actor", "loss_qvalue", "loss_alpha", "loss_encoder", "loss_skill_mi"
    }  # fmt: skip
    sum(v for k, v in out.items() if k.startswith("loss_")).backward()
    params = dict(loss.named_parameters())
    assert any("encoder" in n for n in params) and any("mi_loss" in n for n in params)
    missing = [n for n, p in params.items() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing, missing
    # the flat layout a SliceSampler returns is accepted; a wrong slice length is named
    assert torch.isfinite(loss(_slices(4, relabel.slice_len).reshape(-1))["loss_actor"])
    with pytest.raises(ValueError, match="relabel.slice_len"):
        loss(_slices(4, relabel.slice_len + 1))


def test_high_level_reward_and_latent_progress_by_hand():
    encoder = MLPEncoder(4, 8, num_cells=(16,), normalize=True)
    s, s2, g = torch.randn(3, 5, 4).unbind(0)
    z, z2, zg = encoder(s), encoder(s2), encoder(g)
    expected = (z - zg).norm(dim=-1, keepdim=True) - (z2 - zg).norm(dim=-1, keepdim=True)
    torch.testing.assert_close(latent_progress(encoder, s, s2, g), expected)
    td = TensorDict({"observation": s, "goal_observation": g, "next": {"observation": s2, "reward": torch.ones(5, 1)}}, [5])
    HighLevelReward(encoder, extrinsic_coef=3.0, progress_coef=2.0)(td)
    torch.testing.assert_close(td["next", "reward"], 3.0 + 2.0 * expected)
    torch.testing.assert_close(td["next", "extrinsic_reward"], torch.ones(5, 1))
    # the correction pays for itself: minus action_cost * ||a||^2
    td = TensorDict({"observation": s, "goal_observation": g, "high_action": torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.6, 0.8], [0.0, -0.5], [1.0, 1.0]]),
                     "next": {"observation": s2, "reward": torch.ones(5, 1)}}, [5])  # fmt: skip
    HighLevelReward(encoder, extrinsic_coef=3.0, progress_coef=2.0, action_cost=0.5)(td)
    torch.testing.assert_close(td["next", "reward"], 3.0 + 2.0 * expected - 0.5 * torch.tensor([[0.0], [1.0], [1.0], [0.25], [2.0]]))
    with pytest.raises(ValueError, match="action_cost"):
        HighLevelReward(encoder, action_cost=-1.0)


def test_low_level_learns_to_reach_nearby_latent_goals():
    """A point that moves by 0.2 a: SAC through HIGLLoss, hindsight goals only, learns to steer to goals a few steps away."""
    torch.manual_seed(0)
    L, S_extra, B = 2, 3, 128
    encoder = nn.Identity()  # the latent is the position: this test is about the low level
    actor = make_transformer_actor(Bounded(-1, 1, (2,)), 2, 2, seq_len=L, d_model=32, num_layers=1)
    sac = SACLoss(actor, make_goal_conditioned_critic(2, 2, 2, num_cells=(64, 64)), num_qvalue_nets=2,
                  action_spec=Bounded(-1, 1, (2,)), alpha_init=0.05)  # fmt: skip
    sac.make_value_estimator(gamma=0.5)
    relabel = LatentWindowRelabel(encoder, L, goal_relabel_prob=1.0, relabel_horizon=S_extra + 1, latent_coef=10.0)
    loss = HIGLLoss(relabel, sac, TemporalContrastiveLoss(encoder), positive_offset=2)
    updater = SoftUpdate(sac, tau=0.05)
    optim = torch.optim.Adam(loss.parameters(), lr=1e-3)
    S = relabel.slice_len

    def random_slices(n):
        s0 = torch.rand(n, 2) * 2 - 1
        a = torch.rand(n, S, 2) * 2 - 1
        pos = s0.unsqueeze(1) + 0.2 * a.cumsum(1)
        obs = torch.cat([s0.unsqueeze(1), pos[:, :-1]], 1)
        data = _slices(n, S, obs_dim=2, d=2)
        data.update({"observation": obs, "action": a, ("next", "observation"): pos})
        return data

    def final_distance(act):
        s = torch.rand(256, 2) * 2 - 1
        g = s + nn.functional.normalize(torch.randn(256, 2), dim=-1) * 0.4
        window = s.unsqueeze(1).expand(256, L, 2).clone()
        for _ in range(6):
            a = act(window, g)
            s = s + 0.2 * a
            window = torch.cat([window[:, 1:], s.unsqueeze(1)], 1)
        return (s - g).norm(dim=-1).mean().item()

    def learned(window, g):
        td = TensorDict({"latent_window": window, "goal": g}, [window.shape[0]])
        with torch.no_grad(), set_exploration_type(ExplorationType.DETERMINISTIC):
            return actor(td)["action"]

    before = final_distance(learned)
    for _ in range(600):
        out = loss(random_slices(B))
        total = out["loss_actor"] + out["loss_qvalue"] + out["loss_alpha"]
        optim.zero_grad(); total.backward(); optim.step(); updater.step()  # fmt: skip
    after = final_distance(learned)
    random_actions = final_distance(lambda w, g: torch.rand(w.shape[0], 2) * 2 - 1)
    assert after < 0.2 < min(before, random_actions), (before, after, random_actions)


@pytest.mark.parametrize("algo,epochs", [("ppo", 4), ("reinforce", 1)])
def test_high_level_update_moves_goals_towards_higher_return(algo, epochs):
    """A one-step semi-MDP whose return is -||a - a*||^2: the package's high-level update moves the mode towards a*.

    Measured after / before on seeds 0-3: PPO 0.33 / 0.05 / 0.09 / 0.05, REINFORCE 0.14 / 0.16 / 0.16 / 0.21.
    """
    torch.manual_seed(0)
    target = torch.tensor([0.6, -0.4])
    actor = make_high_level_actor(["observation"], 2, goal_dim=2, num_cells=(32,))
    value = make_high_level_value(["observation"], 2, num_cells=(32,))
    loss = make_high_level_loss(actor, value, algo=algo, gamma=0.9, k=1)
    optim = torch.optim.Adam(loss.parameters(), lr=3e-3)
    obs = torch.randn(256, 1, 2)

    def mode_distance():
        with torch.no_grad(), set_exploration_type(ExplorationType.DETERMINISTIC):
            a = actor(TensorDict({"observation": obs[:, 0]}, [256]))["high_action"]
        return (a - target).norm(dim=-1).mean().item()

    before = mode_distance()
    for _ in range(40):
        with torch.no_grad():
            td = actor(TensorDict({"observation": obs}, [256, 1]))
        reward = -(td["high_action"] - target).pow(2).sum(-1, keepdim=True)
        ones = torch.ones(256, 1, 1, dtype=torch.bool)
        td.set("next", TensorDict({"observation": obs, "reward": reward, "done": ones, "terminated": ones}, [256, 1]))
        td.set("mask", torch.ones(256, 1, dtype=torch.bool))
        used = high_level_update(loss, optim, td, epochs=epochs)
        assert used.shape == (256,) and "advantage" in used.keys()
    after = mode_distance()
    assert before == pytest.approx(target.norm().item(), abs=1e-4)  # the untrained mode is the zero action
    assert after < 0.5 * before, (before, after)


def test_high_level_update_skips_empty_batches_and_checks_each_loss():
    actor = make_high_level_actor(["observation"], 2, goal_dim=2, num_cells=(8,))
    value = make_high_level_value(["observation"], 2, num_cells=(8,))
    loss = make_high_level_loss(actor, value, k=2)
    optim = torch.optim.Adam(loss.parameters(), lr=1e-3)
    with torch.no_grad():
        td = actor(TensorDict({"observation": torch.randn(3, 4, 2)}, [3, 4]))
    done = torch.zeros(3, 4, 1, dtype=torch.bool)
    td.set("next", TensorDict({"observation": torch.randn(3, 4, 2), "reward": torch.randn(3, 4, 1), "done": done,
                               "terminated": done}, [3, 4]))  # fmt: skip
    td.set("mask", torch.zeros(3, 4, dtype=torch.bool))
    before = [p.clone() for p in loss.parameters()]
    assert high_level_update(loss, optim, td, epochs=4) is None
    assert all(torch.equal(a, b) for a, b in zip(before, loss.parameters()))  # nothing stepped

    td["mask"][1, :2] = True
    seen = []
    used = high_level_update(loss, optim, td, epochs=3, check=lambda total, out: seen.append(total.item()))
    assert used.shape == (2,) and len(seen) == 3 and all(math.isfinite(v) for v in seen)
    with pytest.raises(ValueError, match="epochs must be at least 1"):
        high_level_update(loss, optim, td, epochs=0)


def _u_corridor(n=200):
    """Experience along y = 0 to x = 4, up to y = 2, back along y = 2: a wall between the corridors for x < 4."""
    t = torch.linspace(0, 1, n)
    path = torch.cat([torch.stack([4 * t, 0 * t], -1), torch.stack([4 + 0 * t, 2 * t], -1),
                      torch.stack([4 - 4 * t, 2 + 0 * t], -1)])  # fmt: skip
    return path, torch.zeros(3 * n, dtype=torch.long)


def _proposal(goal_map, position, goal, action=(0.0, 0.0)):
    B = len(position)
    td = TensorDict({
        "high_action": torch.tensor([action] * B), "observation": torch.cat([torch.tensor(position), torch.ones(B, 2)], -1),
        "goal_observation": torch.cat([torch.tensor(goal), torch.zeros(B, 2)], -1),
    }, [B])  # fmt: skip
    return goal_map(td)["subgoal_observation"]


def test_landmark_subgoal_follows_the_visited_route_around_a_wall():
    goal_map = LandmarkSubgoal(nn.Identity(), max_distance=1.0, num_landmarks=60)
    start, goal = [[0.0, 0.0]], [[0.0, 2.0]]
    # before any graph: the straight line, as RelativeSubgoal (through the wall), velocities zeroed
    torch.testing.assert_close(_proposal(goal_map, start, goal), torch.tensor([[0.0, 1.0, 0.0, 0.0]]))
    path, episode = _u_corridor()
    assert goal_map.update_graph(path[:100], episode[:100]) is None  # fewer than min_positions: still none
    assert goal_map.update_graph(path, episode) is goal_map.graph is not None
    positions = [[0.0, 0.0], [4.0, 0.5], [2.0, 2.0], [0.6, 2.0], [0.0, 2.0]]
    out = _proposal(goal_map, positions, goal * len(positions))
    expected = torch.tensor([
        [1.0, 0.0],  # along the bottom corridor, away from the goal, not through the wall
        [4.0, 1.5],  # up the connecting corridor
        [1.0, 2.0],  # along the top corridor
        [0.0, 2.0],  # the goal within reach: the goal itself
        [0.0, 2.0],  # at the goal
    ])  # fmt: skip
    torch.testing.assert_close(out[:, :2], expected, atol=0.15, rtol=0)
    assert (out[:, 2:] == 0).all()
    # the high level's action still moves the proposal, by up to max_distance
    moved = _proposal(goal_map, positions[:1], goal, action=(0.0, -0.5))
    torch.testing.assert_close(moved[:, :2] - out[:1, :2], torch.tensor([[0.0, -0.5]]), atol=1e-5, rtol=0)


def test_landmark_subgoal_batch_shapes_state_dict_and_errors():
    encoder = MLPEncoder(4, 8, num_cells=(16,), normalize=True)
    goal_map = LandmarkSubgoal(encoder, max_distance=1.0, num_landmarks=60)
    path, episode = _u_corridor()
    goal_map.update_graph(torch.cat([path, torch.zeros_like(path)], -1), episode)  # full observations: positions first
    td = TensorDict({"high_action": torch.zeros(3, 5, 2), "observation": torch.zeros(3, 5, 4),
                     "goal_observation": torch.tensor([0.0, 2.0, 0.0, 0.0]).expand(3, 5, 4)}, [3, 5])  # fmt: skip
    out = goal_map(td)
    assert out["goal_proposal"].shape == (3, 5, 8) and out["subgoal_observation"].shape == (3, 5, 4)
    torch.testing.assert_close(out["subgoal_observation"][..., 0], torch.ones(3, 5), atol=0.15, rtol=0)
    # the graph is derived data: not in the state_dict, which loads into a fresh goal map
    fresh = LandmarkSubgoal(MLPEncoder(4, 8, num_cells=(16,), normalize=True), max_distance=1.0)
    assert set(goal_map.state_dict()) == set(fresh.state_dict()) == {f"encoder.{k}" for k in encoder.state_dict()}
    fresh.load_state_dict(goal_map.state_dict())
    assert fresh.graph is None
    with pytest.raises(ValueError, match="num_landmarks"):
        LandmarkSubgoal(encoder, num_landmarks=1)
    with pytest.raises(ValueError, match="max_distance"):
        LandmarkSubgoal(encoder, max_distance=0.0)


def test_relative_subgoal_action_scale():
    """``action_scale`` sets how far the high-level action moves the goal; 0 ignores the action (the route alone)."""
    position, goal = [[0.0, 0.0]], [[4.0, 0.0]]
    default = RelativeSubgoal(nn.Identity(), max_distance=1.0)
    torch.testing.assert_close(_proposal(default, position, goal, action=(0.0, 0.5)), torch.tensor([[1.0, 0.5, 0.0, 0.0]]))
    half = RelativeSubgoal(nn.Identity(), max_distance=1.0, action_scale=0.2)
    torch.testing.assert_close(_proposal(half, position, goal, action=(0.0, 0.5)), torch.tensor([[1.0, 0.1, 0.0, 0.0]]))
    half.action_scale = 0.0
    torch.testing.assert_close(_proposal(half, position, goal, action=(0.7, -0.9)), torch.tensor([[1.0, 0.0, 0.0, 0.0]]))
    with pytest.raises(ValueError, match="action_scale"):
        RelativeSubgoal(nn.Identity(), action_scale=-1.0)
