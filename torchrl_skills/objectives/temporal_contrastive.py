"""Encoder objectives for HIGL: temporal InfoNCE and k-step reconstruction (SPEC B2)."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from tensordict import TensorDict, TensorDictBase
from tensordict.nn import dispatch
from tensordict.utils import NestedKey
from torch import nn
from torch.nn import functional as F

from torchrl.modules import MLP
from torchrl.objectives.common import LossModule

__all__ = ["info_nce", "info_nce_logits", "TemporalContrastiveLoss", "TemporalReconstructionLoss"]

_SIMILARITIES = ("dot", "cosine")


def info_nce_logits(
    anchors: torch.Tensor, positives: torch.Tensor, similarity: str = "dot", temperature: float = 1.0
) -> torch.Tensor:
    """Similarity matrix ``sim(anchor_i, positive_j) / temperature`` of shape ``[N, N]``.

    Args:
        anchors (Tensor): ``[N, D]``.
        positives (Tensor): ``[N, D]``; row ``i`` is the positive of anchor ``i``, every
            other row is one of its in-batch negatives.
        similarity (str): ``"dot"`` or ``"cosine"``.
        temperature (float): divides the similarities.
    """
    if similarity not in _SIMILARITIES:
        raise ValueError(f"similarity must be one of {_SIMILARITIES}, got {similarity!r}.")
    if anchors.ndim != 2 or anchors.shape != positives.shape:
        raise ValueError(
            "info_nce expects anchors and positives of the same shape [N, D], got "
            f"{tuple(anchors.shape)} and {tuple(positives.shape)}. Flatten leading batch dims first."
        )
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}.")
    if similarity == "cosine":
        anchors = F.normalize(anchors, dim=-1)
        positives = F.normalize(positives, dim=-1)
    return anchors @ positives.T / temperature


def info_nce(
    anchors: torch.Tensor, positives: torch.Tensor, similarity: str = "dot", temperature: float = 1.0
) -> torch.Tensor:
    """InfoNCE loss with in-batch negatives: ``mean_i -log softmax_j(sim(a_i, p_j))[i]``.

    The diagonal of the similarity matrix holds the positives, so this is a cross-entropy
    with labels ``arange(N)``; ``log(N) - info_nce`` is the usual lower bound on the mutual
    information.

    Examples:
        >>> import torch
        >>> from torchrl_skills.objectives.temporal_contrastive import info_nce
        >>> a = torch.eye(3)
        >>> round(info_nce(a, a).item(), 4)  # -log(e / (e + 2))
        0.5514
    """
    logits = info_nce_logits(anchors, positives, similarity, temperature)
    labels = torch.arange(logits.shape[0], device=logits.device)
    return F.cross_entropy(logits, labels)


class TemporalContrastiveLoss(LossModule):
    """Temporal InfoNCE for the goal encoder: positives ``(s_t, s_{t+k})``, in-batch negatives.

    ``L = -log exp(sim(E(s_t), E(s_{t+k}))/T) / sum_j exp(sim(E(s_t), E(s_{t+k}^j))/T)``,
    so states that follow each other within ``k`` steps get close latents: this is what makes
    the low-level reward ``-||E(s_{t+1}) - z_g||^2`` a meaningful distance to the goal.

    Both states are encoded in a single batched call. Any leading batch shape is accepted
    and flattened: every other sample of the batch is a negative.

    Args:
        encoder (nn.Module): maps observations ``[..., *obs_shape]`` to ``[..., D]``
            (e.g. :class:`~torchrl_skills.modules.encoders.MLPEncoder` or
            :class:`~torchrl_skills.modules.encoders.ConvEncoder`). It is kept as a regular
            sub-module (not functionalised), so it can be shared with the SAC pre-processing.

    Keyword Args:
        similarity (str): ``"dot"`` (default) or ``"cosine"``.
        temperature (float): softmax temperature. Defaults to 1.0.

    Input keys (see :meth:`set_keys`): ``observation`` (``"observation"``) and
    ``future_observation`` (``"future_observation"``).
    Output: ``loss_contrastive`` and the detached diagnostics ``contrastive_accuracy``
    (top-1 retrieval of the positive) and ``mi_lower_bound`` (``log N - loss``).

    Examples:
        >>> import torch
        >>> from tensordict import TensorDict
        >>> from torchrl_skills.modules.encoders import MLPEncoder
        >>> from torchrl_skills.objectives.temporal_contrastive import TemporalContrastiveLoss
        >>> loss = TemporalContrastiveLoss(MLPEncoder(4, 8), similarity="cosine", temperature=0.1)
        >>> td = TensorDict({"observation": torch.randn(16, 4), "future_observation": torch.randn(16, 4)}, [16])
        >>> out = loss(td)
        >>> out["loss_contrastive"].backward()
        >>> sorted(out.keys())
        ['contrastive_accuracy', 'loss_contrastive', 'mi_lower_bound']
    """

    @dataclass
    class _AcceptedKeys:
        """Configurable tensordict keys.

        Attributes:
            observation (NestedKey): the anchor state ``s_t``. Defaults to ``"observation"``.
            future_observation (NestedKey): the positive ``s_{t+k}``. Defaults to ``"future_observation"``.
        """

        observation: NestedKey = "observation"
        future_observation: NestedKey = "future_observation"

    default_keys = _AcceptedKeys

    def __init__(
        self, encoder: nn.Module, *, similarity: str = "dot", temperature: float = 1.0
    ) -> None:
        super().__init__()
        if similarity not in _SIMILARITIES:
            raise ValueError(f"similarity must be one of {_SIMILARITIES}, got {similarity!r}.")
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}.")
        self.encoder = encoder
        self.similarity = similarity
        self.temperature = temperature

    @property
    def in_keys(self) -> list[NestedKey]:
        return [self.tensor_keys.observation, self.tensor_keys.future_observation]

    @property
    def out_keys(self) -> list[NestedKey]:
        return ["loss_contrastive", "contrastive_accuracy", "mi_lower_bound"]

    def _forward_value_estimator_keys(self, **kwargs) -> None:
        pass

    @dispatch
    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        obs = tensordict.get(self.tensor_keys.observation)
        fut = tensordict.get(self.tensor_keys.future_observation)
        if obs.shape != fut.shape:
            raise ValueError(
                f"observation {tuple(obs.shape)} and future_observation {tuple(fut.shape)} must have the same shape."
            )
        # one encoder call for anchors and positives: half the kernel launches and
        # the same batch-norm-free statistics for both.
        z = self.encoder(torch.stack([obs, fut], 0))
        anchors, positives = z[0].reshape(-1, z.shape[-1]), z[1].reshape(-1, z.shape[-1])
        logits = info_nce_logits(anchors, positives, self.similarity, self.temperature)
        labels = torch.arange(logits.shape[0], device=logits.device)
        loss = F.cross_entropy(logits, labels)
        with torch.no_grad():
            acc = (logits.argmax(-1) == labels).float().mean()
            mi = torch.log(torch.tensor(float(logits.shape[0]), device=loss.device)) - loss.detach()
        return TensorDict(
            {"loss_contrastive": loss, "contrastive_accuracy": acc, "mi_lower_bound": mi}, batch_size=[]
        )


class TemporalReconstructionLoss(LossModule):
    """Encoder objective predicting ``s_{t+k}`` from ``E(s_t)``: ``||D(E(s_t)) - s_{t+k}||^2``.

    The alternative to :class:`TemporalContrastiveLoss` (SPEC B2). A decoder MLP maps the
    latent to the flattened future observation; ``uint8`` pixels are scaled to ``[0, 1]``
    for the target, like :class:`~torchrl_skills.modules.encoders.ConvEncoder` does for the
    input.

    Args:
        encoder (nn.Module): maps observations to ``[..., latent_dim]``.
        latent_dim (int): encoder output size.
        obs_shape (sequence of int): shape of one observation, e.g. ``(6,)`` or ``(3, 96, 96)``.

    Keyword Args:
        decoder (nn.Module, optional): overrides the default MLP decoder (256-256, ReLU).

    Input keys: ``observation`` and ``future_observation``; output: ``loss_reconstruction``.

    Examples:
        >>> import torch
        >>> from tensordict import TensorDict
        >>> from torchrl_skills.modules.encoders import MLPEncoder
        >>> from torchrl_skills.objectives.temporal_contrastive import TemporalReconstructionLoss
        >>> loss = TemporalReconstructionLoss(MLPEncoder(4, 8), latent_dim=8, obs_shape=(4,))
        >>> td = TensorDict({"observation": torch.randn(16, 4), "future_observation": torch.randn(16, 4)}, [16])
        >>> loss(td)["loss_reconstruction"].shape
        torch.Size([])
    """

    @dataclass
    class _AcceptedKeys:
        """Configurable tensordict keys.

        Attributes:
            observation (NestedKey): the input state ``s_t``. Defaults to ``"observation"``.
            future_observation (NestedKey): the target ``s_{t+k}``. Defaults to ``"future_observation"``.
        """

        observation: NestedKey = "observation"
        future_observation: NestedKey = "future_observation"

    default_keys = _AcceptedKeys

    def __init__(
        self, encoder: nn.Module, latent_dim: int, obs_shape: Sequence[int], *, decoder: nn.Module | None = None
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.obs_shape = tuple(int(s) for s in obs_shape)
        n_out = int(torch.Size(self.obs_shape).numel())
        self.decoder = decoder if decoder is not None else MLP(in_features=latent_dim, out_features=n_out, num_cells=[256, 256])

    @property
    def in_keys(self) -> list[NestedKey]:
        return [self.tensor_keys.observation, self.tensor_keys.future_observation]

    @property
    def out_keys(self) -> list[NestedKey]:
        return ["loss_reconstruction"]

    def _forward_value_estimator_keys(self, **kwargs) -> None:
        pass

    @dispatch
    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        obs = tensordict.get(self.tensor_keys.observation)
        target = tensordict.get(self.tensor_keys.future_observation)
        n = len(self.obs_shape)
        if tuple(target.shape[target.ndim - n :]) != self.obs_shape:
            raise ValueError(
                f"future_observation must end with obs_shape {self.obs_shape}, got {tuple(target.shape)}."
            )
        target = target.float().div(255.0) if target.dtype == torch.uint8 else target
        pred = self.decoder(self.encoder(obs))
        loss = (pred - target.flatten(target.ndim - n)).pow(2).sum(-1).mean()
        return TensorDict({"loss_reconstruction": loss}, batch_size=[])
