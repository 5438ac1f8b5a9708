"""HIGL throughput: the low-level SAC update (torchrl vs plain PyTorch, and compiled), collection, the full HIGL update.

1. **Low-level SAC update.** All sides update the same networks (``TransformerPolicy`` actor
   over ``seq_len`` tokens, twin goal-conditioned MLP critics with target copies, learned
   temperature) on the same batch of latent windows, with one Adam optimizer and a Polyak
   target update:

   - torchrl: ``SACLoss`` (vmap over the twin critics) + ``SoftUpdate``;
   - plain: the same maths written by hand (TanhNormal log-prob, min over twin targets,
     smooth-L1 critic loss, ``torch._foreach_lerp_`` target update);
   - torchrl+compile (``--compile``, the default): the torchrl side with the actor's
     ``TransformerPolicy`` compiled by ``torch.compile`` (the critic stays eager: under
     ``SACLoss``'s vmap a compiled critic falls back to eager anyway, see ``TorchRLSAC``).

   Rounds alternate between them so that machine noise hits all alike; the median updates/s,
   the ratio torchrl/plain (target >= 0.8), the compile time (the first, compiling update: two
   graphs, with and without grad; much shorter when inductor's on-disk cache, e.g.
   ``/tmp/torchinductor_$USER``, already holds them from an earlier run with the same sizes)
   and the ratio compile/torchrl are printed. A failed compilation (no C++ compiler, ...) prints
   one line and drops that side.

2. **Collection**, env steps/s, each against the raw gymnasium loop with random actions
   (one env, reset at episode end) measured in the same run:

   - the old one-env path on ``PointMaze_UMaze-v3``: torchrl ``GymEnv`` + window transforms,
     random actions and the transformer low-level policy, and the ``HierarchicalEnv``
     semi-MDP, all through torchrl's ``Collector``;
   - the path of ``examples/higl_pointmaze.py`` on sparse ``PointMaze_Medium-v3``: its
     ``make_env`` (``BatchedGymEnv`` x ``--num-envs`` stepped side by side, one batched
     policy call per step, the example's 800-step batches, ``--batched-env-steps`` in all)
     through ``Collector`` with random actions (no HIGL transforms),
     with the flat SAC agent's MLP policy, and with the window transform, ``InitTracker`` and
     the primer of ``HIGLPolicy`` (encoder + high level every ``k`` steps + transformer).

3. **Agent updates of the example** at its defaults (batch 256): ``HIGLAgent.update()``
   (``HIGLLoss``: SAC on relabelled latent windows + temporal InfoNCE for the encoder) next to
   the flat ``SACAgent.update()`` (MLP), in alternating rounds after filling both replay
   buffers with ``--collect-steps`` env steps collected by the HIGL policy; prints both
   updates/s and the ratio higl/sac.

``main`` returns all numbers as a dict.

    python benchmarks/bench_higl_sac.py                 # defaults: seq_len 10, batch 128, latent 64, 8 envs
    python benchmarks/bench_higl_sac.py --rounds 10 --updates-per-round 20 --threads 1
    python benchmarks/bench_higl_sac.py --no-compile --skip-env   # updates only, no compilation
"""
from __future__ import annotations

import argparse
import copy
import importlib.util
import math
import statistics
import sys
import time
from pathlib import Path

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
    p.add_argument("--compile", action=argparse.BooleanOptionalAction, default=True,
                   help="also time the torchrl update with the actor's transformer under torch.compile")
    p.add_argument("--num-envs", type=int, default=8, help="envs side by side in the example's BatchedGymEnv")
    p.add_argument("--batched-env-steps", type=int, default=2400,
                   help="env steps (all envs together) per collection row of the example's path, and of its raw reference")
    p.add_argument("--collect-steps", type=int, default=4000,
                   help="env steps collected into the example agents' replay buffers before timing their updates")
    p.add_argument("--skip-env", action="store_true", help="skip the collection measurements")
    p.add_argument("--skip-agents", action="store_true", help="skip the example agents' updates (HIGL vs flat SAC)")
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


def _inner(module, cls):
    """The TensorDictModule of ``module`` that wraps an instance of ``cls``."""
    return next(m for m in module.modules() if isinstance(m, TensorDictModule) and isinstance(m.module, cls))


class TorchRLSAC:
    """``SACLoss`` + ``SoftUpdate``; ``compile=True`` compiles the actor's ``TransformerPolicy``.

    The network is compiled in place (``nn.Module.compile()``) inside the loss's functional
    copy of the actor, so the loss's parameter TensorDict (swapped in by ``to_module``) keeps
    its keys; ``module.module = torch.compile(net)`` would insert an ``_orig_mod`` level.
    The critic is not compiled: ``SACLoss`` calls it through ``torch.func.vmap`` over the twin
    parameter sets, and dynamo cannot trace a compiled function called by vmap from eager code
    ("Unsupported functorch tracing attempt: Calling torch.func.vmap(compiled_fn) function
    from eager mode is not supported", pytorch#128711): it logs that graph break and runs the
    critic eagerly, so compiling it changes nothing (checked with torch 2.13).
    """

    def __init__(self, args, gamma=0.99, tau=0.005, lr=3e-4, compile=False):
        L, d, A = args.seq_len, args.latent_dim, args.action_dim
        spec = Bounded(-1, 1, (A,))
        actor = make_transformer_actor(spec, d, d, L, d_model=args.d_model, dim_feedforward=2 * args.d_model)
        critic = make_goal_conditioned_critic(d, A, d)
        self.loss = SACLoss(actor, critic, num_qvalue_nets=2, alpha_init=0.1, action_spec=spec).to(args.device)
        if compile:
            _inner(self.loss.actor_network, TransformerPolicy).module.compile()
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
    compile_s = None
    if args.compile:
        try:
            impl = TorchRLSAC(args, compile=True)
            sync()
            t0 = time.perf_counter()
            impl.update(batch.clone())  # compiles (one graph with grad, one without for the next action)
            sync()
            compile_s = time.perf_counter() - t0
            for _ in range(3):  # warm-up after compilation
                impl.update(batch.clone())
            impls["torchrl+compile"] = impl
        except Exception as e:  # no C++ compiler, unsupported platform, ...
            print(f"  torch.compile skipped: {type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}")
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
    return med, rates, compile_s


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


# ----------------------------------------------------------------------------- the example's path
EXAMPLE_ENV = "PointMaze_Medium-v3"


def load_example():
    """``examples/higl_pointmaze.py`` as a module (the examples are not a package)."""
    path = Path(__file__).resolve().parents[1] / "examples" / "higl_pointmaze.py"
    spec = importlib.util.spec_from_file_location("higl_pointmaze", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def example_setup(args):
    """The example module, its args (defaults, ``--num-envs``), the action spec and fresh HIGL / flat SAC agents."""
    example = load_example()
    n = args.num_envs
    fpb = max(n, 800 // n * n)  # the example's default batch, a multiple of num_envs as it requires
    eargs = example.parse_args(["--env-id", EXAMPLE_ENV, "--num-envs", str(n), "--frames-per-batch", str(fpb),
                                "--logger", "none", "--no-progress", "--num-threads", str(args.threads)])
    probe = example.make_env(eargs, 1, None)
    spec = probe.action_spec[0]
    probe.close()
    torch.manual_seed(0)
    higl = example.HIGLAgent(eargs, spec, "cpu")
    sac = example.SACAgent(eargs, spec, "cpu", her=False)
    return example, eargs, higl, sac


def collect(env, policy, frames_per_batch, total_frames, on_batch=None):
    """Env steps/s of a torchrl ``Collector`` (all envs together), from its first batch request to its last batch."""
    from torchrl.collectors import Collector

    total_frames = -(-total_frames // frames_per_batch) * frames_per_batch  # whole batches
    collector = Collector(env, policy, frames_per_batch=frames_per_batch, total_frames=total_frames,
                          auto_register_policy_transforms=False)
    steps, t0 = 0, time.perf_counter()
    for data in collector:
        steps += data.numel()
        if on_batch is not None:
            on_batch(data)
    rate = steps / (time.perf_counter() - t0)
    collector.shutdown()
    return rate


def bench_example_env(args, setup):
    """The example's collection (``BatchedGymEnv`` x num_envs) against one raw gymnasium env."""
    import gymnasium as gym

    example, eargs, higl, sac = setup
    n, N = args.num_envs, args.batched_env_steps
    fpb = eargs.frames_per_batch
    genv = gym.make(EXAMPLE_ENV, continuing_task=False, reward_type="sparse")
    genv.reset(seed=0)
    t0 = time.perf_counter()
    for _ in range(N):
        _, _, term, trunc, _ = genv.step(genv.action_space.sample())
        if term or trunc:
            genv.reset()
    res = {f"raw gymnasium {EXAMPLE_ENV}, random actions": N / (time.perf_counter() - t0)}
    genv.close()
    seeds = list(range(n))
    res[f"BatchedGymEnv x{n}, random actions (Collector)"] = collect(example.make_env(eargs, n, seeds, None), None, fpb, N)
    res[f"BatchedGymEnv x{n} + flat SAC MLP policy (Collector)"] = collect(
        example.make_env(eargs, n, seeds, None), sac.policy, fpb, N)
    res[f"BatchedGymEnv x{n} + HIGLPolicy (Collector)"] = collect(
        example.make_env(eargs, n, seeds, higl.policy), higl.policy, fpb, N)
    return res


def bench_agents(args, setup):
    """``HIGLAgent.update()`` vs ``SACAgent.update()`` at the example's defaults, alternating rounds."""
    example, eargs, higl, sac = setup
    n = args.num_envs
    def fill(data):  # the HIGL policy's data serves both replay buffers (update speed does not depend on it)
        higl.extend(data)
        sac.extend(data)

    env = example.make_env(eargs, n, [100 + i for i in range(n)], higl.policy)
    collect(env, higl.policy, eargs.frames_per_batch, args.collect_steps, on_batch=fill)
    impls = {"higl": higl, "sac": sac}
    for agent in impls.values():  # warm-up
        for _ in range(3):
            agent.update()
    rates = {k: [] for k in impls}
    for _ in range(args.rounds):
        for name, agent in impls.items():
            t0 = time.perf_counter()
            for _ in range(args.updates_per_round):
                agent.update()
            rates[name].append(args.updates_per_round / (time.perf_counter() - t0))
    med = {k: statistics.median(v) for k, v in rates.items()}
    return med, rates, eargs, len(higl.rb)


def main(argv=None):
    from torchrl_skills.utils import quiet_torchrl_logging

    quiet_torchrl_logging()  # torchrl's collectors log INFO lines with colour codes into the printed table
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"SAC update: seq_len={args.seq_len} batch={args.batch_size} latent={args.latent_dim} d_model={args.d_model} "
          f"threads={args.threads} device={args.device}, {args.rounds} alternating rounds x {args.updates_per_round} updates")
    med, rates, compile_s = bench_updates(args)
    for k in med:
        print(f"  {k:15s} {med[k]:8.2f} updates/s (median; rounds: {', '.join(f'{r:.1f}' for r in rates[k])})")
    ratio = med["torchrl"] / med["plain"]
    print(f"  ratio torchrl/plain = {ratio:.3f}  (target >= 0.8: {'OK' if ratio >= 0.8 else 'BELOW'})")
    out = {"updates_per_s": med, "ratio": ratio}
    if "torchrl+compile" in med:
        out["compile_s"] = compile_s
        out["ratio_compile"] = med["torchrl+compile"] / med["torchrl"]
        print(f"  torch.compile of the actor's transformer: {compile_s:.1f} s (first update; less when inductor's "
              f"on-disk cache already holds these graphs); ratio compile/torchrl = {out['ratio_compile']:.3f}")
    setup = None
    if not (args.skip_env and args.skip_agents):
        setup = example_setup(args)
    if not args.skip_env:
        env_rates = bench_env(args)
        ref = env_rates["raw gymnasium, random actions"]
        print("Collection, old one-env path on PointMaze_UMaze-v3 (env steps/s):")
        for k, v in env_rates.items():
            print(f"  {k:55s} {v:9.1f}  ({v / ref:.3f} x raw)")
        out["env_steps_per_s"] = env_rates
        ex_rates = bench_example_env(args, setup)
        ref = next(iter(ex_rates.values()))
        print(f"Collection, examples/higl_pointmaze.py path on sparse {EXAMPLE_ENV} (env steps/s, all envs together):")
        for k, v in ex_rates.items():
            print(f"  {k:55s} {v:9.1f}  ({v / ref:.3f} x raw)")
        out["example_env_steps_per_s"] = ex_rates
    if not args.skip_agents:
        amed, arates, eargs, filled = bench_agents(args, setup)
        print(f"Example agents' update (batch {eargs.batch_size}; HIGL: seq_len {eargs.seq_len}, latent {eargs.latent_dim}, "
              f"d_model {eargs.d_model}, k {eargs.k}; replay filled with {filled} steps), "
              f"{args.rounds} alternating rounds x {args.updates_per_round} updates:")
        for k in amed:
            print(f"  {k:15s} {amed[k]:8.2f} updates/s (median; rounds: {', '.join(f'{r:.1f}' for r in arates[k])})")
        out["agent_updates_per_s"] = amed
        out["ratio_higl_sac"] = amed["higl"] / amed["sac"]
        print(f"  ratio higl/sac = {out['ratio_higl_sac']:.3f}")
    return out


if __name__ == "__main__":
    main()
