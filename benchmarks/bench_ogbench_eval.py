"""OGBench evaluation throughput: all episodes side by side in one batched env vs one at a time.

Same policy, same episode seeds, same protocol (``evaluate_ogbench``): ``--num-envs all`` runs
every episode in one ``OGBenchMazeEnv`` with one policy call per step, the reference runs them one
after another (``num_envs=1``). Two policies: the scripted oracle (cost = the env alone) and CEM
over the skills of an untrained small skill model (cost = one planner call per replanning step
for all episodes that replan, against one call per episode; the untrained model never reaches a
goal, so each of its episodes runs the env's full 1000 steps). Both runs must give the same
per-episode outcomes for the deterministic oracle, which the script checks; CEM draws its
candidates from torch's global generator, so its episodes are not replayed exactly across the two.

    python benchmarks/bench_ogbench_eval.py           # pointmaze medium, 10 oracle and 5 CEM episodes, ~40 s
    python benchmarks/bench_ogbench_eval.py --episodes-per-task 10 --planner-episodes-per-task 2 --candidates 500

This is a script, not a test: timings on a shared machine are noisy.
"""
from __future__ import annotations

import argparse
import time

import torch

from torchrl_skills.evaluation.ogbench import OGBenchOraclePolicy, evaluate_ogbench
from torchrl_skills.modules import SkillModel, SkillMPCPolicy, make_skill_planner


def timed(policy, dataset, episodes_per_task, num_envs, device="cpu"):
    torch.manual_seed(0)
    start = time.perf_counter()
    result = evaluate_ogbench(
        policy, dataset, episodes_per_task, num_envs=num_envs, seed=0, progress=False, device=device
    )
    return result, time.perf_counter() - start


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="pointmaze-medium-navigate-v0", help="OGBench name (default: %(default)s)")
    p.add_argument("--episodes-per-task", type=int, default=2, help="oracle episodes per task (default: %(default)s)")
    p.add_argument("--planner-episodes-per-task", type=int, default=1,
                   help="CEM episodes per task, 1000 steps each (default: %(default)s)")
    p.add_argument("--candidates", type=int, default=200, help="CEM candidates (default: %(default)s)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default: %(default)s)")
    p.add_argument("--device", default="cpu", help="device of the model and the env's tensordicts (default: %(default)s)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    model = SkillModel(state_dim=2, action_dim=2, z_dim=16, hidden_dim=64).to(args.device).eval()
    planner = make_skill_planner(model, num_candidates=args.candidates, top_k=args.candidates // 5, optim_steps=5)
    policies = {  # name: (policy, episodes per task)
        "oracle": (OGBenchOraclePolicy(args.dataset), args.episodes_per_task),
        "CEM over skills": (SkillMPCPolicy(model, planner, replan_every=30), args.planner_episodes_per_task),
    }
    print(f"{args.dataset}, {args.threads} thread(s), device {args.device}, CEM K={args.candidates}")
    print(f"{'policy':>16} | {'episodes':>8} | {'batched ep/s':>12} | {'one at a time ep/s':>18} | ratio")
    for name, (policy, per_task) in policies.items():
        n = 5 * per_task
        batched, t_batched = timed(policy, args.dataset, per_task, None, args.device)
        sequential, t_seq = timed(policy, args.dataset, per_task, 1, args.device)
        if name == "oracle":
            assert batched.episodes == sequential.episodes, "batched and sequential evaluation disagree"
        print(f"{name:>16} | {n:8d} | {n / t_batched:12.2f} | {n / t_seq:18.2f} | {t_seq / t_batched:.2f}x")


if __name__ == "__main__":
    main()
