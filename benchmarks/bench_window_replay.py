"""Sampling windows of pixel frames from the replay: ``make_window_replay_buffer`` vs torchrl's own.

  package    ``make_window_replay_buffer``: torchrl's ``TensorDictReplayBuffer`` and
             ``SliceSampler``, with two workarounds (``torchrl_skills/data/windows.py``): the
             sampler reads only the done / terminated flags from the storage, and the storage
             reads rows with ``index_select``
  reference  the same buffer built from torchrl's parts as they are: ``LazyTensorStorage`` +
             ``SliceSampler(strict_length=True)``, whose ``_finalize_index`` reads every entry of
             the batch (frames included) to get its flags, and whose storage reads rows by
             advanced indexing (slow on ``uint8``)

Both buffers hold the same steps (HIGL CarRacing's: two 3 x 96 x 96 ``uint8`` frames per step,
``observation`` and ``("next", "observation")``) and draw the same windows (the outputs are
checked equal). Rounds alternate between the two; medians are printed, with the ratio.

    python benchmarks/bench_window_replay.py                     # CarRacing's CPU default: 32 windows of 12 steps
    python benchmarks/bench_window_replay.py --frame 84 --windows 128 --slice-len 4
    python benchmarks/bench_window_replay.py --memmap             # both on LazyMemmapStorage (--memmap runs)
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=20_000, help="steps stored (the CPU default's replay at the end)")
    p.add_argument("--frame", type=int, default=96, help="frame side (3 x N x N uint8)")
    p.add_argument("--windows", type=int, default=32, help="windows per sample (the SAC batch size)")
    p.add_argument("--slice-len", type=int, default=12, help="steps per window (what HIGL CarRacing's default samples)")
    p.add_argument("--episode-steps", type=int, default=250)
    p.add_argument("--samples", type=int, default=20, help="samples per path and round")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--memmap", action="store_true", help="both buffers on memory-mapped storage (LazyMemmapStorage)")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    from tensordict import TensorDict
    from torchrl.data import LazyMemmapStorage, LazyTensorStorage, SliceSampler, TensorDictReplayBuffer

    from torchrl_skills.data import make_window_replay_buffer
    from torchrl_skills.utils import quiet_torchrl_logging

    quiet_torchrl_logging()
    n, side = args.steps, args.frame
    g = torch.Generator().manual_seed(0)
    frames = torch.randint(0, 256, (n, 3, side, side), dtype=torch.uint8, generator=g)
    flag = torch.zeros(n, 1, dtype=torch.bool)
    data = TensorDict({
        "observation": frames, "action": torch.rand(n, 2, generator=g), "goal": torch.randn(n, 32, generator=g),
        "next": {"observation": frames.roll(-1, 0), "reward": torch.randn(n, 1, generator=g), "done": flag,
                 "terminated": flag, "truncated": flag},
        "collector": {"traj_ids": torch.arange(n) // args.episode_steps},
    }, [n])  # fmt: skip
    scratch = tempfile.TemporaryDirectory()
    package = make_window_replay_buffer(
        n, args.slice_len, args.windows, memmap=args.memmap, scratch_dir=f"{scratch.name}/package"
    )
    storage = LazyMemmapStorage(n, scratch_dir=f"{scratch.name}/reference") if args.memmap else LazyTensorStorage(n)
    reference = TensorDictReplayBuffer(
        storage=storage, batch_size=args.slice_len * args.windows,
        sampler=SliceSampler(slice_len=args.slice_len, traj_key=("collector", "traj_ids"), strict_length=True),
    )  # fmt: skip
    for rb in (package, reference):
        rb.extend(data)
    torch.manual_seed(1)
    a = package.sample()
    torch.manual_seed(1)
    b = reference.sample()
    assert (a == b).all(), "the two buffers must draw the same windows"

    def timed(rb):
        t0 = time.perf_counter()
        for _ in range(args.samples):
            rb.sample()
        return (time.perf_counter() - t0) / args.samples * 1e3

    times = {"package": [], "reference": []}
    for _ in range(args.rounds):
        times["package"].append(timed(package))
        times["reference"].append(timed(reference))
    pkg, ref = (statistics.median(times[k]) for k in ("package", "reference"))
    print(f"{args.windows} windows x {args.slice_len} steps of two 3x{side}x{side} uint8 frames, "
          f"{n} steps stored, {'memory-mapped' if args.memmap else 'in memory'}, {args.threads} thread(s)")  # fmt: skip
    print(f"  make_window_replay_buffer: {pkg:7.1f} ms per sample")
    print(f"  torchrl as is (reference): {ref:7.1f} ms per sample")
    print(f"  ratio package / reference: {pkg / ref:.2f}x (lower is faster)")
    scratch.cleanup()


if __name__ == "__main__":
    main()
