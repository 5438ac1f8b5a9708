"""HIGL components: rewards, InfoNCE, semi-MDP env, SACLoss wiring, window replay, input errors."""
import math

import pytest
import torch
from tensordict import TensorDict
from tensordict.nn import TensorDictModule
from torch import nn

from torchrl.collectors import Collector
from torchrl.data import Bounded
from torchrl.envs import GymEnv, StepCounter, TransformedEnv
from torchrl.objectives import SACLoss, SoftUpdate

from torchrl_skills.data.windows import make_window_replay_buffer
from torchrl_skills.envs.hierarchical import HierarchicalEnv, make_window_env
from torchrl_skills.modules.encoders import ConvEncoder, MLPEncoder
from torchrl_skills.modules.skill_embedding import SkillEmbedding, SkillMIEstimator
from torchrl_skills.modules.transformer_policy import (
    TransformerPolicy,
    make_goal_conditioned_critic,
    make_transformer_actor,
)
from torchrl_skills.objectives.higl_skill_mi import SkillMILoss
from torchrl_skills.objectives.latent_goal_reward import LatentGoalReward, LatentWindowRelabel, latent_goal_reward
from torchrl_skills.objectives.temporal_contrastive import (
    TemporalContrastiveLoss,
    TemporalReconstructionLoss,
    info_nce,
)

torch.set_num_threads(1)


# ----------------------------------------------------------------------------- rewards
def test_latent_goal_reward_formula():
    z_next = torch.tensor([[1.0, 2.0], [0.0, 0.0]])
    goal = torch.tensor([[0.0, 0.0], [3.0, -4.0]])
    expected = torch.tensor([[-5.0], [-25.0]])
    torch.testing.assert_close(latent_goal_reward(z_next, goal), expected)
    td = TensorDict({"goal": goal, ("next", "latent"): z_next}, [2])
    torch.testing.assert_close(LatentGoalReward()(td)["next", "reward"], expected)
    with pytest.raises(ValueError, match="same shape"):
        latent_goal_reward(z_next, goal[:, :1])


def _slices(B, S, obs_dim=3, goal_dim=3):
    obs = torch.randn(B, S + 1, obs_dim)  # s_0 .. s_S, consecutive
    return TensorDict(
        {
            "observation": obs[:, :-1],
            "goal": torch.randn(B, S, goal_dim),
            "action": torch.randn(B, S, 2),
            "next": {
                "observation": obs[:, 1:],
                "reward": torch.randn(B, S, 1),
                "done": torch.zeros(B, S, 1, dtype=torch.bool),
                "terminated": torch.zeros(B, S, 1, dtype=torch.bool),
            },
        },
        [B, S],
    ), obs


def test_relabel_recomputes_reward_with_current_encoder():
    L, B = 4, 5
    data, obs = _slices(B, L)
    relabel = LatentWindowRelabel(nn.Identity(), seq_len=L, extrinsic_coef=0.5)
    out = relabel(data.reshape(-1))  # flat, as sampled
    assert out.batch_size == torch.Size([B])
    torch.testing.assert_close(out["latent_window"], obs[:, :L])
    torch.testing.assert_close(out["next", "latent_window"], obs[:, 1 : L + 1])
    torch.testing.assert_close(out["latent"], obs[:, L - 1])
    torch.testing.assert_close(out["action"], data["action"][:, -1])
    goal = data["goal"][:, L - 1]
    torch.testing.assert_close(out["goal"], goal)
    torch.testing.assert_close(out["next", "goal"], goal)
    expected = -((obs[:, L] - goal) ** 2).sum(-1, keepdim=True) + 0.5 * data["next", "reward"][:, L - 1]
    torch.testing.assert_close(out["next", "reward"], expected)
    # a different encoder gives a different reward from the same stored data: sample-time relabelling
    scaled = LatentWindowRelabel(TensorDictModule(lambda x: 2 * x, [], []).module, seq_len=L)
    expected2 = -((2 * obs[:, L] - goal) ** 2).sum(-1, keepdim=True)
    torch.testing.assert_close(scaled(data)["next", "reward"], expected2)


def test_relabel_k_step_variant_and_errors():
    L, h, B = 3, 4, 2
    data, obs = _slices(B, L + h - 1)
    out = LatentWindowRelabel(nn.Identity(), seq_len=L, reward_horizon=h)(data)
    goal = data["goal"][:, L - 1]
    # transition at step L-1, reward on s_{L-1+h}
    torch.testing.assert_close(out["next", "reward"], -((obs[:, L - 1 + h] - goal) ** 2).sum(-1, keepdim=True))
    torch.testing.assert_close(out["next", "latent_window"], obs[:, 1 : L + 1])
    with pytest.raises(ValueError, match="slice_len"):
        LatentWindowRelabel(nn.Identity(), seq_len=L + 1, reward_horizon=h)(data)


# ----------------------------------------------------------------------------- InfoNCE
def test_info_nce_hand_computation():
    a = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    p = torch.tensor([[2.0, 0.0], [1.0, 1.0]])
    # dot logits: [[2, 1], [0, 2]]
    expected = 0.5 * (-math.log(math.exp(2) / (math.exp(2) + math.exp(1))) - math.log(math.exp(2) / (1 + math.exp(2))))
    assert info_nce(a, p).item() == pytest.approx(expected, rel=1e-6)
    # cosine with temperature 0.5: normalised a = [[1,0],[0,1]], p = [[1,0],[.7071,.7071]]
    c = 1 / math.sqrt(2)
    l0 = -math.log(math.exp(2) / (math.exp(2) + math.exp(2 * c)))
    l1 = -math.log(math.exp(2 * c) / (math.exp(0) + math.exp(2 * c)))
    assert info_nce(a, p, similarity="cosine", temperature=0.5).item() == pytest.approx((l0 + l1) / 2, rel=1e-6)


def test_info_nce_minimal_when_positives_match():
    torch.manual_seed(0)
    z = torch.nn.functional.normalize(torch.randn(8, 4), dim=-1)
    matched = info_nce(z, z, similarity="cosine", temperature=0.1)
    shuffled = info_nce(z, z.roll(1, 0), similarity="cosine", temperature=0.1)
    assert matched < shuffled
    # perfectly separated one-hot codes with a small temperature: loss -> 0
    eye = torch.eye(4)
    assert info_nce(eye, eye, similarity="cosine", temperature=0.01).item() < 1e-6


def test_temporal_contrastive_loss_module():
    obs, fut = torch.randn(6, 3), torch.randn(6, 3)
    loss = TemporalContrastiveLoss(nn.Identity(), similarity="cosine", temperature=0.2)
    out = loss(TensorDict({"observation": obs, "future_observation": fut}, [6]))
    assert set(out.keys()) == {"loss_contrastive", "contrastive_accuracy", "mi_lower_bound"}
    torch.testing.assert_close(out["loss_contrastive"], info_nce(obs, fut, "cosine", 0.2))
    loss.set_keys(future_observation=("next", "observation"))
    out2 = loss(TensorDict({"observation": obs, ("next", "observation"): fut}, [6]))
    torch.testing.assert_close(out2["loss_contrastive"], out["loss_contrastive"])
    with pytest.raises(ValueError, match="similarity"):
        TemporalContrastiveLoss(nn.Identity(), similarity="l2")
    # gradients reach the encoder
    enc = MLPEncoder(3, 4)
    out = TemporalContrastiveLoss(enc)(TensorDict({"observation": obs, "future_observation": fut}, [6]))
    out["loss_contrastive"].backward()
    assert all(p.grad is not None for p in enc.parameters())


def test_reconstruction_loss():
    enc = MLPEncoder(3, 4)
    loss = TemporalReconstructionLoss(enc, latent_dim=4, obs_shape=(3,))
    obs, fut = torch.randn(5, 3), torch.randn(5, 3)
    out = loss(TensorDict({"observation": obs, "future_observation": fut}, [5]))
    pred = loss.decoder(enc(obs))
    torch.testing.assert_close(out["loss_reconstruction"], ((pred - fut) ** 2).sum(-1).mean())


def test_skill_embedding_and_mi_loss():
    skills = SkillEmbedding(5, 3)
    ids, emb = skills.sample((7,))
    assert ids.shape == (7,) and emb.shape == (7, 3) and int(ids.max()) < 5
    torch.testing.assert_close(emb, skills.embedding.weight[ids])
    with pytest.raises(TypeError, match="integer"):
        skills(torch.zeros(2))
    with pytest.raises(IndexError, match=r"\[0, 4\]"):
        skills(torch.tensor([5]))
    est = SkillMIEstimator(latent_dim=2, embedding_dim=2)
    with torch.no_grad():
        est.project_state.weight.copy_(torch.eye(2))
        est.project_state.bias.zero_()
        est.project_skill.weight.copy_(torch.eye(2))
        est.project_skill.bias.zero_()
    z = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    out = SkillMILoss(est)(TensorDict({"latent": z, "skill_embedding": z}, [2]))
    assert out["loss_skill_mi"].item() == pytest.approx(-math.log(math.e / (math.e + 1)), rel=1e-6)
    assert out["mi_lower_bound"].item() == pytest.approx(math.log(2) + math.log(math.e / (math.e + 1)), rel=1e-6)


# ----------------------------------------------------------------------------- networks & errors
def test_conv_encoder_scaling_and_errors():
    enc = ConvEncoder(latent_dim=8)
    pix = torch.randint(0, 256, (2, 5, 3, 96, 96), dtype=torch.uint8)
    z = enc(pix)
    assert z.shape == (2, 5, 8)
    torch.testing.assert_close(z, enc(pix.float() / 255))  # scaled exactly once
    with pytest.raises(ValueError, match="channels first"):
        enc(torch.zeros(2, 96, 96, 3, dtype=torch.uint8))
    with pytest.raises(TypeError, match="uint8"):
        enc(torch.zeros(2, 3, 96, 96, dtype=torch.int32))
    with pytest.raises(ValueError, match="in_features"):
        MLPEncoder(4, 2)(torch.zeros(3, 5))


def test_conv_encoder_pool_reads_the_average_pooled_frame():
    pooled = ConvEncoder((3, 96, 96), latent_dim=8, pool=2)
    small = ConvEncoder((3, 48, 48), latent_dim=8)
    assert pooled.fc.in_features == small.fc.in_features  # 48 x 48 after the pooling
    with torch.no_grad():  # same weights on both: the pooled encoder is the small one on 2x2 means
        for p, q in zip(pooled.parameters(), small.parameters()):
            q.copy_(p)
    pix = torch.randint(0, 256, (4, 3, 96, 96), dtype=torch.uint8)
    by_hand = torch.nn.functional.avg_pool2d(pix.float() / 255, 2)
    torch.testing.assert_close(pooled(pix), small(by_hand))
    with pytest.raises(ValueError, match="pool"):
        ConvEncoder(pool=0)


def test_random_shift_moves_each_frame_by_at_most_pad_pixels_and_leaves_the_replay_alone():
    from tensordict import TensorDict
    from torchrl.data import LazyTensorStorage, TensorDictReplayBuffer

    from torchrl_skills.data import RandomShift

    pad, h, w = 2, 7, 6
    frames = torch.randint(0, 256, (5, 4, 3, h, w), dtype=torch.uint8)  # [batch, window, C, H, W]
    shift = RandomShift(pad, in_keys=["pixels"], generator=torch.Generator().manual_seed(0))
    out = shift._apply_transform(frames)
    assert out.shape == frames.shape and out.dtype == torch.uint8

    def crop(img, dy, dx):  # the frame padded by its border pixels, read from (dy, dx)
        rows = (torch.arange(h) + dy).clamp(0, h - 1)
        cols = (torch.arange(w) + dx).clamp(0, w - 1)
        return img[:, rows][:, :, cols]

    offsets = set()
    for img, got in zip(frames.reshape(-1, 3, h, w), out.reshape(-1, 3, h, w)):
        found = [(dy, dx) for dy in range(-pad, pad + 1) for dx in range(-pad, pad + 1) if torch.equal(crop(img, dy, dx), got)]
        assert found, "every frame is a shift of itself, all channels alike, by at most pad pixels"
        offsets.add(found[0])
    assert len(offsets) > 5  # drawn per frame (20 frames, 25 possible offsets)
    assert torch.equal(RandomShift(0, in_keys=["pixels"])._apply_transform(frames), frames)

    rb = TensorDictReplayBuffer(storage=LazyTensorStorage(8), batch_size=8)
    rb.append_transform(RandomShift(pad, in_keys=["pixels", ("next", "pixels")]))
    stored = frames[:, 0]
    rb.extend(TensorDict({"pixels": stored, "next": {"pixels": stored}}, [5]))
    batch = rb.sample()
    assert not torch.equal(batch["pixels"], batch["next", "pixels"])  # independent offsets per entry
    assert torch.equal(rb.storage.get(torch.arange(5))["pixels"], stored)  # the stored frames are untouched
    with pytest.raises(ValueError, match="non-negative"):
        RandomShift(-1)
    with pytest.raises(ValueError, match=r"\[..., C, H, W\]"):
        RandomShift(1)._apply_transform(torch.zeros(4, 4))


def test_transformer_policy_shapes_and_errors():
    net = TransformerPolicy(latent_dim=4, goal_dim=3, out_features=2, seq_len=5, d_model=16)
    assert net(torch.randn(2, 7, 5, 4), torch.randn(2, 7, 3)).shape == (2, 7, 2)
    assert net(torch.randn(6, 5, 4), torch.randn(6, 5, 3)).shape == (6, 2)
    with pytest.raises(ValueError, match="seq_len"):
        net(torch.randn(6, 4, 4), torch.randn(6, 3))
    with pytest.raises(ValueError, match="goal"):
        net(torch.randn(6, 5, 4), torch.randn(6, 2))
    # the output is read from the last token, which attends to the window: changing the
    # current (last) latent state must change the action parameters
    x = torch.randn(1, 5, 4)
    g = torch.randn(1, 3)
    y = net(x, g)
    x2 = x.clone()
    x2[:, -1] += 1.0
    assert not torch.allclose(net(x2, g), y)


def _sac_setup(detach_encoder):
    L, obs_dim, d, B = 4, 6, 8, 16
    encoder = MLPEncoder(obs_dim, d, num_cells=(16,))
    spec = Bounded(-1, 1, (2,))
    actor = make_transformer_actor(spec, d, d, L, d_model=16, dim_feedforward=32)
    critic = make_goal_conditioned_critic(d, 2, d, num_cells=(16, 16))
    loss = SACLoss(actor, critic, num_qvalue_nets=2, alpha_init=0.1, action_spec=spec)
    SoftUpdate(loss, tau=0.005)  # as the examples do; without an updater SACLoss warns at every call
    relabel = LatentWindowRelabel(encoder, L, detach_encoder=detach_encoder)
    data, _ = _slices(B, L, obs_dim, d)
    data["action"] = data["action"].clamp(-0.9, 0.9)
    return encoder, loss, relabel(data)


def test_sacloss_backprops_through_transformer_and_encoder():
    encoder, loss, batch = _sac_setup(detach_encoder=False)
    out = loss(batch)
    assert {"loss_actor", "loss_qvalue", "loss_alpha"} <= set(out.keys())
    assert loss.target_entropy.item() == pytest.approx(-2.0)
    (out["loss_actor"] + out["loss_qvalue"] + out["loss_alpha"]).backward()
    actor_grads = [p.grad for p in loss.actor_network_params.values(True, True)]
    assert all(g is not None and g.abs().sum() > 0 for g in actor_grads[:4])
    transformer_grad = loss.actor_network_params["module", "0", "module", "0", "module", "transformer", "layers", "0", "self_attn", "in_proj_weight"].grad
    assert transformer_grad is not None and transformer_grad.abs().sum() > 0
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in encoder.parameters())


def test_sacloss_detached_encoder_gets_no_gradient():
    encoder, loss, batch = _sac_setup(detach_encoder=True)
    out = loss(batch)
    (out["loss_actor"] + out["loss_qvalue"]).backward()
    assert all(p.grad is None for p in encoder.parameters())


# ----------------------------------------------------------------------------- semi-MDP env
class _RecordingPolicy(nn.Module):
    """A real low-level policy (deterministic, goal-conditioned) that counts its calls."""

    def __init__(self):
        super().__init__()
        self.calls = 0
        self.goals = []

    def forward(self, observation, goal):
        self.calls += 1
        self.goals.append(goal.clone())
        return torch.tanh(goal[..., :1]) * 2.0


def test_high_level_acts_every_k_steps_and_gets_summed_reward():
    k = 4
    rec = _RecordingPolicy()
    low = TensorDictModule(rec, in_keys=["observation", "goal"], out_keys=["action"])
    env = HierarchicalEnv(GymEnv("Pendulum-v1", max_episode_steps=10), low, Bounded(-1, 1, (3,)), k=k)
    env.set_seed(0)
    td = env.rollout(10, break_when_any_done=True)
    # 10 low-level steps: two full high-level steps of 4, then 2 before the time limit
    assert td["next", "low_level_steps"].squeeze(-1).tolist() == [4, 4, 2]
    assert rec.calls == 10
    assert td["next", "done"].squeeze(-1).tolist() == [False, False, True]
    mask = td["next", "low_level", "mask"]
    assert mask.sum(-1).tolist() == [4, 4, 2]
    low_rewards = td["next", "low_level", "next", "reward"].squeeze(-1) * mask
    torch.testing.assert_close(td["next", "reward"].squeeze(-1), low_rewards.sum(-1))
    # the goal is constant during each high-level step and equals the high-level action
    goals = td["next", "low_level", "goal"]
    for i, n in enumerate([4, 4, 2]):
        torch.testing.assert_close(goals[i, :n], td["action"][i].expand(n, 3))
        torch.testing.assert_close(torch.stack(rec.goals[4 * i : 4 * i + n]), td["action"][i].expand(n, 3))
    # consecutive low-level observations chain inside a high-level step
    obs, nxt = td["next", "low_level", "observation"], td["next", "low_level", "next", "observation"]
    torch.testing.assert_close(obs[0, 1:], nxt[0, :-1])
    # flattened for replay: the 10 valid steps in order, chained across high-level steps
    from torchrl_skills.envs import low_level_transitions

    flat = low_level_transitions(td, keys=["observation", "action", ("next", "observation")])
    assert flat.shape == (10,) and set(flat.keys()) == {"observation", "action", "next"}
    torch.testing.assert_close(flat["observation"][1:], flat["next", "observation"][:-1])
    with pytest.raises(KeyError, match="record_low_level=True"):
        low_level_transitions(td.exclude(("next", "low_level")))


def test_discrete_skill_variant():
    from torchrl.data import Categorical

    skills = SkillEmbedding(3, 2)
    low = TensorDictModule(lambda o, g: g[..., :1], in_keys=["observation", "goal"], out_keys=["action"])
    env = HierarchicalEnv(GymEnv("Pendulum-v1"), low, Categorical(3), k=2, goal_module=skills, goal_dim=2)
    td = env.rollout(2)
    with torch.no_grad():
        torch.testing.assert_close(td["next", "low_level", "goal"][:, 0], skills(td["action"]))


def test_window_env_and_replay_windows_never_cross_episodes():
    L = 3
    env = make_window_env(TransformedEnv(GymEnv("Pendulum-v1", max_episode_steps=5), StepCounter()), L)
    first = env.reset()
    torch.testing.assert_close(first["observation_window"], first["observation"].expand(L, 3))  # padding "same"
    collector = Collector(env, None, frames_per_batch=40, total_frames=40)
    data = next(iter(collector))
    collector.shutdown()
    rb = make_window_replay_buffer(100, slice_len=L, num_slices=32)
    rb.extend(data.exclude("observation_window", ("next", "observation_window")))
    for _ in range(5):
        w = rb.sample().reshape(32, L)
        traj = w["collector", "traj_ids"]
        assert (traj == traj[:, :1]).all()
        steps = w["step_count"].squeeze(-1)
        assert (steps[:, 1:] - steps[:, :-1] == 1).all()
        torch.testing.assert_close(w["observation"][:, 1:], w["next", "observation"][:, :-1])


@pytest.mark.parametrize("memmap", [False, True])
def test_window_replay_draws_what_torchrl_slice_sampler_draws(tmp_path, memmap):
    # make_window_replay_buffer works around two torchrl slow paths (flags read through the whole
    # batch, uint8 rows read by advanced indexing): same windows, flags and entries as torchrl's parts
    from torchrl.data import LazyTensorStorage, SliceSampler, TensorDictReplayBuffer

    n, L = 60, 4
    done = torch.zeros(n, 1, dtype=torch.bool)
    done[[5, 15, 18, 22, 40, 45, 51]] = True  # inside trajectories too, so that a flag lost in sampling shows
    data = TensorDict({
        "pixels": torch.randint(0, 256, (n, 3, 5, 5), dtype=torch.uint8), "x": torch.randn(n, 2),
        "next": {"pixels": torch.randint(0, 256, (n, 3, 5, 5), dtype=torch.uint8), "done": done,
                 "terminated": done.clone(), "truncated": torch.zeros_like(done)},
        "collector": {"traj_ids": torch.tensor([0] * 10 + [1] * 20 + [2] * 30)},
    }, [n])  # fmt: skip
    ours = make_window_replay_buffer(100, slice_len=L, num_slices=8, memmap=memmap, scratch_dir=str(tmp_path))
    plain = TensorDictReplayBuffer(
        storage=LazyTensorStorage(100), batch_size=8 * L,
        sampler=SliceSampler(slice_len=L, traj_key=("collector", "traj_ids"), strict_length=True),
    )  # fmt: skip
    ours.extend(data)
    plain.extend(data)
    for seed in range(3):
        torch.manual_seed(seed)
        a = ours.sample()
        torch.manual_seed(seed)
        b = plain.sample()
        assert set(a.keys(True, True)) == set(b.keys(True, True))
        assert (a == b).all()
        assert type(a["pixels"]) is type(b["pixels"]) is torch.Tensor  # read out of the storage, memmap or not
        assert a["next", "truncated"].reshape(8, L)[:, -1].all()  # the sampler's own flags: each window's end
    rows = torch.tensor([-1, 3, 0])
    assert (ours.storage.get(rows) == plain.storage.get(rows)).all()  # negative rows count from the end
    assert (ours[2:5] == plain[2:5]).all()


def test_relabel_encodes_only_the_states_a_sample_uses():
    class Counting(nn.Identity):
        def forward(self, x):
            self.shapes.append(tuple(x.shape[:-1]))
            return x

    L, H, B = 3, 10, 16
    encoder = Counting()
    encoder.shapes = []
    relabel = LatentWindowRelabel(encoder, seq_len=L, goal_relabel_prob=0.5, relabel_horizon=H)
    data, _ = _slices(B, relabel.slice_len)
    relabel(data)
    # the window, the next state and the relabelled goal's state, not the slice's S + 1 = 13 states
    assert encoder.shapes == [(B, L + 2)]


def test_hindsight_goal_relabelling_and_moving_transition():
    L, H, B = 3, 3, 256
    relabel = LatentWindowRelabel(nn.Identity(), seq_len=L, goal_relabel_prob=1.0, relabel_horizon=H, extrinsic_coef=1.0)
    S = relabel.slice_len
    assert S == L + H - 1
    data, obs = _slices(B, S)
    out = relabel(data)
    # recover the transition position t of each sample from its window (identity encoder)
    match = (obs[:, : S - L + 1] - out["latent_window"][:, :1]).abs().sum(-1) < 1e-6  # [B, S - L + 1]
    assert (match.sum(-1) == 1).all()
    t = match.float().argmax(-1) + L - 1
    assert set(t.tolist()) == set(range(L - 1, S))  # every position, the last one (episode end) included
    rows = torch.arange(B)
    torch.testing.assert_close(out["next", "latent_window"][:, -1], obs[rows, t + 1])
    torch.testing.assert_close(out["action"], data["action"][rows, t])
    torch.testing.assert_close(out["next", "extrinsic_reward"], data["next", "reward"][rows, t])
    # every goal is a state reached 1..min(H, S - t) steps after s_t
    match = (out["goal"].unsqueeze(1) - obs).abs().sum(-1) < 1e-6  # [B, S + 1]
    assert match.any(-1).all()
    j = match.float().argmax(-1) - t
    assert (j >= 1).all() and (j <= H).all() and (t + j <= S).all()
    assert set(j.tolist()) == set(range(1, H + 1))
    expected = -((obs[rows, t + 1] - out["goal"]) ** 2).sum(-1, keepdim=True) + data["next", "reward"][rows, t]
    torch.testing.assert_close(out["next", "reward"], expected)
    torch.testing.assert_close(out["next", "goal"], out["goal"])
    none = LatentWindowRelabel(nn.Identity(), seq_len=L, goal_relabel_prob=0.0, relabel_horizon=H)
    assert none.slice_len == L
    with pytest.raises(ValueError, match="goal_relabel_prob"):
        LatentWindowRelabel(nn.Identity(), seq_len=L, goal_relabel_prob=1.5)
