"""Latency of one replanning call: TorchRL's CEMPlanner + SkillModelEnv vs a plain-tensor CEM loop.

Both run the same math on the same networks with the same random draws (one
``torch.randn(K, L, z_dim)`` per iteration, in the same order), so they return the same plan,
which the script checks. The plain loop is the reference; the target is a ratio <= 1.5 on CPU.

    python benchmarks/bench_planning.py                    # seed-size networks (z 256, hidden 256), state 27
    python benchmarks/bench_planning.py --threads 2 --repeats 20
    python benchmarks/bench_planning.py --sizes 27,256,256 4,64,128   # also the main job's default size

Timings on a shared machine are noisy: the two paths are measured interleaved, and medians are
printed. This is a script, not a test.
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
    z_dim = model.z_dim
    mean = torch.zeros(1, horizon, z_dim)
    std = torch.ones(1, horizon, z_dim)
    start = state.expand(candidates, state.shape[-1])
    goal = goal.expand(candidates, goal.shape[-1])
    start_cost = cost(start, goal)
    for _ in range(iterations):
        eps = mean + std * torch.randn(candidates, horizon, z_dim)
        s, min_cost, rewards = start, start_cost, []
        for t in range(horizon):
            e = eps[:, t]
            s, _ = model.skill_world_model(s, model.skill_from_noise(s, e))
            new_min = torch.minimum(min_cost, cost(s, goal))
            rewards.append(min_cost - new_min - eps_penalty * e.pow(2).mean(-1, keepdim=True))
            min_cost = new_min
        returns = torch.stack(rewards, -2).sum(-2)  # [K, 1], summed over time as CEMPlanner does
        best = eps[returns.squeeze(-1).topk(elites).indices]
        mean, std = best.mean(0, keepdim=True), best.std(0, keepdim=True)
    return mean[0, 0]


def bench(state_dim: int, z_dim: int, hidden_dim: int, args: argparse.Namespace) -> dict:
    torch.manual_seed(0)
    model = SkillModel(state_dim, 8, z_dim=z_dim, hidden_dim=hidden_dim).eval()
    kw = dict(planning_horizon=args.horizon, num_candidates=args.candidates, top_k=args.elites)
    planner = make_skill_planner(model, optim_steps=args.iterations, eps_penalty=args.eps_penalty, **kw)
    env = planner.env
    state, goal = torch.randn(state_dim), torch.randn(2)
    td0 = env.reset(TensorDict({"observation": state, "goal": goal}, []))

    def run_torchrl():
        return planner(td0.clone())["action"]

    def run_plain():
        return plain_cem(
            model, state, goal, env.cost, args.horizon, args.iterations, args.candidates, args.elites, args.eps_penalty
        )

    # same random draws -> same plan
    torch.manual_seed(1)
    a = run_torchrl()
    torch.manual_seed(1)
    b = run_plain()
    max_diff = (a - b).abs().max().item()

    times = {"torchrl": [], "plain": []}
    with torch.no_grad():
        for _ in range(args.warmup):
            run_torchrl(), run_plain()
        for _ in range(args.repeats):
            for name, fn in (("torchrl", run_torchrl), ("plain", run_plain)):
                t0 = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t0)
    torchrl_ms = 1e3 * statistics.median(times["torchrl"])
    plain_ms = 1e3 * statistics.median(times["plain"])
    return {
        "size": f"state {state_dim}, z {z_dim}, hidden {hidden_dim}",
        "torchrl_ms": torchrl_ms,
        "plain_ms": plain_ms,
        "ratio": torchrl_ms / plain_ms,
        "torchrl_min_ms": 1e3 * min(times["torchrl"]),
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
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--repeats", type=int, default=10)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(
        f"one replanning call: K={args.candidates}, elites {args.elites}, {args.iterations} iterations, "
        f"{args.horizon} skills, {args.threads} thread(s), median of {args.repeats}"
    )
    rows = []
    for size in args.sizes:
        state_dim, z_dim, hidden_dim = (int(x) for x in size.split(","))
        r = bench(state_dim, z_dim, hidden_dim, args)
        rows.append(r)
        print(
            f"  {r['size']:<30} CEMPlanner+SkillModelEnv {r['torchrl_ms']:7.1f} ms   plain loop {r['plain_ms']:7.1f} ms"
            f"   ratio {r['ratio']:.2f}x (min/min {r['torchrl_min_ms'] / r['plain_min_ms']:.2f}x)"
            f"   same plan: max |diff| {r['max_plan_diff']:.1e}"
        )
    return rows


if __name__ == "__main__":
    main()
