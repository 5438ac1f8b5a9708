"""Skill-model networks: posterior, low-level policy, temporally abstract world model and prior.

The four networks of Freed et al., "Learning Temporally Abstract World Models without Online
Experimentation" (ICML 2023), each returning the parameters of a diagonal Gaussian, plus
:class:`SkillModel`, a container exposing them as TensorDict modules with explicit keys.

Every network accepts arbitrary leading batch dimensions: the planner calls the prior and the
world model on ``[K]`` and ``[B, K]`` batches, the loss calls the policy on ``[B, T]``.
"""
from __future__ import annotations

from typing import Sequence

import torch
from tensordict.nn import (
    InteractionType,
    ProbabilisticTensorDictModule,
    ProbabilisticTensorDictSequential,
    TensorDictModule,
)
from tensordict.utils import NestedKey
from torch import nn
from torch.nn import functional as F
from torchrl.modules.distributions import IndependentNormal

__all__ = [
    "GaussianHead",
    "StateNormalizer",
    "SkillPosterior",
    "SkillPolicy",
    "TemporalAbstractWorldModel",
    "SkillPrior",
    "SkillModel",
    "load_skill_model",
]


def _check_last_dim(name: str, tensor: torch.Tensor, expected: int, what: str) -> None:
    if tensor.shape[-1] != expected:
        raise ValueError(
            f"{name} expected {what} with last dimension {expected}, got shape {tuple(tensor.shape)}. "
            f"Check the state/action entry selected from the dataset, or build the network with "
            f"the matching dimension."
        )


def network_mean(net: nn.Module, *inputs: torch.Tensor) -> torch.Tensor:
    """The mean of a Gaussian network: ``net.mean(*inputs)`` where it has the mean-only path,
    else ``net(*inputs)[0]`` (e.g. a user's own world model returning ``(loc, scale)``)."""
    mean = getattr(net, "mean", None)
    return mean(*inputs) if callable(mean) else net(*inputs)[0]


class GaussianHead(nn.Module):
    """Mean and standard-deviation heads of a diagonal Gaussian, each ``Linear-ReLU-Linear``.

    The scale is ``softplus(x) + min_scale`` so it is positive and never collapses to 0.
    The first layers of both heads are stored as one ``Linear`` (one matrix product instead of
    two); this is the same function as two separate heads.

    Args:
        in_features (int): input size.
        out_features (int): size of the Gaussian.
        hidden_dim (int, optional): hidden width of each head. Defaults to ``256``.
        min_scale (float, optional): floor added to the scale. Defaults to ``1e-4``.

    Examples:
        >>> head = GaussianHead(8, 3)
        >>> loc, scale = head(torch.randn(5, 8))
        >>> loc.shape, bool((scale > 0).all())
        (torch.Size([5, 3]), True)
    """

    def __init__(self, in_features: int, out_features: int, hidden_dim: int = 256, min_scale: float = 1e-4):
        super().__init__()
        self.hidden_dim = hidden_dim
        self.min_scale = min_scale
        self.hidden = nn.Linear(in_features, 2 * hidden_dim)
        self.loc = nn.Linear(hidden_dim, out_features)
        self.scale = nn.Linear(hidden_dim, out_features)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h_loc, h_scale = F.relu(self.hidden(x)).split(self.hidden_dim, dim=-1)
        return self.loc(h_loc), F.softplus(self.scale(h_scale)) + self.min_scale

    def mean(self, x: torch.Tensor) -> torch.Tensor:
        """The mean alone: the scale head's half of the first layer and its output layer are skipped."""
        n = self.hidden_dim
        return self.loc(F.relu(F.linear(x, self.hidden.weight[:n], self.hidden.bias[:n])))


class StateNormalizer(nn.Module):
    """Affine state normaliser ``(s - loc) / scale`` whose statistics live in the state dict.

    The networks of a :class:`SkillModel` normalise their state inputs with it and the world
    model maps its prediction back, so every public input and output is in raw state units
    while the statistics are saved and loaded with the model.

    Args:
        state_dim (int): state size.
        loc (Tensor, optional): mean of the states. Defaults to zeros (identity).
        scale (Tensor, optional): standard deviation of the states. Defaults to ones.

    Examples:
        >>> states = torch.randn(100, 4) * 3 + 1
        >>> norm = StateNormalizer.from_states(states)
        >>> torch.allclose(norm.denormalize(norm.normalize(states)), states, atol=1e-5)
        True
    """

    def __init__(self, state_dim: int, loc: torch.Tensor | None = None, scale: torch.Tensor | None = None):
        super().__init__()
        self.register_buffer("loc", torch.zeros(state_dim) if loc is None else torch.as_tensor(loc).float().clone())
        self.register_buffer(
            "scale", torch.ones(state_dim) if scale is None else torch.as_tensor(scale).float().clone()
        )
        if self.loc.shape != (state_dim,) or self.scale.shape != (state_dim,):
            raise ValueError(
                f"StateNormalizer statistics must have shape ({state_dim},), got loc {tuple(self.loc.shape)} "
                f"and scale {tuple(self.scale.shape)}."
            )

    @classmethod
    def from_states(cls, states: torch.Tensor, min_scale: float = 1e-3) -> StateNormalizer:
        """Statistics over every leading dimension of ``states`` (``[..., state_dim]``).

        ``min_scale`` keeps constant state entries (e.g. a fixed coordinate) from dividing by 0.
        """
        flat = states.reshape(-1, states.shape[-1]).float()
        return cls(states.shape[-1], flat.mean(0), flat.std(0).clamp_min(min_scale))

    @torch.no_grad()
    def set_statistics(self, loc: torch.Tensor, scale: torch.Tensor) -> None:
        self.loc.copy_(loc)
        self.scale.copy_(scale)

    def normalize(self, state: torch.Tensor) -> torch.Tensor:
        return (state - self.loc) / self.scale

    def denormalize(self, state: torch.Tensor) -> torch.Tensor:
        return state * self.scale + self.loc


class SkillPosterior(nn.Module):
    """Skill posterior ``q_phi(z | s_0:T-1, a_0:T-1)``: a whole subtrajectory to one skill.

    Each state is embedded by ``Linear-ReLU`` (width ``hidden_dim``), concatenated with its
    action, and read by a bidirectional GRU; the final hidden states of both directions (last
    layer) feed a :class:`GaussianHead`.

    Args:
        state_dim (int): state size.
        action_dim (int): action size.
        z_dim (int, optional): skill size. Defaults to ``256``.
        hidden_dim (int, optional): state-embedding and head width. Defaults to ``256``.
        gru_hidden_dim (int, optional): GRU width per direction. Defaults to ``hidden_dim // 2``
            (the paper code uses 256).
        num_layers (int, optional): GRU layers. Defaults to ``1`` (the paper code uses 4).
        min_scale (float, optional): scale floor. Defaults to ``1e-4``.
        normalizer (StateNormalizer, optional): applied to the states first.

    Inputs ``states`` ``[..., T, state_dim]`` and ``actions`` ``[..., T, action_dim]``;
    outputs ``loc, scale`` of shape ``[..., z_dim]``.

    Examples:
        >>> q = SkillPosterior(4, 2, z_dim=8, hidden_dim=32)
        >>> loc, scale = q(torch.randn(5, 10, 4), torch.randn(5, 10, 2))
        >>> loc.shape
        torch.Size([5, 8])
    """

    def __init__(
        self,
        state_dim: int,
        action_dim: int,
        z_dim: int = 256,
        hidden_dim: int = 256,
        gru_hidden_dim: int | None = None,
        num_layers: int = 1,
        min_scale: float = 1e-4,
        normalizer: StateNormalizer | None = None,
    ):
        super().__init__()
        self.state_dim, self.action_dim = state_dim, action_dim
        gru_hidden_dim = hidden_dim // 2 if gru_hidden_dim is None else gru_hidden_dim
        self.normalizer = normalizer if normalizer is not None else StateNormalizer(state_dim)
        self.embed = nn.Linear(state_dim, hidden_dim)
        self.gru = nn.GRU(
            hidden_dim + action_dim, gru_hidden_dim, num_layers=num_layers, bidirectional=True, batch_first=True
        )
        self.head = GaussianHead(2 * gru_hidden_dim, z_dim, hidden_dim, min_scale)

    def forward(self, states: torch.Tensor, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        _check_last_dim("SkillPosterior", states, self.state_dim, "states")
        _check_last_dim("SkillPosterior", actions, self.action_dim, "actions")
        if states.shape[:-1] != actions.shape[:-1] or states.ndim < 2:
            raise ValueError(
                "SkillPosterior expects states [..., T, state_dim] and actions [..., T, action_dim] with the "
                f"same leading dimensions, got {tuple(states.shape)} and {tuple(actions.shape)}."
            )
        batch, time = states.shape[:-2], states.shape[-2]
        x = torch.cat([F.relu(self.embed(self.normalizer.normalize(states))), actions], dim=-1)
        # nn.GRU takes exactly one batch dimension: fold the leading ones and unfold after.
        _, h_n = self.gru(x.reshape(-1, time, x.shape[-1]))
        final = torch.cat([h_n[-2], h_n[-1]], dim=-1)  # last layer, forward and backward direction
        loc, scale = self.head(final)
        return loc.unflatten(0, batch) if batch else loc[0], scale.unflatten(0, batch) if batch else scale[0]


class _ConditionalGaussianMLP(nn.Module):
    """2-layer ReLU trunk over concatenated inputs, then a :class:`GaussianHead`.

    The first layer is ``Linear(cat(x_1, ..., x_n))`` stored as one ``Linear`` per input whose
    outputs are summed with broadcasting: the same function, but a skill shared by the ``T``
    states of a subtrajectory (``[B, 1, z]`` against ``[B, T, s]``) is multiplied once instead of
    ``T`` times, and no concatenated copy is materialised.
    """

    def __init__(self, in_features: Sequence[int], out_features: int, hidden_dim: int, min_scale: float):
        super().__init__()
        self.inputs = nn.ModuleList(nn.Linear(n, hidden_dim, bias=i == 0) for i, n in enumerate(in_features))
        self.hidden = nn.Linear(hidden_dim, hidden_dim)
        self.head = GaussianHead(hidden_dim, out_features, hidden_dim, min_scale)

    def trunk(self, *inputs: torch.Tensor) -> torch.Tensor:
        h = self.inputs[0](inputs[0])
        for layer, x in zip(self.inputs[1:], inputs[1:]):
            h = h + layer(x)
        return F.relu(self.hidden(F.relu(h)))

    def gaussian(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.head(self.trunk(*inputs))

    def gaussian_mean(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.head.mean(self.trunk(*inputs))


class SkillPolicy(_ConditionalGaussianMLP):
    """Skill-conditioned low-level policy ``pi_theta(a | s, z)``.

    Args:
        state_dim (int): state size.
        action_dim (int): action size.
        z_dim (int, optional): skill size. Defaults to ``256``.
        hidden_dim (int, optional): width of the 2-layer ReLU trunk and heads. Defaults to ``256``.
        min_scale (float, optional): scale floor. Defaults to ``1e-4``.
        normalizer (StateNormalizer, optional): applied to the state first.

    Inputs ``state`` ``[..., state_dim]`` and ``skill`` ``[..., z_dim]`` with broadcastable
    leading dimensions; outputs the action ``loc, scale`` ``[..., action_dim]``.

    Examples:
        >>> pi = SkillPolicy(4, 2, z_dim=8, hidden_dim=32)
        >>> loc, scale = pi(torch.randn(5, 10, 4), torch.randn(5, 1, 8))
        >>> loc.shape
        torch.Size([5, 10, 2])
    """

    def __init__(
        self,
        state_dim: int,
        action_dim: int,
        z_dim: int = 256,
        hidden_dim: int = 256,
        min_scale: float = 1e-4,
        normalizer: StateNormalizer | None = None,
    ):
        super().__init__((state_dim, z_dim), action_dim, hidden_dim, min_scale)
        self.state_dim, self.action_dim, self.z_dim = state_dim, action_dim, z_dim
        self.normalizer = normalizer if normalizer is not None else StateNormalizer(state_dim)

    def forward(self, state: torch.Tensor, skill: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        _check_last_dim("SkillPolicy", state, self.state_dim, "a state")
        _check_last_dim("SkillPolicy", skill, self.z_dim, "a skill")
        return self.gaussian(self.normalizer.normalize(state), skill)

    def mean(self, state: torch.Tensor, skill: torch.Tensor) -> torch.Tensor:
        """The deterministic action (the mean of ``forward``'s Gaussian), without the scale head."""
        _check_last_dim("SkillPolicy", state, self.state_dim, "a state")
        _check_last_dim("SkillPolicy", skill, self.z_dim, "a skill")
        return self.gaussian_mean(self.normalizer.normalize(state), skill)


class TemporalAbstractWorldModel(_ConditionalGaussianMLP):
    """Temporally abstract world model ``p_psi(s_T | s_0, z)``: where a skill ends.

    Args:
        state_dim (int): state size.
        z_dim (int, optional): skill size. Defaults to ``256``.
        hidden_dim (int, optional): width of the 2-layer ReLU trunk and heads. Defaults to ``256``.
        residual (bool, optional): predict ``s_T - s_0`` and add ``s_0`` back. Defaults to
            ``False`` (predict ``s_T`` itself, as the paper).
        min_scale (float, optional): scale floor (in normalised units). Defaults to ``1e-4``.
        normalizer (StateNormalizer, optional): the network works in normalised units; inputs
            and outputs are raw states.

    Inputs ``state`` ``[..., state_dim]`` and ``skill`` ``[..., z_dim]``; outputs ``loc, scale``
    of ``s_T`` in raw state units, ``[..., state_dim]``.

    Examples:
        >>> wm = TemporalAbstractWorldModel(4, z_dim=8, hidden_dim=32)
        >>> loc, scale = wm(torch.randn(1000, 4), torch.randn(1000, 8))
        >>> loc.shape
        torch.Size([1000, 4])
    """

    def __init__(
        self,
        state_dim: int,
        z_dim: int = 256,
        hidden_dim: int = 256,
        residual: bool = False,
        min_scale: float = 1e-4,
        normalizer: StateNormalizer | None = None,
    ):
        super().__init__((state_dim, z_dim), state_dim, hidden_dim, min_scale)
        self.state_dim, self.z_dim, self.residual = state_dim, z_dim, residual
        self.normalizer = normalizer if normalizer is not None else StateNormalizer(state_dim)

    def forward(self, state: torch.Tensor, skill: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        _check_last_dim("TemporalAbstractWorldModel", state, self.state_dim, "a state")
        _check_last_dim("TemporalAbstractWorldModel", skill, self.z_dim, "a skill")
        state_n = self.normalizer.normalize(state)
        loc, scale = self.gaussian(state_n, skill)
        if self.residual:
            loc = loc + state_n
        return self.normalizer.denormalize(loc), scale * self.normalizer.scale

    def mean(self, state: torch.Tensor, skill: torch.Tensor) -> torch.Tensor:
        """The predicted end state's mean (``forward(...)[0]``) without computing the scale head.

        Planning with the mean world model uses only this: a CEM replan calls it
        ``iterations x horizon`` times on all candidates.
        """
        _check_last_dim("TemporalAbstractWorldModel", state, self.state_dim, "a state")
        _check_last_dim("TemporalAbstractWorldModel", skill, self.z_dim, "a skill")
        state_n = self.normalizer.normalize(state)
        loc = self.gaussian_mean(state_n, skill)
        if self.residual:
            loc = loc + state_n
        return self.normalizer.denormalize(loc)


class SkillPrior(nn.Module):
    """State-dependent skill prior ``p_omega(z | s_0)``.

    Args:
        state_dim (int): state size.
        z_dim (int, optional): skill size. Defaults to ``256``.
        hidden_dim (int, optional): width of the 2-layer ReLU trunk and heads. Defaults to ``256``.
        min_scale (float, optional): scale floor. Defaults to ``1e-4``.
        normalizer (StateNormalizer, optional): applied to the state first.

    Examples:
        >>> prior = SkillPrior(4, z_dim=8, hidden_dim=32)
        >>> loc, scale = prior(torch.randn(3, 7, 4))
        >>> scale.shape
        torch.Size([3, 7, 8])
    """

    def __init__(
        self,
        state_dim: int,
        z_dim: int = 256,
        hidden_dim: int = 256,
        min_scale: float = 1e-4,
        normalizer: StateNormalizer | None = None,
    ):
        super().__init__()
        self.state_dim, self.z_dim = state_dim, z_dim
        self.normalizer = normalizer if normalizer is not None else StateNormalizer(state_dim)
        self.net = _ConditionalGaussianMLP((state_dim,), z_dim, hidden_dim, min_scale)

    def forward(self, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        _check_last_dim("SkillPrior", state, self.state_dim, "a state")
        return self.net.gaussian(self.normalizer.normalize(state))


def _gaussian_module(
    net: nn.Module, in_keys: list[NestedKey], prefix: str, sample_key: NestedKey
) -> ProbabilisticTensorDictSequential:
    loc_key, scale_key = (f"{prefix}_loc", f"{prefix}_scale") if prefix else ("loc", "scale")
    params = TensorDictModule(net, in_keys=in_keys, out_keys=[loc_key, scale_key])
    dist = ProbabilisticTensorDictModule(
        in_keys={"loc": loc_key, "scale": scale_key},
        out_keys=[sample_key],
        distribution_class=IndependentNormal,
        distribution_kwargs={"tanh_loc": False},
        default_interaction_type=InteractionType.RANDOM,
    )
    return ProbabilisticTensorDictSequential(params, dist)


class SkillModel(nn.Module):
    """Container of the four skill-model networks, exposed as TensorDict modules.

    The networks share one :class:`StateNormalizer` (identity until :meth:`set_normalizer` is
    called), so its statistics are saved and loaded with :meth:`state_dict`. Each network is
    also available as a :class:`~tensordict.nn.ProbabilisticTensorDictSequential` that writes
    the Gaussian parameters and a sample (``RANDOM`` by default; use
    :func:`torchrl.envs.utils.set_exploration_type` with ``DETERMINISTIC`` for the mean):

    ================  ========================================  =============================================
    module            in_keys                                   out_keys
    ================  ========================================  =============================================
    ``posterior``     ``observation`` [*, T, s], ``action``     ``posterior_loc``, ``posterior_scale``,
                      [*, T, a] (a batch-[*] tensordict)        ``skill`` [*, z]
    ``policy``        ``observation``, ``skill``                ``loc``, ``scale``, ``action``
    ``world_model``   ``observation``, ``skill``                ``world_model_loc``, ``world_model_scale``,
                                                                ``end_observation``
    ``prior``         ``observation``                           ``prior_loc``, ``prior_scale``, ``skill``
    ================  ========================================  =============================================

    Args:
        state_dim (int): state size.
        action_dim (int): action size.
        z_dim (int, optional): skill size. Defaults to ``256``.
        hidden_dim (int, optional): hidden width of every network. Defaults to ``256``.
        gru_hidden_dim (int, optional): posterior GRU width per direction. Defaults to ``hidden_dim // 2``.
        gru_layers (int, optional): posterior GRU layers. Defaults to ``1``.
        residual_world_model (bool, optional): world model predicts ``s_T - s_0``. Defaults to ``False``.
        min_scale (float, optional): scale floor of every Gaussian. Defaults to ``1e-4``.
        observation_key (NestedKey, optional): state entry. Defaults to ``"observation"``.
        action_key (NestedKey, optional): action entry. Defaults to ``"action"``.
        skill_key (NestedKey, optional): skill entry. Defaults to ``"skill"``.
        end_observation_key (NestedKey, optional): world-model sample. Defaults to ``"end_observation"``.

    Examples:
        >>> from tensordict import TensorDict
        >>> model = SkillModel(state_dim=4, action_dim=2, z_dim=8, hidden_dim=32)
        >>> td = TensorDict({"observation": torch.randn(3, 4)}, batch_size=[3])
        >>> td = model.prior(td)             # samples "skill" from p(z | s)
        >>> td = model.policy(td)            # samples "action" from pi(a | s, z)
        >>> td = model.world_model(td)       # samples "end_observation" from p(s_T | s, z)
        >>> td["action"].shape, td["end_observation"].shape
        (torch.Size([3, 2]), torch.Size([3, 4]))
        >>> traj = TensorDict({"observation": torch.randn(3, 10, 4), "action": torch.randn(3, 10, 2)}, [3])
        >>> model.posterior(traj)["skill"].shape
        torch.Size([3, 8])
    """

    def __init__(
        self,
        state_dim: int,
        action_dim: int,
        z_dim: int = 256,
        hidden_dim: int = 256,
        gru_hidden_dim: int | None = None,
        gru_layers: int = 1,
        residual_world_model: bool = False,
        min_scale: float = 1e-4,
        observation_key: NestedKey = "observation",
        action_key: NestedKey = "action",
        skill_key: NestedKey = "skill",
        end_observation_key: NestedKey = "end_observation",
    ):
        super().__init__()
        self.hparams = {
            "state_dim": state_dim,
            "action_dim": action_dim,
            "z_dim": z_dim,
            "hidden_dim": hidden_dim,
            "gru_hidden_dim": gru_hidden_dim,
            "gru_layers": gru_layers,
            "residual_world_model": residual_world_model,
            "min_scale": min_scale,
        }
        self.state_dim, self.action_dim, self.z_dim = state_dim, action_dim, z_dim
        self.observation_key, self.action_key = observation_key, action_key
        self.skill_key, self.end_observation_key = skill_key, end_observation_key
        self.normalizer = StateNormalizer(state_dim)
        kw = {"hidden_dim": hidden_dim, "min_scale": min_scale, "normalizer": self.normalizer}
        self.skill_posterior = SkillPosterior(
            state_dim, action_dim, z_dim, gru_hidden_dim=gru_hidden_dim, num_layers=gru_layers, **kw
        )
        self.skill_policy = SkillPolicy(state_dim, action_dim, z_dim, **kw)
        self.skill_world_model = TemporalAbstractWorldModel(state_dim, z_dim, residual=residual_world_model, **kw)
        self.skill_prior = SkillPrior(state_dim, z_dim, **kw)

        self.posterior = _gaussian_module(self.skill_posterior, [observation_key, action_key], "posterior", skill_key)
        self.policy = _gaussian_module(self.skill_policy, [observation_key, skill_key], "", action_key)
        self.world_model = _gaussian_module(
            self.skill_world_model, [observation_key, skill_key], "world_model", end_observation_key
        )
        self.prior = _gaussian_module(self.skill_prior, [observation_key], "prior", skill_key)

    def set_normalizer(self, loc: torch.Tensor, scale: torch.Tensor) -> None:
        """Sets the state statistics used by every network (saved with the state dict)."""
        self.normalizer.set_statistics(
            torch.as_tensor(loc, dtype=torch.float32), torch.as_tensor(scale, dtype=torch.float32)
        )

    def skill_from_noise(self, state: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """Maps unit-Gaussian noise to a skill through the prior: ``z = mu(s) + sigma(s) * eps``."""
        loc, scale = self.skill_prior(state)
        return loc + scale * noise


def load_skill_model(path, map_location: str | torch.device = "cpu") -> SkillModel:
    """Rebuilds a :class:`SkillModel` (normaliser included) from a training checkpoint.

    The checkpoint is a dict with ``"model_kwargs"`` (the constructor arguments) and
    ``"model"`` (the state dict), as written by ``examples/train_skill_model.py``.

    Examples:
        >>> import tempfile
        >>> from torchrl_skills.utils import save_checkpoint
        >>> model = SkillModel(4, 2, z_dim=8, hidden_dim=32)
        >>> path = save_checkpoint({"model": model.state_dict(), "model_kwargs": model.hparams},
        ...                        tempfile.mkdtemp() + "/ckpt.pt")
        >>> load_skill_model(path).z_dim
        8
    """
    from torchrl_skills.utils.checkpoint import load_checkpoint

    checkpoint = load_checkpoint(path, map_location=map_location)
    if "model_kwargs" not in checkpoint or "model" not in checkpoint:
        raise KeyError(
            f"{path} is not a skill-model checkpoint (it lacks 'model_kwargs'/'model'); pass a file written by "
            "examples/train_skill_model.py."
        )
    model = SkillModel(**checkpoint["model_kwargs"])
    model.load_state_dict(checkpoint["model"])
    return model.to(map_location)
