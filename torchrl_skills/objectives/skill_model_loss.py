"""ELBO / EM loss of a skill model (Freed et al., ICML 2023)."""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from tensordict import TensorDict, TensorDictBase
from tensordict.utils import NestedKey
from torchrl.objectives import LossModule

from torchrl_skills.modules.skill_model import SkillModel

__all__ = ["SkillModelLoss", "normal_log_prob", "normal_kl"]

_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


# The two Gaussian helpers below are the formulas of torch.distributions.Normal.log_prob and
# kl_divergence(Normal, Normal), written out so the loss builds no distribution objects (and runs
# no argument validation) per call; tests check them against torch.distributions.
def normal_log_prob(x: torch.Tensor, loc: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Log-density of a diagonal Gaussian, summed over the last dimension."""
    return (-0.5 * ((x - loc) / scale).pow(2) - scale.log() - _HALF_LOG_2PI).sum(-1)


def normal_kl(
    loc_q: torch.Tensor, scale_q: torch.Tensor, loc_p: torch.Tensor, scale_p: torch.Tensor
) -> torch.Tensor:
    """Closed-form ``KL(N(loc_q, scale_q) || N(loc_p, scale_p))`` of diagonal Gaussians, summed over the last dim."""
    var_ratio = (scale_q / scale_p).pow(2)
    return 0.5 * (var_ratio + ((loc_q - loc_p) / scale_p).pow(2) - 1.0 - var_ratio.log()).sum(-1)


class SkillModelLoss(LossModule):
    r"""Negative ELBO of a skill model, trained by EM (default) or jointly.

    For a subtrajectory :math:`\tau = (s_{0:T}, a_{0:T-1})` and one reparameterised sample
    :math:`z \sim q_\phi(z|\tau)`:

    .. math::
        \mathrm{ELBO} = \sum_{t<T} \log \pi_\theta(a_t|s_t,z) + \alpha \log p_\psi(s_T|s_0,z)
        - \beta\, \mathrm{KL}(q_\phi(z|\tau)\,\|\,p_\omega(z|s_0))

    with the KL in closed form. Every term is divided by :math:`T` and averaged over the batch,
    so losses are per environment step and comparable across ``T``.

    **EM mode** (``mode="em"``, the paper's scheme), computed in **one pass**: one forward of
    each network on one reparameterised :math:`z`, and the loss

    .. math::
        -\sum_t \log\pi_\theta(a_t|s_t,z) - \alpha\log p_\psi(s_T|s_0,\bar z)
        + \beta\,\mathrm{KL}(q_\phi\,\|\,p_\omega)

    (:math:`\bar z`: :math:`z` detached). Its gradient is exactly the EM gradient, so one
    ``backward()`` serves the two optimizers of :meth:`posterior_parameters` and
    :meth:`model_parameters` at once:

    * w.r.t. the posterior :math:`\phi` it is the E-step's,
      :math:`-\sum_t \log\pi(a_t|s_t,z) + \beta\,\mathrm{KL}(q\|\bar p)` with the policy and
      prior frozen (the world-model term reaches the posterior, with the world model frozen,
      only when ``e_step_world_model=True``; it is left out by default so that :math:`z` is not
      pushed to encode the end state directly);
    * w.r.t. policy, world model and prior it is the M-step's,
      :math:`-\sum_t \log\pi(a_t|s_t,\bar z) - \alpha\log p_\psi(s_T|s_0,\bar z) + \beta\,\mathrm{KL}(\bar q\|p_\omega)`
      (the closed-form KL has the same gradient w.r.t. :math:`\omega` as :math:`-\log p_\omega(\bar z|s_0)`
      in expectation, with less variance).

    The gradients equal those of separate E- and M-step losses (two passes, each network frozen
    by detaching its parameters; tested to 1e-6), at the cost of a joint ELBO step.

    **Joint mode** (``mode="joint"``): the negative ELBO with every gradient flowing, for one
    optimizer (EM mode with ``e_step_world_model=True`` is the same objective).

    Both modes return the three terms of the loss, ``loss_action``, ``loss_end_state`` and
    ``loss_kl`` (sum them for ``backward()``; their sum is the negative ELBO per step in both
    modes), and the detached diagnostics ``kl`` (per subtrajectory),
    ``log_prob_action`` (per step), ``log_prob_end_state`` (per subtrajectory) and ``elbo``
    (per step). The networks are called on whole ``[B, T]`` tensors at once: no Python loop
    over samples or time steps.

    Args:
        skill_model (SkillModel): the networks to train.

    Keyword Args:
        alpha (float, optional): weight of the end-state term. Defaults to ``1.0``.
        beta (float, optional): weight of the KL term. Defaults to ``1.0``.
        mode (str, optional): ``"em"`` or ``"joint"``. Defaults to ``"em"``.
        e_step_world_model (bool, optional): include the end-state term in the E-step.
            Defaults to ``False``.

    Input: a tensordict of batch shape ``[*B, T]`` (e.g. a slice-sampled replay batch reshaped
    to ``[B, T]``) with ``"observation"`` ``[*B, T, s]``, ``"action"`` ``[*B, T, a]`` and
    ``("next", "observation")`` ``[*B, T, s]``; keys are set with :meth:`set_keys`.

    Examples:
        >>> import torch
        >>> from tensordict import TensorDict
        >>> from torchrl_skills.modules import SkillModel
        >>> from torchrl_skills.objectives import SkillModelLoss
        >>> model = SkillModel(state_dim=4, action_dim=2, z_dim=8, hidden_dim=32)
        >>> loss_fn = SkillModelLoss(model)
        >>> batch = TensorDict(
        ...     {"observation": torch.randn(16, 10, 4), "action": torch.rand(16, 10, 2) * 2 - 1,
        ...      "next": {"observation": torch.randn(16, 10, 4)}},
        ...     batch_size=[16, 10])
        >>> losses = loss_fn(batch)
        >>> sorted(k for k in losses.keys() if k.startswith("loss_"))
        ['loss_action', 'loss_end_state', 'loss_kl']
        >>> total = sum(v for k, v in losses.items() if k.startswith("loss_"))
        >>> total.backward()
    """

    @dataclass
    class _AcceptedKeys:
        """Tensordict keys read by the loss; change them with ``.set_keys(name=key)``.

        Attributes:
            observation (NestedKey): state at each step, ``[*B, T, s]``. Defaults to ``"observation"``.
            action (NestedKey): action at each step, ``[*B, T, a]``. Defaults to ``"action"``.
            next_observation (NestedKey): state after each step; its last entry is :math:`s_T`.
                Defaults to ``("next", "observation")``.
        """

        observation: NestedKey = "observation"
        action: NestedKey = "action"
        next_observation: NestedKey = ("next", "observation")

    tensor_keys: _AcceptedKeys
    default_keys = _AcceptedKeys

    def __init__(
        self,
        skill_model: SkillModel,
        *,
        alpha: float = 1.0,
        beta: float = 1.0,
        mode: str = "em",
        e_step_world_model: bool = False,
    ):
        super().__init__()
        if mode not in ("em", "joint"):
            raise ValueError(f"mode must be 'em' or 'joint', got {mode!r}.")
        if not isinstance(skill_model, SkillModel):
            raise TypeError(f"SkillModelLoss expects a SkillModel, got {type(skill_model).__name__}.")
        self.skill_model = skill_model
        self.mode = mode
        self.e_step_world_model = e_step_world_model
        self.register_buffer("alpha", torch.tensor(float(alpha)))
        self.register_buffer("beta", torch.tensor(float(beta)))

    def _forward_value_estimator_keys(self, **kwargs) -> None:
        pass

    @property
    def in_keys(self) -> list[NestedKey]:
        return [self.tensor_keys.observation, self.tensor_keys.action, self.tensor_keys.next_observation]

    @property
    def out_keys(self) -> list[str]:
        return ["loss_action", "loss_end_state", "loss_kl", "kl", "log_prob_action", "log_prob_end_state", "elbo"]

    def posterior_parameters(self):
        """Parameters of the posterior (the E-step optimizer's)."""
        return self.skill_model.skill_posterior.parameters()

    def model_parameters(self):
        """Parameters of policy, world model and prior (the M-step optimizer's)."""
        m = self.skill_model
        for net in (m.skill_policy, m.skill_world_model, m.skill_prior):
            yield from net.parameters()

    def _read(self, tensordict: TensorDictBase) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        missing = [k for k in self.in_keys if tensordict.get(k, None) is None]
        if missing:
            raise KeyError(
                f"SkillModelLoss needs the entries {missing} in its input; it has {list(tensordict.keys(True, True))}. "
                "Use set_keys(observation=..., action=..., next_observation=...) if your data names them differently."
            )
        if tensordict.ndim < 2:
            raise ValueError(
                f"SkillModelLoss expects a tensordict of batch shape [B, T] (subtrajectories of T steps), got "
                f"batch shape {tuple(tensordict.batch_size)}. Reshape a slice-sampled batch with "
                "batch.reshape(num_slices, slice_len)."
            )
        return (
            tensordict.get(self.tensor_keys.observation),
            tensordict.get(self.tensor_keys.action),
            tensordict.get(self.tensor_keys.next_observation),
        )

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        states, actions, next_states = self._read(tensordict)
        model = self.skill_model
        horizon = states.shape[-2]
        s0, s_end = states[..., 0, :], next_states[..., -1, :]

        q_loc, q_scale = model.skill_posterior(states, actions)
        z = q_loc + q_scale * torch.randn_like(q_loc)
        p_loc, p_scale = model.skill_prior(s0)
        # One pass gives both modes. EM: the world model sees z detached, so its term trains the
        # world model only (the M-step's); every other gradient of the joint ELBO already is the
        # EM gradient, because each network's parameters only enter its own term.
        z_end = z if self.mode == "joint" or self.e_step_world_model else z.detach()
        log_pi = normal_log_prob(actions, *model.skill_policy(states, z.unsqueeze(-2))).sum(-1)
        log_end = normal_log_prob(s_end, *model.skill_world_model(s0, z_end))
        kl = normal_kl(q_loc, q_scale, p_loc, p_scale)
        losses = {
            "loss_action": -log_pi.mean() / horizon,
            "loss_end_state": -self.alpha * log_end.mean() / horizon,
            "loss_kl": self.beta * kl.mean() / horizon,
        }

        with torch.no_grad():
            diagnostics = {
                "kl": kl.mean(),
                "log_prob_action": -losses["loss_action"],
                "log_prob_end_state": log_end.mean(),
                "elbo": -(losses["loss_action"] + losses["loss_end_state"] + losses["loss_kl"]),
            }
        return TensorDict({**losses, **diagnostics}, batch_size=[])
