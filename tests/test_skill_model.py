"""Skill-model networks, their TensorDict modules and the EM / ELBO loss."""
from __future__ import annotations

import math

import pytest
import torch
from tensordict import TensorDict
from torch.distributions import Independent, Normal, kl_divergence
from torchrl.envs.utils import ExplorationType, set_exploration_type

from torchrl_skills.modules import (
    SkillModel,
    SkillPolicy,
    SkillPosterior,
    SkillPrior,
    StateNormalizer,
    TemporalAbstractWorldModel,
    load_skill_model,
)
from torchrl_skills.objectives import SkillModelLoss
from torchrl_skills.objectives.skill_model_loss import normal_kl, normal_log_prob
from torchrl_skills.utils import save_checkpoint

S, A, Z, H = 5, 3, 6, 32


def make_batch(*batch, T=7, seed=0):
    g = torch.Generator().manual_seed(seed)
    obs = torch.randn(*batch, T, S, generator=g)
    return TensorDict(
        {
            "observation": obs,
            "action": torch.rand(*batch, T, A, generator=g) * 2 - 1,
            "next": {"observation": obs + 0.1 * torch.randn(*batch, T, S, generator=g)},
        },
        batch_size=[*batch, T],
    )


@pytest.fixture
def model():
    torch.manual_seed(0)
    m = SkillModel(S, A, z_dim=Z, hidden_dim=H)
    m.set_normalizer(torch.randn(S), torch.rand(S) + 0.5)
    return m


class TestNetworks:
    @pytest.mark.parametrize("batch", [(), (4,), (2, 3)])
    def test_posterior_one_skill_per_subtrajectory(self, batch):
        q = SkillPosterior(S, A, z_dim=Z, hidden_dim=H)
        loc, scale = q(torch.randn(*batch, 10, S), torch.randn(*batch, 10, A))
        assert loc.shape == scale.shape == (*batch, Z)
        assert (scale > 0).all()

    def test_posterior_is_bidirectional(self):
        # The last action changes the skill, so the backward direction is read.
        q = SkillPosterior(S, A, z_dim=Z, hidden_dim=H)
        states, actions = torch.randn(1, 10, S), torch.randn(1, 10, A)
        changed = actions.clone()
        changed[0, 0] += 1.0
        assert not torch.allclose(q(states, actions)[0], q(states, changed)[0])

    @pytest.mark.parametrize("batch", [(), (1000,), (4, 1000)])
    def test_policy_world_model_prior_any_batch(self, batch):
        state, skill = torch.randn(*batch, S), torch.randn(*batch, Z)
        assert SkillPolicy(S, A, Z, H)(state, skill)[0].shape == (*batch, A)
        assert TemporalAbstractWorldModel(S, Z, H)(state, skill)[1].shape == (*batch, S)
        assert SkillPrior(S, Z, H)(state)[0].shape == (*batch, Z)

    def test_policy_broadcasts_one_skill_over_time(self):
        pi = SkillPolicy(S, A, Z, H)
        states, skill = torch.randn(4, 10, S), torch.randn(4, Z)
        loc, _ = pi(states, skill.unsqueeze(-2))
        assert loc.shape == (4, 10, A)
        assert torch.allclose(loc, pi(states, skill.unsqueeze(-2).expand(4, 10, Z))[0])

    def test_split_first_layer_is_linear_over_the_concatenation(self):
        pi = SkillPolicy(S, A, Z, H)
        state, skill = torch.randn(4, 10, S), torch.randn(4, 1, Z)
        joint = torch.nn.Linear(S + Z, H)
        with torch.no_grad():
            joint.weight.copy_(torch.cat([pi.inputs[0].weight, pi.inputs[1].weight], dim=1))
            joint.bias.copy_(pi.inputs[0].bias)
        h = torch.relu(joint(torch.cat([pi.normalizer.normalize(state), skill.expand(4, 10, Z)], -1)))
        loc, scale = pi.head(torch.relu(pi.hidden(h)))
        ref_loc, ref_scale = pi(state, skill)
        assert torch.allclose(loc, ref_loc, atol=1e-5) and torch.allclose(scale, ref_scale, atol=1e-5)

    def test_scale_floor(self):
        prior = SkillPrior(S, Z, H, min_scale=0.05)
        with torch.no_grad():
            prior.net.head.scale.bias.fill_(-1e4)
        assert torch.allclose(prior(torch.randn(3, S))[1], torch.full((3, Z), 0.05))

    def test_world_model_residual_and_normalizer_units(self):
        norm = StateNormalizer(S, loc=torch.full((S,), 3.0), scale=torch.full((S,), 2.0))
        wm = TemporalAbstractWorldModel(S, Z, H, residual=True, normalizer=norm)
        with torch.no_grad():
            for p in wm.parameters():
                p.zero_()
        state = torch.randn(4, S)
        loc, scale = wm(state, torch.randn(4, Z))
        # zero network: residual prediction is s_0 itself, scale softplus(0)+floor in raw units
        assert torch.allclose(loc, state, atol=1e-6)
        assert torch.allclose(scale, torch.full_like(scale, 2.0 * (math.log(2) + 1e-4)))

    def test_wrong_state_dimension_is_a_clear_error(self, model):
        with pytest.raises(ValueError, match="last dimension 5"):
            model.skill_prior(torch.randn(3, 4))
        with pytest.raises(ValueError, match="same leading dimensions"):
            model.skill_posterior(torch.randn(3, 10, S), torch.randn(3, 9, A))


class TestTensorDictModules:
    def test_keys_and_shapes(self, model):
        td = TensorDict({"observation": torch.randn(2, 8, S)}, batch_size=[2, 8])
        model.prior(td)
        model.policy(td)
        model.world_model(td)
        for key, shape in [
            ("prior_loc", Z), ("prior_scale", Z), ("skill", Z), ("loc", A), ("scale", A), ("action", A),
            ("world_model_loc", S), ("world_model_scale", S), ("end_observation", S),
        ]:
            assert td[key].shape == (2, 8, shape), key
        traj = make_batch(4)[:, :].clone()
        out = model.posterior(TensorDict({"observation": traj["observation"], "action": traj["action"]}, [4]))
        assert out["skill"].shape == out["posterior_loc"].shape == (4, Z)

    def test_deterministic_mode_gives_the_mean(self, model):
        td = TensorDict({"observation": torch.randn(3, S), "skill": torch.randn(3, Z)}, [3])
        with set_exploration_type(ExplorationType.DETERMINISTIC):
            model.policy(td)
        assert torch.equal(td["action"], td["loc"])

    def test_configurable_keys(self):
        m = SkillModel(S, A, z_dim=Z, hidden_dim=H, observation_key=("obs", "state"), skill_key="z")
        td = TensorDict({("obs", "state"): torch.randn(3, S)}, [3])
        m.prior(td)
        assert td["z"].shape == (3, Z)
        assert m.policy.in_keys == [("obs", "state"), "z"]

    def test_checkpoint_round_trip_keeps_normalizer(self, model, tmp_path):
        path = save_checkpoint({"model": model.state_dict(), "model_kwargs": model.hparams}, tmp_path / "c.pt")
        loaded = load_skill_model(path)
        assert torch.equal(loaded.normalizer.loc, model.normalizer.loc)
        # the four networks share the one normaliser after loading too
        assert loaded.skill_policy.normalizer is loaded.normalizer
        x = torch.randn(2, S)
        assert torch.allclose(loaded.skill_prior(x)[0], model.skill_prior(x)[0])


class TestLoss:
    @pytest.mark.parametrize("mode", ["em", "joint"])
    @pytest.mark.parametrize("batch", [(8,), (2, 3)])
    def test_keys_and_scalars(self, model, mode, batch):
        out = SkillModelLoss(model, mode=mode)(make_batch(*batch))
        expected = ["loss_action", "loss_end_state", "loss_kl"]  # both modes
        assert sorted(k for k in out.keys() if k.startswith("loss_")) == sorted(expected)
        for key in ("kl", "log_prob_action", "log_prob_end_state", "elbo"):
            assert out[key].shape == () and not out[key].requires_grad
        assert all(torch.isfinite(v) for v in out.values())

    def test_helpers_match_torch_distributions(self):
        x, loc, scale = torch.randn(4, 6), torch.randn(4, 6), torch.rand(4, 6) + 0.1
        ref = Independent(Normal(loc, scale), 1).log_prob(x)
        assert torch.allclose(normal_log_prob(x, loc, scale), ref, atol=1e-5)
        loc2, scale2 = torch.randn(4, 6), torch.rand(4, 6) + 0.1
        ref_kl = kl_divergence(Normal(loc, scale), Normal(loc2, scale2)).sum(-1)
        assert torch.allclose(normal_kl(loc, scale, loc2, scale2), ref_kl, atol=1e-5)

    def test_kl_hand_computation(self):
        # KL(N(1, 0.5^2) || N(0, 1)) = log(1/0.5) + (0.25 + 1) / 2 - 1/2
        kl = normal_kl(torch.tensor([1.0]), torch.tensor([0.5]), torch.tensor([0.0]), torch.tensor([1.0]))
        assert kl.item() == pytest.approx(math.log(2) + 0.625 - 0.5, abs=1e-6)

    @pytest.mark.parametrize("mode", ["em", "joint"])
    def test_terms_equal_independent_computation(self, model, mode):
        batch = make_batch(8, T=7)
        torch.manual_seed(123)
        out = SkillModelLoss(model, alpha=0.7, beta=1.3, mode=mode)(batch)
        obs, act, nxt = batch["observation"], batch["action"], batch["next", "observation"]
        with torch.no_grad():
            q_loc, q_scale = model.skill_posterior(obs, act)
            torch.manual_seed(123)  # the loss draws its reparameterisation noise first
            z = q_loc + q_scale * torch.randn_like(q_loc)
            p_loc, p_scale = model.skill_prior(obs[:, 0])
            pi_loc, pi_scale = model.skill_policy(obs, z[:, None].expand(8, 7, Z))
            wm_loc, wm_scale = model.skill_world_model(obs[:, 0], z)
        kl = kl_divergence(Normal(q_loc, q_scale), Normal(p_loc, p_scale)).sum(-1)
        log_pi = Independent(Normal(pi_loc, pi_scale), 1).log_prob(act).sum(-1)  # [B]
        log_end = Independent(Normal(wm_loc, wm_scale), 1).log_prob(nxt[:, -1])
        assert out["kl"].item() == pytest.approx(kl.mean().item(), rel=1e-4)
        assert out["log_prob_action"].item() == pytest.approx(log_pi.mean().item() / 7, rel=1e-4)
        assert out["log_prob_end_state"].item() == pytest.approx(log_end.mean().item(), rel=1e-4)
        elbo = (log_pi + 0.7 * log_end - 1.3 * kl).mean() / 7
        assert out["elbo"].item() == pytest.approx(elbo.item(), rel=1e-4)
        total = sum(v for k, v in out.items() if k.startswith("loss_"))
        assert total.item() == pytest.approx(-elbo.item(), rel=1e-4)  # EM's one-pass loss is -ELBO too

    @staticmethod
    def _grads(model, loss):
        model.zero_grad(set_to_none=True)
        loss.backward()
        nets = {
            "posterior": model.skill_posterior,
            "policy": model.skill_policy,
            "world_model": model.skill_world_model,
            "prior": model.skill_prior,
        }
        return {
            name: any(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())
            for name, net in nets.items()
        }

    @staticmethod
    def _two_pass_em_losses(loss_fn, batch):
        """The EM losses as separate E- and M-step passes (the package's form before the one-pass loss):
        each network frozen by detaching its parameters, two forwards of policy and world model."""
        from torch.func import functional_call

        model, T = loss_fn.skill_model, batch.shape[-1]
        obs, act, nxt = batch["observation"], batch["action"], batch["next", "observation"]
        s0, s_end = obs[..., 0, :], nxt[..., -1, :]
        q_loc, q_scale = model.skill_posterior(obs, act)
        z = q_loc + q_scale * torch.randn_like(q_loc)
        p_loc, p_scale = model.skill_prior(s0)
        frozen_pi = {k: v.detach() for k, v in model.skill_policy.named_parameters()}
        log_pi_e = normal_log_prob(act, *functional_call(model.skill_policy, frozen_pi, (obs, z.unsqueeze(-2)))).sum(-1)
        loss_e = -log_pi_e + loss_fn.beta * normal_kl(q_loc, q_scale, p_loc.detach(), p_scale.detach())
        if loss_fn.e_step_world_model:
            frozen_wm = {k: v.detach() for k, v in model.skill_world_model.named_parameters()}
            loss_e = loss_e - loss_fn.alpha * normal_log_prob(
                s_end, *functional_call(model.skill_world_model, frozen_wm, (s0, z))
            )
        zf = z.detach()
        log_pi = normal_log_prob(act, *model.skill_policy(obs, zf.unsqueeze(-2))).sum(-1)
        log_end = normal_log_prob(s_end, *model.skill_world_model(s0, zf))
        kl = normal_kl(q_loc.detach(), q_scale.detach(), p_loc, p_scale)
        loss_m = -log_pi - loss_fn.alpha * log_end + loss_fn.beta * kl
        return loss_e.mean() / T, loss_m.mean() / T

    @pytest.mark.parametrize("e_step_world_model", [False, True])
    def test_one_pass_em_gradients_equal_two_pass(self, model, e_step_world_model):
        # The one-pass loss gives exactly the gradients of separate E- and M-step losses, for every
        # parameter, and the E-step part reaches only the posterior, the M-step part only the rest.
        loss_fn = SkillModelLoss(model, alpha=0.7, beta=1.3, e_step_world_model=e_step_world_model)
        batch = make_batch(8)
        model.zero_grad(set_to_none=True)
        torch.manual_seed(0)
        out = loss_fn(batch)
        sum(v for k, v in out.items() if k.startswith("loss_")).backward()
        one_pass = {n: p.grad.clone() for n, p in model.named_parameters()}
        model.zero_grad(set_to_none=True)
        torch.manual_seed(0)  # the same reparameterisation noise
        loss_e, loss_m = self._two_pass_em_losses(loss_fn, batch)
        e = self._grads(model, loss_e)
        assert e == {"posterior": True, "policy": False, "world_model": False, "prior": False}
        loss_m.backward()  # accumulates onto the E-step gradients: the sum of the two passes
        for name, p in model.named_parameters():
            assert torch.allclose(one_pass[name], p.grad, atol=1e-6, rtol=0), name
        assert out["loss_action"].item() + out["loss_end_state"].item() + out["loss_kl"].item() == pytest.approx(
            loss_m.item(), rel=1e-5
        )  # the one-pass loss is the M-step's value, -ELBO

    def test_em_gradients_are_separated(self, model):
        # Without the s_T term in the E-step, the world model's term reaches the world model only.
        loss = SkillModelLoss(model)
        grads = self._grads(model, loss(make_batch(8))["loss_end_state"])
        assert grads == {"posterior": False, "policy": False, "world_model": True, "prior": False}
        grads = self._grads(model, SkillModelLoss(model, mode="joint")(make_batch(8))["loss_end_state"])
        assert grads == {"posterior": True, "policy": False, "world_model": True, "prior": False}

    def test_e_step_world_model_term_reaches_posterior(self, model):
        # With the flag, the s_T term changes the posterior gradient; without it, it does not.
        batch = make_batch(8)
        grads = []
        for flag in (False, True):
            model.zero_grad(set_to_none=True)
            torch.manual_seed(0)
            out = SkillModelLoss(model, e_step_world_model=flag)(batch)
            sum(v for k, v in out.items() if k.startswith("loss_")).backward()
            grads.append(model.skill_posterior.head.loc.weight.grad.clone())
        assert not torch.allclose(grads[0], grads[1])

    def test_em_with_world_model_term_equals_joint_gradient(self, model):
        # EM with the s_T term in the E-step optimises the same objective as the joint ELBO, so
        # one backward over the sum must give exactly the joint gradient: the split is exact.
        batch = make_batch(8)
        results = []
        for loss in (SkillModelLoss(model, e_step_world_model=True), SkillModelLoss(model, mode="joint")):
            model.zero_grad(set_to_none=True)
            torch.manual_seed(0)
            out = loss(batch)
            sum(v for k, v in out.items() if k.startswith("loss_")).backward()
            results.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
        assert torch.allclose(results[0], results[1], atol=1e-5, rtol=1e-4)

    def test_parameter_groups_partition_the_model(self, model):
        loss = SkillModelLoss(model)
        ids = [id(p) for p in loss.posterior_parameters()] + [id(p) for p in loss.model_parameters()]
        assert sorted(ids) == sorted(id(p) for p in model.parameters())

    def test_set_keys(self, model):
        loss = SkillModelLoss(model)
        loss.set_keys(observation="state", next_observation=("next", "state"))
        batch = make_batch(4).rename_key_("observation", "state")
        batch.rename_key_(("next", "observation"), ("next", "state"))
        assert torch.isfinite(loss(batch)["loss_action"])
        with pytest.raises(ValueError, match="not an accepted tensordict key"):
            loss.set_keys(state="x")

    def test_bad_inputs(self, model):
        loss = SkillModelLoss(model)
        with pytest.raises(KeyError, match="set_keys"):
            loss(make_batch(4).exclude("action"))
        with pytest.raises(ValueError, match=r"batch shape \[B, T\]"):
            loss(make_batch(4)[:, 0])
        with pytest.raises(ValueError, match="mode must be"):
            SkillModelLoss(model, mode="both")
        bad = make_batch(4)
        bad["observation"] = torch.randn(4, 7, S + 1)
        bad["next", "observation"] = torch.randn(4, 7, S + 1)
        with pytest.raises(ValueError, match="last dimension 5"):
            loss(bad)
