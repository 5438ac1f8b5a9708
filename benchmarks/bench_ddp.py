"""Skill-model training with DistributedDataParallel: N processes vs one, at the same global batch.

Runs ``examples/train_skill_model.py`` twice on the same data, seed and settings: once as one
process, once under ``torchrun --nproc_per_node N`` (gloo on CPU, NCCL with ``--device cuda``),
where ``--batch-size`` is the global batch split over the processes. Prints both validation-loss
curves (held-out negative ELBO per step, rank 0 on the global batch), their largest difference,
and the training throughput of each (subtrajectories per second, from the scripts' own timing).
The curves are expected to agree within the noise of different subtrajectory draws, not exactly.

    python benchmarks/bench_ddp.py                                  # 2 CPU processes, 600 steps
    python benchmarks/bench_ddp.py --nproc 4 --device cuda --steps 3000 --batch-size 1024
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "examples" / "train_skill_model.py"


def run(cmd: list[str]) -> tuple[dict, float]:
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    if out.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{out.stdout[-2000:]}\n{out.stderr[-4000:]}")
    match = re.search(r"throughput: (\d+) subtrajectories/s", out.stdout)
    return out.stdout, float(match.group(1)) if match else float("nan")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--nproc", type=int, default=2, help="processes of the distributed run")
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--batch-size", type=int, default=100, help="global batch")
    p.add_argument("--valid-every", type=int, default=100)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1, help="torch threads per process")
    p.add_argument("--dataset", default="torchrl_skills/pointmaze/medium-v0")
    p.add_argument("--extra", nargs=argparse.REMAINDER, default=[], help="more train_skill_model.py arguments")
    args = p.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="bench_ddp_"))
    common = [str(SCRIPT), "--dataset", args.dataset, "--steps", str(args.steps), "--batch-size", str(args.batch_size),
              "--valid-every", str(args.valid_every), "--device", args.device, "--num-threads", str(args.threads),
              "--no-progress", "--logger", "none", *args.extra]  # fmt: skip
    single_out, single_rate = run([sys.executable, *common, "--out-dir", str(tmp / "single")])
    ddp_out, ddp_rate = run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                             f"--nproc_per_node={args.nproc}", *common, "--out-dir", str(tmp / "ddp")])  # fmt: skip
    curves = {
        name: torch.load(tmp / name / "checkpoint.pt", weights_only=False)["history"] for name in ("single", "ddp")
    }
    print(f"train_skill_model.py, {args.steps} steps, global batch {args.batch_size}, device {args.device}, "
          f"{args.threads} thread(s) per process")
    print(f"{'step':>6} {'1 process':>10} {f'{args.nproc} processes':>12}")
    a, b = curves["single"], curves["ddp"]
    for step, x, y in zip(a["valid_step"], a["valid_loss"], b["valid_loss"]):
        print(f"{step:>6} {x:>10.3f} {y:>12.3f}")
    diff = max(abs(x - y) for x, y in zip(a["valid_loss"][1:], b["valid_loss"][1:]))
    print(f"largest validation-loss difference after step 0: {diff:.3f} (per step; the curve falls by "
          f"{a['valid_loss'][0] - a['valid_loss'][-1]:.2f})")
    print(f"throughput: 1 process {single_rate:.0f} subtrajectories/s; {args.nproc} processes {ddp_rate:.0f}/s "
          f"({ddp_rate / single_rate:.2f}x)")
    print("identical parameters on all ranks:", "parameters identical on all" in ddp_out)
    return {"single": a, "ddp": b, "single_rate": single_rate, "ddp_rate": ddp_rate}


if __name__ == "__main__":
    main()
