"""Transformer low-level policy over windows of (latent state, goal) pairs, and its critics (SPEC B1)."""
from __future__ import annotations

from collections.abc import Sequence

import torch
from tensordict.nn import NormalParamExtractor, TensorDictModule, TensorDictSequential
from tensordict.utils import NestedKey
from torch import nn

from torchrl.data import TensorSpec
from torchrl.envs.utils import ExplorationType
from torchrl.modules import MLP, ProbabilisticActor, TanhNormal, ValueOperator

__all__ = [
    "TransformerPolicy",
    "GoalConditionedQValue",
    "make_transformer_actor",
    "make_goal_conditioned_critic",
]


class TransformerPolicy(nn.Module):
    """Transformer encoder over ``seq_len`` tokens ``[z_i ; g_i]`` that reads out the last token.

    Each token is the concatenation of a latent state and a goal, projected to ``d_model``,
    plus a learned positional embedding (without it, self-attention is permutation
    invariant and the policy could not tell the current state from older ones). The output
    of the last token goes through a linear head. Dropout is 0 by default: stochasticity
    belongs to the action distribution, and dropout noise would also leak into SAC targets.

    Args:
        latent_dim (int): latent state size.
        goal_dim (int): goal size.
        out_features (int): head size (``2 * action_dim`` for a loc/scale head).
        seq_len (int): window length. Defaults to 10.
        d_model (int): token size. Defaults to 128.
        nhead (int): attention heads. Defaults to 4.
        num_layers (int): encoder layers. Defaults to 2.
        dim_feedforward (int): feed-forward size. Defaults to 256.
        dropout (float): dropout in the encoder layers. Defaults to 0.0.

    Forward:
        latent_window (Tensor): ``[*batch, seq_len, latent_dim]``, oldest first.
        goal (Tensor): ``[*batch, goal_dim]`` (one goal broadcast to every token: the goal
            being pursued now) or ``[*batch, seq_len, goal_dim]`` (a goal per token).

        Returns ``[*batch, out_features]``.

    Examples:
        >>> import torch
        >>> from torchrl_skills.modules.transformer_policy import TransformerPolicy
        >>> net = TransformerPolicy(latent_dim=64, goal_dim=64, out_features=6, seq_len=10)
        >>> net(torch.randn(32, 10, 64), torch.randn(32, 64)).shape
        torch.Size([32, 6])
    """

    def __init__(
        self,
        latent_dim: int,
        goal_dim: int,
        out_features: int,
        seq_len: int = 10,
        d_model: int = 128,
        nhead: int = 4,
        num_layers: int = 2,
        dim_feedforward: int = 256,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.goal_dim = goal_dim
        self.seq_len = seq_len
        self.input_proj = nn.Linear(latent_dim + goal_dim, d_model)
        self.pos_embedding = nn.Parameter(torch.zeros(seq_len, d_model))
        nn.init.normal_(self.pos_embedding, std=0.02)
        layer = nn.TransformerEncoderLayer(
            d_model=d_model,
            nhead=nhead,
            dim_feedforward=dim_feedforward,
            dropout=dropout,
            batch_first=True,
            norm_first=True,  # pre-norm trains stably without a learning-rate warm-up
        )
        # enable_nested_tensor only helps with padding masks, which we never use
        self.transformer = nn.TransformerEncoder(layer, num_layers=num_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, out_features)

    def forward(self, latent_window: torch.Tensor, goal: torch.Tensor) -> torch.Tensor:
        if latent_window.ndim < 2 or latent_window.shape[-2:] != (self.seq_len, self.latent_dim):
            raise ValueError(
                f"TransformerPolicy expects latent_window [..., seq_len={self.seq_len}, latent_dim={self.latent_dim}], "
                f"got {tuple(latent_window.shape)}. Build windows with the same seq_len as the policy "
                "(CatFrames(N=seq_len) when acting, slice_len=seq_len in the replay sampler)."
            )
        batch = latent_window.shape[:-2]
        if goal.shape == (*batch, self.goal_dim):
            goal = goal.unsqueeze(-2).expand(*batch, self.seq_len, self.goal_dim)
        elif goal.shape != (*batch, self.seq_len, self.goal_dim):
            raise ValueError(
                f"goal must be [..., {self.goal_dim}] or [..., {self.seq_len}, {self.goal_dim}] with the batch "
                f"shape {tuple(batch)} of latent_window, got {tuple(goal.shape)}."
            )
        x = torch.cat([latent_window, goal], -1).reshape(-1, self.seq_len, self.latent_dim + self.goal_dim)
        h = self.transformer(self.input_proj(x) + self.pos_embedding)
        out = self.head(self.norm(h[:, -1]))
        return out.reshape(*batch, -1)


class GoalConditionedQValue(nn.Module):
    """``Q(z, a, g)``: an MLP on the concatenated latent state, action and goal (SPEC B1).

    ``z`` can also be a window ``[..., L, d]`` of latent states (``latent_dim = L * d``), flattened
    here: when the latent holds positions only, the window carries the velocities the critic needs.

    Args:
        latent_dim (int): latent state size (``L * d`` for a window).
        action_dim (int): action size.
        goal_dim (int): goal size.
        num_cells (sequence of int): hidden sizes. Defaults to ``(128, 128)``.
        activation_class (type): hidden activation. Defaults to :class:`torch.nn.ReLU`.

    Examples:
        >>> import torch
        >>> from torchrl_skills.modules.transformer_policy import GoalConditionedQValue
        >>> GoalConditionedQValue(8, 2, 8)(torch.randn(5, 8), torch.randn(5, 2), torch.randn(5, 8)).shape
        torch.Size([5, 1])
    """

    def __init__(
        self,
        latent_dim: int,
        action_dim: int,
        goal_dim: int,
        num_cells: Sequence[int] = (128, 128),
        activation_class: type[nn.Module] = nn.ReLU,
    ) -> None:
        super().__init__()
        # ReLU, not torchrl MLP's default Tanh: with Tanh the critic resolves the small action
        # differences of a latent-distance reward so slowly that a low level given goals 2 steps
        # away still moved at random after 600 updates; with ReLU it reached them (tests/test_higl_levels.py)
        self.mlp = MLP(
            in_features=latent_dim + action_dim + goal_dim, out_features=1, num_cells=list(num_cells),
            activation_class=activation_class,
        )  # fmt: skip

    def forward(self, latent: torch.Tensor, action: torch.Tensor, goal: torch.Tensor) -> torch.Tensor:
        if latent.ndim == action.ndim + 1:  # a window [..., L, d] of latents: the critic reads it whole
            latent = latent.flatten(-2)
        return self.mlp(torch.cat([latent, action, goal], -1))


def make_transformer_actor(
    action_spec: TensorSpec,
    latent_dim: int,
    goal_dim: int,
    seq_len: int = 10,
    *,
    in_keys: Sequence[NestedKey] = ("latent_window", "goal"),
    d_model: int = 128,
    nhead: int = 4,
    num_layers: int = 2,
    dim_feedforward: int = 256,
    scale_lb: float = 1e-4,
) -> ProbabilisticActor:
    """Builds the stochastic low-level actor: :class:`TransformerPolicy` -> ``(loc, scale)`` -> TanhNormal.

    Args:
        action_spec (TensorSpec): bounded action spec; its bounds become the TanhNormal's.
        latent_dim, goal_dim, seq_len: see :class:`TransformerPolicy`.

    Keyword Args:
        in_keys: ``(latent_window key, goal key)``. Defaults to ``("latent_window", "goal")``.
        d_model, nhead, num_layers, dim_feedforward: transformer sizes (SPEC B1 defaults).
        scale_lb (float): lower bound of the scale. Defaults to 1e-4.

    Returns:
        a :class:`~torchrl.modules.ProbabilisticActor` writing ``"loc"``, ``"scale"``,
        ``"action"`` and its log-probability, ready for :class:`~torchrl.objectives.SACLoss`.

    Examples:
        >>> import torch
        >>> from tensordict import TensorDict
        >>> from torchrl.data import Bounded
        >>> from torchrl_skills.modules.transformer_policy import make_transformer_actor
        >>> actor = make_transformer_actor(Bounded(-1, 1, (2,)), latent_dim=8, goal_dim=8, seq_len=4, d_model=16)
        >>> td = actor(TensorDict({"latent_window": torch.randn(3, 4, 8), "goal": torch.randn(3, 8)}, [3]))
        >>> td["action"].shape
        torch.Size([3, 2])
    """
    action_dim = action_spec.shape[-1]
    net = TransformerPolicy(
        latent_dim, goal_dim, 2 * action_dim, seq_len, d_model=d_model, nhead=nhead,
        num_layers=num_layers, dim_feedforward=dim_feedforward,
    )
    module = TensorDictSequential(
        TensorDictModule(net, in_keys=list(in_keys), out_keys=["policy_params"]),
        TensorDictModule(
            NormalParamExtractor(scale_mapping="biased_softplus_1.0", scale_lb=scale_lb),
            in_keys=["policy_params"],
            out_keys=["loc", "scale"],
        ),
    )
    return ProbabilisticActor(
        module,
        in_keys=["loc", "scale"],
        spec=action_spec,
        distribution_class=TanhNormal,
        distribution_kwargs={"low": action_spec.space.low, "high": action_spec.space.high},
        return_log_prob=True,
        default_interaction_type=ExplorationType.RANDOM,
    )


def make_goal_conditioned_critic(
    latent_dim: int,
    action_dim: int,
    goal_dim: int,
    *,
    in_keys: Sequence[NestedKey] = ("latent", "action", "goal"),
    num_cells: Sequence[int] = (128, 128),
) -> ValueOperator:
    """Builds ``Q(z, a, g)`` as a :class:`~torchrl.modules.ValueOperator` writing ``"state_action_value"``.

    :class:`~torchrl.objectives.SACLoss` with ``num_qvalue_nets=2`` turns this one module into
    the twin critics (two independently initialised parameter sets, evaluated with vmap).

    Examples:
        >>> import torch
        >>> from tensordict import TensorDict
        >>> from torchrl_skills.modules.transformer_policy import make_goal_conditioned_critic
        >>> q = make_goal_conditioned_critic(8, 2, 8)
        >>> td = TensorDict({"latent": torch.randn(3, 8), "action": torch.randn(3, 2), "goal": torch.randn(3, 8)}, [3])
        >>> q(td)["state_action_value"].shape
        torch.Size([3, 1])
    """
    return ValueOperator(GoalConditionedQValue(latent_dim, action_dim, goal_dim, num_cells), in_keys=list(in_keys))
