"""Latency of one replanning call: the package's planner vs a plain-tensor CEM loop.

Three implementations of the same CEM replan, on the same networks with the same random draws
(one ``torch.randn(K, L, z_dim)`` per iteration, in the same order), so they return the same
plan, which the script checks:

  package     make_skill_planner(model): TorchRL's CEMPlanner (SkillCEMPlanner) over a
              SkillModelEnv, imagining on tensors with the mean-only world model
  env rollout the same planner with use_env_rollout=True: TorchRL's generic CEMPlanner path,
              one env.rollout of tensordicts per iteration
  plain       the reference: a plain-tensor CEM loop calling the same networks (prior, the world
              model's mean, the cost) step by step; target package/plain <= 1.0

    python benchmarks/bench_planning.py                    # seed-size networks (z 256, hidden 256), state 27
    python benchmarks/bench_planning.py --threads 2 --repeats 20 --device cuda
    python benchmarks/bench_planning.py --sizes 27,256,256 4,64,128   # also the main job's default size

Timings on a shared machine are noisy: the paths are measured interleaved (the order alternates),
and medians are printed. This is a script, not a test.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
from tensordict import TensorDict

from torchrl_skills.envs.skill_model_env import GoalDistanceCost
from torchrl_skills.modules import SkillModel
from torchrl_skills.modules.skill_planner import make_skill_planner


@torch.no_grad()
def plain_cem(
    model: SkillModel,
    state: torch.Tensor,
    goal: torch.Tensor,
    cost: GoalDistanceCost,
    horizon: int,
    iterations: int,
    candidates: int,
    elites: int,
    eps_penalty: float,
) -> torch.Tensor:
    """CEM over prior noise with the running-minimum reward, written with plain tensors."""
    z_dim, device = model.z_dim, state.device
    mean = torch.zeros(1, horizon, z_dim, device=device)
    std = torch.ones(1, horizon, z_dim, device=device)
    start = state.expand(candidates, state.shape[-1])
    goal = goal.expand(candidates, goal.shape[-1])
    start_cost = cost(start, goal)
    for _ in range(iterations):
        eps = mean + std * torch.randn(candidates, horizon, z_dim, device=device)
        s, min_cost, rewards = start, start_cost, []
        for t in range(horizon):
            e = eps[:, t]
            s = model.skill_world_model.mean(s, model.skill_from_noise(s, e))
            new_min = torch.minimum(min_cost, cost(s, goal))
            rewards.append(min_cost - new_min - eps_penalty * e.pow(2).mean(-1, keepdim=True))
            min_cost = new_min
        returns = torch.stack(rewards, -2).sum(-2)  # [K, 1], summed over time as CEMPlanner does
        best = eps[returns.squeeze(-1).topk(elites).indices]
        mean, std = best.mean(0, keepdim=True), best.std(0, keepdim=True)
    return mean[0, 0]


def bench(state_dim: int, z_dim: int, hidden_dim: int, args: argparse.Namespace) -> dict:
    torch.manual_seed(0)
    device = torch.device(args.device)
    model = SkillModel(state_dim, 8, z_dim=z_dim, hidden_dim=hidden_dim).to(device).eval()
    kw = dict(planning_horizon=args.horizon, num_candidates=args.candidates, top_k=args.elites)
    planner = make_skill_planner(model, optim_steps=args.iterations, eps_penalty=args.eps_penalty, **kw)
    generic = make_skill_planner(
        model, optim_steps=args.iterations, eps_penalty=args.eps_penalty, use_env_rollout=True, **kw
    )
    env = planner.env
    state, goal = torch.randn(state_dim, device=device), torch.randn(2, device=device)
    td0 = env.reset(TensorDict({"observation": state, "goal": goal}, [], device=device))

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    def run_package():
        return planner(td0.clone())["action"]

    def run_generic():
        return generic(td0.clone())["action"]

    def run_plain():
        return plain_cem(
            model, state, goal, env.cost, args.horizon, args.iterations, args.candidates, args.elites, args.eps_penalty
        )

    runners = {"package": run_package, "env_rollout": run_generic, "plain": run_plain}
    plans = {}
    for name, fn in runners.items():  # same random draws -> same plan
        torch.manual_seed(1)
        with torch.no_grad():
            plans[name] = fn()
    max_diff = max((plans[n] - plans["plain"]).abs().max().item() for n in ("package", "env_rollout"))

    times = {name: [] for name in runners}
    with torch.no_grad():
        for _ in range(args.warmup):
            for fn in runners.values():
                fn()
        for r in range(args.repeats):
            order = list(runners.items())
            if r % 2:
                order.reverse()  # neither side always runs right after the other
            for name, fn in order:
                sync()
                t0 = time.perf_counter()
                fn()
                sync()
                times[name].append(time.perf_counter() - t0)
    ms = {name: 1e3 * statistics.median(t) for name, t in times.items()}
    return {
        "size": f"state {state_dim}, z {z_dim}, hidden {hidden_dim}",
        "package_ms": ms["package"],
        "env_rollout_ms": ms["env_rollout"],
        "plain_ms": ms["plain"],
        "ratio": ms["package"] / ms["plain"],
        "env_rollout_ratio": ms["env_rollout"] / ms["plain"],
        "package_min_ms": 1e3 * min(times["package"]),
        "plain_min_ms": 1e3 * min(times["plain"]),
        "max_plan_diff": max_diff,
    }


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", nargs="+", default=["27,256,256"], help="state_dim,z_dim,hidden_dim triples")
    p.add_argument("--candidates", type=int, default=1000)
    p.add_argument("--elites", type=int, default=200)
    p.add_argument("--iterations", type=int, default=10)
    p.add_argument("--horizon", type=int, default=3)
    p.add_argument("--eps-penalty", type=float, default=10.0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--repeats", type=int, default=10)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(
        f"one replanning call: K={args.candidates}, elites {args.elites}, {args.iterations} iterations, "
        f"{args.horizon} skills, {args.threads} thread(s), device {args.device}, median of {args.repeats}"
    )
    rows = []
    for size in args.sizes:
        state_dim, z_dim, hidden_dim = (int(x) for x in size.split(","))
        r = bench(state_dim, z_dim, hidden_dim, args)
        rows.append(r)
        print(
            f"  {r['size']:<30} package {r['package_ms']:7.1f} ms   env.rollout path {r['env_rollout_ms']:7.1f} ms"
            f"   plain loop {r['plain_ms']:7.1f} ms\n  {'':<30} package/plain {r['ratio']:.2f}x (target <= 1.0;"
            f" min/min {r['package_min_ms'] / r['plain_min_ms']:.2f}x)   env.rollout/plain {r['env_rollout_ratio']:.2f}x"
            f"   same plan: max |diff| {r['max_plan_diff']:.1e}"
        )
    return rows


if __name__ == "__main__":
    main()
