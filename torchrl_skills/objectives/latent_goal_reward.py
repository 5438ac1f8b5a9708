"""Latent goal-reaching reward ``r_t = -||E(s_{t+1}) - z_g||^2`` and its sample-time relabelling (SPEC B2)."""
from __future__ import annotations

import torch
from tensordict import TensorDict, TensorDictBase
from tensordict.nn import TensorDictModuleBase
from tensordict.utils import NestedKey
from torch import nn

__all__ = ["latent_goal_reward", "LatentGoalReward", "LatentWindowRelabel"]


def latent_goal_reward(next_latent: torch.Tensor, goal: torch.Tensor) -> torch.Tensor:
    """``-||next_latent - goal||^2`` over the last dim, kept as a trailing singleton (reward shape)."""
    if next_latent.shape != goal.shape:
        raise ValueError(
            f"next_latent {tuple(next_latent.shape)} and goal {tuple(goal.shape)} must have the same shape: "
            "goals live in the encoder's latent space."
        )
    return -(next_latent - goal).pow(2).sum(-1, keepdim=True)


class LatentGoalReward(TensorDictModuleBase):
    """Writes ``r = -||z_next - z_g||^2`` from a latent and a goal entry.

    Args:
        next_latent_key (NestedKey): latent of ``s_{t+1}`` (or ``s_{t+k}``). Defaults to ``("next", "latent")``.
        goal_key (NestedKey): the goal. Defaults to ``"goal"``.
        reward_key (NestedKey): output. Defaults to ``("next", "reward")``.

    Examples:
        >>> import torch
        >>> from tensordict import TensorDict
        >>> from torchrl_skills.objectives.latent_goal_reward import LatentGoalReward
        >>> td = TensorDict({"goal": torch.zeros(2, 3), ("next", "latent"): torch.ones(2, 3)}, [2])
        >>> LatentGoalReward()(td)["next", "reward"].squeeze(-1)
        tensor([-3., -3.])
    """

    def __init__(
        self,
        next_latent_key: NestedKey = ("next", "latent"),
        goal_key: NestedKey = "goal",
        reward_key: NestedKey = ("next", "reward"),
    ) -> None:
        super().__init__()
        self.in_keys = [next_latent_key, goal_key]
        self.out_keys = [reward_key]

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        next_latent, goal = (tensordict.get(k) for k in self.in_keys)
        tensordict.set(self.out_keys[0], latent_goal_reward(next_latent, goal))
        return tensordict


class LatentWindowRelabel(TensorDictModuleBase):
    """Turns replayed slices of raw steps into a SAC batch over latent windows, with fresh rewards.

    The replay buffer stores raw steps (observation, goal, action, next observation, ...);
    slices of :attr:`slice_len` consecutive steps of one episode come from a
    :class:`~torchrl.data.SliceSampler` (see :func:`torchrl_skills.data.windows.make_window_replay_buffer`).
    Because the encoder keeps learning, latents and rewards are recomputed here, at sample
    time, with the current encoder. For a slice ``s_0 .. s_{S-1}`` (``L = seq_len``), all
    ``S + 1`` states are encoded once (slices never cross episodes, so
    ``next_observation[i] == observation[i + 1]`` inside a slice), then for one transition
    position ``t`` per sample, uniform in ``[L - 1, S - h]``:

    - ``latent_window = E(s_{t-L+1} .. s_t)`` and ``("next", latent_window) = E(s_{t-L+2} .. s_{t+1})``;
    - the action, goal and done flags are those of step ``t``;
    - the goal is held fixed at the next step (goal-conditioned value, as in HIRO);
    - ``reward = latent_coef * -||E(s_{t+h}) - z_g||^2 + extrinsic_coef * r_ext``, with
      ``h = reward_horizon`` (1: the SPEC reward, ``k``: the k-step variant);
    - optionally (``goal_relabel_prob > 0``), hindsight relabelling: with that probability a
      sample's goal is replaced by the latent of a state actually reached ``j`` steps later,
      ``j ~ U{1..min(relabel_horizon, S - t)}`` (HER's "future" strategy, inside the slice), so the low
      level learns to reach latent goals even before the high level proposes reachable ones.

    Everything is one batched encoder call over the states a sample uses (its window, the next
    state, ``s_{t+h}`` and the relabelled goal's state), not the whole slice: no loop over the batch.

    Args:
        encoder (nn.Module): ``E``, maps ``[..., *obs_shape]`` to ``[..., latent_dim]``.
        seq_len (int): window length ``L`` of the actor.

    Keyword Args:
        reward_horizon (int): ``h`` above. Defaults to 1.
        detach_encoder (bool): if ``True`` (default) latents are computed without gradient,
            so SAC does not train the encoder (the encoder objective does). With ``False``,
            the SAC actor and critic losses backpropagate into the encoder.
        latent_coef (float): weight of the latent reward. Defaults to 1.0.
        extrinsic_coef (float): weight of the stored environment reward. Defaults to 0.0.
        goal_relabel_prob (float): probability of hindsight relabelling. Defaults to 0.0.
        relabel_horizon (int): furthest future step used as a relabelled goal. Defaults to 1.
        observation_key, goal_key, action_key, reward_key, done_key, terminated_key
            (NestedKey): input keys (``reward``/``done``/``terminated`` are read under ``"next"``).
        latent_window_key, latent_key (NestedKey): output keys for the window and its last
            element (read by the actor and the critic respectively).

    Input: a tensordict ``[B, S]`` or a flat ``[B * S]`` one (as sampled). Output: a new
    tensordict ``[B]`` with ``latent_window``, ``latent``, ``goal``, ``action`` and under
    ``"next"``: ``latent_window``, ``latent``, ``goal``, ``reward``, ``extrinsic_reward``,
    ``done``, ``terminated``.

    Examples:
        >>> import torch
        >>> from tensordict import TensorDict
        >>> from torchrl_skills.modules.encoders import MLPEncoder
        >>> from torchrl_skills.objectives.latent_goal_reward import LatentWindowRelabel
        >>> relabel = LatentWindowRelabel(MLPEncoder(6, 8), seq_len=4)
        >>> B, S = 5, 4
        >>> data = TensorDict({
        ...     "observation": torch.randn(B, S, 6), "goal": torch.randn(B, S, 8), "action": torch.rand(B, S, 2),
        ...     "next": {"observation": torch.randn(B, S, 6), "reward": torch.zeros(B, S, 1),
        ...              "done": torch.zeros(B, S, 1, dtype=torch.bool), "terminated": torch.zeros(B, S, 1, dtype=torch.bool)},
        ... }, [B, S])
        >>> batch = relabel(data)
        >>> batch["latent_window"].shape, batch["next", "reward"].shape
        (torch.Size([5, 4, 8]), torch.Size([5, 1]))
    """

    def __init__(
        self,
        encoder: nn.Module,
        seq_len: int,
        *,
        reward_horizon: int = 1,
        detach_encoder: bool = True,
        latent_coef: float = 1.0,
        extrinsic_coef: float = 0.0,
        goal_relabel_prob: float = 0.0,
        relabel_horizon: int = 1,
        observation_key: NestedKey = "observation",
        goal_key: NestedKey = "goal",
        action_key: NestedKey = "action",
        reward_key: NestedKey = "reward",
        done_key: NestedKey = "done",
        terminated_key: NestedKey = "terminated",
        latent_window_key: NestedKey = "latent_window",
        latent_key: NestedKey = "latent",
    ) -> None:
        super().__init__()
        if seq_len < 1 or reward_horizon < 1 or relabel_horizon < 1:
            raise ValueError(
                f"seq_len, reward_horizon and relabel_horizon must be >= 1, got {seq_len}, {reward_horizon}, {relabel_horizon}."
            )
        if not 0.0 <= goal_relabel_prob <= 1.0:
            raise ValueError(f"goal_relabel_prob must lie in [0, 1], got {goal_relabel_prob}.")
        self.goal_relabel_prob = goal_relabel_prob
        self.relabel_horizon = relabel_horizon
        self.encoder = encoder
        self.seq_len = seq_len
        self.reward_horizon = reward_horizon
        self.detach_encoder = detach_encoder
        self.latent_coef = latent_coef
        self.extrinsic_coef = extrinsic_coef
        self.keys = dict(
            observation=observation_key, goal=goal_key, action=action_key, reward=reward_key,
            done=done_key, terminated=terminated_key, latent_window=latent_window_key, latent=latent_key,
        )
        k = self.keys
        self.in_keys = [
            k["observation"], ("next", k["observation"]), k["goal"], k["action"],
            ("next", k["reward"]), ("next", k["done"]), ("next", k["terminated"]),
        ]
        self.out_keys = [
            k["latent_window"], k["latent"], k["goal"], k["action"],
            *[("next", key) for key in (k["latent_window"], k["latent"], k["goal"], k["reward"], "extrinsic_reward", k["done"], k["terminated"])],
        ]

    @property
    def slice_len(self) -> int:
        """Number of consecutive steps each sampled slice must hold: ``seq_len + max(reward_horizon, relabel_horizon) - 1``."""
        horizon = max(self.reward_horizon, self.relabel_horizon if self.goal_relabel_prob > 0 else 1)
        return self.seq_len + horizon - 1

    def _encode(self, x: torch.Tensor) -> torch.Tensor:
        if self.detach_encoder:
            with torch.no_grad():
                return self.encoder(x)
        return self.encoder(x)

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        S, L, h, k = self.slice_len, self.seq_len, self.reward_horizon, self.keys
        if tensordict.ndim == 1:
            if tensordict.shape[0] % S:
                raise ValueError(
                    f"A flat batch of {tensordict.shape[0]} steps cannot be split into slices of "
                    f"slice_len={S} (seq_len + reward_horizon - 1). Sample with SliceSampler(slice_len={S})."
                )
            tensordict = tensordict.reshape(-1, S)
        if tensordict.ndim != 2 or tensordict.shape[1] != S:
            raise ValueError(
                f"Expected slices of shape [B, {S}] (= slice_len: seq_len={L}, reward_horizon={h}), got batch shape "
                f"{tuple(tensordict.shape)}: the sampler's slice_len does not match seq_len."
            )
        obs = tensordict.get(k["observation"])
        next_obs = tensordict.get(("next", k["observation"]))
        B = obs.shape[0]
        dev = obs.device
        # Position t of the transition in the slice, uniform in [L - 1, S - h]. Letting it move
        # (rather than fixing it at L - 1) matters when slices are longer than the window: a
        # slice never runs past its episode, so with a fixed t the last S - L steps of every
        # episode, terminal (success) transitions included, would never be trained on.
        if S - h > L - 1:
            t = torch.randint(L - 1, S - h + 1, (B,), device=dev)
        else:
            t = torch.full((B,), L - 1, dtype=torch.long, device=dev)
        rows = torch.arange(B, device=dev).unsqueeze(-1)
        b = rows.squeeze(-1)
        # States s_0 .. s_S of the slice: inside a slice next_observation[i] == observation[i + 1].
        # Only the states used are encoded (the window and the next state, s_{t+h}, the relabelled
        # goal's state), in one call: for pixels the encoder is the cost of an update, and a slice
        # is longer than the window by the relabelling horizon.
        states = torch.cat([obs, next_obs[:, -1:]], 1)  # [B, S + 1, *obs]
        used = [t.unsqueeze(-1) - (L - 1) + torch.arange(L + 1, device=dev)]  # [B, L + 1]: s_{t-L+1} .. s_{t+1}
        if h > 1:
            used.append((t + h).unsqueeze(-1))
        relabel = None
        if self.goal_relabel_prob > 0:
            # future state j in [1, min(relabel_horizon, S - t)] steps after s_t
            span = (S - t).clamp(max=self.relabel_horizon)
            j = 1 + (torch.rand(B, device=dev) * span).long().clamp(max=span - 1)
            relabel = torch.rand(B, 1, device=dev) < self.goal_relabel_prob
            used.append((t + j).unsqueeze(-1))
        z = self._encode(states[rows, torch.cat(used, -1)])  # [B, L + 1 (+ 1) (+ 1), d]
        window, next_window = z[:, :L], z[:, 1 : L + 1]
        goal = tensordict.get(k["goal"])[b, t]
        if relabel is not None:
            goal = torch.where(relabel, z[:, -1].detach(), goal)
        ext = tensordict.get(("next", k["reward"]))[b, t]
        # h = 1: s_{t+1}; h = k: the k-step variant, distance of s_{t+k} to the goal
        reached = z[:, L] if h == 1 else z[:, L + 1]
        reward = self.latent_coef * latent_goal_reward(reached, goal) + self.extrinsic_coef * ext
        out = TensorDict(
            {
                k["latent_window"]: window,
                k["latent"]: window[:, -1],
                k["goal"]: goal,
                k["action"]: tensordict.get(k["action"])[b, t],
                "next": {
                    k["latent_window"]: next_window,
                    k["latent"]: next_window[:, -1],
                    k["goal"]: goal,
                    k["reward"]: reward,
                    "extrinsic_reward": ext,
                    k["done"]: tensordict.get(("next", k["done"]))[b, t],
                    k["terminated"]: tensordict.get(("next", k["terminated"]))[b, t],
                },
            },
            batch_size=tensordict.shape[:1],
            device=tensordict.device,
        )
        return out
