"""HIGL low-level SAC update throughput: torchrl ``SACLoss`` vs the same update in plain PyTorch.

Both sides update the same networks (``TransformerPolicy`` actor over ``seq_len`` tokens,
twin goal-conditioned MLP critics with target copies, learned temperature) on the same
batch of latent windows, with one Adam optimizer and a Polyak target update:

- torchrl: ``SACLoss`` (vmap over the twin critics) + ``SoftUpdate``;
- plain: the same maths written by hand (TanhNormal log-prob, min over twin targets,
  smooth-L1 critic loss, ``torch._foreach_lerp_`` target update).

Rounds alternate between the two so that machine noise hits both alike; the median
updates/s and the ratio torchrl/plain are printed (target >= 0.8). The script also times
collection: env steps/s of raw gymnasium PointMaze with random actions (reference),
torchrl ``GymEnv`` + transforms with the transformer low-level policy, and the
``HierarchicalEnv`` semi-MDP collected with torchrl's ``Collector``.

    python benchmarks/bench_higl_sac.py                 # defaults: seq_len 10, batch 128, latent 64
    python benchmarks/bench_higl_sac.py --rounds 10 --updates-per-round 20 --threads 1
"""
from __future__ import annotations

import argparse
import copy
import math
import statistics
import time

import torch
from tensordict import TensorDict
from tensordict.nn import TensorDictModule, TensorDictSequential
from torch.nn import functional as F

from torchrl.data import Bounded
from torchrl.objectives import SACLoss, SoftUpdate

from torchrl_skills.modules.transformer_policy import (
    GoalConditionedQValue,
    TransformerPolicy,
    make_goal_conditioned_critic,
    make_transformer_actor,
)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seq-len", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--latent-dim", type=int, default=64)
    p.add_argument("--d-model", type=int, default=128)
    p.add_argument("--action-dim", type=int, default=2)
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--updates-per-round", type=int, default=10)
    p.add_argument("--env-steps", type=int, default=600)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu", help="device of the SAC updates (cpu or cuda)")
    p.add_argument("--skip-env", action="store_true")
    return p.parse_args(argv)


def make_batch(B, L, d, A):
    g = torch.randn(B, d)
    return TensorDict(
        {
            "latent_window": torch.randn(B, L, d), "latent": torch.randn(B, d), "goal": g,
            "action": torch.rand(B, A) * 1.8 - 0.9,
            "next": {"latent_window": torch.randn(B, L, d), "latent": torch.randn(B, d), "goal": g,
                     "reward": -torch.rand(B, 1), "done": torch.zeros(B, 1, dtype=torch.bool),
                     "terminated": torch.zeros(B, 1, dtype=torch.bool)},
        },
        [B],
    )


class PlainSAC:
    """The reference: SAC v2 written directly against nn.Modules."""

    def __init__(self, args, gamma=0.99, tau=0.005, lr=3e-4):
        L, d, A = args.seq_len, args.latent_dim, args.action_dim
        self.actor = TransformerPolicy(d, d, 2 * A, L, d_model=args.d_model, dim_feedforward=2 * args.d_model)
        self.qs = torch.nn.ModuleList([GoalConditionedQValue(d, A, d) for _ in range(2)])
        self.q_targets = copy.deepcopy(self.qs).requires_grad_(False)
        self.log_alpha = torch.nn.Parameter(torch.tensor(math.log(0.1)))
        self.target_entropy = -float(A)
        self.gamma, self.tau = gamma, tau
        device = torch.device(args.device)
        for m in (self.actor, self.qs, self.q_targets):
            m.to(device)
        self.log_alpha = torch.nn.Parameter(self.log_alpha.detach().to(device))
        self.optim = torch.optim.Adam([*self.actor.parameters(), *self.qs.parameters(), self.log_alpha], lr=lr)

    def _sample(self, window, goal):
        loc, scale = self.actor(window, goal).chunk(2, -1)
        scale = F.softplus(scale + 0.5413) + 1e-4  # same mapping as NormalParamExtractor biased_softplus_1.0
        u = loc + scale * torch.randn_like(loc)
        a = torch.tanh(u)
        logp = torch.distributions.Normal(loc, scale).log_prob(u) - 2 * (math.log(2) - u - F.softplus(-2 * u))
        return a, logp.sum(-1)

    def update(self, td):
        z, g, a = td["latent"], td["goal"], td["action"]
        nz, done, r = td["next", "latent"], td["next", "terminated"].float(), td["next", "reward"]
        alpha = self.log_alpha.exp().detach()
        with torch.no_grad():
            na, nlogp = self._sample(td["next", "latent_window"], g)
            nq = torch.stack([q(nz, na, g) for q in self.q_targets]).min(0)[0]
            target = r + self.gamma * (1 - done) * (nq - alpha * nlogp.unsqueeze(-1))
        q_pred = torch.stack([q(z, a, g) for q in self.qs])
        loss_q = F.smooth_l1_loss(q_pred, target.expand_as(q_pred), reduction="none").sum(0).mean()
        pa, logp = self._sample(td["latent_window"], g)
        q_pi = torch.stack([torch.func.functional_call(q, {k: v.detach() for k, v in q.named_parameters()}, (z, pa, g)) for q in self.qs]).min(0)[0]
        loss_actor = (alpha * logp - q_pi.squeeze(-1)).mean()
        loss_alpha = -(self.log_alpha * (logp.detach() + self.target_entropy)).mean()
        self.optim.zero_grad()
        (loss_q + loss_actor + loss_alpha).backward()
        self.optim.step()
        with torch.no_grad():
            torch._foreach_lerp_(list(self.q_targets.parameters()), list(self.qs.parameters()), self.tau)


class TorchRLSAC:
    def __init__(self, args, gamma=0.99, tau=0.005, lr=3e-4):
        L, d, A = args.seq_len, args.latent_dim, args.action_dim
        spec = Bounded(-1, 1, (A,))
        actor = make_transformer_actor(spec, d, d, L, d_model=args.d_model, dim_feedforward=2 * args.d_model)
        critic = make_goal_conditioned_critic(d, A, d)
        self.loss = SACLoss(actor, critic, num_qvalue_nets=2, alpha_init=0.1, action_spec=spec).to(args.device)
        self.loss.make_value_estimator(gamma=gamma)
        self.updater = SoftUpdate(self.loss, tau=tau)
        self.optim = torch.optim.Adam(self.loss.parameters(), lr=lr)

    def update(self, td):
        out = self.loss(td)
        self.optim.zero_grad()
        (out["loss_actor"] + out["loss_qvalue"] + out["loss_alpha"]).backward()
        self.optim.step()
        self.updater.step()


def bench_updates(args):
    torch.manual_seed(0)
    batch = make_batch(args.batch_size, args.seq_len, args.latent_dim, args.action_dim).to(args.device)
    sync = torch.cuda.synchronize if torch.device(args.device).type == "cuda" else (lambda: None)
    impls = {"torchrl": TorchRLSAC(args), "plain": PlainSAC(args)}
    for impl in impls.values():  # warm-up (allocator, lazy init)
        for _ in range(3):
            impl.update(batch.clone())
    rates = {k: [] for k in impls}
    for _ in range(args.rounds):
        for name, impl in impls.items():
            sync()
            t0 = time.perf_counter()
            for _ in range(args.updates_per_round):
                impl.update(batch.clone())
            sync()
            rates[name].append(args.updates_per_round / (time.perf_counter() - t0))
    med = {k: statistics.median(v) for k, v in rates.items()}
    return med, rates


def bench_env(args):
    import gymnasium as gym
    import gymnasium_robotics  # noqa: F401

    from torchrl.collectors import Collector
    from torchrl.envs import CatTensors, Compose, DoubleToFloat, GymEnv, StepCounter, TransformedEnv

    from torchrl_skills.envs.hierarchical import HierarchicalEnv, make_window_env
    from torchrl_skills.modules.encoders import MLPEncoder

    kw = dict(continuing_task=False, reward_type="sparse", max_episode_steps=200)
    n = args.env_steps
    genv = gym.make("PointMaze_UMaze-v3", **kw)
    genv.reset(seed=0)
    t0 = time.perf_counter()
    for _ in range(n):
        _, _, term, trunc, _ = genv.step(genv.action_space.sample())
        if term or trunc:
            genv.reset()
    raw = n / (time.perf_counter() - t0)

    def low_env():
        env = TransformedEnv(GymEnv("PointMaze_UMaze-v3", **kw), Compose(
            DoubleToFloat(), CatTensors(["observation", "desired_goal"], out_key="state", del_keys=False), StepCounter()))
        return make_window_env(env, args.seq_len, in_key="state")

    d = args.latent_dim
    env = low_env()
    actor = make_transformer_actor(env.action_spec, d, d, args.seq_len, d_model=args.d_model, dim_feedforward=2 * args.d_model)
    policy = TensorDictSequential(TensorDictModule(MLPEncoder(6, d), ["observation_window"], ["latent_window"]), actor)
    goal = torch.zeros(d)
    flat_policy = TensorDictSequential(TensorDictModule(lambda s: goal.expand(*s.shape[:-1], d), ["state"], ["goal"]), policy)
    res = {"raw gymnasium, random actions": raw}
    for name, make in (
        ("GymEnv+window, random actions (Collector)", lambda: Collector(low_env(), None, frames_per_batch=n // 3, total_frames=n)),
        ("GymEnv+window, transformer policy (Collector)", lambda: Collector(env, flat_policy, frames_per_batch=n // 3, total_frames=n, auto_register_policy_transforms=False)),
        ("HierarchicalEnv k=10, random high policy (Collector)", lambda: Collector(
            HierarchicalEnv(low_env(), policy, Bounded(-1, 1, (d,)), k=10, record_keys=["state"]), None,
            frames_per_batch=n // 30, total_frames=n // 10, auto_register_policy_transforms=False)),
    ):
        collector = make()
        steps, t0 = 0, time.perf_counter()
        for data in collector:
            steps += int(data["next", "low_level_steps"].sum()) if ("next", "low_level_steps") in data.keys(True) else data.numel()
        res[name] = steps / (time.perf_counter() - t0)
        collector.shutdown()
    return res


def main(argv=None):
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"SAC update: seq_len={args.seq_len} batch={args.batch_size} latent={args.latent_dim} d_model={args.d_model} "
          f"threads={args.threads} device={args.device}, {args.rounds} alternating rounds x {args.updates_per_round} updates")
    med, rates = bench_updates(args)
    for k in med:
        print(f"  {k:8s} {med[k]:8.2f} updates/s (median; rounds: {', '.join(f'{r:.1f}' for r in rates[k])})")
    ratio = med["torchrl"] / med["plain"]
    print(f"  ratio torchrl/plain = {ratio:.3f}  (target >= 0.8: {'OK' if ratio >= 0.8 else 'BELOW'})")
    out = {"updates_per_s": med, "ratio": ratio}
    if not args.skip_env:
        env_rates = bench_env(args)
        ref = env_rates["raw gymnasium, random actions"]
        print("Collection (env steps/s):")
        for k, v in env_rates.items():
            print(f"  {k:55s} {v:9.1f}  ({v / ref:.3f} x raw)")
        out["env_steps_per_s"] = env_rates
    return out


if __name__ == "__main__":
    main()
