"""Train a skill model (posterior, low-level policy, temporally abstract world model, prior)
on an offline Minari dataset with the EM scheme of Freed et al. (ICML 2023).

Default: the package's generated PointMaze medium dataset (generated on first use).

    python examples/train_skill_model.py                        # CPU default, a few minutes
    python examples/train_skill_model.py --steps 200000 --seq-len 40 --lr 5e-5   # paper-like
    python examples/train_skill_model.py --dataset D4RL/antmaze/medium-play-v1 --max-position-jump 1.0 \\
        --seq-len 30 --state-key achieved_goal observation    # x-y first, so planning can use it
    python examples/train_skill_model.py --resume               # continue where a run stopped

Writes into --out-dir: checkpoint.pt (atomic, every --ckpt-every steps), best.pt with --keep-best
(the model at the lowest validation loss), a TorchRL logger
(CSV by default), and losses.png with the training and validation curves. A run without
--resume replaces these outputs of an earlier run in --out-dir.

Ctrl-C or SIGTERM finishes the current step, writes checkpoint.pt and losses.png at that step,
and prints the command that continues the run (exit status 130 / 143); --resume continues it
exactly, without duplicate log rows.

Several processes or machines (DistributedDataParallel; gloo on CPU, NCCL on CUDA; --batch-size
is the global batch, split over the processes; rank 0 logs and writes the checkpoints):

    torchrun --nproc_per_node 2 examples/train_skill_model.py --steps 3000
    torchrun --nnodes 2 --nproc_per_node 8 --rdzv-backend c10d --rdzv-endpoint HOST:29400 \\
        examples/train_skill_model.py --device cuda --batch-size 1024
"""
from __future__ import annotations

import argparse
import math
import re
import signal
import time
from pathlib import Path

import torch
from tqdm import tqdm
from torchrl.record.loggers import get_logger

from torchrl_skills.data import SkillDataset, local_minari_root
from torchrl_skills.modules import SkillModel
from torchrl_skills.objectives import SkillModelLoss
from torchrl_skills.utils import (
    ArgumentParser,
    CheckpointNotFoundError,
    OutputDir,
    check_finite_loss,
    load_checkpoint,
    non_negative_int,
    positive_float,
    positive_int,
    resolve_device,
    resume_logger,
    rng_state,
    run_cli,
    save_checkpoint,
    save_figure,
    seed_everything,
    set_rng_state,
    stop_on_signals,
)
from torchrl_skills.utils.distributed import DistributedContext, init_distributed
from torchrl_skills.utils.signals import RunStopped

DEFAULT_DATASET = "torchrl_skills/pointmaze/medium-v0"
LOG_NAME = "skill_model"  # the logger's experiment folder inside --out-dir
# What a run writes into --out-dir; a new run (no --resume) replaces them.
OUTPUTS = ["checkpoint.pt", "best.pt", "losses.png", LOG_NAME]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = ArgumentParser(description=__doc__)
    p.add_argument("--dataset", default=DEFAULT_DATASET,
                   help="Minari dataset id in the local store; the package's torchrl_skills/pointmaze/* ids are "
                        "generated on first use")
    p.add_argument("--state-key", nargs="+", default=["observation"],
                   help="observation entry used as the state; several are concatenated (AntMaze: achieved_goal observation)")
    p.add_argument("--max-position-jump", type=positive_float, default=None,
                   help="split episodes at xy jumps larger than this; None never splits")
    p.add_argument("--no-normalize", action="store_true", help="do not normalise states")
    p.add_argument("--seq-len", type=positive_int, default=10,
                   help="subtrajectory (skill) length T; plan_to_goals.py and ogbench_pointmaze.py train with 30")
    p.add_argument("--batch-size", type=positive_int, default=100, help="subtrajectories per batch B")
    p.add_argument("--steps", type=positive_int, default=3000,
                   help="gradient steps in all (with --resume: the total to reach, not steps to add)")
    p.add_argument("--lr", type=positive_float, default=3e-4,
                   help="Adam learning rate (paper: 5e-5 over far more steps)")
    p.add_argument("--z-dim", type=positive_int, default=256,
                   help="skill size (the paper's; plan_to_goals.py and ogbench_pointmaze.py use 64 so that planning is fast)")
    p.add_argument("--hidden-dim", type=positive_int, default=256,
                   help="network width (the paper's; plan_to_goals.py and ogbench_pointmaze.py use 128)")
    p.add_argument("--gru-layers", type=positive_int, default=1, help="posterior GRU layers (paper's AntMaze code: 4)")
    p.add_argument("--gru-hidden-dim", type=positive_int, default=None,
                   help="posterior GRU width per direction; None: half of --hidden-dim (paper's AntMaze code: 256)")
    p.add_argument("--keep-best", action="store_true",
                   help="also keep best.pt, the model at the lowest validation loss (the paper's choice), and return it")
    p.add_argument("--alpha", type=float, default=1.0, help="weight of log p(s_T | s_0, z)")
    p.add_argument("--beta", type=float, default=1.0, help="weight of the KL term")
    p.add_argument("--mode", choices=["em", "joint"], default="em",
                   help="em: posterior and the rest by two Adams (the paper's EM); joint: one Adam on the ELBO")
    p.add_argument("--e-step-world-model", action="store_true", help="put the s_T term back in the E-step")
    p.add_argument("--grad-clip", type=float, default=10.0, help="max gradient norm (0 disables)")
    p.add_argument("--valid-every", type=positive_int, default=250, help="gradient steps between validation losses")
    p.add_argument("--valid-batches", type=positive_int, default=5, help="batches per validation loss")
    p.add_argument("--ckpt-every", type=positive_int, default=500,
                   help="gradient steps between atomic checkpoints (a stop by Ctrl-C/SIGTERM also writes one)")
    p.add_argument("--log-every", type=positive_int, default=50, help="gradient steps between logged losses")
    p.add_argument("--out-dir", default="runs/skill_model", help="checkpoint, logs and plots")
    p.add_argument("--resume", action="store_true",
                   help="continue from <out-dir>/checkpoint.pt (after a stop, or to a larger --steps)")
    p.add_argument("--logger", choices=["csv", "tensorboard", "wandb", "none"], default="csv",
                   help="TorchRL logger writing into <out-dir>/skill_model")
    p.add_argument("--device", default="cpu", help="torch device: cpu or cuda")
    p.add_argument("--seed", type=int, default=0, help="seeds torch, numpy and python, and the data split")
    p.add_argument("--num-threads", type=non_negative_int, default=0,
                   help="torch CPU threads (0: torch's default; the pipelines that call this script pass 1)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    args = p.parse_args(argv)
    if args.grad_clip < 0:
        p.error(f"--grad-clip must be >= 0 (0 disables clipping), got {args.grad_clip}")
    return args


def ensure_dataset(dataset_id: str) -> None:
    """Generates the package's own PointMaze datasets on first use; other ids must be local."""
    match = re.fullmatch(r"torchrl_skills/pointmaze/(umaze|medium|large)(-full)?-v0", dataset_id)
    if match and not (local_minari_root() / dataset_id / "data").is_dir():
        from torchrl_skills.data.pointmaze import ensure_pointmaze_dataset

        ensure_pointmaze_dataset(match.group(1), full=bool(match.group(2)))


def save_loss_plot(history: dict[str, list], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    axes[0].plot(history["step"], history["loss"], label="train")
    if history["valid_step"]:
        axes[0].plot(history["valid_step"], history["valid_loss"], "o-", label="validation")
    axes[0].set(title="negative ELBO per step", xlabel="gradient step")
    axes[0].legend()
    axes[1].plot(history["step"], history["log_prob_action"], label="log pi(a|s,z) per step")
    axes[1].plot(history["step"], [v / max(1, history["seq_len"]) for v in history["log_prob_end_state"]],
                 label="log p(s_T|s_0,z) / T")
    axes[1].set(title="log-likelihoods", xlabel="gradient step")
    axes[1].legend()
    axes[2].plot(history["step"], history["kl"])
    axes[2].set(title="KL(q || prior) per subtrajectory", xlabel="gradient step")
    fig.tight_layout()
    save_figure(fig, path, dpi=100)


def main(argv: list[str] | None = None) -> Path:
    """Trains a skill model; returns the checkpoint's path (``best.pt`` with ``--keep-best``).

    Raises :class:`~torchrl_skills.utils.RunStopped` after saving when SIGINT / SIGTERM stops it.
    """
    args = parse_args(argv)
    if args.num_threads:
        torch.set_num_threads(args.num_threads)
    resolve_device(args.device)  # fails early, with the fix, when CUDA is asked for but absent
    ckpt_path = Path(args.out_dir) / "checkpoint.pt"
    if args.resume and not ckpt_path.is_file():
        raise CheckpointNotFoundError(
            f"No checkpoint at {ckpt_path} to resume from: run without --resume to start a new run in {args.out_dir}."
        )
    # Under torchrun: one process per device, DistributedDataParallel; otherwise a single process.
    ctx = init_distributed(args.device)
    try:
        with OutputDir(args.out_dir, owned=OUTPUTS) as out:  # a failed start leaves no empty folder
            return train(args, out, ctx.device, ctx)
    finally:
        ctx.shutdown()


def train(args: argparse.Namespace, out: OutputDir, device: torch.device, ctx: DistributedContext | None = None) -> Path:
    ctx = ctx or DistributedContext(device=device)
    out_dir = out.path
    ckpt_path, best_path = out_dir / "checkpoint.pt", out_dir / "best.pt"
    seed_everything(args.seed)

    # ---- data: Minari dataset -> TorchRL storage, [B, T] slices within episodes
    if ctx.local_rank == 0:  # one process per machine generates a missing package dataset
        ensure_dataset(args.dataset)
    ctx.barrier()  # the other ranks read the dataset once it exists
    data = SkillDataset(
        args.dataset,
        seq_len=args.seq_len,
        batch_size=ctx.local_batch_size(args.batch_size),  # each rank's share of the global batch
        state_key=args.state_key[0] if len(args.state_key) == 1 else list(args.state_key),
        max_position_jump=args.max_position_jump,
        seed=args.seed,
        device=device,
    )
    if ctx.is_main:
        print(data if not ctx.enabled else f"{data}, x {ctx.world_size} processes ({ctx.backend})")

    # ---- model, loss, optimizers (EM: one Adam for the posterior, one for the rest)
    model = SkillModel(
        data.state_dim, data.action_dim, z_dim=args.z_dim, hidden_dim=args.hidden_dim,
        gru_hidden_dim=args.gru_hidden_dim, gru_layers=args.gru_layers,
    )  # fmt: skip
    if not args.no_normalize:
        model.set_normalizer(data.state_loc, data.state_scale)
    model = model.to(device)
    loss_fn = SkillModelLoss(
        model, alpha=args.alpha, beta=args.beta, mode=args.mode, e_step_world_model=args.e_step_world_model
    )
    # fused Adam: one kernel for all parameters (6% of a CPU step at the main job's size)
    if args.mode == "em":
        optimizers = [
            torch.optim.Adam(loss_fn.posterior_parameters(), lr=args.lr, fused=True),
            torch.optim.Adam(loss_fn.model_parameters(), lr=args.lr, fused=True),
        ]
    else:
        optimizers = [torch.optim.Adam(model.parameters(), lr=args.lr, fused=True)]
    # DDP over the loss, whose forward runs the four networks: rank 0's weights are copied to every
    # rank and backward() averages the gradients, so all optimizers take the same steps.
    train_loss = ctx.wrap(loss_fn)
    if ctx.rank > 0:
        seed_everything(ctx.rank_seed(args.seed))  # each rank samples its own subtrajectories

    history = {k: [] for k in ("step", "loss", "kl", "log_prob_action", "log_prob_end_state", "valid_step", "valid_loss")}
    history["seq_len"] = args.seq_len
    start = 0
    if args.resume:
        ckpt = load_checkpoint(ckpt_path, map_location=device)
        model.load_state_dict(ckpt["model"])
        for opt, state in zip(optimizers, ckpt["optimizers"]):
            opt.load_state_dict(state)
        history, start = ckpt["history"], ckpt["step"]
        per_rank = ckpt.get("rng_per_rank")
        if per_rank is not None and len(per_rank) == ctx.world_size:
            set_rng_state(per_rank[ctx.rank])
        elif ctx.is_main:
            set_rng_state(ckpt["rng"])
        else:  # resumed with another number of processes: a fresh stream of this rank's own
            seed_everything(ctx.rank_seed(args.seed) + start)
        if ctx.is_main:
            print(f"resumed from {ckpt_path} at step {start}")
    elif ctx.is_main:
        out.clear()  # a new run: no checkpoint, log row or plot of an earlier run stays
    ctx.barrier()  # nobody writes before rank 0 has cleared the folder

    def checkpoint(step: int, path: Path = ckpt_path, rng_per_rank: list | None = None) -> None:
        if not ctx.is_main:
            return
        _checkpoint(step, path, rng_per_rank)

    def _checkpoint(step: int, path: Path, rng_per_rank: list | None) -> None:
        save_checkpoint(
            {
                "model": model.state_dict(),
                "model_kwargs": model.hparams,
                "state_key": args.state_key,
                "dataset_id": args.dataset,
                "optimizers": [opt.state_dict() for opt in optimizers],
                "step": step,
                "rng": rng_state(),
                "rng_per_rank": rng_per_rank,  # every rank's stream, for an exact distributed --resume
                "history": history,
                "args": vars(args),
            },
            path,
        )

    @torch.no_grad()
    def validation_loss() -> float:
        if data.valid_buffer is None:
            return float("nan")
        # The validation draws use their own generator so that validating does not shift the
        # training batches (an interrupted run then resumes onto the same sequence).
        saved = torch.get_rng_state()
        torch.manual_seed(args.seed + 1)
        total = 0.0
        for _ in range(args.valid_batches):
            out = loss_fn(data.sample("valid", batch_size=args.batch_size))  # the global batch, on rank 0
            total += -out["elbo"].item()
        torch.set_rng_state(saved)
        return total / args.valid_batches

    logger = None
    if args.logger != "none" and ctx.is_main:
        logger = get_logger(args.logger, logger_name=str(out_dir), experiment_name=LOG_NAME)
        if start > 0:  # the steps a stopped run logged after its checkpoint are logged again below
            resume_logger(logger, start)

    # ---- training loop (validation at step 0 gives the curve's starting point)
    if start == 0 and ctx.is_main:
        history["valid_step"].append(0)
        history["valid_loss"].append(validation_loss())
        if logger is not None:
            logger.log_scalar("valid/loss", history["valid_loss"][-1], step=0)

    t0 = time.time()
    bar = tqdm(range(start, args.steps), initial=start, total=args.steps, disable=args.no_progress or not ctx.is_main,
               desc="EM steps")  # fmt: skip
    done, stopping = start, False
    # Ctrl-C / SIGTERM set a flag read once per step, so a stop never leaves half a step behind.
    with stop_on_signals() as stop:
        for step in bar:
            losses = train_loss(data.sample())
            loss = sum(v for k, v in losses.items() if k.startswith("loss_"))
            check_finite_loss(
                loss, step, losses, ckpt_path,
                fixes="Try a lower --lr, a lower --grad-clip, or state normalisation (drop --no-normalize).",
            )  # fmt: skip
            for opt in optimizers:
                opt.zero_grad(set_to_none=True)
            loss.backward()
            if args.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), args.grad_clip)
            for opt in optimizers:
                opt.step()

            done = step + 1
            if done % args.log_every == 0 or done == args.steps:
                scalars = ctx.mean({k: v.item() for k, v in losses.items()})  # over the ranks' shares
                scalars["loss"] = -scalars["elbo"]
                for key in ("loss", "kl", "log_prob_action", "log_prob_end_state"):
                    history[key].append(scalars[key])
                history["step"].append(done)
                bar.set_postfix(loss=f"{scalars['loss']:.3f}", kl=f"{scalars['kl']:.2f}")
                if logger is not None:
                    for key, value in scalars.items():
                        logger.log_scalar(f"train/{key}", value, step=done)
            if (done % args.valid_every == 0 or done == args.steps) and ctx.is_main:
                valid = validation_loss()
                if args.keep_best and valid < min(history["valid_loss"], default=math.inf):
                    checkpoint(done, best_path)  # the model the paper keeps: lowest validation loss so far
                history["valid_step"].append(done)
                history["valid_loss"].append(valid)
                if logger is not None:
                    logger.log_scalar("valid/loss", valid, step=done)
            stopping = ctx.any(bool(stop))  # a stop on any rank stops every rank after this step
            if done % args.ckpt_every == 0 or done == args.steps or stopping:
                checkpoint(done, rng_per_rank=ctx.gather(rng_state()) if ctx.enabled else None)
            if stopping:  # SIGINT / SIGTERM: the step is finished and saved
                break
    bar.close()
    if stopping:
        if ctx.is_main:
            save_loss_plot(history, out_dir / "losses.png")
        if stop:
            raise stop.stopped(f"step {done}", ckpt_path)
        raise RunStopped(signal.SIGTERM, f"step {done} (another process was stopped)", ckpt_path)
    if not ctx.parameters_in_sync(model):  # DDP keeps the replicas identical; check, do not assume
        raise RuntimeError(f"The model's parameters differ between the {ctx.world_size} processes after training.")
    if not ctx.is_main:
        return ckpt_path
    if ctx.enabled:
        print(f"parameters identical on all {ctx.world_size} processes")

    elapsed = time.time() - t0
    if start >= args.steps:
        print(f"nothing to do: the checkpoint is already at step {start} >= --steps {args.steps}")
    save_loss_plot(history, out_dir / "losses.png")
    if history["valid_loss"]:
        print(
            f"trained {args.steps - start} steps in {elapsed:.1f}s; validation loss (negative ELBO per step) "
            f"{history['valid_loss'][0]:.3f} -> {history['valid_loss'][-1]:.3f}; checkpoint {ckpt_path}"
        )
    if start < args.steps and elapsed > 0:
        print(
            f"throughput: {(args.steps - start) * args.batch_size / elapsed:.0f} subtrajectories/s "
            f"({ctx.world_size} process{'es' if ctx.enabled else ''}, global batch {args.batch_size})"
        )
    if args.keep_best and best_path.exists():
        return best_path
    return ckpt_path


if __name__ == "__main__":
    run_cli(main, resume_flag="--resume")
