"""HIGL on CarRacing-v3 from pixels (ConvEncoder), CPU-sized by default.

Pixels: ``CarRacing-v3`` renders 96x96x3 ``uint8`` frames. By default they stay ``uint8`` and
are only permuted to channels-first (torchrl ``PermuteTransform``), so the replay buffer
stores bytes and ``ConvEncoder`` scales them to [0, 1] exactly once. Options:
``--grayscale`` / ``--resize N`` (torchrl ``ToTensorImage`` + ``GrayScale`` / ``Resize``,
float pixels) and ``--frame-stack N`` (``CatFrames`` on channels).

HIGL (SPEC Part B): ``ConvEncoder`` E trained by ``TemporalContrastiveLoss``; transformer low
level over windows of ``seq_len`` encoded frames, trained with torchrl ``SACLoss`` on
``-||E(s_{t+1}) - z_g||^2`` (+ ``--extrinsic-coef`` x the track reward) recomputed at sample
time from the stored frames; a high-level policy (its own small ConvEncoder + MLP, TanhNormal)
picks a latent goal every ``k`` steps through ``HierarchicalEnv``, trained with
``ClipPPOLoss`` (GAE, ``gamma ** k``) on the summed track reward.

CPU default (a few minutes on 2 shared cores; episodes truncated at 250 steps)::

    python examples/higl_carracing.py

Full-size configuration (SPEC B2 defaults; needs a GPU and ~1M steps to drive well)::

    python examples/higl_carracing.py --total-steps 1000000 --max-episode-steps 1000 --seq-len 10 \\
        --batch-size 128 --utd 1 --latent-dim 64 --d-model 128 --memmap --eval-every 50000 \\
        --eval-episodes 10 --device cuda

Outputs in ``--out-dir``: ``results.json`` (eval returns, wall time), ``learning_curve.png``,
logger files and an atomic checkpoint for ``--resume``; a run without ``--resume`` replaces them.
Ctrl-C or SIGTERM finishes the current collector batch, writes the checkpoint, ``results.json``
and the plot, and prints the command that continues (``--resume``; exit status 130 / 143). The
learner and the logs continue exactly; the environments restart with fresh episodes.
"""
from __future__ import annotations

import copy
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
from tensordict.nn import NormalParamExtractor, TensorDictModule, TensorDictSequential
from torch import nn
from tqdm import tqdm

from torchrl.collectors import Collector, MultiSyncCollector
from torchrl.data import Bounded
from torchrl.envs import (
    CatFrames,
    Compose,
    GrayScale,
    GymEnv,
    PermuteTransform,
    Resize,
    StepCounter,
    ToTensorImage,
    TransformedEnv,
)
from torchrl.envs.utils import ExplorationType, set_exploration_type
from torchrl.modules import MLP, ProbabilisticActor, TanhNormal, ValueOperator
from torchrl.objectives import ClipPPOLoss, ReinforceLoss, SACLoss, SoftUpdate, ValueEstimators
from torchrl.record.loggers import get_logger

from torchrl_skills.data.windows import make_window_replay_buffer
from torchrl_skills.envs.hierarchical import HierarchicalEnv, low_level_transitions, make_window_env
from torchrl_skills.modules.encoders import ConvEncoder
from torchrl_skills.modules.transformer_policy import make_goal_conditioned_critic, make_transformer_actor
from torchrl_skills.objectives.latent_goal_reward import LatentWindowRelabel
from torchrl_skills.objectives.temporal_contrastive import TemporalContrastiveLoss
from torchrl_skills.utils.shared_weights import SharedWeights
from torchrl_skills.utils import (
    ArgumentParser,
    CheckpointNotFoundError,
    OutputDir,
    UserError,
    check_finite_loss,
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

PIX = "pixels"
# What a run writes into --out-dir; a new run (no --resume) replaces them.
OUTPUTS = ["results.json", "learning_curve.png", "checkpoint.pt", "logs", "replay"]
NAN_FIXES = "Try a lower --lr or a smaller --utd."


class NoLogger:
    """``--logger none``: the loops log unconditionally, so this one drops what they log."""

    def log_scalar(self, name, value, step=None):
        pass


def parse_args(argv=None):
    p = ArgumentParser(description=__doc__)
    p.add_argument("--seed", type=int, default=0, help="seeds torch, numpy, python and the envs")
    p.add_argument("--total-steps", type=positive_int, default=3_000, help="env steps in all")
    p.add_argument("--max-episode-steps", type=positive_int, default=250, help="episode length (CarRacing's own: 1000)")
    p.add_argument("--warmup-steps", type=non_negative_int, default=500, help="random-goal steps before learning")
    p.add_argument("--utd", type=positive_float, default=0.1, help="gradient updates per env step")
    p.add_argument("--batch-size", type=positive_int, default=32, help="replayed windows per update")
    p.add_argument("--lr", type=positive_float, default=3e-4, help="Adam learning rate of every network")
    p.add_argument("--gamma", type=float, default=0.99, help="discount (the high level uses gamma ** k)")
    p.add_argument("--tau", type=float, default=0.005, help="target-network soft update rate")
    p.add_argument("--alpha-init", type=positive_float, default=0.1, help="initial SAC entropy temperature")
    p.add_argument("--buffer-size", type=positive_int, default=100_000,
                   help="replay capacity (transitions; at most --total-steps + 1000 are allocated)")
    p.add_argument("--memmap", action="store_true", help="LazyMemmapStorage for the pixel replay (in <out-dir>/replay)")
    p.add_argument("--k", type=positive_int, default=10, help="low-level steps per high-level goal")
    p.add_argument("--seq-len", type=positive_int, default=4,
                   help="low-level transformer window (CPU default; higl_pointmaze.py uses 5, SPEC B1 10)")
    p.add_argument("--latent-dim", type=positive_int, default=32, help="encoder latent size (goals live there)")
    p.add_argument("--d-model", type=positive_int, default=64, help="transformer width")
    p.add_argument("--high-algo", default="ppo", choices=["ppo", "reinforce"], help="high-level learner")
    p.add_argument("--high-steps-per-batch", type=positive_int, default=10, help="high-level steps per collector batch")
    p.add_argument("--ppo-epochs", type=positive_int, default=4, help="PPO epochs per high-level batch")
    p.add_argument("--extrinsic-coef", type=float, default=1.0,
                   help="weight of the track reward in the low-level reward (dense here; higl_pointmaze.py uses 10 "
                        "for its sparse reward)")
    p.add_argument("--temperature", type=positive_float, default=0.1, help="InfoNCE temperature of the encoder loss")
    p.add_argument("--grayscale", action="store_true", help="one grey channel instead of RGB (float pixels)")
    p.add_argument("--resize", type=positive_int, default=None, help="resize frames to N x N (None: 96 x 96; needs torchvision)")
    p.add_argument("--frame-stack", type=positive_int, default=1, help="frames stacked on the channels")
    p.add_argument("--num-workers", type=positive_int, default=1, help=">1 uses torchrl's MultiSyncCollector")
    p.add_argument("--eval-every", type=positive_int, default=1_500, help="env steps between evaluations")
    p.add_argument("--eval-episodes", type=positive_int, default=2, help="deterministic episodes per evaluation")
    p.add_argument("--device", default="cpu", help="torch device: cpu or cuda")
    p.add_argument("--logger", default="csv", choices=["csv", "tensorboard", "wandb", "none"],
                   help="TorchRL logger writing into <out-dir>/logs")
    p.add_argument("--out-dir", default="runs/higl_carracing", help="results, plot, checkpoint and logs")
    p.add_argument("--resume", action="store_true", help="continue from <out-dir>/checkpoint.pt")
    p.add_argument("--ckpt-every", "--checkpoint-every", dest="checkpoint_every", metavar="CKPT_EVERY", type=positive_int, default=1_000,
                   help="env steps between atomic checkpoints (a stop by Ctrl-C/SIGTERM also writes one)")
    p.add_argument("--num-threads", type=non_negative_int, default=1,
                   help="torch CPU threads (0: torch's default; 1 here: small networks on a shared machine)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return p.parse_args(argv)


def make_env(args, seed=None):
    env = GymEnv("CarRacing-v3", max_episode_steps=args.max_episode_steps)
    if args.grayscale or args.resize:
        # float path: ToTensorImage scales to [0, 1] once; ConvEncoder then leaves floats alone
        ts = [ToTensorImage(in_keys=[PIX])]
        if args.resize:
            try:
                ts.append(Resize(args.resize, args.resize, in_keys=[PIX]))
            except ImportError as err:  # torchrl's Resize is built on torchvision
                raise UserError(f"--resize needs torchvision ({err}): pip install torchvision, or drop --resize.") from err
        if args.grayscale:
            ts.append(GrayScale(in_keys=[PIX]))
    else:
        # uint8 path: HWC -> CHW only, bytes in the replay buffer
        ts = [PermuteTransform((-1, -3, -2), in_keys=[PIX])]
    if args.frame_stack > 1:
        ts.append(CatFrames(N=args.frame_stack, dim=-3, in_keys=[PIX]))
    env = TransformedEnv(env, Compose(*ts, StepCounter()))
    if seed is not None:
        env.set_seed(seed)
    return env


def pixel_shape(args):
    side = args.resize or 96
    return ((1 if args.grayscale else 3) * args.frame_stack, side, side)


def main(argv=None):
    """Trains HIGL on CarRacing; returns the results written to ``results.json``.

    Raises :class:`~torchrl_skills.utils.RunStopped` after saving when SIGINT / SIGTERM stops it.
    """
    args = parse_args(argv)
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
    L, d, k = args.seq_len, args.latent_dim, args.k
    shape = pixel_shape(args)
    spec = make_env(args).action_spec
    goal_spec = Bounded(-1.0, 1.0, (d,))  # L2-normalised latents: coordinates in [-1, 1]

    # ---- networks
    encoder = ConvEncoder(shape, d, normalize=True).to(device)
    actor = make_transformer_actor(spec, d, d, L, d_model=args.d_model, dim_feedforward=2 * args.d_model).to(device)
    critic = make_goal_conditioned_critic(d, spec.shape[-1], d).to(device)
    low_policy = TensorDictSequential(TensorDictModule(encoder, ["observation_window"], ["latent_window"]), actor)
    # Worker processes receive the env factory by cloudpickle, which copies tensors (shared or not):
    # they act with the learner's live low-level weights through memory-mapped files instead.
    shared_low = SharedWeights(low_policy) if args.num_workers > 1 else None
    high_net = nn.Sequential(ConvEncoder(shape, 32), nn.ReLU(), MLP(in_features=32, out_features=2 * d, num_cells=[64]),
                             NormalParamExtractor())
    high_actor = ProbabilisticActor(
        TensorDictModule(high_net, [PIX], ["loc", "scale"]), in_keys=["loc", "scale"], spec=goal_spec,
        distribution_class=TanhNormal, distribution_kwargs={"low": goal_spec.space.low, "high": goal_spec.space.high},
        return_log_prob=True, default_interaction_type=ExplorationType.RANDOM,
    ).to(device)
    high_value = ValueOperator(nn.Sequential(ConvEncoder(shape, 32), nn.ReLU(), MLP(in_features=32, out_features=1, num_cells=[64])),
                               in_keys=[PIX]).to(device)

    # ---- losses
    sac = SACLoss(actor, critic, num_qvalue_nets=2, alpha_init=args.alpha_init, action_spec=spec)
    sac.make_value_estimator(gamma=args.gamma)
    updater = SoftUpdate(sac, tau=args.tau)
    relabel = LatentWindowRelabel(encoder, L, observation_key=PIX, extrinsic_coef=args.extrinsic_coef)
    contrastive = TemporalContrastiveLoss(encoder, similarity="cosine", temperature=args.temperature)
    if args.high_algo == "ppo":
        high_loss = ClipPPOLoss(high_actor, high_value, clip_epsilon=0.2, entropy_coeff=1e-3)
    else:
        high_loss = ReinforceLoss(high_actor, high_value)
    # semi-MDP discount: one high-level step lasts k env steps
    high_loss.make_value_estimator(ValueEstimators.GAE, gamma=args.gamma**k, lmbda=0.95, average_gae=True)
    sac_optim = torch.optim.Adam(sac.parameters(), lr=args.lr)
    enc_optim = torch.optim.Adam(encoder.parameters(), lr=args.lr)
    high_optim = torch.optim.Adam(high_loss.parameters(), lr=args.lr)
    rb = make_window_replay_buffer(min(args.buffer_size, args.total_steps + 1000), slice_len=relabel.slice_len,
                                   num_slices=args.batch_size, memmap=args.memmap,
                                   scratch_dir=str(out_dir / "replay") if args.memmap else None, device=device)

    state = {"steps": 0, "updates": 0, "curve": [], "train_returns": []}
    if args.resume and ckpt_path.is_file():
        ck = load_checkpoint(ckpt_path)
        for m, key in ((sac, "sac"), (encoder, "encoder"), (high_loss, "high_loss"), (sac_optim, "sac_optim"),
                       (enc_optim, "enc_optim"), (high_optim, "high_optim"), (rb, "rb")):
            m.load_state_dict(ck[key])
        state = ck["state"]; set_rng_state(ck["rng"])
    if hasattr(logger, "log_dir"):  # rows a stopped run logged after its checkpoint are logged again
        truncate_csv_logs(Path(logger.log_dir) / logger.exp_name, state["steps"])

    def make_hier_env(env_seed=None, record=True, random_steps=0):
        low = make_window_env(make_env(args, env_seed), L, in_key=PIX, obs_ndim=3)
        policy = low_policy if not record or shared_low is None else shared_low.bind(copy.deepcopy(low_policy))
        return HierarchicalEnv(low, policy, goal_spec, k=k, record_keys=[PIX], record_low_level=record,
                               init_random_steps=random_steps)

    def evaluate():
        env = make_hier_env(env_seed=args.seed + 10_000, record=False)
        rets = []
        with torch.no_grad(), set_exploration_type(ExplorationType.DETERMINISTIC):
            for _ in range(args.eval_episodes):
                rets.append(env.rollout(math.ceil(args.max_episode_steps / k), high_actor)["next", "reward"].sum().item())
        env.close()
        return float(np.mean(rets))

    remaining = args.total_steps - state["steps"]
    t0 = time.perf_counter()
    # Ctrl-C / SIGTERM set a flag read once per collector batch, so a stop never splits a batch.
    with stop_on_signals() as stop:
        if remaining > 0:
            warm = max(0, args.warmup_steps - state["steps"]) // max(1, args.num_workers)
            env_fn = lambda: make_hier_env(env_seed=args.seed + state["steps"], random_steps=warm)  # noqa: E731
            if args.num_workers > 1:
                collector = MultiSyncCollector([env_fn] * args.num_workers, high_actor, frames_per_batch=args.high_steps_per_batch,
                                               total_frames=-1, cat_results="stack",
                                               auto_register_policy_transforms=False)
            else:
                collector = Collector(env_fn(), high_actor, frames_per_batch=args.high_steps_per_batch,
                                      total_frames=-1, auto_register_policy_transforms=False)
            low_keys = [PIX, "goal", "action", ("next", PIX), ("next", "reward"), ("next", "done"), ("next", "terminated")]
            next_eval = (state["steps"] // args.eval_every + 1) * args.eval_every
            next_ckpt = state["steps"] + args.checkpoint_every
            pbar = tqdm(total=args.total_steps, initial=state["steps"], desc="higl-carracing", dynamic_ncols=True,
                        disable=args.no_progress)
            for data in collector:
                data = data.reshape(-1)
                rec = low_level_transitions(data, low_keys)
                rb.extend(rec)
                n_env = rec.numel()
                state["steps"] += n_env
                pbar.update(n_env)
                with torch.no_grad():
                    high_loss.value_estimator(data)
                for _ in range(args.ppo_epochs if args.high_algo == "ppo" else 1):
                    out_h = high_loss(data)
                    h_total = sum(v for key, v in out_h.items() if key.startswith("loss_"))
                    check_finite_loss(h_total, f"{state['steps']} (high level)", out_h, ckpt_path, NAN_FIXES)
                    high_optim.zero_grad(); h_total.backward(); high_optim.step()
                logger.log_scalar("train_reward_per_step", (data["next", "reward"].sum() / max(n_env, 1)).item(), state["steps"])
                if state["steps"] >= args.warmup_steps and len(rb) > relabel.slice_len * 4:
                    for _ in range(int(round(n_env * args.utd))):
                        slices = rb.sample().to(device).reshape(args.batch_size, relabel.slice_len)
                        out = sac(relabel(slices))
                        total = out["loss_actor"] + out["loss_qvalue"] + out["loss_alpha"]
                        check_finite_loss(total, f"{state['steps']} (low level)", out, ckpt_path, NAN_FIXES)
                        sac_optim.zero_grad(); total.backward(); sac_optim.step(); updater.step()
                        pos = min(k, relabel.slice_len) - 1
                        pairs = slices[:, 0].select(PIX).rename_key_(PIX, "observation")
                        pairs.set("future_observation", slices[:, pos].get(("next", PIX)))
                        out_e = contrastive(pairs)
                        check_finite_loss(out_e["loss_contrastive"], f"{state['steps']} (encoder)", out_e, ckpt_path, NAN_FIXES)
                        enc_optim.zero_grad(); out_e["loss_contrastive"].backward(); enc_optim.step()
                        state["updates"] += 1
                    logger.log_scalar("loss_qvalue", out["loss_qvalue"].item(), state["steps"])
                    logger.log_scalar("contrastive_accuracy", out_e["contrastive_accuracy"].item(), state["steps"])
                collector.update_policy_weights_()
                if shared_low is not None:
                    shared_low.publish()
                if state["steps"] >= next_eval or state["steps"] >= args.total_steps:
                    ret = evaluate()
                    state["curve"].append((state["steps"], ret))
                    logger.log_scalar("eval_return", ret, state["steps"])
                    pbar.set_postfix(eval_return=f"{ret:.1f}")
                    next_eval += args.eval_every
                if state["steps"] >= next_ckpt or state["steps"] >= args.total_steps or stop:
                    save_checkpoint({"sac": sac.state_dict(), "encoder": encoder.state_dict(), "high_loss": high_loss.state_dict(),
                                     "sac_optim": sac_optim.state_dict(), "enc_optim": enc_optim.state_dict(),
                                     "high_optim": high_optim.state_dict(), "rb": rb.state_dict(), "state": state,
                                     "rng": rng_state()}, ckpt_path)
                    next_ckpt += args.checkpoint_every
                if state["steps"] >= args.total_steps:  # stop on env steps: early episode ends shorten high-level steps
                    break
                if stop:  # SIGINT / SIGTERM: the batch is finished and saved
                    break
            pbar.close()
            collector.shutdown()
    wall = time.perf_counter() - t0

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if state["curve"]:
        steps, rets = zip(*state["curve"])
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.plot(steps, rets, marker="o", label="HIGL (deterministic eval)")
        ax.set_xlabel("env steps"); ax.set_ylabel(f"eval return ({args.max_episode_steps}-step episodes)")
        ax.set_title("CarRacing-v3 from pixels"); ax.legend(); fig.tight_layout()
        fig.savefig(out_dir / "learning_curve.png", dpi=120); plt.close(fig)
    results = {"config": vars(args), "steps": state["steps"], "updates": state["updates"], "curve": state["curve"],
               "final_eval_return": state["curve"][-1][1] if state["curve"] else None, "wall_time_s": wall}
    (out_dir / "results.json").write_text(json.dumps(results, indent=2))
    if stop:
        raise stop.stopped(f"env step {state['steps']}", ckpt_path)
    print(json.dumps({k: results[k] for k in ("steps", "updates", "final_eval_return", "wall_time_s")}, indent=2))
    return results


if __name__ == "__main__":
    run_cli(main, resume_flag="--resume")
