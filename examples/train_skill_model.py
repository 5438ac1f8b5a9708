"""Train a skill model (posterior, low-level policy, temporally abstract world model, prior)
on an offline Minari dataset with the EM scheme of Freed et al. (ICML 2023).

Default: the package's generated PointMaze medium dataset (generated on first use).

    python examples/train_skill_model.py                        # CPU default, a few minutes
    python examples/train_skill_model.py --steps 200000 --seq-len 40 --lr 5e-5   # paper-like
    python examples/train_skill_model.py --dataset D4RL/antmaze/medium-play-v1 --max-position-jump 1.0 \
        --seq-len 30 --state-key achieved_goal observation    # x-y first, so planning can use it
    python examples/train_skill_model.py --resume               # continue where a run stopped

Writes into --out-dir: checkpoint.pt (atomic, every --ckpt-every steps), best.pt with --keep-best
(the model at the lowest validation loss), a TorchRL logger
(CSV by default), and losses.png with the training and validation curves.
"""
from __future__ import annotations

import argparse
import math
import re
import time
from pathlib import Path

import torch
from tqdm import tqdm
from torchrl.record.loggers import get_logger

from torchrl_skills.data import SkillDataset, local_minari_root
from torchrl_skills.modules import SkillModel
from torchrl_skills.objectives import SkillModelLoss
from torchrl_skills.utils import (
    load_checkpoint,
    resolve_device,
    rng_state,
    save_checkpoint,
    seed_everything,
    set_rng_state,
)

DEFAULT_DATASET = "torchrl_skills/pointmaze/medium-v0"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default=DEFAULT_DATASET, help="Minari dataset id")
    p.add_argument("--state-key", nargs="+", default=["observation"],
                   help="observation entry used as the state; several are concatenated (AntMaze: achieved_goal observation)")
    p.add_argument("--max-position-jump", type=float, default=None, help="split episodes at xy jumps larger than this")
    p.add_argument("--no-normalize", action="store_true", help="do not normalise states")
    p.add_argument("--seq-len", type=int, default=10, help="subtrajectory length T")
    p.add_argument("--batch-size", type=int, default=100, help="subtrajectories per batch B")
    p.add_argument("--steps", type=int, default=3000, help="gradient steps")
    p.add_argument("--lr", type=float, default=3e-4, help="Adam learning rate (paper: 5e-5 over far more steps)")
    p.add_argument("--z-dim", type=int, default=256)
    p.add_argument("--hidden-dim", type=int, default=256)
    p.add_argument("--gru-layers", type=int, default=1, help="posterior GRU layers (paper's AntMaze code: 4)")
    p.add_argument("--gru-hidden-dim", type=int, default=None,
                   help="posterior GRU width per direction (default: half of --hidden-dim; paper's AntMaze code: 256)")
    p.add_argument("--keep-best", action="store_true",
                   help="also keep best.pt, the model at the lowest validation loss (the paper's choice), and return it")
    p.add_argument("--alpha", type=float, default=1.0, help="weight of log p(s_T | s_0, z)")
    p.add_argument("--beta", type=float, default=1.0, help="weight of the KL term")
    p.add_argument("--mode", choices=["em", "joint"], default="em")
    p.add_argument("--e-step-world-model", action="store_true", help="put the s_T term back in the E-step")
    p.add_argument("--grad-clip", type=float, default=10.0, help="max gradient norm (0 disables)")
    p.add_argument("--valid-every", type=int, default=250)
    p.add_argument("--valid-batches", type=int, default=5)
    p.add_argument("--ckpt-every", type=int, default=500)
    p.add_argument("--log-every", type=int, default=50)
    p.add_argument("--out-dir", default="runs/skill_model")
    p.add_argument("--resume", action="store_true", help="continue from <out-dir>/checkpoint.pt")
    p.add_argument("--logger", choices=["csv", "tensorboard", "wandb", "none"], default="csv")
    p.add_argument("--device", default="cpu")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--num-threads", type=int, default=0, help="torch CPU threads (0: torch default)")
    p.add_argument("--no-progress", action="store_true")
    return p.parse_args(argv)


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
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> Path:
    args = parse_args(argv)
    if args.num_threads:
        torch.set_num_threads(args.num_threads)
    device = resolve_device(args.device)
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    ckpt_path, best_path = out_dir / "checkpoint.pt", out_dir / "best.pt"
    seed_everything(args.seed)

    # ---- data: Minari dataset -> TorchRL storage, [B, T] slices within episodes
    ensure_dataset(args.dataset)
    data = SkillDataset(
        args.dataset,
        seq_len=args.seq_len,
        batch_size=args.batch_size,
        state_key=args.state_key[0] if len(args.state_key) == 1 else list(args.state_key),
        max_position_jump=args.max_position_jump,
        seed=args.seed,
        device=device,
    )
    print(data)

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
    if args.mode == "em":
        optimizers = [
            torch.optim.Adam(loss_fn.posterior_parameters(), lr=args.lr),
            torch.optim.Adam(loss_fn.model_parameters(), lr=args.lr),
        ]
    else:
        optimizers = [torch.optim.Adam(model.parameters(), lr=args.lr)]

    history = {k: [] for k in ("step", "loss", "kl", "log_prob_action", "log_prob_end_state", "valid_step", "valid_loss")}
    history["seq_len"] = args.seq_len
    start = 0
    if args.resume:
        ckpt = load_checkpoint(ckpt_path, map_location=device)
        model.load_state_dict(ckpt["model"])
        for opt, state in zip(optimizers, ckpt["optimizers"]):
            opt.load_state_dict(state)
        history, start = ckpt["history"], ckpt["step"]
        set_rng_state(ckpt["rng"])
        print(f"resumed from {ckpt_path} at step {start}")

    def checkpoint(step: int, path: Path = ckpt_path) -> None:
        save_checkpoint(
            {
                "model": model.state_dict(),
                "model_kwargs": model.hparams,
                "state_key": args.state_key,
                "dataset_id": args.dataset,
                "optimizers": [opt.state_dict() for opt in optimizers],
                "step": step,
                "rng": rng_state(),
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
            out = loss_fn(data.sample("valid"))
            total += -out["elbo"].item()
        torch.set_rng_state(saved)
        return total / args.valid_batches

    logger = None
    if args.logger != "none":
        logger = get_logger(args.logger, logger_name=str(out_dir), experiment_name="skill_model")

    # ---- training loop (validation at step 0 gives the curve's starting point)
    if start == 0:
        history["valid_step"].append(0)
        history["valid_loss"].append(validation_loss())
        if logger is not None:
            logger.log_scalar("valid/loss", history["valid_loss"][-1], step=0)

    t0 = time.time()
    bar = tqdm(range(start, args.steps), initial=start, total=args.steps, disable=args.no_progress, desc="EM steps")
    for step in bar:
        losses = loss_fn(data.sample())
        loss = sum(v for k, v in losses.items() if k.startswith("loss_"))
        if not torch.isfinite(loss):
            bad = {k: v.item() for k, v in losses.items() if not math.isfinite(v.item())}
            raise FloatingPointError(
                f"Non-finite loss at step {step}: {bad}. Training stopped; the last good checkpoint "
                f"({ckpt_path if ckpt_path.exists() else 'none yet'}) was kept. Try a lower --lr, a lower "
                "--grad-clip, or state normalisation (drop --no-normalize)."
            )
        for opt in optimizers:
            opt.zero_grad(set_to_none=True)
        loss.backward()
        if args.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), args.grad_clip)
        for opt in optimizers:
            opt.step()

        done = step + 1
        if done % args.log_every == 0 or done == args.steps:
            scalars = {k: v.item() for k, v in losses.items()}
            scalars["loss"] = -scalars["elbo"]
            for key in ("loss", "kl", "log_prob_action", "log_prob_end_state"):
                history[key].append(scalars[key])
            history["step"].append(done)
            bar.set_postfix(loss=f"{scalars['loss']:.3f}", kl=f"{scalars['kl']:.2f}")
            if logger is not None:
                for key, value in scalars.items():
                    logger.log_scalar(f"train/{key}", value, step=done)
        if done % args.valid_every == 0 or done == args.steps:
            valid = validation_loss()
            if args.keep_best and valid < min(history["valid_loss"], default=math.inf):
                checkpoint(done, best_path)  # the model the paper keeps: lowest validation loss so far
            history["valid_step"].append(done)
            history["valid_loss"].append(valid)
            if logger is not None:
                logger.log_scalar("valid/loss", valid, step=done)
        if done % args.ckpt_every == 0 or done == args.steps:
            checkpoint(done)

    elapsed = time.time() - t0
    if start >= args.steps:
        print(f"nothing to do: the checkpoint is already at step {start} >= --steps {args.steps}")
    save_loss_plot(history, out_dir / "losses.png")
    if history["valid_loss"]:
        print(
            f"trained {args.steps - start} steps in {elapsed:.1f}s; validation loss (negative ELBO per step) "
            f"{history['valid_loss'][0]:.3f} -> {history['valid_loss'][-1]:.3f}; checkpoint {ckpt_path}"
        )
    if args.keep_best and best_path.exists():
        return best_path
    return ckpt_path


if __name__ == "__main__":
    main()
