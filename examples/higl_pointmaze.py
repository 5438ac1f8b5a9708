"""HIGL against flat SAC and SAC with hindsight relabelling on sparse PointMaze, same seeds, same env steps.

Task: gymnasium-robotics ``PointMaze_Medium-v3`` with ``reward_type="sparse"`` and
``continuing_task=False``: reward 1 and termination within 0.45 m of the goal, 0 otherwise;
start and goal cells redrawn at every reset; the env's own 600-step time limit. The agent sees
``observation = [x, y, vx, vy]`` and ``desired_goal = [gx, gy]``. Success rate = fraction of
evaluation episodes that reach the goal; every method is evaluated on the same episodes (fixed
episode seeds), all of them side by side in one batched env.

Every method collects with the same torchrl ``Collector`` over ``--num-envs`` envs stepped side
by side (``BatchedGymEnv``, one batched policy call per step), makes ``--utd`` gradient updates
per env step after ``--warmup-steps``, with the same batch size, learning rate and networks
where they are comparable:

- ``sac``: torchrl ``SACLoss``, MLP actor and twin critics on ``[observation, desired_goal]``.
- ``sac_her``: the same, replayed through torchrl's ``HERReplayBuffer`` ("future" strategy,
  ``--her-ratio``), rewards recomputed for the relabelled goals.
- ``higl`` (SPEC Part B, package parts in ``torchrl_skills.modules.higl`` and
  ``torchrl_skills.objectives.higl``):
  - encoder ``E``: ``MLPEncoder`` (L2-normalised latents) trained by temporal InfoNCE;
  - low level: ``TransformerPolicy`` over the last ``--seq-len`` latent states and the latent
    goal, twin ``Q(E(s), a, z_g)``, torchrl ``SACLoss`` on ``-||E(s') - z_g||^2`` (+ the task
    reward) recomputed at sample time, with hindsight latent goals (``HIGLLoss``);
  - high level: every ``--k`` steps a latent goal ``E(s_hat)``, ``s_hat`` a state at rest near
    the agent: its position moved by at most ``--subgoal-distance`` along the route to the task
    goal through a graph of the run's own visited positions (``LandmarkSubgoal``, rebuilt from
    the replay after every batch), plus the high level's correction times
    ``--high-action-scale``; ``ClipPPOLoss`` (or ``ReinforceLoss``) trains that correction on the
    semi-MDP steps (``high_level_transitions``), rewarded by the task return and the latent
    progress towards ``E(g)`` (``HighLevelReward``). By default the scale is 0: the goals follow
    the route alone, since on the validation seeds every learned correction cost success
    (README). ``--goal-space relative`` heads along the straight line instead (``RelativeSubgoal``,
    correction scale ``--subgoal-distance``), ``--goal-space residual`` gives ``normalize(E(g) +
    a)``, ``--goal-space sphere`` the seed's ``normalize(a)`` from the state alone.

CPU default (3 methods x 5 seeds x 60k env steps; about 80 min on 2 cores as two processes side
by side, HIGL seeds in one, the baselines in the other, then ``--merge``; about 57 min with
``--no-stall-escape``)::

    python examples/higl_pointmaze.py

Measured (final success, mean of seeds 0-4 with a 95% CI): HIGL 0.85 (0.78-0.92), SAC+HER 0.49
(0.35-0.63), flat SAC 0.05 (0.01-0.09), random actions 0.14 (an earlier install); under MuJoCo
4.0.0 HIGL 0.84 (0.78-0.89), SAC+HER 0.45 (0.35-0.55), flat SAC 0.07 (0.01-0.13), random 0.11,
and through ``StallEscape`` 0.90 / 0.65 / 0.13 (80 min on 2 cores with those evaluations).
Settings were chosen on seeds 100-102.

``--stall-escape`` (on by default) evaluates every method a second time on the same episodes,
wrapped in ``StallEscape`` (a row that stayed within 0.05 of one position for 10 steps drives a
random direction for 20 steps: the way out of the wall corners HIGL's low level pins itself in).
It draws from its own seeded generator inside a saved-and-restored RNG state, so training, and
the plain curve, are the same with and without it; ``results.json`` and the plot carry both.

Outputs in ``--out-dir``: ``results.json`` (per run: curve, final success over
``--eval-episodes`` episodes, wall time; per method: mean and 95% confidence interval over
seeds), ``learning_curves.png`` (all methods), logger files, one atomic checkpoint per
(method, seed) for ``--resume``; a run without ``--resume`` replaces them. Ctrl-C or SIGTERM
finishes the current collector batch, checkpoints, writes ``results.json`` and the plot, and
prints the command that continues (exit status 130 / 143). A resumed run continues the learner
(networks, optimizers, replay, RNG) and the logs without duplicate rows; the environments
restart with fresh episodes.
"""
from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
from tensordict.nn import TensorDictModule
from torch import nn
from tqdm import tqdm

from torchrl.collectors import Collector
from torchrl.data import HERReplayBuffer, LazyTensorStorage, TensorDictReplayBuffer
from torchrl.envs import Compose, DoubleToFloat, TransformedEnv
from torchrl.envs.utils import ExplorationType, set_exploration_type
from torchrl.modules import MLP, ValueOperator
from torchrl.objectives import SACLoss, SoftUpdate
from torchrl.record.loggers import get_logger

from torchrl_skills.data.windows import make_window_replay_buffer
from torchrl_skills.envs import BatchedGymEnv
from torchrl_skills.envs.hierarchical import goal_observation_transform, high_level_transitions, make_higl_env
from torchrl_skills.evaluation import SeededRandomPolicy, rollout_side_by_side
from torchrl_skills.modules import (
    HIGLPolicy,
    MLPEncoder,
    ObservationSlice,
    LandmarkSubgoal,
    RelativeSubgoal,
    ResidualLatentGoal,
    StallEscape,
    UnitGoal,
    make_goal_conditioned_critic,
    make_high_level_actor,
    make_high_level_value,
    make_transformer_actor,
)
from torchrl_skills.objectives import HighLevelReward, HIGLLoss, LatentWindowRelabel, TemporalContrastiveLoss, high_level_update, make_high_level_loss
from torchrl_skills.utils import (
    ArgumentParser,
    CheckpointNotFoundError,
    OutputDir,
    check_finite_loss,
    import_gymnasium_robotics,
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

import_gymnasium_robotics()  # registers PointMaze_* (without gymnasium-robotics' AdroitHand notice)

OBS_DIM, GOAL_DIM = 4, 2
SUCCESS_RADIUS = 0.45  # PointMaze's goal tolerance (m)
ALGOS = ["higl", "sac", "sac_her"]
COLORS = {"higl": "tab:blue", "sac": "tab:orange", "sac_her": "tab:green"}
# What a run writes into --out-dir; a new run (no --resume) replaces them.
OUTPUTS = ["results.json", "learning_curves.png", "ckpt_*_seed*.pt", "logs"]
NAN_FIXES = "Try a lower --lr or a smaller --utd."


class NoLogger:
    """``--logger none``: the loops log unconditionally, so this one drops what they log."""

    def log_scalar(self, name, value, step=None):
        pass


def parse_args(argv=None):
    p = ArgumentParser(description=__doc__)
    p.add_argument("--env-id", default="PointMaze_Medium-v3", help="gymnasium-robotics PointMaze env (sparse reward)")
    p.add_argument("--max-episode-steps", type=positive_int, default=600, help="episode length (the env's own limit)")
    p.add_argument("--algos", nargs="+", default=ALGOS, choices=ALGOS, help="methods to run")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4], help="training seeds, one run per method and seed")
    p.add_argument("--seed", type=int, default=None, help="single seed (overrides --seeds)")
    p.add_argument("--total-steps", type=positive_int, default=60_000,
                   help="env steps per run (60k: the whole comparison in about an hour on 2 CPU cores)")
    p.add_argument("--num-envs", type=positive_int, default=8, help="envs stepped side by side when collecting")
    p.add_argument("--frames-per-batch", "--sac-frames-per-batch", dest="frames_per_batch", type=positive_int,
                   default=800, help="env steps per collector batch (all envs together)")
    p.add_argument("--warmup-steps", type=non_negative_int, default=2_000, help="env steps before the first update")
    p.add_argument("--utd", type=positive_float, default=0.25, help="gradient updates per env step (every method)")
    p.add_argument("--batch-size", type=positive_int, default=256, help="replayed samples (windows for HIGL) per update")
    p.add_argument("--lr", type=positive_float, default=3e-4, help="Adam learning rate of every network")
    p.add_argument("--gamma", type=float, default=0.99, help="discount (the high level uses gamma ** k)")
    p.add_argument("--tau", type=float, default=0.005, help="target-network soft update rate")
    p.add_argument("--alpha-init", type=positive_float, default=0.1, help="initial SAC entropy temperature")
    p.add_argument("--buffer-size", type=positive_int, default=1_000_000, help="replay capacity (transitions)")
    p.add_argument("--her-ratio", type=float, default=0.8, help="sac_her: fraction of replayed goals relabelled")
    # HIGL
    p.add_argument("--k", type=positive_int, default=10, help="low-level steps per high-level goal")
    p.add_argument("--seq-len", type=positive_int, default=3, help="low-level transformer window (CPU default; SPEC B1: 10)")
    p.add_argument("--latent-dim", type=positive_int, default=8, help="encoder latent size (goals live there)")
    p.add_argument("--d-model", type=positive_int, default=64, help="transformer width (SPEC B1: 128)")
    p.add_argument("--n-layers", type=positive_int, default=1, help="transformer layers (SPEC B1: 2)")
    p.add_argument("--goal-space", default="landmark", choices=["landmark", "relative", "residual", "sphere"],
                   help="high-level action -> latent goal: landmark: E(nearby state), the position moved by <= "
                        "--subgoal-distance along the route to the task goal through a graph of visited positions, plus a "
                        "correction; relative: the same on the straight line to the goal; residual: "
                        "normalize(E(g) + --goal-scale * a); sphere: the seed's normalize(a), from the state alone")
    p.add_argument("--landmarks", type=positive_int, default=300, help="landmark: graph nodes among visited positions")
    p.add_argument("--landmark-edge-steps", type=positive_int, default=5,
                   help="landmark: join two landmarks a trajectory went between within this many steps")
    p.add_argument("--subgoal-distance", type=positive_float, default=1.5, help="landmark, relative: reach of one goal (m; cells are 1 m)")
    p.add_argument("--high-action-scale", type=float, default=None,
                   help="landmark, relative: how far (m) a unit high-level action moves the goal off the route (default: "
                        "0 for landmark, the route alone, since the learned correction cost success on the validation "
                        "seeds; --subgoal-distance for relative, whose straight line needs it)")
    p.add_argument("--goal-scale", type=positive_float, default=1.0, help="residual: latent distance of a unit action from E(g)")
    p.add_argument("--high-algo", default="ppo", choices=["ppo", "reinforce"], help="high-level learner")
    p.add_argument("--high-lr", type=positive_float, default=None, help="the high level's Adam learning rate (default: --lr)")
    p.add_argument("--ppo-epochs", type=positive_int, default=4, help="PPO epochs per collector batch")
    p.add_argument("--high-extrinsic-coef", type=float, default=10.0, help="high-level reward: weight of the task return")
    p.add_argument("--high-action-cost", type=float, default=0.0,
                   help="high-level reward: minus this times ||a||^2 (the correction to the proposed route)")
    p.add_argument("--high-progress-coef", type=float, default=1.0,
                   help="high-level reward: weight of the latent progress towards E(goal)")
    p.add_argument("--extrinsic-coef", type=float, default=10.0, help="low-level reward: weight of the task reward")
    p.add_argument("--latent-coef", type=float, default=1.0, help="low-level reward: weight of -||E(s') - z_g||^2")
    p.add_argument("--goal-relabel-prob", type=float, default=0.5, help="hindsight relabelling of low-level goals")
    p.add_argument("--relabel-horizon", type=positive_int, default=None, help="furthest future step of a relabelled goal (None: 2k)")
    p.add_argument("--encoder-input", default="position", choices=["full", "position"],
                   help="what E embeds: the full observation, or the position only (velocities then come from the window)")
    p.add_argument("--critic-window", action=argparse.BooleanOptionalAction, default=True,
                   help="the low-level critic reads the whole latent window, not only the latest latent")
    p.add_argument("--temperature", type=positive_float, default=1.0, help="InfoNCE temperature of the encoder loss")
    # infrastructure
    p.add_argument("--eval-every", type=positive_int, default=10_000, help="env steps between evaluations")
    p.add_argument("--eval-episodes", type=positive_int, default=50, help="deterministic episodes per evaluation, side by side")
    p.add_argument("--stall-escape", action=argparse.BooleanOptionalAction, default=True,
                   help="also evaluate every method wrapped in StallEscape (random direction out of wall corners), "
                        "on the same episodes; reported beside the plain success rate")
    p.add_argument("--stall-escape-collect", action="store_true",
                   help="also collect through StallEscape (its own seeded generator): stuck rows of the training envs "
                        "drive a random direction, and the replay stores those actions")
    p.add_argument("--device", default="cpu", help="torch device: cpu or cuda")
    p.add_argument("--logger", default="csv", choices=["csv", "tensorboard", "wandb", "none"],
                   help="TorchRL logger writing into <out-dir>/logs")
    p.add_argument("--out-dir", default="runs/higl_pointmaze", help="results, plot, checkpoints and logs")
    p.add_argument("--resume", action="store_true", help="continue from the checkpoints in --out-dir")
    p.add_argument("--ckpt-every", "--checkpoint-every", dest="checkpoint_every", metavar="CKPT_EVERY", type=positive_int,
                   default=10_000, help="env steps between atomic checkpoints of each run (a stop by Ctrl-C/SIGTERM also writes one)")
    p.add_argument("--num-threads", type=non_negative_int, default=1,
                   help="torch CPU threads (0: torch's default; 1 here: small networks on a shared machine)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.add_argument("--merge", nargs="+", metavar="DIR", default=None,
                   help="instead of training: merge the results.json of runs made in parallel processes into --out-dir")
    args = p.parse_args(argv)
    if args.seed is not None:
        args.seeds = [args.seed]
    if args.frames_per_batch % args.num_envs:
        p.error(f"--frames-per-batch ({args.frames_per_batch}) must be a multiple of --num-envs ({args.num_envs})")
    if not 0.0 <= args.her_ratio <= 1.0:
        p.error(f"--her-ratio must lie in [0, 1], got {args.her_ratio}")
    if args.high_action_scale is None:  # resolved here, so that results.json records the value used
        args.high_action_scale = 0.0 if args.goal_space == "landmark" else args.subgoal_distance
    if args.high_action_scale < 0:
        p.error(f"--high-action-scale must be >= 0, got {args.high_action_scale}")
    return args


# ----------------------------------------------------------------------------- environments
def make_env(args, num_envs, seeds, policy: HIGLPolicy | None = None):
    """``num_envs`` PointMaze envs side by side; for HIGL also the window, the episode flags and the policy state."""
    env = BatchedGymEnv(
        args.env_id, num_envs, seeds=seeds, info_keys=["success"], continuing_task=False, reward_type="sparse",
        max_episode_steps=args.max_episode_steps,
    )  # fmt: skip
    # the task goal as an observation at rest, [gx, gy, 0, 0], for the encoder and the high level
    env = TransformedEnv(env, Compose(DoubleToFloat(), goal_observation_transform(OBS_DIM - GOAL_DIM)))
    if policy is not None:
        env = make_higl_env(env, policy, args.seq_len)
    return env


@torch.no_grad()
def evaluate(args, seed, policy, higl_policy=None, stall_escape=False):
    """Success rate over ``--eval-episodes`` deterministic episodes, all side by side, on fixed episode seeds.

    ``stall_escape``: the policy wrapped in a fresh :class:`~torchrl_skills.modules.StallEscape`
    whose directions come from a generator seeded by ``seed``, so the rate repeats whatever ran before.
    """
    n = args.eval_episodes
    env = make_env(args, n, [10_000 * (seed + 1) + i for i in range(n)], higl_policy)
    if stall_escape:
        policy = StallEscape(policy, generator=torch.Generator().manual_seed(seed))
    with set_exploration_type(ExplorationType.DETERMINISTIC):
        rollout, _ = rollout_side_by_side(env, policy, args.max_episode_steps)
    env.close()
    return float((rollout["next", "reward"].sum(-2) > 0).float().mean())


def random_success_rate(args, seed):
    env = make_env(args, args.eval_episodes, [10_000 * (seed + 1) + i for i in range(args.eval_episodes)])
    # its own generator: the same rate for a seed whatever ran before it (other seeds, a resume)
    rollout, _ = rollout_side_by_side(env, SeededRandomPolicy(env.action_spec, seed), args.max_episode_steps)
    env.close()
    return float((rollout["next", "reward"].sum(-2) > 0).float().mean())


def sac_actor(spec):
    from tensordict.nn import NormalParamExtractor, TensorDictSequential
    from torchrl.modules import ProbabilisticActor, TanhNormal

    # torchrl's MLP concatenates its inputs: it reads [observation, desired_goal] as two entries
    net = MLP(in_features=OBS_DIM + GOAL_DIM, out_features=2 * spec.shape[-1], num_cells=[256, 256], activation_class=nn.ReLU)
    module = TensorDictSequential(
        TensorDictModule(net, in_keys=["observation", "desired_goal"], out_keys=["params"]),
        TensorDictModule(NormalParamExtractor(), in_keys=["params"], out_keys=["loc", "scale"]),
    )
    return ProbabilisticActor(
        module, in_keys=["loc", "scale"], spec=spec, distribution_class=TanhNormal,
        distribution_kwargs={"low": spec.space.low, "high": spec.space.high}, return_log_prob=True,
        default_interaction_type=ExplorationType.RANDOM,
    )  # fmt: skip


# ----------------------------------------------------------------------------- the agents
class SACAgent:
    """Flat SAC on [observation, desired_goal]; with ``her=True`` its replay relabels goals (torchrl's HER buffer)."""

    keys = ["observation", "desired_goal", "achieved_goal", "action", ("next", "observation"), ("next", "desired_goal"),
            ("next", "achieved_goal"), ("next", "reward"), ("next", "done"), ("next", "terminated")]  # fmt: skip

    def __init__(self, args, spec, device, her: bool):
        self.args, self.name = args, "sac_her" if her else "sac"
        self.policy = sac_actor(spec).to(device)
        qnet = ValueOperator(
            MLP(in_features=OBS_DIM + GOAL_DIM + spec.shape[-1], out_features=1, num_cells=[256, 256], activation_class=nn.ReLU),
            in_keys=["observation", "desired_goal", "action"],
        ).to(device)
        self.loss = SACLoss(self.policy, qnet, num_qvalue_nets=2, alpha_init=args.alpha_init, action_spec=spec)
        self.loss.make_value_estimator(gamma=args.gamma)
        self.updater = SoftUpdate(self.loss, tau=args.tau)
        self.optim = torch.optim.Adam(self.loss.parameters(), lr=args.lr)
        storage = LazyTensorStorage(args.buffer_size, device=device)
        if her:
            self.rb = HERReplayBuffer(
                reward_fn=reached, her_ratio=args.her_ratio, strategy="future", storage=storage, batch_size=args.batch_size
            )
        else:
            self.rb = TensorDictReplayBuffer(storage=storage, batch_size=args.batch_size)
        self.modules = {"loss": self.loss, "optim": self.optim, "rb": self.rb}
        self.env_policy = None

    def extend(self, data):
        data = data.select(*self.keys)
        # HERReplayBuffer finds episodes as runs that end on a done flag in a 1-d storage. A collector
        # batch of N envs is stored env after env, each env's chunk continuing in the next batch: mark
        # the end of every chunk as done (not terminated), so no relabelled goal comes from another env.
        done = data.get(("next", "done")).clone()
        done[:, -1] = True
        data.set(("next", "done"), done)
        self.rb.extend(data.reshape(-1))

    def update(self):
        out = self.loss(self.rb.sample())
        total = out["loss_actor"] + out["loss_qvalue"] + out["loss_alpha"]
        self.optim.zero_grad(); total.backward(); self.optim.step(); self.updater.step()  # fmt: skip
        return total, out

    def after_batch(self, data, steps, logger):
        pass


def reached(td):
    """Sparse PointMaze reward for a (relabelled) goal: 1 within 0.45 m of it."""
    dist = (td.get(("next", "achieved_goal")) - td.get("desired_goal")).norm(dim=-1, keepdim=True)
    return (dist <= SUCCESS_RADIUS).float()


class HIGLAgent:
    """Both HIGL levels (package parts), their replay and their updates."""

    keys = ["observation", "goal", "action", ("next", "observation"), ("next", "reward"), ("next", "done"),
            ("next", "terminated"), ("collector", "traj_ids")]  # fmt: skip

    def __init__(self, args, spec, device):
        self.args, self.name = args, "higl"
        L, d, k = args.seq_len, args.latent_dim, args.k
        if args.encoder_input == "position":
            self.encoder = nn.Sequential(ObservationSlice(0, GOAL_DIM), MLPEncoder(GOAL_DIM, d, normalize=True)).to(device)
        else:
            self.encoder = MLPEncoder(OBS_DIM, d, num_cells=(256, 256), normalize=True).to(device)
        actor = make_transformer_actor(
            spec, d, d, L, d_model=args.d_model, dim_feedforward=2 * args.d_model, num_layers=args.n_layers
        ).to(device)
        critic = make_goal_conditioned_critic(
            L * d if args.critic_window else d, spec.shape[-1], d, num_cells=(256, 256),
            in_keys=("latent_window" if args.critic_window else "latent", "action", "goal"),
        ).to(device)  # fmt: skip
        # the high level sees the task goal, except in the seed's design (a goal anywhere on the sphere)
        high_keys, high_dim, action_dim = ["observation", "goal_observation"], 2 * OBS_DIM, d
        if args.goal_space == "relative":  # E(a nearby state), by default on the straight line to the goal
            goal_map = RelativeSubgoal(self.encoder, max_distance=args.subgoal_distance, action_scale=args.high_action_scale)
            action_dim = GOAL_DIM
        elif args.goal_space == "landmark":  # E(a nearby state) on the route through visited positions
            goal_map, action_dim = LandmarkSubgoal(
                self.encoder, max_distance=args.subgoal_distance, action_scale=args.high_action_scale,
                num_landmarks=args.landmarks,
                max_edge_steps=args.landmark_edge_steps,
            ), GOAL_DIM  # fmt: skip
        elif args.goal_space == "residual":
            goal_map = ResidualLatentGoal(self.encoder, scale=args.goal_scale)
        else:
            high_keys, high_dim, goal_map = ["observation"], OBS_DIM, UnitGoal()
        high_actor = make_high_level_actor(high_keys, high_dim, action_dim).to(device)
        high_value = make_high_level_value(high_keys, high_dim).to(device)
        self.goal_map = goal_map
        self.policy = HIGLPolicy(self.encoder, high_actor, actor, goal_dim=d, k=k, goal_map=goal_map)

        sac = SACLoss(actor, critic, num_qvalue_nets=2, alpha_init=args.alpha_init, action_spec=spec)
        sac.make_value_estimator(gamma=args.gamma)
        relabel = LatentWindowRelabel(
            self.encoder, L, extrinsic_coef=args.extrinsic_coef, latent_coef=args.latent_coef,
            goal_relabel_prob=args.goal_relabel_prob, relabel_horizon=args.relabel_horizon or 2 * k,
        )  # fmt: skip
        contrastive = TemporalContrastiveLoss(self.encoder, similarity="cosine", temperature=args.temperature)
        self.loss = HIGLLoss(relabel, sac, contrastive, positive_offset=k)
        self.updater = SoftUpdate(sac, tau=args.tau)
        self.optim = torch.optim.Adam(self.loss.parameters(), lr=args.lr)

        self.high_loss = make_high_level_loss(high_actor, high_value, algo=args.high_algo, gamma=args.gamma, k=k)
        self.high_optim = torch.optim.Adam(self.high_loss.parameters(), lr=args.high_lr or args.lr)
        self.high_reward = HighLevelReward(
            self.encoder, extrinsic_coef=args.high_extrinsic_coef, progress_coef=args.high_progress_coef,
            action_cost=args.high_action_cost,
        )
        self.rb = make_window_replay_buffer(args.buffer_size, relabel.slice_len, args.batch_size, device=device)
        self.modules = {"loss": self.loss, "optim": self.optim, "high_loss": self.high_loss, "high_optim": self.high_optim,
                        "rb": self.rb}  # fmt: skip
        self.env_policy = self.policy

    def extend(self, data):
        self.rb.extend(data.select(*self.keys).reshape(-1))
        self.refresh()

    def refresh(self):
        """Landmarks follow the replay buffer: rebuilt after every batch and after a resume."""
        if isinstance(self.goal_map, LandmarkSubgoal) and len(self.rb):
            seen = self.rb[: len(self.rb)]
            self.goal_map.update_graph(seen["observation"], seen["collector", "traj_ids"])

    def update(self):
        out = self.loss(self.rb.sample())
        total = out["loss_actor"] + out["loss_qvalue"] + out["loss_alpha"] + out["loss_encoder"]
        self.optim.zero_grad(); total.backward(); self.optim.step(); self.updater.step()  # fmt: skip
        return total, out

    def after_batch(self, data, steps, logger):
        """The high level's on-policy update on this batch's semi-MDP steps."""
        high = high_level_transitions(data, self.args.k, keys=["observation", "goal_observation"])
        if not high["mask"].any():
            return
        self.high_reward(high)
        high = high_level_update(
            self.high_loss, self.high_optim, high, epochs=self.args.ppo_epochs if self.args.high_algo == "ppo" else 1,
            check=lambda total, out: check_finite_loss(total, f"{steps} (higl high level)", out, None, NAN_FIXES),
        )  # fmt: skip
        logger.log_scalar("high_reward", high["next", "reward"].mean().item(), steps)
        logger.log_scalar("high_extrinsic_return", high["next", "extrinsic_reward"].mean().item(), steps)


# ----------------------------------------------------------------------------- one run
def run(args, algo, seed, logger, ckpt_path, pbar, stop=None):
    device = resolve_device(args.device)
    seed_everything(seed)
    probe = make_env(args, 1, None)
    spec = probe.action_spec[0]
    probe.close()
    agent = HIGLAgent(args, spec, device) if algo == "higl" else SACAgent(args, spec, device, her=algo == "sac_her")
    state = {"steps": 0, "curve": [], "curve_stall_escape": [], "updates": 0}
    if args.resume and Path(ckpt_path).is_file():
        ck = load_checkpoint(ckpt_path)
        load_training_state(agent.modules, ck)  # refuses another code's networks (see load_module_state)
        state = {"curve_stall_escape": [], **ck["state"]}  # checkpoints written before --stall-escape lack it
        set_rng_state(ck["rng"])
        if algo == "higl":
            agent.refresh()  # landmarks from the restored replay
    resume_logger(logger, state["steps"])  # what a stopped run logged after its checkpoint is logged again
    remaining = args.total_steps - state["steps"]
    if remaining <= 0:
        return state
    n = args.num_envs
    env = make_env(args, n, [seed * 1_000_003 + state["steps"] + i for i in range(n)], agent.env_policy)
    # a resumed run restarts the escape state with its fresh episodes; the generator is seeded by the step
    collect_policy = agent.policy if not args.stall_escape_collect else StallEscape(
        agent.policy, generator=torch.Generator().manual_seed(seed * 1_000_003 + state["steps"] + 1))
    collector = Collector(env, collect_policy, frames_per_batch=args.frames_per_batch, total_frames=-1, device=device,
                          auto_register_policy_transforms=False)  # fmt: skip
    next_eval = (state["steps"] // args.eval_every + 1) * args.eval_every
    next_ckpt = state["steps"] + args.checkpoint_every
    for data in collector:
        agent.extend(data)  # [N, T]: env rows, then time
        state["steps"] += data.numel()
        pbar.update(data.numel())
        n_updates = int(round(data.numel() * args.utd)) if state["steps"] >= args.warmup_steps else 0
        if n_updates:
            for _ in range(n_updates):
                total, out = agent.update()
                state["updates"] += 1
            check_finite_loss(total, f"{state['steps']} ({algo}, seed {seed})", out, ckpt_path, NAN_FIXES)
            for key in ("loss_qvalue", "loss_actor", "alpha", "contrastive_accuracy"):
                if key in out.keys():
                    logger.log_scalar(key, out[key].item(), state["steps"])
            agent.after_batch(data, state["steps"], logger)
        collector.update_policy_weights_()
        if state["steps"] >= next_eval or state["steps"] >= args.total_steps:  # always end on an evaluation
            sr = evaluate(args, seed, agent.policy, agent.env_policy)
            state["curve"].append((state["steps"], sr))
            logger.log_scalar("eval_success_rate", sr, state["steps"])
            postfix = {"algo": algo, "seed": seed, "success": sr}
            if args.stall_escape:
                rng = rng_state()  # the extra evaluation leaves training's random stream as without the flag
                sr_escape = evaluate(args, seed, agent.policy, agent.env_policy, stall_escape=True)
                set_rng_state(rng)
                state["curve_stall_escape"].append((state["steps"], sr_escape))
                logger.log_scalar("eval_success_rate_stall_escape", sr_escape, state["steps"])
                postfix["escape"] = sr_escape
            if args.stall_escape_collect:
                logger.log_scalar("collect_escapes", collect_policy.escapes, state["steps"])
            pbar.set_postfix(**postfix)
            next_eval += args.eval_every
        if state["steps"] >= next_ckpt or state["steps"] >= args.total_steps or stop:
            save_checkpoint({**training_state(agent.modules), "state": state, "rng": rng_state()}, ckpt_path)
            next_ckpt += args.checkpoint_every
        if state["steps"] >= args.total_steps or stop:  # stop: SIGINT / SIGTERM, the batch is finished and saved
            break
    collector.shutdown()
    return state


# ----------------------------------------------------------------------------- main
def confidence_interval(values):
    """Mean and the half-width of its 95% confidence interval over seeds (Student t)."""
    values = np.asarray(values, dtype=float)
    if len(values) < 2:
        return float(values.mean()), float("nan")
    from scipy import stats

    return float(values.mean()), float(stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / math.sqrt(len(values)))


def plot(results, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4))
    for algo in ALGOS:
        runs = [r for r in results["runs"] if r["algo"] == algo and r["curve"]]
        if not runs:
            continue
        n = min(len(r["curve"]) for r in runs)
        steps = np.array([s for s, _ in runs[0]["curve"][:n]])
        sr = np.array([[v for _, v in r["curve"][:n]] for r in runs])
        half = (
            np.array([confidence_interval(sr[:, i])[1] for i in range(n)]) if len(runs) > 1 else np.zeros(n)
        )
        ax.plot(steps, sr.mean(0), color=COLORS[algo], label=f"{algo.upper().replace('_', '+')} ({len(runs)} seeds)")
        ax.fill_between(steps, sr.mean(0) - half, sr.mean(0) + half, color=COLORS[algo], alpha=0.2)
        escape = [r["curve_stall_escape"][:n] for r in runs if len(r.get("curve_stall_escape") or []) >= n]
        if len(escape) == len(runs):
            ax.plot(steps, np.array([[v for _, v in c] for c in escape]).mean(0), color=COLORS[algo], ls=":",
                    label=f"{algo.upper().replace('_', '+')} + StallEscape")  # fmt: skip
    if results.get("random_policy_success_rate") is not None:
        ax.axhline(results["random_policy_success_rate"], color="gray", ls="--", label="random actions")
    ax.set_xlabel("env steps"); ax.set_ylabel("success rate (mean, 95% CI)"); ax.set_ylim(-0.05, 1.05)  # fmt: skip
    ax.set_title(f"{results['config']['env_id']} (sparse, {results['config']['max_episode_steps']} steps)")
    ax.legend(); fig.tight_layout(); save_figure(fig, path, dpi=120)  # fmt: skip


def summarize(results, algos):
    """Per method: mean final success over seeds with its 95% confidence interval, per-seed values, wall time.

    Only finished runs count: a run stopped part-way (saved so that ``--resume`` continues it) is
    listed under ``unfinished_seeds``, its last evaluation is not a final success rate.
    """
    summary, total = {}, results["config"]["total_steps"]
    for algo in algos:
        mine = [r for r in results["runs"] if r["algo"] == algo and r["final_success_rate"] is not None]
        runs = [r for r in mine if r["steps"] >= total]
        finals = [r["final_success_rate"] for r in runs]
        mean, half = confidence_interval(finals) if finals else (None, None)
        summary[algo] = {"mean_final_success_rate": mean, "ci95_half_width": half, "per_seed": finals,
                         "seeds": [r["seed"] for r in runs], "wall_time_s": sum(r["wall_time_s"] for r in runs),
                         "unfinished_seeds": [r["seed"] for r in mine if r["steps"] < total]}  # fmt: skip
        escapes = [r.get("final_success_rate_stall_escape") for r in runs]
        if finals and all(e is not None for e in escapes):  # every finished run was also evaluated with StallEscape
            mean, half = confidence_interval(escapes)
            summary[algo].update(mean_final_success_rate_stall_escape=mean, ci95_half_width_stall_escape=half,
                                 per_seed_stall_escape=escapes)  # fmt: skip
    results["summary"] = summary
    return summary


def merge(args):
    """``--merge DIR ...``: one results.json and plot from runs made side by side in several processes."""
    parts = []
    for folder in args.merge:
        path = Path(folder) / "results.json"
        if not path.is_file():
            raise CheckpointNotFoundError(f"--merge: {path} does not exist; merge folders written by this script.")
        parts.append(json.loads(path.read_text()))
    results = {"config": parts[0]["config"], "merged_from": [str(f) for f in args.merge], "runs": []}
    for part in parts:
        results["runs"] += part["runs"]
    seeds = sorted({r["seed"] for r in results["runs"]})
    per_seed = {}
    for part in sorted(parts, key=lambda part: len(part["config"]["seeds"])):
        # per seed where recorded; older files hold only the mean over their own seeds
        per_seed.update(part.get("random_policy_success_rate_per_seed") or {
            ",".join(map(str, part["config"]["seeds"])): part["random_policy_success_rate"]
        })  # fmt: skip
    widest = max(parts, key=lambda part: len(part["config"]["seeds"]))
    if "random_policy_success_rate_per_seed" in widest or set(widest["config"]["seeds"]) != set(seeds):
        results["random_policy_success_rate_per_seed"] = per_seed
        results["random_policy_success_rate"] = float(np.mean(list(per_seed.values())))
    else:  # one part ran every seed: its mean is the mean over all seeds
        results["random_policy_success_rate"] = widest["random_policy_success_rate"]
    algos = [a for a in ALGOS if any(r["algo"] == a for r in results["runs"])]
    results["config"] = {**results["config"], "seeds": seeds, "algos": algos}
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = summarize(results, algos)
    (out_dir / "results.json").write_text(json.dumps(results, indent=2))
    plot(results, out_dir / "learning_curves.png")
    print(json.dumps({**summary, "random_policy_success_rate": results["random_policy_success_rate"]}, indent=2))
    return results


def main(argv=None):
    """Runs every (method, seed); returns the results written to ``results.json``.

    Raises :class:`~torchrl_skills.utils.RunStopped` after saving when SIGINT / SIGTERM stops it.
    """
    args = parse_args(argv)
    if args.merge:
        return merge(args)
    torch.set_num_threads(args.num_threads) if args.num_threads else None
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
    # reference: uniformly random actions on the very evaluation episodes of each seed
    results["random_policy_success_rate_per_seed"] = {str(seed): random_success_rate(args, seed) for seed in args.seeds}
    results["random_policy_success_rate"] = float(np.mean(list(results["random_policy_success_rate_per_seed"].values())))
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
                ckpt_path = out_dir / f"ckpt_{algo}_seed{seed}.pt"
                st = run(args, algo, seed, logger, ckpt_path, pbar, stop)
                run_result = {
                    "algo": algo, "seed": seed, "steps": st["steps"], "updates": st["updates"], "curve": st["curve"],
                    "final_success_rate": st["curve"][-1][1] if st["curve"] else None,
                    "curve_stall_escape": st["curve_stall_escape"],
                    "final_success_rate_stall_escape": st["curve_stall_escape"][-1][1] if st["curve_stall_escape"] else None,
                    "wall_time_s": time.perf_counter() - t0 + (previous or {}).get("wall_time_s", 0.0),
                }  # fmt: skip
                results["runs"] = [r for r in results["runs"] if (r["algo"], r["seed"]) != (algo, seed)] + [run_result]
                results_path.write_text(json.dumps(results, indent=2))
                last = (algo, seed, st["steps"], ckpt_path)
    summary = summarize(results, args.algos)
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
