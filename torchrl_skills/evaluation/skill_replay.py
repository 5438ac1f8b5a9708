"""Does the low level do what the world model promises? Skills replayed from the data's own states.

A planner picks skills by what the temporally abstract world model ``p(s_T | s_0, z)`` predicts;
the low-level policy ``pi(a | s, z)`` then has to realise them. :func:`replay_skills` measures the
gap without any planning episode in between: it restores an OGBench maze env to the start state
of held-out data chunks (the MuJoCo ``qpos``/``qvel`` are the observation), runs the low level
for ``T`` steps with

* the chunk's own posterior skill (the mean of ``q(z | tau)``): what the data did, re-enacted;
* the best of ``K`` prior skills ``z = mu(s) + sigma(s) * eps`` by the world model's predicted
  progress along a direction, minus the planner's ``eps_penalty * mean(eps^2)``: one CEM-like
  selection step, along the chunk's own direction (open ground: the data went there) or a
  uniformly random one (often into a wall),

and compares the predicted progress along the direction with the realised one. Selection among
many candidates picks the world model's optimistic errors (the winner's curse): the larger ``K``,
the further the prediction runs ahead of the realised progress.

All starts run side by side: one batched network call per step, the envs stepped in a list (as
:class:`~torchrl_skills.envs.OGBenchMazeEnv` does).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from torchrl_skills.modules.skill_model import SkillModel, network_mean
from torchrl_skills.utils.outputs import save_figure

__all__ = ["replay_skills", "plot_skill_replay", "restore_maze_state"]


def restore_maze_state(env, observation: np.ndarray) -> None:
    """Puts a MuJoCo maze env into the state an observation describes.

    OGBench's ant observation is ``[qpos, qvel]`` (29 = 15 + 14): restored exactly. The point
    maze observes its position only (``qpos``): it is restored with zero velocity.
    """
    base = env.unwrapped
    nq, nv = base.model.nq, base.model.nv
    if observation.shape[-1] == nq + nv:
        qpos, qvel = observation[:nq], observation[nq : nq + nv]
    elif observation.shape[-1] == nq:
        qpos, qvel = observation, np.zeros(nv)
    else:
        raise ValueError(
            f"An observation of size {observation.shape[-1]} is neither qpos ({nq}) nor [qpos, qvel] ({nq + nv}) of "
            f"{env.spec.id if env.spec else type(base).__name__}: skills can only be replayed from full MuJoCo states."
        )
    base.set_state(np.asarray(qpos, dtype=np.float64), np.asarray(qvel, dtype=np.float64))


@torch.no_grad()
def replay_skills(
    model: SkillModel,
    dataset_id: str,
    env_name: str,
    seq_len: int,
    num_starts: int = 200,
    candidates: Sequence[int] = (10, 1000),
    directions: Sequence[str] = ("data", "random"),
    eps_penalty: float = 0.1,
    position_indices: Sequence[int] = (0, 1),
    state_key: str = "observation",
    split_seed: int = 0,
    seed: int = 0,
) -> dict:
    """Replays posterior and selected prior skills from held-out data states and measures the gap.

    Args:
        model (SkillModel): the trained skill model.
        dataset_id (str): the Minari dataset the model was trained on (its validation split is used).
        env_name (str): the OGBench env or dataset name whose env is restored, e.g.
            ``"antmaze-medium-navigate-v0"``.
        seq_len (int): skill length ``T`` the model was trained with (steps each skill runs).
        num_starts (int, optional): data chunks replayed side by side. Defaults to ``200``.
        candidates (sequence of int, optional): the ``K`` of each best-of-``K`` case. Defaults to ``(10, 1000)``.
        directions (sequence of str, optional): ``"data"`` (the chunk's own start-to-end direction)
            and/or ``"random"``. Defaults to both.
        eps_penalty (float, optional): the planner's ``lambda`` in the selection score. Defaults to ``0.1``.
        position_indices (sequence of int, optional): the x-y entries of the state. Defaults to ``(0, 1)``.
        state_key (str, optional): the dataset's state entry. Defaults to ``"observation"``.
        split_seed (int, optional): the seed of the model's train/validation split (its training
            seed in ``examples/train_skill_model.py``), so the chunks come from episodes it never
            saw. Defaults to ``0``.
        seed (int, optional): seeds the chunks, directions and noises. Defaults to ``0``.

    Returns:
        dict: ``{"data_progress": float, "cases": {name: {"predicted": [N], "realised": [N],
        "miss": [N]}}}`` (lists of floats, metres): per start, the predicted and the realised
        progress along the case's direction after ``T`` steps and the distance between the
        predicted and the realised end positions; ``"summary"`` holds their medians.

    Examples:
        >>> from torchrl_skills.data.ogbench import ensure_ogbench_dataset
        >>> from torchrl_skills.modules import SkillModel
        >>> dataset_id = ensure_ogbench_dataset(num_episodes=2, episode_length=100, progress=False)
        >>> out = replay_skills(SkillModel(2, 2, z_dim=8, hidden_dim=32), dataset_id, "pointmaze-medium-navigate-v0",
        ...                     seq_len=10, num_starts=4, candidates=(8,))
        >>> list(out["summary"])
        ['posterior', 'best of 8, data direction', 'best of 8, random direction']
        >>> len(out["cases"]["posterior"]["realised"])
        4
    """
    from torchrl_skills.data import SkillDataset
    from torchrl_skills.envs.ogbench_maze import make_ogbench_env

    for d in directions:
        if d not in ("data", "random"):
            raise ValueError(f"Unknown direction {d!r}: choose 'data' or 'random'.")
    if num_starts < 1 or any(k < 1 for k in candidates):
        raise ValueError(f"num_starts and every candidate count must be >= 1, got {num_starts} and {list(candidates)}.")
    model = model.eval()
    device = next(model.parameters()).device
    generator = torch.Generator().manual_seed(seed)
    data = SkillDataset(dataset_id, seq_len=seq_len, batch_size=num_starts, state_key=state_key, seed=split_seed)
    with torch.random.fork_rng():  # the slice sampler draws from the global generator: seed it, then restore it
        torch.manual_seed(seed)
        chunk = data.sample("valid").to(device)
    states, actions = chunk["observation"], chunk["action"]
    start, end = states[:, 0], chunk["next", "observation"][:, -1]
    xy = list(position_indices)
    data_step = end[:, xy] - start[:, xy]
    unit = {"data": data_step / data_step.norm(dim=-1, keepdim=True).clamp_min(1e-6)}
    theta = torch.rand(num_starts, generator=generator) * 2 * np.pi
    unit["random"] = torch.stack([theta.cos(), theta.sin()], -1).to(device)

    skills, along = {}, {}
    skills["posterior"], along["posterior"] = model.skill_posterior(states, actions)[0], unit["data"]
    for k in candidates:
        eps = torch.randn(num_starts, k, model.z_dim, generator=generator).to(device)
        s = start.unsqueeze(1).expand(-1, k, -1)
        z = model.skill_from_noise(s, eps)
        predicted_step = network_mean(model.skill_world_model, s, z)[..., xy] - s[..., xy]
        for d in directions:
            score = (predicted_step * unit[d].unsqueeze(1)).sum(-1) - eps_penalty * eps.pow(2).mean(-1)
            best = score.argmax(1)
            name = f"best of {k}, {d} direction"
            skills[name], along[name] = z[torch.arange(num_starts, device=device), best], unit[d]

    envs = [make_ogbench_env(env_name) for _ in range(num_starts)]
    try:
        for i, env in enumerate(envs):
            env.reset(seed=seed + i)
        cases, start_np = {}, start.cpu().numpy()
        for name, z in skills.items():
            for env, o in zip(envs, start_np):
                restore_maze_state(env, o)
            current = start
            for _ in range(seq_len):
                action = network_mean(model.skill_policy, current, z).clamp(-1.0, 1.0).cpu().numpy()
                current = torch.as_tensor(
                    np.stack([env.step(a)[0] for env, a in zip(envs, action)]), dtype=start.dtype, device=device
                )
            predicted_end = network_mean(model.skill_world_model, start, z)[:, xy]
            u = along[name]
            cases[name] = {
                "predicted": ((predicted_end - start[:, xy]) * u).sum(-1).tolist(),
                "realised": ((current[:, xy] - start[:, xy]) * u).sum(-1).tolist(),
                "miss": (predicted_end - current[:, xy]).norm(dim=-1).tolist(),
            }
    finally:
        for env in envs:
            env.close()
    summary = {
        name: {key: float(np.median(values)) for key, values in case.items()} for name, case in cases.items()
    }
    return {"data_progress": float(data_step.norm(dim=-1).median()), "cases": cases, "summary": summary}


def plot_skill_replay(result: dict, path: str | Path, title: str = "") -> Path:
    """Scatter of predicted against realised progress per case, with the ``y = x`` line; saved as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(result["cases"])
    fig, axes = plt.subplots(1, len(names), figsize=(3.2 * len(names), 3.4), sharex=True, sharey=True, squeeze=False)
    values = [v for c in result["cases"].values() for v in (*c["predicted"], *c["realised"])]
    lo, hi = min(values + [0.0]), max(values + [1.0])
    for ax, name in zip(axes[0], names):
        case, med = result["cases"][name], result["summary"][name]
        ax.scatter(case["predicted"], case["realised"], s=6, alpha=0.5)
        ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
        ax.set_title(f"{name}\npredicted {med['predicted']:.2f} m, realised {med['realised']:.2f} m", fontsize=8)
        ax.set_xlabel("predicted progress (m)")
    axes[0][0].set_ylabel("realised progress (m)")
    fig.suptitle(title or "skills replayed from held-out data states", fontsize=9)
    fig.tight_layout()
    return save_figure(fig, path)


def main(argv: Sequence[str] | None = None) -> dict:
    from torchrl_skills.modules import load_skill_model
    from torchrl_skills.utils import ArgumentParser, UserError, non_negative_int, positive_int, resolve_device
    from torchrl_skills.utils.checkpoint import load_checkpoint

    p = ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", required=True, help="skill-model checkpoint (examples/train_skill_model.py)")
    p.add_argument("--env", default=None, help="OGBench env or dataset name (None: from the checkpoint's dataset id)")
    p.add_argument("--starts", type=positive_int, default=200, help="held-out data chunks replayed side by side")
    p.add_argument("--candidates", type=positive_int, nargs="+", default=[10, 1000], help="K of each best-of-K case")
    p.add_argument("--eps-penalty", type=float, default=0.1, help="the planner's lambda in the selection score")
    p.add_argument("--seed", type=int, default=0, help="seeds the chunks, directions and noises")
    p.add_argument("--device", default="cpu", help="torch device of the networks, e.g. cuda")
    p.add_argument("--num-threads", type=non_negative_int, default=1, help="torch CPU threads, 0: torch's default")
    p.add_argument("--out-dir", default="outputs/skill_replay", help="writes skill_replay.json and skill_replay.png")
    args = p.parse_args(argv)
    if args.num_threads:
        torch.set_num_threads(args.num_threads)
    checkpoint = load_checkpoint(args.checkpoint)
    if "dataset_id" not in checkpoint or "args" not in checkpoint:
        raise UserError(f"{args.checkpoint} lacks 'dataset_id'/'args': pass a checkpoint of examples/train_skill_model.py.")
    dataset_id, train_args = checkpoint["dataset_id"], checkpoint["args"]
    env_name = args.env or dataset_id.rsplit("/", 1)[-1]
    model = load_skill_model(args.checkpoint, map_location=resolve_device(args.device))
    result = replay_skills(
        model, dataset_id, env_name, seq_len=int(train_args["seq_len"]), num_starts=args.starts,
        candidates=args.candidates, eps_penalty=args.eps_penalty, split_seed=int(train_args.get("seed", 0)),
        seed=args.seed,
    )  # fmt: skip
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "skill_replay.json").write_text(json.dumps(result))
    plot_skill_replay(result, out / "skill_replay.png", title=f"{env_name}: skills replayed from held-out data states")
    print(f"data's own progress per skill: {result['data_progress']:.2f} m (median)")
    for name, med in result["summary"].items():
        print(f"{name:28s} predicted {med['predicted']:5.2f} m  realised {med['realised']:5.2f} m  miss {med['miss']:.2f} m")
    print(f"wrote {out / 'skill_replay.json'} and {out / 'skill_replay.png'}")
    return result


if __name__ == "__main__":
    from torchrl_skills.utils.cli import run_cli

    run_cli(main)
