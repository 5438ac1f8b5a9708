"""Collection through TorchRL with random actions vs the raw gymnasium loop, in env steps per second.

  raw            the reference: gymnasium's ``env.step`` loop with ``action_space.sample()`` on one
                 env, resetting when an episode ends (no TorchRL, no tensors)
  batched        TorchRL ``Collector`` over ``BatchedGymEnv(num_envs=N)`` (N gymnasium envs stepped
                 side by side in one TorchRL step) with random actions: the package's way to
                 collect; target >= 0.5x raw
  single GymEnv  TorchRL ``Collector`` over one ``GymEnv`` (one TorchRL step per env step), for
                 reference

Rounds alternate between the paths (each round: ``--steps`` env steps per path); medians over
rounds are printed.

    python benchmarks/bench_collection.py                         # PointMaze_UMaze-v3, N = 16
    python benchmarks/bench_collection.py --num-envs 4 16 64 --rounds 7
    python benchmarks/bench_collection.py --env CarRacing-v3 --steps 2000
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--env", default="PointMaze_UMaze-v3", help="gymnasium id")
    p.add_argument("--num-envs", type=int, nargs="+", default=[16], help="envs side by side (several: one row each)")
    p.add_argument("--steps", type=int, default=4000, help="env steps per path and round")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--max-episode-steps", type=int, default=200)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu", help="device of the collected tensordicts")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    import gymnasium as gym
    from torchrl.collectors import Collector
    from torchrl.envs import GymEnv

    from torchrl_skills.envs import BatchedGymEnv
    from torchrl_skills.utils import import_gymnasium_robotics, quiet_torchrl_logging

    quiet_torchrl_logging()
    gym.register_envs(import_gymnasium_robotics())
    kw = {"max_episode_steps": args.max_episode_steps}
    if args.env.startswith("PointMaze"):
        kw["continuing_task"] = False

    genv = gym.make(args.env, **kw)
    genv.reset(seed=0)
    genv.action_space.seed(0)

    def raw() -> int:
        for _ in range(args.steps):
            _, _, terminated, truncated, _ = genv.step(genv.action_space.sample())
            if terminated or truncated:
                genv.reset()
        return args.steps

    def collector_round(collector):
        iterator = iter(collector)

        def run() -> int:
            return next(iterator).numel()

        return run

    paths = {"raw": raw}
    collectors = []
    for n in args.num_envs:
        frames = max(n, (args.steps // n) * n)
        c = Collector(BatchedGymEnv(args.env, n, device=args.device, **kw), None, frames_per_batch=frames,
                      total_frames=-1, device=args.device)  # fmt: skip
        collectors.append(c)
        paths[f"batched N={n}"] = collector_round(c)
    single = Collector(GymEnv(args.env, device=args.device, **kw), None, frames_per_batch=args.steps, total_frames=-1)
    collectors.append(single)
    paths["single GymEnv"] = collector_round(single)

    for run in paths.values():  # warm-up
        run()
    rates = {name: [] for name in paths}
    for r in range(args.rounds):
        order = list(paths.items())
        if r % 2:
            order.reverse()
        for name, run in order:
            t0 = time.perf_counter()
            steps = run()
            rates[name].append(steps / (time.perf_counter() - t0))
    for c in collectors:
        c.shutdown()
    ref = statistics.median(rates["raw"])
    print(f"{args.env}: env steps/s with random actions, median of {args.rounds} alternating rounds of "
          f"{args.steps} steps, {args.threads} thread(s), device {args.device}")
    out = {}
    for name, values in rates.items():
        med = statistics.median(values)
        out[name] = med
        target = "  (target >= 0.5)" if name.startswith("batched") else ""
        print(f"  {name:<16} {med:9.0f} steps/s   {med / ref:.2f}x raw{target}")
    return out


if __name__ == "__main__":
    main()
