"""HIGL on CarRacing-v3 from pixels, several cars side by side, CPU-sized by default.

The same package parts as ``higl_pointmaze.py``, on pixels:

- ``--num-envs`` CarRacing envs stepped side by side (``BatchedGymEnv``) through a torchrl
  ``Collector``; both levels act as one ``HIGLPolicy`` (one batched call of each network per step).
- encoder ``E``: ``ConvEncoder`` (L2-normalised latents) trained by temporal InfoNCE, positives
  1..k steps apart (``HIGLLoss``);
- low level: ``TransformerPolicy`` over the last ``--seq-len`` encoded frames and the latent goal,
  torchrl ``SACLoss`` on ``--latent-coef * -||E(s') - z_g||^2 + --extrinsic-coef * r_track``,
  recomputed at sample time from the stored frames, with hindsight latent goals;
- high level: every ``--k`` steps a latent goal ``normalize(a)`` (the seed's goal on the unit
  sphere: CarRacing has no task goal), ``a`` from its own small ``ConvEncoder`` + MLP, trained by
  ``ClipPPOLoss`` (or ``ReinforceLoss``) on the semi-MDP steps (``high_level_transitions``) with the
  track reward they collected.

Pixels: CarRacing renders 96x96x3 ``uint8`` frames. By default they stay ``uint8`` and are only
permuted to channels-first (torchrl ``PermuteTransform``), so the replay buffer stores bytes and
``ConvEncoder`` scales them to [0, 1] exactly once, after average-pooling them by ``--pool`` (2:
48 x 48, about 5x cheaper than full size). Options: ``--grayscale`` / ``--resize N``
(torchrl ``ToTensorImage`` + ``GrayScale`` / ``Resize``, float pixels), ``--frame-stack N``
(``CatFrames`` on channels) and ``--augment-pad N`` (``RandomShift`` on the replayed frames, DrQ's
augmentation).

Time: ``--frame-skip N`` repeats each action N frames (torchrl ``FrameSkipTransform``, rewards
summed). Step counts (``--total-steps``, ``--eval-every``, ``--warmup-steps``, ``--ckpt-every``,
``--max-episode-steps``) are env steps, CarRacing frames; ``--utd``, ``--frames-per-batch`` and
``--k`` count agent steps.

Actions: by default the agent acts ``[steer, throttle]`` and ``ThrottleAction`` turns a positive
throttle into gas and a negative one into brake (``--no-throttle``: CarRacing's own ``[steer,
gas, brake]``, where a fresh policy's mean action is half gas and half brake, a car that barely
moves).

Every evaluation runs ``--eval-episodes`` deterministic episodes side by side on fixed episode
seeds (the same tracks at every evaluation); uniformly random actions (in CarRacing's own action
space) are measured on the same tracks once per run, as the reference line of the curve.

CPU default (one seed, 20k env steps, 250-step episodes; 16 min on one core, results in the README)::

    python examples/higl_carracing.py

Full-size configuration (SPEC B2 defaults; needs a GPU and ~1M steps to drive well)::

    python examples/higl_carracing.py --total-steps 1000000 --max-episode-steps 1000 --seq-len 10 \\
        --batch-size 128 --utd 1 --latent-dim 64 --d-model 128 --memmap --eval-every 50000 \\
        --eval-episodes 10 --num-envs 16 --frames-per-batch 1600 --device cuda

Outputs in ``--out-dir``: ``results.json`` (evaluation curve, random-action return, wall time),
``learning_curve.png``, logger files and an atomic checkpoint for ``--resume``; a run without
``--resume`` replaces them. Ctrl-C or SIGTERM finishes the current collector batch, writes the
checkpoint, ``results.json`` and the plot, and prints the command that continues (``--resume``;
exit status 130 / 143). The learner (networks, optimizers, replay, RNG) and the logs continue
exactly; the environments restart with fresh episodes.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from tqdm import tqdm

from torchrl.collectors import Collector
from torchrl.data import Bounded
from torchrl.envs import (
    CatFrames,
    Compose,
    FrameSkipTransform,
    GrayScale,
    PermuteTransform,
    Resize,
    RewardSum,
    ToTensorImage,
    Transform,
    TransformedEnv,
)
from torchrl.envs.utils import ExplorationType, set_exploration_type
from torchrl.objectives import SACLoss, SoftUpdate
from torchrl.record.loggers import get_logger

from torchrl_skills.data import RandomShift, make_window_replay_buffer
from torchrl_skills.envs import BatchedGymEnv
from torchrl_skills.envs.hierarchical import high_level_transitions, make_higl_env
from torchrl_skills.evaluation import SeededRandomPolicy, rollout_side_by_side
from torchrl_skills.modules import (
    ConvEncoder,
    HIGLPolicy,
    make_goal_conditioned_critic,
    make_high_level_actor,
    make_high_level_value,
    make_transformer_actor,
)
from torchrl_skills.objectives import HIGLLoss, LatentWindowRelabel, TemporalContrastiveLoss, high_level_update, make_high_level_loss
from torchrl_skills.utils import (
    ArgumentParser,
    CheckpointNotFoundError,
    OutputDir,
    UserError,
    check_finite_loss,
    load_checkpoint,
    load_training_state,
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
    training_state,
)

PIX = "observation"  # BatchedGymEnv's name for a Box observation, here the frame
# What a run writes into --out-dir; a new run (no --resume) replaces them.
OUTPUTS = ["results.json", "learning_curve.png", "checkpoint.pt", "logs", "replay"]
NAN_FIXES = "Try a lower --lr or a smaller --utd."


class NoLogger:
    """``--logger none``: the loop logs unconditionally, so this one drops what it logs."""

    def log_scalar(self, name, value, step=None):
        pass


def parse_args(argv=None):
    p = ArgumentParser(description=__doc__)
    p.add_argument("--seed", type=int, default=0, help="seeds torch, numpy, python and the tracks")
    p.add_argument("--total-steps", type=positive_int, default=20_000,
                   help="env steps (CarRacing frames) in all, every car together")
    p.add_argument("--max-episode-steps", type=positive_int, default=250,
                   help="episode length in env steps (CarRacing's own: 1000)")
    p.add_argument("--frame-skip", type=positive_int, default=1,
                   help="action repeat: env steps per agent step (torchrl FrameSkipTransform; rewards summed)")
    p.add_argument("--num-envs", type=positive_int, default=4, help="cars driven side by side when collecting")
    p.add_argument("--frames-per-batch", type=positive_int, default=200,
                   help="agent steps per collector batch (all cars together; a multiple of --num-envs)")
    p.add_argument("--warmup-steps", type=non_negative_int, default=1_000, help="env steps before the first update")
    p.add_argument("--utd", type=positive_float, default=0.25, help="gradient updates per agent step")
    p.add_argument("--batch-size", type=positive_int, default=32, help="replayed windows per update")
    p.add_argument("--lr", type=positive_float, default=3e-4, help="Adam learning rate of every network")
    p.add_argument("--gamma", type=float, default=0.99, help="discount (the high level uses gamma ** k)")
    p.add_argument("--tau", type=float, default=0.005, help="target-network soft update rate")
    p.add_argument("--alpha-init", type=positive_float, default=0.1, help="initial SAC entropy temperature")
    p.add_argument("--buffer-size", type=positive_int, default=100_000,
                   help="replay capacity in agent steps (at most what --total-steps collects is allocated)")
    p.add_argument("--memmap", action="store_true", help="LazyMemmapStorage for the pixel replay (in <out-dir>/replay)")
    p.add_argument("--k", type=positive_int, default=10, help="low-level (agent) steps per high-level goal")
    p.add_argument("--seq-len", type=positive_int, default=3, help="low-level transformer window (SPEC B1: 10)")
    p.add_argument("--latent-dim", type=positive_int, default=32, help="encoder latent size (goals live there)")
    p.add_argument("--d-model", type=positive_int, default=64, help="transformer width (SPEC B1: 128)")
    p.add_argument("--high-algo", default="ppo", choices=["ppo", "reinforce"], help="high-level learner")
    p.add_argument("--ppo-epochs", type=positive_int, default=4, help="PPO epochs per collector batch")
    p.add_argument("--extrinsic-coef", type=float, default=1.0,
                   help="low-level reward: weight of the track reward (dense here: +1000/N per new tile, -0.1 per frame)")
    p.add_argument("--latent-coef", type=float, default=0.1,
                   help="low-level reward: weight of -||E(s') - z_g||^2 (in [-4, 0]: kept below the track reward)")
    p.add_argument("--goal-relabel-prob", type=float, default=0.5, help="hindsight relabelling of low-level goals")
    p.add_argument("--temperature", type=positive_float, default=0.1, help="InfoNCE temperature of the encoder loss")
    p.add_argument("--grayscale", action="store_true", help="one grey channel instead of RGB (float pixels)")
    p.add_argument("--resize", type=positive_int, default=None, help="resize frames to N x N (None: 96 x 96; needs torchvision)")
    p.add_argument("--frame-stack", type=positive_int, default=1, help="frames stacked on the channels")
    p.add_argument("--pool", type=positive_int, default=2,
                   help="the encoders average-pool frames by this factor first (2: 96 x 96 read as 48 x 48; 1: full size)")
    p.add_argument("--throttle", action=argparse.BooleanOptionalAction, default=True,
                   help="the agent acts [steer, throttle] (throttle > 0: gas, < 0: brake; ThrottleAction) instead of "
                        "CarRacing's [steer, gas, brake]")
    p.add_argument("--augment-pad", type=non_negative_int, default=0,
                   help="replayed frames are shifted by up to this many pixels (RandomShift, DrQ's augmentation; 0: off)")
    p.add_argument("--encoder-critic-grad", action=argparse.BooleanOptionalAction, default=False,
                   help="the SAC losses also train the encoder (LatentWindowRelabel(detach_encoder=False)), next to InfoNCE")
    p.add_argument("--eval-every", type=positive_int, default=5_000, help="env steps between evaluations")
    p.add_argument("--eval-episodes", type=positive_int, default=8, help="deterministic episodes per evaluation, side by side")
    p.add_argument("--device", default="cpu", help="torch device: cpu or cuda")
    p.add_argument("--logger", default="csv", choices=["csv", "tensorboard", "wandb", "none"],
                   help="TorchRL logger writing into <out-dir>/logs")
    p.add_argument("--out-dir", default="runs/higl_carracing", help="results, plot, checkpoint and logs")
    p.add_argument("--resume", action="store_true", help="continue from <out-dir>/checkpoint.pt")
    p.add_argument("--ckpt-every", "--checkpoint-every", dest="checkpoint_every", metavar="CKPT_EVERY", type=positive_int,
                   default=5_000, help="env steps between atomic checkpoints (a stop by Ctrl-C/SIGTERM also writes one)")
    p.add_argument("--num-threads", type=non_negative_int, default=0,
                   help="torch CPU threads (0: torch's default; the convolutions use every core)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    args = p.parse_args(argv)
    if args.frames_per_batch % args.num_envs:
        p.error(f"--frames-per-batch ({args.frames_per_batch}) must be a multiple of --num-envs ({args.num_envs})")
    if not 0.0 <= args.goal_relabel_prob <= 1.0:
        p.error(f"--goal-relabel-prob must lie in [0, 1], got {args.goal_relabel_prob}")
    return args


def pixel_transforms(args):
    """uint8 HWC -> CHW bytes (default), or float pixels in [0, 1] for --grayscale / --resize; then frame stacking."""
    if args.grayscale or args.resize:
        transforms = [ToTensorImage(in_keys=[PIX])]  # scales to [0, 1] once; ConvEncoder leaves floats alone
        if args.resize:
            try:
                transforms.append(Resize(args.resize, args.resize, in_keys=[PIX]))
            except ImportError as err:  # torchrl's Resize is built on torchvision
                raise UserError(f"--resize needs torchvision ({err}): pip install torchvision, or drop --resize.") from err
        if args.grayscale:
            transforms.append(GrayScale(in_keys=[PIX]))
    else:
        transforms = [PermuteTransform((-1, -3, -2), in_keys=[PIX])]
    if args.frame_stack > 1:
        transforms.append(CatFrames(N=args.frame_stack, dim=-3, in_keys=[PIX]))
    return transforms


def pixel_shape(args):
    side = args.resize or 96
    return ((1 if args.grayscale else 3) * args.frame_stack, side, side)


class ThrottleAction(Transform):
    """The agent's ``[steer, throttle]`` in ``[-1, 1]^2`` -> CarRacing's ``[steer, gas, brake]``.

    ``gas = max(throttle, 0)``, ``brake = max(-throttle, 0)``: gas and brake never act together.
    In CarRacing's own action space the mean of a fresh tanh-Gaussian policy is half gas and half
    brake, a car that barely moves (the former CPU default's deterministic policy still drove
    with gas 0.47 and brake 0.48 after 4800 updates); here it is coasting, and half of the
    random actions drive.
    """

    def __init__(self, action_key="action"):
        super().__init__(in_keys_inv=[action_key], out_keys_inv=[action_key])

    def _inv_apply_transform(self, action: torch.Tensor) -> torch.Tensor:
        steer, throttle = action[..., :1], action[..., 1:2]
        return torch.cat([steer, throttle.clamp(min=0), (-throttle).clamp(min=0)], dim=-1)

    def transform_action_spec(self, action_spec):
        key = self.in_keys_inv[0]
        spec = action_spec[key]
        action_spec[key] = Bounded(-1.0, 1.0, shape=(*spec.shape[:-1], 2), dtype=spec.dtype, device=spec.device)
        return action_spec


def make_env(args, num_envs, seeds, policy: HIGLPolicy | None = None, native_actions: bool = False):
    """``num_envs`` cars side by side; with ``policy`` also the frame window, the episode flags and the goal state.

    ``native_actions=True`` keeps CarRacing's ``[steer, gas, brake]`` even with ``--throttle``
    (the random-action reference acts there).
    """
    env = BatchedGymEnv("CarRacing-v3", num_envs, seeds=seeds, max_episode_steps=args.max_episode_steps)
    # FrameSkipTransform steps its parent env again with the tensordict the env already mapped, so
    # it goes first: after ThrottleAction it would map [steer, gas, brake] a second time. Extra steps
    # of a finished car are no-ops (BatchedGymEnv freezes finished slots with reward 0).
    skip = [FrameSkipTransform(args.frame_skip)] if args.frame_skip > 1 else []
    throttle = [ThrottleAction()] if args.throttle and not native_actions else []
    env = TransformedEnv(env, Compose(*skip, *throttle, *pixel_transforms(args)))
    if policy is not None:
        env = make_higl_env(env, policy, args.seq_len, in_key=PIX, obs_ndim=3)
    return env


def agent_steps(args, env_steps):
    """Agent steps that play ``env_steps`` frames with ``--frame-skip`` (rounded up)."""
    return -(-env_steps // args.frame_skip)


def eval_seeds(args):
    return [10_000 * (args.seed + 1) + i for i in range(args.eval_episodes)]


@torch.no_grad()
def evaluate(args, policy, higl_policy=None):
    """Mean return of ``--eval-episodes`` deterministic episodes, side by side, on fixed tracks."""
    env = make_env(args, args.eval_episodes, eval_seeds(args), higl_policy)
    with set_exploration_type(ExplorationType.DETERMINISTIC):
        rollout, _ = rollout_side_by_side(env, policy, agent_steps(args, args.max_episode_steps))
    env.close()
    return float(rollout["next", "reward"].sum(-2).mean())  # finished episodes are frozen with reward 0


class HIGLAgent:
    """Both HIGL levels on pixels (package parts), their replay and their updates."""

    keys = [PIX, "goal", "action", ("next", PIX), ("next", "reward"), ("next", "done"), ("next", "terminated"),
            ("collector", "traj_ids")]  # fmt: skip

    def __init__(self, args, spec, device, scratch_dir):
        self.args = args
        L, d, k = args.seq_len, args.latent_dim, args.k
        shape = pixel_shape(args)
        self.encoder = ConvEncoder(shape, d, normalize=True, pool=args.pool).to(device)
        actor = make_transformer_actor(spec, d, d, L, d_model=args.d_model, dim_feedforward=2 * args.d_model).to(device)
        critic = make_goal_conditioned_critic(d, spec.shape[-1], d, num_cells=(256, 256)).to(device)
        # the high level has its own small convolutional trunk: CarRacing has no task goal to condition on
        high_actor = make_high_level_actor([PIX], 32, d, num_cells=(64,), backbone=ConvEncoder(shape, 32, pool=args.pool))
        high_value = make_high_level_value([PIX], 32, num_cells=(64,), backbone=ConvEncoder(shape, 32, pool=args.pool))
        high_actor, high_value = high_actor.to(device), high_value.to(device)
        self.policy = HIGLPolicy(self.encoder, high_actor, actor, goal_dim=d, k=k)  # goal = normalize(a)

        sac = SACLoss(actor, critic, num_qvalue_nets=2, alpha_init=args.alpha_init, action_spec=spec)
        sac.make_value_estimator(gamma=args.gamma)
        relabel = LatentWindowRelabel(
            self.encoder, L, observation_key=PIX, extrinsic_coef=args.extrinsic_coef, latent_coef=args.latent_coef,
            goal_relabel_prob=args.goal_relabel_prob, relabel_horizon=k, detach_encoder=not args.encoder_critic_grad,
        )  # fmt: skip
        contrastive = TemporalContrastiveLoss(self.encoder, similarity="cosine", temperature=args.temperature)
        self.loss = HIGLLoss(relabel, sac, contrastive, positive_offset=k, observation_key=PIX)
        self.updater = SoftUpdate(sac, tau=args.tau)
        self.optim = torch.optim.Adam(self.loss.parameters(), lr=args.lr)

        self.high_loss = make_high_level_loss(high_actor, high_value, algo=args.high_algo, gamma=args.gamma, k=k)
        self.high_optim = torch.optim.Adam(self.high_loss.parameters(), lr=args.lr)
        self.rb = make_window_replay_buffer(
            min(args.buffer_size, agent_steps(args, args.total_steps)), relabel.slice_len, args.batch_size,
            memmap=args.memmap, scratch_dir=str(scratch_dir) if args.memmap else None, device=device,
        )  # fmt: skip
        if args.augment_pad:  # acts on sampled batches; the stored frames stay as they were
            self.rb.append_transform(RandomShift(args.augment_pad, in_keys=[PIX, ("next", PIX)]))
        self.modules = {"loss": self.loss, "optim": self.optim, "high_loss": self.high_loss, "high_optim": self.high_optim,
                        "rb": self.rb}  # fmt: skip

    def extend(self, data):
        self.rb.extend(data.select(*self.keys).reshape(-1))

    def update(self):
        out = self.loss(self.rb.sample())
        total = out["loss_actor"] + out["loss_qvalue"] + out["loss_alpha"] + out["loss_encoder"]
        self.optim.zero_grad(); total.backward(); self.optim.step(); self.updater.step()  # fmt: skip
        return total, out

    def update_high_level(self, data, steps, ckpt_path):
        """The high level's on-policy update on this batch's semi-MDP steps (their summed track reward)."""
        high = high_level_update(
            self.high_loss, self.high_optim, high_level_transitions(data, self.args.k, keys=[PIX]),
            epochs=self.args.ppo_epochs if self.args.high_algo == "ppo" else 1,
            check=lambda total, out: check_finite_loss(total, f"{steps} (high level)", out, ckpt_path, NAN_FIXES),
        )  # fmt: skip
        if high is None:
            return None
        return high["next", "reward"].mean()


def main(argv=None):
    """Trains HIGL on CarRacing; returns the results written to ``results.json``.

    Raises :class:`~torchrl_skills.utils.RunStopped` after saving when SIGINT / SIGTERM stops it.
    """
    args = parse_args(argv)
    if args.num_threads:
        torch.set_num_threads(args.num_threads)
    device = resolve_device(args.device)
    ckpt_path = Path(args.out_dir) / "checkpoint.pt"
    if args.resume and not ckpt_path.is_file():
        raise CheckpointNotFoundError(
            f"No checkpoint at {ckpt_path} to resume from: run without --resume to start a new run in {args.out_dir}."
        )
    with OutputDir(args.out_dir, owned=OUTPUTS) as out:  # a failed start leaves no empty folder
        return train(args, out, device)


def train(args, out: OutputDir, device):
    seed_everything(args.seed)
    out_dir = out.path
    ckpt_path = out_dir / "checkpoint.pt"
    if not args.resume:
        out.clear()  # a new run: no checkpoint, log row, replay file or plot of an earlier one stays
    logger = get_logger(
        None if args.logger == "none" else args.logger, logger_name=str(out_dir / "logs"),
        experiment_name=f"higl_carracing_seed{args.seed}",
    ) or NoLogger()  # fmt: skip
    probe = make_env(args, 1, None)
    spec = probe.action_spec[0]
    probe.close()
    agent = HIGLAgent(args, spec, device, out_dir / "replay")

    state = {"steps": 0, "updates": 0, "curve": [], "random_return": None}
    if args.resume:
        ck = load_checkpoint(ckpt_path)
        load_training_state(agent.modules, ck)  # refuses another code's networks (see load_module_state)
        state = ck["state"]
        set_rng_state(ck["rng"])
    resume_logger(logger, state["steps"])  # what a stopped run logged after its checkpoint is logged again
    if state["random_return"] is None:  # the reference line: random actions on the evaluation tracks
        env = make_env(args, args.eval_episodes, eval_seeds(args), native_actions=True)
        rollout, _ = rollout_side_by_side(
            env, SeededRandomPolicy(env.action_spec, args.seed), agent_steps(args, args.max_episode_steps)
        )
        env.close()
        state["random_return"] = float(rollout["next", "reward"].sum(-2).mean())

    t0 = time.perf_counter()
    wall_before = state.get("wall_time_s", 0.0)
    # Ctrl-C / SIGTERM set a flag read once per collector batch, so a stop never splits a batch.
    with stop_on_signals() as stop:
        if state["steps"] < args.total_steps:
            n = args.num_envs
            env = make_env(args, n, [args.seed * 1_000_003 + state["steps"] + i for i in range(n)], agent.policy)
            env.append_transform(RewardSum())  # ("next", "episode_reward"): each car's return so far
            collector = Collector(env, agent.policy, frames_per_batch=args.frames_per_batch, total_frames=-1, device=device,
                                  auto_register_policy_transforms=False)  # fmt: skip
            next_eval = (state["steps"] // args.eval_every + 1) * args.eval_every
            next_ckpt = state["steps"] + args.checkpoint_every
            pbar = tqdm(total=args.total_steps, initial=state["steps"], desc="higl-carracing", dynamic_ncols=True,
                        disable=args.no_progress)  # fmt: skip
            for data in collector:
                agent.extend(data)  # [N, T]: car rows, then time
                env_steps = data.numel() * args.frame_skip  # each agent step repeats its action
                state["steps"] += env_steps
                pbar.update(env_steps)
                logger.log_scalar("train_reward_per_step", data["next", "reward"].mean().item(), state["steps"])
                done = data["next", "done"]
                if done.any():  # the sampling policy's episode returns, plotted next to the evaluations
                    episode_return = data["next", "episode_reward"][done].mean().item()
                    logger.log_scalar("train_episode_return", episode_return, state["steps"])
                    state.setdefault("train_curve", []).append((state["steps"], episode_return))
                n_updates = int(round(data.numel() * args.utd)) if state["steps"] >= args.warmup_steps else 0
                if n_updates:
                    for _ in range(n_updates):
                        total, out_low = agent.update()
                        state["updates"] += 1
                    check_finite_loss(total, f"{state['steps']} (low level)", out_low, ckpt_path, NAN_FIXES)
                    for key in ("loss_qvalue", "loss_actor", "alpha", "contrastive_accuracy"):
                        if key in out_low.keys():
                            logger.log_scalar(key, out_low[key].item(), state["steps"])
                    high_reward = agent.update_high_level(data, state["steps"], ckpt_path)
                    if high_reward is not None:
                        logger.log_scalar("high_reward", high_reward.item(), state["steps"])
                collector.update_policy_weights_()
                if state["steps"] >= next_eval or state["steps"] >= args.total_steps:  # always end on an evaluation
                    ret = evaluate(args, agent.policy, agent.policy)
                    state["curve"].append((state["steps"], ret))
                    logger.log_scalar("eval_return", ret, state["steps"])
                    pbar.set_postfix(eval_return=f"{ret:.1f}", random=f"{state['random_return']:.1f}")
                    next_eval += args.eval_every
                state["wall_time_s"] = wall_before + time.perf_counter() - t0
                if state["steps"] >= next_ckpt or state["steps"] >= args.total_steps or stop:
                    save_checkpoint({**training_state(agent.modules), "state": state, "rng": rng_state()}, ckpt_path)
                    next_ckpt += args.checkpoint_every
                if state["steps"] >= args.total_steps or stop:  # stop: SIGINT / SIGTERM, the batch is finished and saved
                    break
            pbar.close()
            collector.shutdown()

    plot(args, state, out_dir / "learning_curve.png")
    results = {"config": vars(args), "steps": state["steps"], "updates": state["updates"], "curve": state["curve"],
               "collection_return_curve": state.get("train_curve", []),
               "final_eval_return": state["curve"][-1][1] if state["curve"] else None,
               "random_actions_return": state["random_return"], "wall_time_s": state.get("wall_time_s", 0.0)}  # fmt: skip
    (out_dir / "results.json").write_text(json.dumps(results, indent=2))
    if stop:
        raise stop.stopped(f"env step {state['steps']}", ckpt_path)
    print(json.dumps({k: results[k] for k in ("steps", "updates", "final_eval_return", "random_actions_return",
                                               "wall_time_s")}, indent=2))  # fmt: skip
    return results


def plot(args, state, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not state["curve"]:
        return
    steps, rets = zip(*state["curve"])
    fig, ax = plt.subplots(figsize=(6, 4))
    if state.get("train_curve"):
        train_steps, train_rets = zip(*state["train_curve"])
        ax.plot(train_steps, train_rets, color="tab:orange", alpha=0.6,
                label="HIGL while collecting (sampled actions), episode return")  # fmt: skip
    ax.plot(steps, rets, marker="o", label=f"HIGL evaluation (deterministic, {args.eval_episodes} tracks)")
    ax.axhline(state["random_return"], color="gray", ls="--", label="random actions, same tracks")
    ax.set_xlabel("env steps"); ax.set_ylabel(f"return ({args.max_episode_steps}-step episodes)")  # fmt: skip
    ax.set_title("CarRacing-v3 from pixels"); ax.legend(); fig.tight_layout()  # fmt: skip
    save_figure(fig, path, dpi=120)


if __name__ == "__main__":
    run_cli(main, resume_flag="--resume")
