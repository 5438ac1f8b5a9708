"""Direction-following locomotion experts: the low-level policy OGBench's maze datasets are made with.

OGBench generates its ant (and humanoid) maze datasets with an expert that walks along a commanded
unit direction: it was trained with SAC on ``online-ant-v0`` under ``GymXYWrapper`` (observation =
the ant's proprioception, its x-y excluded, followed by the unit direction; reward = displacement
along the direction; direction redrawn every 100 steps), and during generation it is given the unit
direction to the maze's next BFS subgoal. This module holds that policy as a TorchRL actor, its
weight file format, and the batched adapter the dataset generators call.

``examples/train_ant_expert.py`` trains one with TorchRL's ``SACLoss``; the package ships its result
(``torchrl_skills/assets/ant_expert.pt``, with the training settings and measured speed inside), so
generating ant data needs no training.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tensordict import TensorDict
from tensordict.nn import NormalParamExtractor, TensorDictModule
from torch import nn
from torchrl.data import Bounded
from torchrl.envs.utils import ExplorationType, set_exploration_type
from torchrl.modules import MLP, ProbabilisticActor, TanhNormal

__all__ = [
    "ANT_EXPERT_PATH",
    "DirectionExpert",
    "load_direction_expert",
    "make_direction_actor",
    "measure_direction_speed",
    "save_direction_expert",
]

#: The ant expert shipped with the package (trained by ``examples/train_ant_expert.py``).
ANT_EXPERT_PATH = Path(__file__).resolve().parent.parent / "assets" / "ant_expert.pt"
_FORMAT = "torchrl_skills.direction_expert"
_FORMAT_VERSION = 1


def make_direction_actor(
    observation_dim: int,
    action_dim: int,
    hidden_sizes: tuple[int, ...] = (256, 256),
    final_init_scale: float = 0.01,
    observation_key: str = "observation",
) -> ProbabilisticActor:
    """SAC's tanh-Gaussian actor with a state-dependent scale, as OGBench's expert (``actor_fc_scale``).

    Args:
        observation_dim (int): proprioception + direction (ant: 27 + 2).
        action_dim (int): actions, bounded to ``[-1, 1]``.
        hidden_sizes (tuple of int, optional): ReLU MLP widths. Defaults to ``(256, 256)``.
        final_init_scale (float, optional): the last layer's initial weights are scaled by this, so
            the untrained policy starts near zero mean actions. Defaults to ``0.01``.
        observation_key (str, optional): the input key. Defaults to ``"observation"``.

    Examples:
        >>> actor = make_direction_actor(29, 8)
        >>> actor(TensorDict(observation=torch.zeros(4, 29), batch_size=[4]))["action"].shape
        torch.Size([4, 8])
    """
    mlp = MLP(observation_dim, 2 * action_dim, num_cells=list(hidden_sizes), activation_class=nn.ReLU)
    with torch.no_grad():
        mlp[-1].weight.mul_(final_init_scale)
        mlp[-1].bias.zero_()
    net = nn.Sequential(mlp, NormalParamExtractor(scale_mapping="biased_softplus_1.0", scale_lb=1e-4))
    return ProbabilisticActor(
        TensorDictModule(net, in_keys=[observation_key], out_keys=["loc", "scale"]),
        in_keys=["loc", "scale"],
        spec=Bounded(-1.0, 1.0, (action_dim,)),
        distribution_class=TanhNormal,
        return_log_prob=False,
    )


def save_direction_expert(
    path: str | os.PathLike, actor: ProbabilisticActor, settings: dict[str, Any], metrics: dict[str, Any]
) -> Path:
    """Writes an actor's weights (float32), its architecture, the training settings and measured
    metrics into one small file, atomically."""
    from torchrl_skills.utils import save_checkpoint

    mlp = actor.module[0].module[0]
    state = {k: v.detach().to("cpu", torch.float32).clone() for k, v in mlp.state_dict().items()}
    return save_checkpoint(
        {
            "format": _FORMAT,
            "format_version": _FORMAT_VERSION,
            "architecture": {
                "observation_dim": int(mlp.in_features),
                "action_dim": int(mlp.out_features // 2),
                "hidden_sizes": [int(c) for c in mlp.num_cells],
            },
            "state_dict": state,
            "settings": dict(settings),
            "metrics": dict(metrics),
        },
        path,
    )


def load_direction_expert(path: str | os.PathLike | None = None, device="cpu") -> DirectionExpert:
    """Loads an expert written by :func:`save_direction_expert`; ``None``: the shipped ant expert.

    Examples:
        >>> expert = load_direction_expert()
        >>> expert.settings["env"], expert.action_dim
        ('online-ant-v0', 8)
    """
    path = ANT_EXPERT_PATH if path is None else Path(path)
    if not path.is_file():
        hint = (
            "reinstall torchrl-skills, or train one with python examples/train_ant_expert.py"
            if path == ANT_EXPERT_PATH
            else "train one with python examples/train_ant_expert.py (it writes expert.pt in its --out-dir)"
        )
        raise FileNotFoundError(f"No direction expert at {path}: {hint}.")
    try:
        # weights only: an expert file holds tensors and plain settings, so loading one runs no pickled code
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - torch raises assorted errors on truncated files
        raise ValueError(f"{path} is not a readable expert file ({type(err).__name__}: {err}).") from None
    if not isinstance(blob, dict) or blob.get("format") != _FORMAT:
        raise ValueError(f"{path} is not a direction-expert file (see save_direction_expert).")
    if blob.get("format_version", 0) > _FORMAT_VERSION:
        raise ValueError(f"{path} was written by a newer torchrl-skills (format {blob['format_version']}): upgrade.")
    arch = blob["architecture"]
    actor = make_direction_actor(arch["observation_dim"], arch["action_dim"], tuple(arch["hidden_sizes"]))
    actor.module[0].module[0].load_state_dict(blob["state_dict"])
    return DirectionExpert(actor, settings=blob["settings"], metrics=blob["metrics"]).to(device)


class DirectionExpert(nn.Module):
    """A trained direction-following policy, deterministic (the tanh of its mean, as OGBench's
    generation uses ``temperature=0``), callable on batches of numpy arrays as the generators do.

    ``expert(agent_obs [M, d], direction [M, 2]) -> actions [M, A]`` with ``agent_obs`` the
    observation without the agent's x-y (``observation[:, 2:]`` in OGBench's mazes).

    Args:
        actor (ProbabilisticActor): from :func:`make_direction_actor`.
        settings (dict, optional): how it was trained. metrics (dict, optional): how well it walks.

    Examples:
        >>> expert = load_direction_expert()
        >>> expert(np.zeros((3, 27)), np.array([[1.0, 0.0]] * 3)).shape
        (3, 8)
    """

    def __init__(self, actor: ProbabilisticActor, settings: dict | None = None, metrics: dict | None = None):
        super().__init__()
        self.actor = actor
        self.settings = dict(settings or {})
        self.metrics = dict(metrics or {})
        self.__name__ = f"DirectionExpert({self.settings.get('env', 'custom')})"

    @property
    def action_dim(self) -> int:
        return int(self.actor.spec["action"].shape[-1])  # a ProbabilisticActor keeps a Composite spec

    @property
    def observation_dim(self) -> int:
        return int(self.actor.module[0].module[0].in_features)

    def forward(self, agent_obs, direction) -> np.ndarray:
        device = next(self.parameters()).device
        obs = np.concatenate([np.asarray(agent_obs, np.float32), np.asarray(direction, np.float32)], axis=-1)
        if obs.shape[-1] != self.observation_dim:
            raise ValueError(
                f"The expert takes {self.observation_dim - 2}-d agent observations plus a 2-d direction, "
                f"got {obs.shape[-1] - 2}-d ones: is it the expert of this agent?"
            )
        td = TensorDict(observation=torch.from_numpy(obs).to(device), batch_size=obs.shape[:-1])
        with torch.no_grad(), set_exploration_type(ExplorationType.DETERMINISTIC):
            return self.actor(td)["action"].cpu().numpy()


def measure_direction_speed(
    expert, num_directions: int = 8, steps: int = 500, seed: int = 0, env_id: str = "online-ant-v0"
) -> np.ndarray:
    """Speed (m/s) along a commanded direction, one random unit direction per episode, all episodes
    side by side with one batched expert call per step: the x-y displacement projected on the
    direction, divided by the elapsed time.

    Args:
        expert (callable or ``"random"``): ``expert(agent_obs [M, d], direction [M, 2]) -> [M, A]``
            (e.g. a :class:`DirectionExpert`); ``"random"``: uniform random actions.
        num_directions (int, optional): episodes, each with its own direction. Defaults to ``8``.
        steps (int, optional): env steps per episode. Defaults to ``500``.
        seed (int, optional): seeds the envs and the directions. Defaults to ``0``.
        env_id (str, optional): an OGBench online locomotion env. Defaults to ``"online-ant-v0"``.

    Returns:
        np.ndarray: the speed of each episode, ``[num_directions]``.

    Examples:
        >>> measure_direction_speed("random", num_directions=2, steps=50).shape
        (2,)
    """
    import gymnasium
    import ogbench.online_locomotion  # noqa: F401  (registers the envs)

    rng = np.random.default_rng(seed)
    angles = rng.uniform(0, 2 * np.pi, num_directions)
    direction = np.stack([np.cos(angles), np.sin(angles)], -1)
    envs = [gymnasium.make(env_id).unwrapped for _ in range(num_directions)]  # no time limit: `steps` rules
    obs = np.stack([env.reset(seed=seed * 10_007 + k)[0] for k, env in enumerate(envs)])
    start = np.stack([env.data.qpos[:2].copy() for env in envs])
    for _ in range(steps):
        if isinstance(expert, str) and expert == "random":
            actions = rng.uniform(-1, 1, (num_directions, envs[0].action_space.shape[0]))
        else:
            actions = np.clip(np.asarray(expert(obs, direction)), -1, 1)
        obs = np.stack([env.step(a)[0] for env, a in zip(envs, actions)])
    end = np.stack([env.data.qpos[:2].copy() for env in envs])
    elapsed = steps * envs[0].dt
    for env in envs:
        env.close()
    return ((end - start) * direction).sum(-1) / elapsed
