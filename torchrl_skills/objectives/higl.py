"""HIGL's updates as TorchRL losses: the low level with its encoder (one loss), and the high level's reward (SPEC B2).

- :class:`HIGLLoss` trains everything that learns from replayed windows in one backward pass:
  the low-level SAC (torchrl's :class:`~torchrl.objectives.SACLoss` on latent windows with
  rewards and hindsight goals recomputed by
  :class:`~torchrl_skills.objectives.latent_goal_reward.LatentWindowRelabel`), the encoder's
  temporal objective, and optionally the goal/state mutual-information term.
- :class:`HighLevelReward` rewrites the reward of the high level's semi-MDP steps (from
  :func:`~torchrl_skills.envs.hierarchical.high_level_transitions`) as a mix of the task's
  return and the latent progress towards the task goal, so a PPO / REINFORCE high level gets a
  signal before the first success.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from tensordict import TensorDict, TensorDictBase
from tensordict.nn import TensorDictModuleBase, dispatch
from tensordict.utils import NestedKey
from torch import nn

from torchrl.objectives import ClipPPOLoss, LossModule, ReinforceLoss, SACLoss, ValueEstimators

from torchrl_skills.objectives.higl_skill_mi import SkillMILoss
from torchrl_skills.objectives.latent_goal_reward import LatentWindowRelabel

__all__ = ["HIGLLoss", "HighLevelReward", "high_level_update", "latent_progress", "make_high_level_loss"]


class HIGLLoss(LossModule):
    """The low level's SAC, the encoder's temporal loss and the optional MI term over the same replayed slices.

    One call takes ``[B, S]`` slices of consecutive raw steps (``S = relabel.slice_len``, from
    :func:`~torchrl_skills.data.windows.make_window_replay_buffer`) and returns every loss:

    - ``loss_actor``, ``loss_qvalue``, ``loss_alpha``: ``sac_loss`` on ``relabel(slices)`` (latent
      windows, the reward ``-||E(s_{t+1}) - z_g||^2`` and hindsight goals recomputed with the
      current encoder);
    - ``loss_encoder``: ``encoder_loss`` (e.g. :class:`~torchrl_skills.objectives.TemporalContrastiveLoss`)
      on one positive pair ``(s_0, s_j)`` per slice, ``j`` uniform in ``1 .. min(positive_offset, S)``;
    - ``loss_skill_mi`` (when ``mi_loss`` is given): ``mi_coef`` x the InfoNCE between the latent
      reached at the end of each slice and the goal pursued there (goal diversity).

    Summing the ``loss_*`` entries and stepping one optimizer over :meth:`parameters` trains the
    actor, the twin critics, the temperature, the encoder and the MI estimator; keep the SAC
    target networks with ``SoftUpdate(loss.sac_loss)``. With ``relabel.detach_encoder`` (default)
    the encoder learns only from its own objective, as in the seed.

    Args:
        relabel (LatentWindowRelabel): slices -> SAC batch; its encoder is the one trained here.
        sac_loss (SACLoss): the low level's SAC on the relabelled batch.
        encoder_loss (LossModule): the encoder's objective on ``observation`` / ``future_observation``
            pairs (its keys are set here to read them).

    Keyword Args:
        positive_offset (int): most steps between the two states of a positive pair (the seed's
            ``k``); clipped to the slice. Defaults to 10.
        mi_loss (SkillMILoss, optional): the goal/state MI term. Defaults to none.
        mi_coef (float): its weight. Defaults to 1.0.
        observation_key, goal_key (NestedKey): raw observation and goal entries of the slices.

    Examples:
        >>> import torch
        >>> from tensordict import TensorDict
        >>> from torchrl.data import Bounded
        >>> from torchrl.objectives import SACLoss
        >>> from torchrl_skills.modules import MLPEncoder, make_goal_conditioned_critic, make_transformer_actor
        >>> from torchrl_skills.objectives import HIGLLoss, LatentWindowRelabel, TemporalContrastiveLoss
        >>> encoder = MLPEncoder(4, 8, num_cells=(32,), normalize=True)
        >>> spec = Bounded(-1, 1, (2,))
        >>> sac = SACLoss(make_transformer_actor(spec, 8, 8, seq_len=3, d_model=16), make_goal_conditioned_critic(8, 2, 8),
        ...               num_qvalue_nets=2, action_spec=spec)
        >>> relabel = LatentWindowRelabel(encoder, seq_len=3, goal_relabel_prob=0.5, relabel_horizon=4)
        >>> loss = HIGLLoss(relabel, sac, TemporalContrastiveLoss(encoder, similarity="cosine", temperature=0.1), positive_offset=4)
        >>> B, S = 16, relabel.slice_len
        >>> slices = TensorDict({"observation": torch.randn(B, S, 4), "goal": torch.randn(B, S, 8), "action": torch.rand(B, S, 2),
        ...     "next": {"observation": torch.randn(B, S, 4), "reward": torch.zeros(B, S, 1),
        ...              "done": torch.zeros(B, S, 1, dtype=torch.bool), "terminated": torch.zeros(B, S, 1, dtype=torch.bool)}}, [B, S])
        >>> out = loss(slices)
        >>> sorted(key for key in out.keys() if key.startswith("loss_"))
        ['loss_actor', 'loss_alpha', 'loss_encoder', 'loss_qvalue']
        >>> sum(out[key] for key in out.keys() if key.startswith("loss_")).backward()
    """

    @dataclass
    class _AcceptedKeys:
        """Configurable tensordict keys.

        Attributes:
            observation (NestedKey): raw observation of each step. Defaults to ``"observation"``.
            goal (NestedKey): latent goal pursued at each step. Defaults to ``"goal"``.
        """

        observation: NestedKey = "observation"
        goal: NestedKey = "goal"

    default_keys = _AcceptedKeys

    def __init__(
        self,
        relabel: LatentWindowRelabel,
        sac_loss: SACLoss,
        encoder_loss: LossModule,
        *,
        positive_offset: int = 10,
        mi_loss: SkillMILoss | None = None,
        mi_coef: float = 1.0,
        observation_key: NestedKey = "observation",
        goal_key: NestedKey = "goal",
    ) -> None:
        super().__init__()
        if positive_offset < 1:
            raise ValueError(f"positive_offset must be >= 1, got {positive_offset}.")
        self.relabel = relabel
        self.sac_loss = sac_loss
        # torchrl's SACLoss creates its `_target_entropy` buffer on first use and its own
        # load_state_dict creates it before loading; loading the parent module does not, so a
        # checkpoint of a used loss fails to load into a new one ("Unexpected key(s) in state_dict:
        # sac_loss._target_entropy"). Creating it now keeps the state dict the same at all times.
        _ = sac_loss.target_entropy
        self.encoder_loss = encoder_loss
        self.encoder_loss.set_keys(observation="observation", future_observation="future_observation")
        self.mi_loss = mi_loss
        self.mi_coef = mi_coef
        self.positive_offset = positive_offset
        self.set_keys(observation=observation_key, goal=goal_key)

    @property
    def encoder(self) -> nn.Module:
        return self.relabel.encoder

    @property
    def in_keys(self) -> list[NestedKey]:
        return list(self.relabel.in_keys)

    @property
    def out_keys(self) -> list[NestedKey]:
        keys = ["loss_actor", "loss_qvalue", "loss_alpha", "loss_encoder", "alpha", "entropy"]
        return keys + (["loss_skill_mi"] if self.mi_loss is not None else [])

    def _forward_value_estimator_keys(self, **kwargs) -> None:
        pass

    @dispatch
    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        S = self.relabel.slice_len
        slices = tensordict.reshape(-1, S) if tensordict.ndim == 1 else tensordict
        if slices.ndim != 2 or slices.shape[1] != S:
            raise ValueError(
                f"HIGLLoss expects slices [B, {S}] (relabel.slice_len) or a flat batch of B * {S} steps, got "
                f"{tuple(tensordict.shape)}."
            )
        out = self.sac_loss(self.relabel(slices))
        losses = {key: out.get(key) for key in ("loss_actor", "loss_qvalue", "loss_alpha")}
        obs_key, goal_key = self.tensor_keys.observation, self.tensor_keys.goal
        # positives j steps apart, j uniform in 1..positive_offset per pair: states 1 step apart and
        # states positive_offset steps apart are both positives, so latent distance grows gradually with
        # the steps between states instead of jumping from "within j" to "any other state"
        B = slices.shape[0]
        j = torch.randint(1, min(self.positive_offset, S) + 1, (B,), device=slices.device)
        pairs = TensorDict(
            {
                "observation": slices[:, 0].get(obs_key),
                "future_observation": slices.get(("next", obs_key))[torch.arange(B, device=slices.device), j - 1],
            },
            batch_size=slices.shape[:1],
        )
        enc = self.encoder_loss(pairs)
        enc_loss_key = next(key for key in enc.keys() if isinstance(key, str) and key.startswith("loss_"))
        losses["loss_encoder"] = enc.get(enc_loss_key)
        metrics = {"alpha": out.get("alpha"), "entropy": out.get("entropy")}
        metrics.update({key: value for key, value in enc.items() if key != enc_loss_key})
        if self.mi_loss is not None:
            last = slices[:, -1]
            mi_td = TensorDict(
                {
                    self.mi_loss.tensor_keys.latent: self.encoder(last.get(("next", obs_key))),
                    self.mi_loss.tensor_keys.skill_embedding: last.get(goal_key),
                },
                batch_size=last.shape,
            )
            losses["loss_skill_mi"] = self.mi_coef * self.mi_loss(mi_td).get("loss_skill_mi")
        return TensorDict({**losses, **{key: value.detach() for key, value in metrics.items()}}, batch_size=[])


def latent_progress(
    encoder: nn.Module, observation: torch.Tensor, next_observation: torch.Tensor, goal_observation: torch.Tensor
) -> torch.Tensor:
    """``||E(s) - E(g)|| - ||E(s') - E(g)||``: how much closer to the goal a high-level step came, in latent distance.

    One encoder call for the three states; no gradient. Shape ``[*batch, 1]``.

    Examples:
        >>> import torch
        >>> from torchrl_skills.objectives.higl import latent_progress
        >>> identity = torch.nn.Identity()
        >>> latent_progress(identity, torch.tensor([[3.0, 0.0]]), torch.tensor([[1.0, 0.0]]), torch.zeros(1, 2))
        tensor([[2.]])
    """
    with torch.no_grad():
        z = encoder(torch.stack([observation, next_observation, goal_observation], 0))
    return ((z[0] - z[2]).norm(dim=-1, keepdim=True) - (z[1] - z[2]).norm(dim=-1, keepdim=True))


class HighLevelReward(TensorDictModuleBase):
    """The high level's reward: ``extrinsic_coef * task return + progress_coef * latent progress to E(goal) - action_cost * ||a||^2``.

    The seed rewards the high level with the task return collected while a goal is pursued;
    with a sparse task that is zero until the first success. The latent progress
    (:func:`latent_progress`, computed with the current encoder) gives the goal-conditioned high
    level a signal from the start; the seed allows a goal-reaching reward for this level.

    Args:
        encoder (nn.Module): ``E``.

    Keyword Args:
        extrinsic_coef (float): weight of the segment's task return. Defaults to 1.0.
        progress_coef (float): weight of the latent progress. Defaults to 1.0.
        action_cost (float): weight of the squared norm of the high-level action ``a``: with
            :class:`~torchrl_skills.modules.RelativeSubgoal` and
            :class:`~torchrl_skills.modules.LandmarkSubgoal`, the correction to the proposed
            route, which then has to pay for itself. Defaults to 0.0.
        observation_key (NestedKey): observation at the start (root) and end (under ``"next"``)
            of a high-level step. Defaults to ``"observation"``.
        goal_observation_key (NestedKey): the task goal as an observation. Defaults to ``"goal_observation"``.
        reward_key (NestedKey): read (task return) and overwritten under ``"next"``; the task return
            is kept in ``("next", "extrinsic_reward")``. Defaults to ``"reward"``.
        action_key (NestedKey): the high-level action (read when ``action_cost > 0``). Defaults to ``"high_action"``.

    Examples:
        >>> import torch
        >>> from tensordict import TensorDict
        >>> from torchrl_skills.objectives.higl import HighLevelReward
        >>> td = TensorDict({"observation": torch.tensor([[3.0, 0.0]]), "goal_observation": torch.zeros(1, 2),
        ...                  "next": {"observation": torch.tensor([[1.0, 0.0]]), "reward": torch.ones(1, 1)}}, [1])
        >>> HighLevelReward(torch.nn.Identity(), extrinsic_coef=10.0)(td)["next", "reward"]
        tensor([[12.]])
    """

    def __init__(
        self,
        encoder: nn.Module,
        *,
        extrinsic_coef: float = 1.0,
        progress_coef: float = 1.0,
        action_cost: float = 0.0,
        observation_key: NestedKey = "observation",
        goal_observation_key: NestedKey = "goal_observation",
        reward_key: NestedKey = "reward",
        action_key: NestedKey = "high_action",
    ) -> None:
        super().__init__()
        if action_cost < 0:
            raise ValueError(f"action_cost must be >= 0, got {action_cost}.")
        self.encoder = encoder
        self.extrinsic_coef = extrinsic_coef
        self.progress_coef = progress_coef
        self.action_cost = action_cost
        self.keys = dict(observation=observation_key, goal_observation=goal_observation_key, reward=reward_key,
                         action=action_key)  # fmt: skip
        self.in_keys = [observation_key, ("next", observation_key), goal_observation_key, ("next", reward_key)]
        if action_cost:
            self.in_keys.append(action_key)
        self.out_keys = [("next", reward_key), ("next", "extrinsic_reward")]

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        k = self.keys
        extrinsic = tensordict.get(("next", k["reward"]))
        reward = self.extrinsic_coef * extrinsic
        if self.progress_coef:
            progress = latent_progress(
                self.encoder, tensordict.get(k["observation"]), tensordict.get(("next", k["observation"])),
                tensordict.get(k["goal_observation"]),
            )  # fmt: skip
            reward = reward + self.progress_coef * progress
        if self.action_cost:
            reward = reward - self.action_cost * tensordict.get(k["action"]).pow(2).sum(-1, keepdim=True)
        tensordict.set(("next", "extrinsic_reward"), extrinsic)
        return tensordict.set(("next", k["reward"]), reward)


def make_high_level_loss(actor, value, *, algo: str = "ppo", gamma: float = 0.99, k: int = 10) -> LossModule:
    """The high level's on-policy loss over :func:`~torchrl_skills.envs.hierarchical.high_level_transitions`.

    ``ClipPPOLoss`` (``algo="ppo"``, clip 0.2, entropy 1e-3) or ``ReinforceLoss``, reading
    ``high_action`` / ``high_action_log_prob``, with GAE at ``gamma ** k``: one high-level step
    lasts ``k`` env steps.

    Args:
        actor (ProbabilisticTensorDictSequential): the high level, e.g. from
            :func:`~torchrl_skills.modules.make_high_level_actor`.
        value (TensorDictModule): its state value, e.g. from
            :func:`~torchrl_skills.modules.make_high_level_value`.

    Keyword Args:
        algo (str): ``"ppo"`` or ``"reinforce"``.
        gamma (float): the env-step discount; the semi-MDP's is ``gamma ** k``.
        k (int): env steps per high-level step.

    Examples:
        >>> from torchrl_skills.modules import make_high_level_actor, make_high_level_value
        >>> actor = make_high_level_actor(["observation"], 4, goal_dim=2, num_cells=(16,))
        >>> value = make_high_level_value(["observation"], 4, num_cells=(16,))
        >>> loss = make_high_level_loss(actor, value, algo="ppo", gamma=0.99, k=10)
        >>> round(loss.value_estimator.gamma.item(), 4)
        0.9044
    """
    if algo == "ppo":
        loss = ClipPPOLoss(actor, value, clip_epsilon=0.2, entropy_coeff=1e-3)
    elif algo == "reinforce":
        loss = ReinforceLoss(actor, value)
    else:
        raise ValueError(f"algo must be 'ppo' or 'reinforce', got {algo!r}.")
    loss.set_keys(action="high_action", sample_log_prob="high_action_log_prob")
    loss.make_value_estimator(ValueEstimators.GAE, gamma=gamma**k, lmbda=0.95, average_gae=True)
    return loss


def high_level_update(
    loss: LossModule,
    optimizer: torch.optim.Optimizer,
    transitions: TensorDictBase,
    *,
    epochs: int = 1,
    check: Callable[[torch.Tensor, TensorDictBase], None] | None = None,
) -> TensorDictBase | None:
    """One on-policy update of the high level on a batch of semi-MDP steps.

    Computes the advantage and value target once with ``loss.value_estimator`` on the whole
    ``[N, T]`` batch (so GAE runs along each env's sequence of high-level steps), keeps the rows
    whose ``"mask"`` is set (the steps :func:`~torchrl_skills.envs.hierarchical.high_level_transitions`
    completed inside the batch; every row when there is no ``"mask"``), then takes ``epochs``
    gradient steps on the sum of the loss's ``loss_*`` terms over those rows.

    Args:
        loss (LossModule): e.g. from :func:`make_high_level_loss`.
        optimizer (torch.optim.Optimizer): over ``loss``'s parameters.
        transitions (TensorDictBase): ``[N, T]`` semi-MDP steps with their (rewritten) rewards.

    Keyword Args:
        epochs (int): gradient steps on the batch (e.g. 4 for PPO, 1 for REINFORCE).
        check (callable, optional): called as ``check(total_loss, loss_output)`` before each
            backward pass, e.g. to stop on a non-finite loss with
            :func:`~torchrl_skills.utils.check_finite_loss`.

    Returns:
        the masked ``[M]`` transitions with their advantages (for logging), or ``None`` when the
        batch completed no high-level step.

    Examples:
        >>> import torch
        >>> from tensordict import TensorDict
        >>> from torchrl_skills.modules import make_high_level_actor, make_high_level_value
        >>> actor = make_high_level_actor(["observation"], 3, goal_dim=2, num_cells=(16,))
        >>> value = make_high_level_value(["observation"], 3, num_cells=(16,))
        >>> loss = make_high_level_loss(actor, value, k=1)
        >>> optim = torch.optim.Adam(loss.parameters(), lr=1e-3)
        >>> with torch.no_grad():
        ...     td = actor(TensorDict({"observation": torch.randn(4, 5, 3)}, [4, 5]))
        >>> done = torch.zeros(4, 5, 1, dtype=torch.bool)
        >>> td["next"] = TensorDict({"observation": torch.randn(4, 5, 3), "reward": torch.randn(4, 5, 1),
        ...                          "done": done, "terminated": done}, [4, 5])
        >>> td["mask"] = torch.ones(4, 5, dtype=torch.bool)
        >>> td["mask"][:, -1] = False
        >>> high_level_update(loss, optim, td, epochs=4).shape
        torch.Size([16])
    """
    if epochs < 1:
        raise ValueError(f"epochs must be at least 1, got {epochs}.")
    mask = transitions.get("mask", None)
    if mask is not None and not mask.any():
        return None
    with torch.no_grad():
        loss.value_estimator(transitions)
    batch = transitions[mask] if mask is not None else transitions.reshape(-1)
    for _ in range(epochs):
        out = loss(batch)
        total = sum(v for key, v in out.items() if key.startswith("loss_"))
        if check is not None:
            check(total, out)
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
    return batch
