"""Train the direction-following ant expert of OGBench's AntMaze datasets with TorchRL's SAC.

OGBench made its ant maze datasets with an expert trained by SAC on ``online-ant-v0`` wrapped in
``GymXYWrapper``: the observation is the ant's proprioception (27-d, its x-y excluded) followed by a
unit direction, the reward is the displacement along that direction, and the direction is redrawn
every 100 steps (episodes of 1000 steps). Its settings (``data_gen_scripts/commands.sh`` and
``impls/agents/sac.py``): 2x256 ReLU MLPs, Adam lr 1e-4, batch 256, target entropy -0.5 |A|,
gamma 0.99, tau 0.005, two critics (min), 10k random steps, 400k env steps, one update per step.

This script is that recipe with TorchRL's parts: ``SACLoss`` + ``SoftUpdate``, a ``Collector``,
a ``TensorDictReplayBuffer`` on a ``LazyTensorStorage``, a TorchRL logger (CSV by default). Every
``--eval-every`` env steps the deterministic policy walks ``--eval-episodes`` episodes side by side
and its speed along the commanded directions (m/s) is logged and plotted (``learning_curve.png``).

    python examples/train_ant_expert.py                                  # the recipe, hours on a CPU
    python examples/train_ant_expert.py --steps 20000 --random-steps 2000 --out-dir runs/ant_try
    python examples/train_ant_expert.py --resume                         # continue a stopped run

The run checkpoints atomically every ``--ckpt-every`` env steps (the replay buffer included) and
when stopped with Ctrl-C or SIGTERM; ``--resume`` continues from there. At the end it writes
``expert.pt`` (the actor, its settings and measured speed, about 0.3 MB), the format the package
ships as ``torchrl_skills/assets/ant_expert.pt`` and loads with
``torchrl_skills.modules.load_direction_expert``.
"""
from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

import torch
from tqdm import tqdm
from torchrl.collectors import Collector
from torchrl.data import LazyTensorStorage, TensorDictReplayBuffer
from torchrl.envs import Compose, DoubleToFloat, GymWrapper, RewardSum, TransformedEnv
from torchrl.modules import MLP, ValueOperator
from torchrl.objectives import SACLoss, SoftUpdate
from torchrl.record.loggers import get_logger

from torchrl_skills.modules.direction_expert import (
    DirectionExpert,
    make_direction_actor,
    measure_direction_speed,
    save_direction_expert,
)
from torchrl_skills.utils import (
    ArgumentParser,
    load_checkpoint,
    load_module_state,
    replay_rows_oldest_first,
    resolve_device,
    resume_logger,
    rng_state,
    save_checkpoint,
    save_figure,
    seed_everything,
    set_rng_state,
    stop_on_signals,
)

ENV_ID = "online-ant-v0"


def parse_args(argv=None) -> argparse.Namespace:
    p = ArgumentParser(description=__doc__)
    p.add_argument("--steps", type=int, default=400_000, help="env steps in all (OGBench: 400k)")
    p.add_argument("--random-steps", type=int, default=10_000, help="uniformly random steps first (OGBench: 10k)")
    p.add_argument("--frames-per-batch", type=int, default=50,
                   help="env steps collected between bursts of updates; the updates per step stay --utd")
    p.add_argument("--utd", type=float, default=1.0, help="gradient updates per env step (OGBench: 1)")
    p.add_argument("--batch-size", type=int, default=256, help="transitions per update")
    p.add_argument("--lr", type=float, default=1e-4, help="Adam learning rate of actor, critics and temperature")
    p.add_argument("--gamma", type=float, default=0.99, help="discount")
    p.add_argument("--tau", type=float, default=0.005, help="target-network soft update rate")
    p.add_argument("--hidden", type=int, nargs="+", default=[256, 256], help="MLP widths of actor and critics")
    p.add_argument("--target-entropy-scale", type=float, default=0.5, help="target entropy = -scale * |A|")
    p.add_argument("--buffer-size", type=int, default=1_000_000, help="replay capacity (transitions)")
    p.add_argument("--resample-interval", type=int, default=100, help="steps between new directions")
    p.add_argument("--eval-every", type=int, default=20_000, help="env steps between speed evaluations")
    p.add_argument("--eval-episodes", type=int, default=8,
                   help="evaluation episodes side by side, one random direction each")
    p.add_argument("--eval-steps", type=int, default=500, help="env steps per evaluation episode")
    p.add_argument("--ckpt-every", type=int, default=10_000, help="env steps between atomic checkpoints")
    p.add_argument("--out-dir", default="runs/ant_expert", help="checkpoint, logs, plots and expert.pt")
    p.add_argument("--resume", action="store_true", help="continue from --out-dir/checkpoint.pt")
    p.add_argument("--seed", type=int, default=0, help="seeds torch, numpy (directions) and the env")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--logger", choices=["csv", "tensorboard", "wandb", "none"], default="csv", help="TorchRL logger")
    p.add_argument("--no-progress", action="store_true", help="no tqdm bar")
    args = p.parse_args(argv)
    for name in ("steps", "frames_per_batch", "batch_size", "eval_every", "ckpt_every", "eval_episodes"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.random_steps < 0 or args.utd <= 0:
        p.error("--random-steps must be >= 0 and --utd > 0")
    return args


def make_env(resample_interval: int = 100, device="cpu"):
    """``online-ant-v0`` under OGBench's ``GymXYWrapper`` (directions from the global ``np.random``);
    ``"episode_reward"`` sums the distance walked along the directions."""
    import gymnasium
    import ogbench.online_locomotion  # noqa: F401  (registers the envs)
    from ogbench.online_locomotion.wrappers import GymXYWrapper

    env = GymXYWrapper(gymnasium.make(ENV_ID), resample_interval=resample_interval)
    return TransformedEnv(GymWrapper(env, device=device), Compose(DoubleToFloat(), RewardSum()))


def plot_curves(history: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
    axes[0].plot(history["eval_step"], history["eval_speed"], "o-")
    axes[0].set(xlabel="env steps", ylabel="speed along direction (m/s)", title="deterministic policy")
    axes[1].plot(history["train_step"], history["train_return"], alpha=0.7)
    axes[1].set(xlabel="env steps", ylabel="episode return (m)", title="training episodes (stochastic)")
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.tight_layout()
    save_figure(fig, path, dpi=100)


args = parse_args()
if args.threads:
    torch.set_num_threads(args.threads)
device = resolve_device(args.device)
out_dir = Path(args.out_dir)
ckpt_path = out_dir / "checkpoint.pt"
if args.resume and not ckpt_path.is_file():
    sys.exit(f"error: --resume given but there is no checkpoint at {ckpt_path}: run without --resume first.")
out_dir.mkdir(parents=True, exist_ok=True)
seed_everything(args.seed)

# ---------------------------------------------------------------------------------- networks
env = make_env(args.resample_interval, device)
env.set_seed(args.seed)
obs_dim = env.observation_spec["observation"].shape[-1]
action_spec = env.action_spec
action_dim = action_spec.shape[-1]
actor = make_direction_actor(obs_dim, action_dim, tuple(args.hidden)).to(device)
qvalue = ValueOperator(
    MLP(obs_dim + action_dim, 1, num_cells=args.hidden, activation_class=torch.nn.ReLU),
    in_keys=["observation", "action"],
).to(device)
loss_fn = SACLoss(
    actor, qvalue, num_qvalue_nets=2, action_spec=action_spec,
    target_entropy=-args.target_entropy_scale * action_dim, alpha_init=1.0,
)  # fmt: skip
loss_fn.make_value_estimator(gamma=args.gamma)
updater = SoftUpdate(loss_fn, tau=args.tau)
optimizer = torch.optim.Adam(loss_fn.parameters(), lr=args.lr)
buffer = TensorDictReplayBuffer(
    storage=LazyTensorStorage(min(args.buffer_size, args.steps), device=device), batch_size=args.batch_size
)

frames, updates = 0, 0
history = {"eval_step": [], "eval_speed": [], "train_step": [], "train_return": []}
if args.resume:
    state = load_checkpoint(ckpt_path, map_location=device)
    load_module_state(loss_fn, state["loss"], "SAC loss")  # refuses another code's networks
    optimizer.load_state_dict(state["optimizer"])
    if state["buffer"] is not None:
        buffer.extend(state["buffer"])
    frames, updates, history = state["frames"], state["updates"], state["history"]
    set_rng_state(state["rng"])
    print(f"resumed from {ckpt_path} at env step {frames}")


def checkpoint() -> None:
    save_checkpoint(
        # only the filled part of the buffer (a full state_dict would store the whole allocated
        # capacity), oldest first: a resume with another --steps (another capacity) keeps its FIFO order
        {"loss": loss_fn.state_dict(), "optimizer": optimizer.state_dict(), "buffer": replay_rows_oldest_first(buffer),
         "frames": frames, "updates": updates, "history": history, "rng": rng_state(), "args": vars(args)},
        ckpt_path,
    )  # fmt: skip
    plot_curves(history, out_dir / "learning_curve.png")


# SIGINT / SIGTERM: finish the current batch, checkpoint, say how to continue; a second one stops
# at once (the last checkpoint is intact: it is written atomically).
stop = stop_on_signals().__enter__()

logger = None if args.logger == "none" else get_logger(args.logger, logger_name=str(out_dir), experiment_name="ant_expert")
if frames > 0:  # the steps a stopped run logged after its checkpoint are logged again below
    resume_logger(logger, frames)
collector = Collector(
    env, actor, frames_per_batch=args.frames_per_batch, total_frames=args.steps - frames,
    init_random_frames=max(0, args.random_steps - frames), device=device, storing_device=device,
    auto_register_policy_transforms=False,  # the MLP actor keeps no state: nothing to register (silences a FutureWarning)
)  # fmt: skip
bar = tqdm(total=args.steps, initial=frames, unit="step", desc="ant expert", disable=args.no_progress, smoothing=0.05)
start, updates_at_start = time.perf_counter(), updates  # throughput of this process (a resumed run too)
for batch in collector:
    batch = batch.reshape(-1)
    buffer.extend(batch)
    frames += batch.numel()
    bar.update(batch.numel())
    # finished training episodes: their summed reward is the distance walked along the directions
    done = batch["next", "done"].view(-1)
    if done.any():
        for episode_return in batch["next", "episode_reward"].view(-1)[done].tolist():
            history["train_step"].append(frames)
            history["train_return"].append(episode_return)
            if logger is not None:
                logger.log_scalar("train/episode_return", episode_return, step=frames)

    if frames >= args.random_steps:
        # the updates owed so far at --utd per step, so bursts keep the ratio exact
        owed = int((frames - args.random_steps) * args.utd) - updates
        for _ in range(owed):
            losses = loss_fn(buffer.sample())
            loss = losses["loss_actor"] + losses["loss_qvalue"] + losses["loss_alpha"]
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            updater.step()
            updates += 1
        if owed > 0 and frames % 1000 < args.frames_per_batch and logger is not None:
            for key in ("loss_actor", "loss_qvalue", "loss_alpha", "alpha", "entropy"):
                logger.log_scalar(f"train/{key}", losses[key].item(), step=frames)
            logger.log_scalar(
                "train/updates_per_s", (updates - updates_at_start) / max(time.perf_counter() - start, 1e-9), step=frames
            )

    if frames % args.eval_every < args.frames_per_batch or frames >= args.steps:
        # the deterministic policy (tanh of the mean, as generation uses it), new directions each time
        speeds = measure_direction_speed(
            DirectionExpert(actor).eval(), args.eval_episodes, args.eval_steps, seed=args.seed + frames
        )
        speed = float(speeds.mean())
        history["eval_step"].append(frames)
        history["eval_speed"].append(speed)
        if logger is not None:
            logger.log_scalar("eval/speed_mps", speed, step=frames)
        bar.set_postfix(speed=f"{speed:.2f} m/s", updates=updates)
    if frames % args.ckpt_every < args.frames_per_batch or frames >= args.steps or stop:
        checkpoint()
    if stop:
        bar.close()
        collector.shutdown()
        stopped = stop.stopped(f"env step {frames}", ckpt_path)
        again = shlex.join(["python", *sys.argv]) + ("" if "--resume" in sys.argv else " --resume")  # same options
        print(stopped.message(again), file=sys.stderr)
        sys.exit(stopped.exit_code)
bar.close()
collector.shutdown()

metrics = {
    "speed_mps": history["eval_speed"][-1],
    "env_steps": frames,
    "updates": updates,
    "eval_episodes": args.eval_episodes,
}
settings = {"env": ENV_ID, "wrapper": f"GymXYWrapper(resample_interval={args.resample_interval})", **vars(args)}
path = save_direction_expert(out_dir / "expert.pt", actor, settings, metrics)
(out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
print(f"expert: {metrics['speed_mps']:.2f} m/s along commanded directions after {frames} env steps; wrote {path}")
