"""HIGL vs flat SAC on sparse-reward PointMaze (state-based, MLP encoder), one script, same seeds.

Task: ``PointMaze_UMaze-v3`` (gymnasium-robotics) with ``reward_type="sparse"`` and
``continuing_task=False``: reward 1 and termination when the ball is within 0.45 of the goal,
0 otherwise; start and goal cells are redrawn at every reset. The agent observes
``[x, y, vx, vy, goal_x, goal_y]`` (TorchRL ``CatTensors`` of ``observation`` and
``desired_goal``). Success rate = fraction of evaluation episodes that reach the goal.
Evaluation environments use the same seed for both methods, so both face the same
start/goal pairs.

HIGL (SPEC Part B):
- encoder ``E``: ``MLPEncoder`` (L2-normalised latents), trained with ``TemporalContrastiveLoss``
  (positives ``(s_t, s_{t+k})`` from the replayed windows, cosine similarity);
- low level: ``TransformerPolicy`` actor over windows of ``seq_len`` (E(s), goal) tokens and
  twin ``Q(E(s), a, g)``, trained with torchrl's ``SACLoss`` (auto entropy, target -|A|,
  ``SoftUpdate``) on ``-||E(s_{t+1}) - z_g||^2`` recomputed at sample time
  (+ ``--extrinsic-coef`` x the sparse task reward, so the low level also sees the task; the
  default 10 keeps the rare success visible next to the latent term, up to 4 per step on the
  unit sphere. SACLoss's default smooth-L1 critic loss caps each sample's gradient, so weights
  above ~10 change nothing: 10 and 30 trained identically);
- high level: every ``k`` steps a latent goal from a TanhNormal MLP policy on the state,
  trained with ``ClipPPOLoss`` (or ``ReinforceLoss``) on the semi-MDP of ``HierarchicalEnv``
  (k-step summed task reward, GAE with ``gamma ** k``).

Flat SAC baseline: torchrl ``SACLoss`` with MLP actor and twin MLP critics on the same state,
same env steps, same updates per env step, same batch size and learning rate.

CPU default (2 seeds x 20k env steps per method, 0.25 updates per env step for both; about
10 min on 2 shared cores, ``torch.set_num_threads(1)``)::

    python examples/higl_pointmaze.py

Measured (final success over 20 evaluation episodes, seeds 0 / 1): HIGL 0.30 / 0.15 (mean 0.225),
flat SAC 0.10 / 0.10 (mean 0.10), random actions 0.15 / 0.10 (mean 0.125); 9.6 min wall.

Full-size configuration (SPEC B2 defaults: 5 updates per env step, seq_len 10, latent 64,
d_model 128; a GPU or a long CPU run)::

    python examples/higl_pointmaze.py --total-steps 300000 --utd 5 --latent-dim 64 --d-model 128 \\
        --seeds 0 1 2 3 4 --eval-every 10000 --eval-episodes 20 --device cuda

Outputs in ``--out-dir``: ``results.json``, ``learning_curves.png`` (both methods),
logger files, and one atomic checkpoint per (method, seed) for ``--resume``; a run without
``--resume`` replaces them. Ctrl-C or SIGTERM finishes the current collector batch, checkpoints
the run in progress, writes ``results.json`` and the plot, and prints the command that continues
(``--resume``; exit status 130 / 143). Resuming continues the learner (networks, optimizers,
replay buffer, RNG) and the logs without duplicate rows; the environments restart with fresh
episodes, so a resumed run is not step-for-step identical to an uninterrupted one.
"""
from __future__ import annotations

import argparse
import json
import math
import copy
import time
from pathlib import Path

import numpy as np
import torch
from tensordict.nn import TensorDictModule, TensorDictSequential
from torch import nn
from tqdm import tqdm

from torchrl.collectors import Collector, MultiSyncCollector
from torchrl.data import Bounded, Categorical, LazyTensorStorage, TensorDictReplayBuffer
from torchrl.envs import CatTensors, Compose, DoubleToFloat, GymEnv, StepCounter, TransformedEnv
from torchrl.envs.utils import ExplorationType, set_exploration_type
from torchrl.modules import MLP, ProbabilisticActor, TanhNormal, ValueOperator
from torchrl.objectives import ClipPPOLoss, ReinforceLoss, SACLoss, SoftUpdate, ValueEstimators
from torchrl.record.loggers import get_logger

from torchrl_skills.data.windows import make_window_replay_buffer
from torchrl_skills.envs.hierarchical import HierarchicalEnv, low_level_transitions, make_window_env
from torchrl_skills.modules.encoders import MLPEncoder
from torchrl_skills.modules.skill_embedding import SkillEmbedding, SkillMIEstimator
from torchrl_skills.objectives.higl_skill_mi import SkillMILoss
from torchrl_skills.modules.transformer_policy import make_goal_conditioned_critic, make_transformer_actor
from torchrl_skills.objectives.latent_goal_reward import LatentWindowRelabel
from torchrl_skills.objectives.temporal_contrastive import TemporalContrastiveLoss
from torchrl_skills.utils.shared_weights import SharedWeights
from torchrl_skills.utils import (
    ArgumentParser,
    CheckpointNotFoundError,
    OutputDir,
    check_finite_loss,
    import_gymnasium_robotics,
    load_checkpoint,
    non_negative_int,
    positive_float,
    positive_int,
    resolve_device,
    rng_state,
    run_cli,
    save_checkpoint,
    seed_everything,
    set_rng_state,
    stop_on_signals,
    truncate_csv_logs,
)

import_gymnasium_robotics()  # registers PointMaze_* (without gymnasium-robotics' AdroitHand notice)

STATE_KEY = "state"
STATE_DIM = 6
# What a run writes into --out-dir; a new run (no --resume) replaces them.
OUTPUTS = ["results.json", "learning_curves.png", "ckpt_*_seed*.pt", "logs"]
NAN_FIXES = "Try a lower --lr or a smaller --utd."


class NoLogger:
    """``--logger none``: the loops log unconditionally, so this one drops what they log."""

    def log_scalar(self, name, value, step=None):
        pass


def parse_args(argv=None):
    p = ArgumentParser(description=__doc__)
    p.add_argument("--env-id", default="PointMaze_UMaze-v3", help="gymnasium-robotics PointMaze env (sparse reward)")
    p.add_argument("--max-episode-steps", type=positive_int, default=200, help="episode length")
    p.add_argument("--algos", nargs="+", default=["higl", "sac"], choices=["higl", "sac"], help="methods to run")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1], help="seeds, one run per method and seed")
    p.add_argument("--seed", type=int, default=None, help="single seed (overrides --seeds)")
    p.add_argument("--total-steps", type=positive_int, default=20_000, help="env steps per run")
    p.add_argument("--warmup-steps", type=non_negative_int, default=500, help="random-action steps before learning")
    p.add_argument("--utd", type=positive_float, default=0.25, help="gradient updates per env step (both methods)")
    p.add_argument("--batch-size", type=positive_int, default=128, help="replayed samples (windows for HIGL) per update")
    p.add_argument("--lr", type=positive_float, default=3e-4, help="Adam learning rate of every network")
    p.add_argument("--gamma", type=float, default=0.99, help="discount (the high level uses gamma ** k)")
    p.add_argument("--tau", type=float, default=0.005, help="target-network soft update rate")
    p.add_argument("--alpha-init", type=positive_float, default=0.1, help="initial SAC entropy temperature")
    p.add_argument("--buffer-size", type=positive_int, default=300_000, help="replay capacity (transitions)")
    # HIGL
    p.add_argument("--k", type=positive_int, default=10, help="low-level steps per high-level goal")
    p.add_argument("--seq-len", type=positive_int, default=5, help="low-level transformer window (CPU default; SPEC B1 uses 10)")
    p.add_argument("--latent-dim", type=positive_int, default=16, help="encoder latent size (goals live there)")
    p.add_argument("--d-model", type=positive_int, default=64, help="transformer width")
    p.add_argument("--n-layers", type=positive_int, default=2, help="transformer layers")
    p.add_argument("--high-algo", default="ppo", choices=["ppo", "reinforce"], help="high-level learner")
    p.add_argument("--high-steps-per-batch", type=positive_int, default=20, help="high-level steps per collector batch")
    p.add_argument("--ppo-epochs", type=positive_int, default=4, help="PPO epochs per high-level batch")
    p.add_argument("--extrinsic-coef", type=float, default=10.0, help="weight of the task reward in the low-level reward")
    p.add_argument("--latent-coef", type=float, default=1.0, help="weight of -||E(s') - z_g||^2 in the low-level reward")
    p.add_argument("--goal-relabel-prob", type=float, default=0.5, help="hindsight relabelling of low-level goals")
    p.add_argument("--relabel-horizon", type=positive_int, default=None,
                   help="furthest future step for relabelled goals (None: --k)")
    p.add_argument("--unit-goals", action=argparse.BooleanOptionalAction, default=True,
                   help="project continuous high-level goals onto the unit sphere, where the normalised latents live")
    p.add_argument("--temperature", type=positive_float, default=0.1, help="InfoNCE temperature of the encoder loss")
    p.add_argument("--num-skills", type=non_negative_int, default=0,
                   help="0: continuous latent goals; N > 0: discrete-skill variant (SkillEmbedding goals, categorical high level)")
    p.add_argument("--mi-coef", type=float, default=0.0,
                   help="weight of the SkillMILoss InfoNCE term between reached latents and goals (goal diversity)")
    p.add_argument("--sac-frames-per-batch", type=positive_int, default=200, help="flat SAC: env steps per collector batch")
    # infrastructure
    p.add_argument("--num-workers", type=positive_int, default=1, help=">1 uses torchrl's MultiSyncCollector")
    p.add_argument("--eval-every", type=positive_int, default=4_000, help="env steps between evaluations")
    p.add_argument("--eval-episodes", type=positive_int, default=20, help="deterministic episodes per evaluation")
    p.add_argument("--device", default="cpu", help="torch device: cpu or cuda")
    p.add_argument("--logger", default="csv", choices=["csv", "tensorboard", "wandb", "none"],
                   help="TorchRL logger writing into <out-dir>/logs")
    p.add_argument("--out-dir", default="runs/higl_pointmaze", help="results, plot, checkpoints and logs")
    p.add_argument("--resume", action="store_true", help="continue from the checkpoints in --out-dir")
    p.add_argument("--ckpt-every", "--checkpoint-every", dest="checkpoint_every", metavar="CKPT_EVERY", type=positive_int, default=4_000,
                   help="env steps between atomic checkpoints of each run (a stop by Ctrl-C/SIGTERM also writes one)")
    p.add_argument("--num-threads", type=non_negative_int, default=1,
                   help="torch CPU threads (0: torch's default; 1 here: small networks on a shared machine)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    args = p.parse_args(argv)
    if args.seed is not None:
        args.seeds = [args.seed]
    return args


# ----------------------------------------------------------------------------- environments
def make_env(args, seed=None):
    env = GymEnv(args.env_id, continuing_task=False, reward_type="sparse", max_episode_steps=args.max_episode_steps)
    env = TransformedEnv(
        env,
        Compose(
            DoubleToFloat(),
            CatTensors(["observation", "desired_goal"], out_key=STATE_KEY, del_keys=False, sort=False),
            StepCounter(),
        ),
    )
    if seed is not None:
        env.set_seed(seed)
    return env


def tanh_normal_actor(in_keys, in_dim, out_dim, spec, num_cells=(256, 256)):
    from tensordict.nn import NormalParamExtractor

    net = nn.Sequential(MLP(in_features=in_dim, out_features=2 * out_dim, num_cells=list(num_cells)), NormalParamExtractor())
    return ProbabilisticActor(
        TensorDictModule(net, in_keys=in_keys, out_keys=["loc", "scale"]),
        in_keys=["loc", "scale"],
        spec=spec,
        distribution_class=TanhNormal,
        distribution_kwargs={"low": spec.space.low, "high": spec.space.high},
        return_log_prob=True,
        default_interaction_type=ExplorationType.RANDOM,
    )


class UnitGoal(nn.Module):
    """High-level action -> goal on the unit sphere (the encoder's latents are L2-normalised)."""

    def forward(self, action):
        return nn.functional.normalize(action, dim=-1)


class QNet(nn.Module):
    def __init__(self, in_dim, num_cells=(256, 256)):
        super().__init__()
        self.mlp = MLP(in_features=in_dim, out_features=1, num_cells=list(num_cells))

    def forward(self, obs, act):
        return self.mlp(torch.cat([obs, act], -1))


@torch.no_grad()
def success_rate(env, policy, n_episodes, max_steps):
    """Deterministic evaluation: fraction of episodes with a positive (sparse) task reward."""
    successes, returns = [], []
    with set_exploration_type(ExplorationType.DETERMINISTIC):
        for _ in range(n_episodes):
            td = env.rollout(max_steps, policy, break_when_any_done=True)
            ret = td["next", "reward"].sum().item()
            successes.append(float(ret > 0))
            returns.append(ret)
    return float(np.mean(successes)), float(np.mean(returns))


def make_collector(args, env_fn, policy, frames_per_batch, total_frames, init_random_frames=None):
    if args.num_workers > 1:
        return MultiSyncCollector(
            [env_fn] * args.num_workers, policy, frames_per_batch=frames_per_batch, total_frames=total_frames,
            init_random_frames=init_random_frames, cat_results="stack", auto_register_policy_transforms=False,
        )
    return Collector(env_fn(), policy, frames_per_batch=frames_per_batch, total_frames=total_frames,
                     init_random_frames=init_random_frames, auto_register_policy_transforms=False)


def truncate_log(logger, step):
    """Drops the CSV rows a stopped run logged after its checkpoint's ``step`` (logged again now)."""
    log_dir = getattr(logger, "log_dir", None)
    if log_dir is not None:
        truncate_csv_logs(Path(log_dir) / logger.exp_name, step)


# ----------------------------------------------------------------------------- flat SAC
def run_sac(args, seed, logger, ckpt_path, pbar, stop=None):
    device = resolve_device(args.device)
    seed_everything(seed)
    env = make_env(args, seed)
    eval_env = make_env(args, seed + 10_000)
    spec = env.action_spec
    actor = tanh_normal_actor([STATE_KEY], STATE_DIM, spec.shape[-1], spec).to(device)
    qnet = ValueOperator(QNet(STATE_DIM + spec.shape[-1]), in_keys=[STATE_KEY, "action"]).to(device)
    loss = SACLoss(actor, qnet, num_qvalue_nets=2, alpha_init=args.alpha_init, action_spec=spec)
    loss.make_value_estimator(gamma=args.gamma)
    updater = SoftUpdate(loss, tau=args.tau)
    optim = torch.optim.Adam(loss.parameters(), lr=args.lr)
    rb = TensorDictReplayBuffer(storage=LazyTensorStorage(args.buffer_size, device=device), batch_size=args.batch_size)
    state = {"steps": 0, "curve": [], "updates": 0}
    if args.resume and Path(ckpt_path).is_file():
        ck = load_checkpoint(ckpt_path)
        loss.load_state_dict(ck["loss"]); optim.load_state_dict(ck["optim"]); rb.load_state_dict(ck["rb"])
        state = ck["state"]; set_rng_state(ck["rng"])
    truncate_log(logger, state["steps"])
    remaining = args.total_steps - state["steps"]
    if remaining <= 0:
        return state
    fpb = args.sac_frames_per_batch
    collector = make_collector(
        args, lambda: make_env(args, seed + state["steps"]), actor, fpb, remaining,
        # in whole batches, as the collector counts them anyway (it warns otherwise)
        init_random_frames=math.ceil(max(0, args.warmup_steps - state["steps"]) / fpb) * fpb,
    )
    next_eval = (state["steps"] // args.eval_every + 1) * args.eval_every
    next_ckpt = state["steps"] + args.checkpoint_every
    for data in collector:
        data = data.reshape(-1)
        rb.extend(data.select(STATE_KEY, "action", ("next", STATE_KEY), ("next", "reward"), ("next", "done"), ("next", "terminated")))
        state["steps"] += data.numel()
        pbar.update(data.numel())
        n_updates = int(round(data.numel() * args.utd)) if state["steps"] >= args.warmup_steps else 0
        if n_updates:
            for _ in range(n_updates):
                out = loss(rb.sample().to(device))
                total = out["loss_actor"] + out["loss_qvalue"] + out["loss_alpha"]
                check_finite_loss(total, f"{state['steps']} (sac, seed {seed})", out, ckpt_path, NAN_FIXES)
                optim.zero_grad(); total.backward(); optim.step(); updater.step()
                state["updates"] += 1
            logger.log_scalar("loss_qvalue", out["loss_qvalue"].item(), state["steps"])
            logger.log_scalar("alpha", out["alpha"].item(), state["steps"])
        collector.update_policy_weights_()
        if state["steps"] >= next_eval or state["steps"] >= args.total_steps:  # always end on an eval
            sr, ret = success_rate(eval_env, actor, args.eval_episodes, args.max_episode_steps)
            state["curve"].append((state["steps"], sr))
            logger.log_scalar("eval_success_rate", sr, state["steps"])
            pbar.set_postfix(algo="sac", seed=seed, success=sr)
            next_eval += args.eval_every
        if state["steps"] >= next_ckpt or state["steps"] >= args.total_steps or stop:
            save_checkpoint({"loss": loss.state_dict(), "optim": optim.state_dict(), "rb": rb.state_dict(),
                             "state": state, "rng": rng_state()}, ckpt_path)
            next_ckpt += args.checkpoint_every
        if stop:  # SIGINT / SIGTERM: the batch is finished and saved
            break
    collector.shutdown()
    return state


# ----------------------------------------------------------------------------- HIGL
def run_higl(args, seed, logger, ckpt_path, pbar, stop=None):
    device = resolve_device(args.device)
    seed_everything(seed)
    L, d, k = args.seq_len, args.latent_dim, args.k
    probe = make_env(args)
    spec = probe.action_spec
    goal_spec = Bounded(-1.0, 1.0, (d,))  # latents are L2-normalised, so every coordinate lies in [-1, 1]

    encoder = MLPEncoder(STATE_DIM, d, num_cells=(128, 128), normalize=True).to(device)
    actor = make_transformer_actor(spec, d, d, L, d_model=args.d_model, dim_feedforward=2 * args.d_model,
                                   num_layers=args.n_layers).to(device)
    critic = make_goal_conditioned_critic(d, spec.shape[-1], d).to(device)
    # acting: encode the CatFrames window of raw states, then the transformer actor
    low_policy = TensorDictSequential(TensorDictModule(encoder, ["observation_window"], ["latent_window"]), actor)
    # Worker processes receive the env factory by cloudpickle, which copies tensors (shared or not):
    # their HierarchicalEnv acts with the learner's live low-level weights through memory-mapped
    # files instead, published after every update.
    shared_low = SharedWeights(low_policy) if args.num_workers > 1 else None

    sac = SACLoss(actor, critic, num_qvalue_nets=2, alpha_init=args.alpha_init, action_spec=spec)
    sac.make_value_estimator(gamma=args.gamma)
    updater = SoftUpdate(sac, tau=args.tau)
    relabel = LatentWindowRelabel(
        encoder, L, observation_key=STATE_KEY, extrinsic_coef=args.extrinsic_coef, latent_coef=args.latent_coef,
        goal_relabel_prob=args.goal_relabel_prob, relabel_horizon=args.relabel_horizon or k,
    )
    contrastive = TemporalContrastiveLoss(encoder, similarity="cosine", temperature=args.temperature)
    sac_optim = torch.optim.Adam(sac.parameters(), lr=args.lr)
    # optional goal-diversity term: InfoNCE between E(state reached) and the goal pursued
    mi_loss = SkillMILoss(SkillMIEstimator(d, d)).to(device)
    skills = None
    goal_module = UnitGoal() if args.unit_goals else None
    if args.num_skills > 0:
        # fixed unit-norm skill codes in the (unit-sphere) latent space: the stored goals stay
        # exact, and the MI term / the low level learn to make each code reachable
        skills = SkillEmbedding(args.num_skills, d).to(device)
        with torch.no_grad():
            skills.embedding.weight.copy_(nn.functional.normalize(skills.embedding.weight, dim=-1))
        skills.requires_grad_(False)
        goal_module = skills
    enc_optim = torch.optim.Adam([*encoder.parameters(), *mi_loss.parameters()], lr=args.lr)

    if skills is None:
        high_actor = tanh_normal_actor([STATE_KEY], STATE_DIM, d, goal_spec, num_cells=(64, 64)).to(device)
    else:  # discrete-skill variant: the high level picks a skill id, its embedding is the goal
        goal_spec = Categorical(args.num_skills)
        high_actor = ProbabilisticActor(
            TensorDictModule(MLP(in_features=STATE_DIM, out_features=args.num_skills, num_cells=[64, 64]), [STATE_KEY], ["logits"]),
            in_keys=["logits"], spec=goal_spec, distribution_class=torch.distributions.Categorical,
            return_log_prob=True, default_interaction_type=ExplorationType.RANDOM,
        ).to(device)
    high_value = ValueOperator(MLP(in_features=STATE_DIM, out_features=1, num_cells=[64, 64]), in_keys=[STATE_KEY]).to(device)
    if args.high_algo == "ppo":
        high_loss = ClipPPOLoss(high_actor, high_value, clip_epsilon=0.2, entropy_coeff=1e-3)
    else:
        high_loss = ReinforceLoss(high_actor, high_value)
    # semi-MDP: one high-level step lasts k env steps, hence gamma ** k
    high_loss.make_value_estimator(ValueEstimators.GAE, gamma=args.gamma**k, lmbda=0.95, average_gae=True)
    high_optim = torch.optim.Adam(high_loss.parameters(), lr=args.lr)

    rb = make_window_replay_buffer(args.buffer_size, slice_len=relabel.slice_len, num_slices=args.batch_size, device=device)
    state = {"steps": 0, "curve": [], "updates": 0}
    if args.resume and Path(ckpt_path).is_file():
        ck = load_checkpoint(ckpt_path)
        for m, key in ((sac, "sac"), (encoder, "encoder"), (high_loss, "high_loss"), (sac_optim, "sac_optim"),
                       (enc_optim, "enc_optim"), (high_optim, "high_optim"), (rb, "rb")):
            m.load_state_dict(ck[key])
        mi_loss.load_state_dict(ck["mi_loss"])
        if skills is not None:
            skills.load_state_dict(ck["skills"])
        state = ck["state"]; set_rng_state(ck["rng"])
    truncate_log(logger, state["steps"])
    remaining = args.total_steps - state["steps"]
    if remaining <= 0:
        return state

    def make_hier_env(eval_mode=False, env_seed=None, random_steps=0):
        low = make_window_env(make_env(args, env_seed), L, in_key=STATE_KEY)
        policy = low_policy if eval_mode or shared_low is None else shared_low.bind(copy.deepcopy(low_policy))
        return HierarchicalEnv(low, policy, goal_spec, k=k, record_keys=[STATE_KEY], goal_module=goal_module, goal_dim=d,
                               record_low_level=not eval_mode, init_random_steps=random_steps)

    eval_env = make_hier_env(eval_mode=True, env_seed=seed + 10_000)
    warm = max(0, args.warmup_steps - state["steps"]) // max(1, args.num_workers)
    collector = make_collector(
        args, lambda: make_hier_env(env_seed=seed + state["steps"], random_steps=warm), high_actor,
        args.high_steps_per_batch, -1,  # endless: we stop on env steps, since early episode ends shorten high-level steps
    )
    low_keys = [STATE_KEY, "goal", "action", ("next", STATE_KEY), ("next", "reward"), ("next", "done"), ("next", "terminated")]
    next_eval = (state["steps"] // args.eval_every + 1) * args.eval_every
    next_ckpt = state["steps"] + args.checkpoint_every
    for data in collector:
        data = data.reshape(-1)
        # 1) low-level transitions -> window replay (trajectory id = the high-level episode)
        rec = low_level_transitions(data, low_keys)
        rb.extend(rec)
        n_env = rec.numel()
        state["steps"] += n_env
        pbar.update(n_env)
        # 2) high level: on-policy update on the semi-MDP batch
        with torch.no_grad():
            high_loss.value_estimator(data)
        for _ in range(args.ppo_epochs if args.high_algo == "ppo" else 1):
            out_h = high_loss(data)
            h_total = sum(v for key, v in out_h.items() if key.startswith("loss_"))
            check_finite_loss(h_total, f"{state['steps']} (higl high level, seed {seed})", out_h, ckpt_path, NAN_FIXES)
            high_optim.zero_grad(); h_total.backward(); high_optim.step()
        logger.log_scalar("high_return", data["next", "reward"].mean().item(), state["steps"])
        # 3) low level SAC + encoder contrastive updates on replayed windows
        n_updates = int(round(n_env * args.utd)) if state["steps"] >= args.warmup_steps and len(rb) > relabel.slice_len * 4 else 0
        if n_updates:
            for _ in range(n_updates):
                slices = rb.sample().to(device).reshape(args.batch_size, relabel.slice_len)
                out = sac(relabel(slices))
                total = out["loss_actor"] + out["loss_qvalue"] + out["loss_alpha"]
                check_finite_loss(total, f"{state['steps']} (higl low level, seed {seed})", out, ckpt_path, NAN_FIXES)
                sac_optim.zero_grad(); total.backward(); sac_optim.step(); updater.step()
                # positives (s_t, s_{t+k}) inside the same window (k clipped to the window length)
                pos = min(k, relabel.slice_len) - 1
                pairs = slices[:, 0].select(STATE_KEY)
                pairs.set("future_observation", slices[:, pos].get(("next", STATE_KEY)))
                out_e = contrastive(pairs.rename_key_(STATE_KEY, "observation"))
                enc_total = out_e["loss_contrastive"]
                if args.mi_coef > 0:
                    last = slices[:, -1]
                    # positives: (latent reached at the end of the window, goal pursued); negatives: other goals
                    mi_td = last.select("goal").set("latent", encoder(last.get(("next", STATE_KEY))))
                    mi_td.rename_key_("goal", "skill_embedding")
                    enc_total = enc_total + args.mi_coef * mi_loss(mi_td)["loss_skill_mi"]
                check_finite_loss(enc_total, f"{state['steps']} (higl encoder, seed {seed})", out_e, ckpt_path, NAN_FIXES)
                enc_optim.zero_grad(); enc_total.backward(); enc_optim.step()
                state["updates"] += 1
            logger.log_scalar("loss_qvalue", out["loss_qvalue"].item(), state["steps"])
            logger.log_scalar("contrastive_accuracy", out_e["contrastive_accuracy"].item(), state["steps"])
        collector.update_policy_weights_()
        if shared_low is not None:
            shared_low.publish()
        if state["steps"] >= next_eval or state["steps"] >= args.total_steps:  # always end on an eval
            sr, ret = success_rate(eval_env, high_actor, args.eval_episodes, math.ceil(args.max_episode_steps / k))
            state["curve"].append((state["steps"], sr))
            logger.log_scalar("eval_success_rate", sr, state["steps"])
            pbar.set_postfix(algo="higl", seed=seed, success=sr)
            next_eval += args.eval_every
        if state["steps"] >= next_ckpt or state["steps"] >= args.total_steps or stop:
            save_checkpoint({"sac": sac.state_dict(), "encoder": encoder.state_dict(), "high_loss": high_loss.state_dict(),
                             "sac_optim": sac_optim.state_dict(), "enc_optim": enc_optim.state_dict(),
                             "high_optim": high_optim.state_dict(), "rb": rb.state_dict(), "mi_loss": mi_loss.state_dict(),
                             "skills": skills.state_dict() if skills is not None else None, "state": state,
                             "rng": rng_state()}, ckpt_path)
            next_ckpt += args.checkpoint_every
        if state["steps"] >= args.total_steps or stop:  # stop: SIGINT / SIGTERM, the batch is finished and saved
            break
    collector.shutdown()
    return state


# ----------------------------------------------------------------------------- main
def plot(results, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for algo, color in (("higl", "tab:blue"), ("sac", "tab:orange")):
        runs = [r for r in results["runs"] if r["algo"] == algo and r["curve"]]
        if not runs:
            continue
        n = min(len(r["curve"]) for r in runs)
        steps = np.array([s for s, _ in runs[0]["curve"][:n]])
        sr = np.array([[v for _, v in r["curve"][:n]] for r in runs])
        ax.plot(steps, sr.mean(0), color=color, label=f"{algo.upper()} (mean of {len(runs)} seeds)")
        ax.fill_between(steps, sr.min(0), sr.max(0), color=color, alpha=0.2)
    if results.get("random_policy_success_rate") is not None:
        ax.axhline(results["random_policy_success_rate"], color="gray", ls="--", label="random actions")
    ax.set_xlabel("env steps"); ax.set_ylabel("eval success rate"); ax.set_ylim(-0.05, 1.05)
    ax.set_title(results["config"]["env_id"] + " (sparse)"); ax.legend(); fig.tight_layout()
    fig.savefig(path, dpi=120); plt.close(fig)


def main(argv=None):
    """Runs every (method, seed); returns the results written to ``results.json``.

    Raises :class:`~torchrl_skills.utils.RunStopped` after saving when SIGINT / SIGTERM stops it.
    """
    args = parse_args(argv)
    torch.set_num_threads(args.num_threads)
    out_dir = Path(args.out_dir)
    if args.resume and not ((out_dir / "results.json").is_file() or list(out_dir.glob("ckpt_*_seed*.pt"))):
        raise CheckpointNotFoundError(
            f"--resume: nothing to resume in {out_dir} (no results.json, no ckpt_<algo>_seed<seed>.pt): "
            "run without --resume to start there."
        )
    with OutputDir(out_dir, owned=OUTPUTS) as out:  # a failed start leaves no empty folder
        return experiment(args, out)


def experiment(args, out: OutputDir):
    out_dir = out.path
    results_path = out_dir / "results.json"
    results = {"config": vars(args), "runs": []}
    if args.resume and results_path.is_file():
        results["runs"] = json.loads(results_path.read_text())["runs"]
    elif not args.resume:
        out.clear()  # a new experiment: no result, checkpoint or log row of an earlier one stays
    done = {(r["algo"], r["seed"]) for r in results["runs"] if r["steps"] >= args.total_steps}
    # reference: uniformly random actions on the very evaluation episodes (same env seeds) of each seed
    results["random_policy_success_rate"] = float(np.mean([
        success_rate(make_env(args, seed + 10_000), None, args.eval_episodes, args.max_episode_steps)[0] for seed in args.seeds
    ]))
    total = len(args.seeds) * len(args.algos) * args.total_steps
    last = None  # (algo, seed, steps, checkpoint) of the latest run, for the stop message
    # Ctrl-C / SIGTERM: the run in progress finishes its collector batch and checkpoints
    with stop_on_signals() as stop, tqdm(total=total, desc="higl-vs-sac", dynamic_ncols=True,
                                          disable=args.no_progress) as pbar:  # fmt: skip
        for seed in args.seeds:
            for algo in args.algos:
                if stop:
                    break
                previous = next((r for r in results["runs"] if (r["algo"], r["seed"]) == (algo, seed)), None)
                if (algo, seed) in done:
                    pbar.update(args.total_steps)
                    continue
                if previous is not None:  # a stopped run, continued from its checkpoint
                    pbar.update(min(previous["steps"], args.total_steps))
                logger = get_logger(
                    None if args.logger == "none" else args.logger, logger_name=str(out_dir / "logs"),
                    experiment_name=f"{algo}_seed{seed}",
                ) or NoLogger()  # fmt: skip
                t0 = time.perf_counter()
                runner = run_higl if algo == "higl" else run_sac
                ckpt_path = out_dir / f"ckpt_{algo}_seed{seed}.pt"
                st = runner(args, seed, logger, ckpt_path, pbar, stop)
                run = {"algo": algo, "seed": seed, "steps": st["steps"], "updates": st["updates"], "curve": st["curve"],
                       "final_success_rate": st["curve"][-1][1] if st["curve"] else None,
                       "mean_success_rate_over_evals": float(np.mean([v for _, v in st["curve"]])) if st["curve"] else None,
                       "wall_time_s": time.perf_counter() - t0 + (previous or {}).get("wall_time_s", 0.0)}
                results["runs"] = [r for r in results["runs"] if (r["algo"], r["seed"]) != (algo, seed)] + [run]
                results_path.write_text(json.dumps(results, indent=2))
                last = (algo, seed, st["steps"], ckpt_path)
    summary = {}
    for algo in args.algos:
        finals = [r["final_success_rate"] for r in results["runs"] if r["algo"] == algo and r["final_success_rate"] is not None]
        curves = [r["mean_success_rate_over_evals"] for r in results["runs"] if r["algo"] == algo and r.get("mean_success_rate_over_evals") is not None]
        summary[algo] = {"mean_final_success_rate": float(np.mean(finals)) if finals else None, "per_seed": finals,
                         "mean_success_rate_over_evals": float(np.mean(curves)) if curves else None}
    results["summary"] = summary
    results_path.write_text(json.dumps(results, indent=2))
    plot(results, out_dir / "learning_curves.png")
    if stop:
        if last is None:
            raise stop.stopped("the start, before any run", note="nothing to save yet")
        algo, seed, steps, ckpt_path = last
        raise stop.stopped(f"env step {steps} of {algo} seed {seed}", ckpt_path)
    print(json.dumps({**summary, "random_policy_success_rate": results["random_policy_success_rate"]}, indent=2))
    return results


if __name__ == "__main__":
    run_cli(main, resume_flag="--resume")
