"""Optional HIGL loss term: InfoNCE between encoded states and skill embeddings (SPEC B1/B2)."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from tensordict import TensorDict, TensorDictBase
from tensordict.nn import dispatch
from tensordict.utils import NestedKey
from torch.nn import functional as F

from torchrl.objectives.common import LossModule

from torchrl_skills.modules.skill_embedding import SkillMIEstimator

__all__ = ["SkillMILoss"]


class SkillMILoss(LossModule):
    """InfoNCE loss ``-log softmax(P_s(z_i) . P_k(e_j))_ii`` over a batch of (state, skill) pairs.

    Minimising it maximises an InfoNCE lower bound on the mutual information between the
    states reached and the skill (or goal) pursued, which keeps goals distinguishable
    (diverse). Gradients reach the estimator and, if they are not detached upstream, the
    encoder and the skill embeddings.

    Args:
        estimator (SkillMIEstimator): the projection critic.

    Input keys: ``latent`` (``[N, latent_dim]``) and ``skill_embedding`` (``[N, emb]``).
    Output: ``loss_skill_mi`` and the detached ``mi_lower_bound`` (``log N - loss``).

    Examples:
        >>> import torch
        >>> from tensordict import TensorDict
        >>> from torchrl_skills.modules.skill_embedding import SkillMIEstimator
        >>> from torchrl_skills.objectives.higl_skill_mi import SkillMILoss
        >>> loss = SkillMILoss(SkillMIEstimator(8, 4))
        >>> td = TensorDict({"latent": torch.randn(6, 8), "skill_embedding": torch.randn(6, 4)}, [6])
        >>> loss(td)["loss_skill_mi"].shape
        torch.Size([])
    """

    @dataclass
    class _AcceptedKeys:
        """Configurable tensordict keys.

        Attributes:
            latent (NestedKey): encoded states. Defaults to ``"latent"``.
            skill_embedding (NestedKey): skill embeddings. Defaults to ``"skill_embedding"``.
        """

        latent: NestedKey = "latent"
        skill_embedding: NestedKey = "skill_embedding"

    default_keys = _AcceptedKeys

    def __init__(self, estimator: SkillMIEstimator) -> None:
        super().__init__()
        self.estimator = estimator

    @property
    def in_keys(self) -> list[NestedKey]:
        return [self.tensor_keys.latent, self.tensor_keys.skill_embedding]

    @property
    def out_keys(self) -> list[NestedKey]:
        return ["loss_skill_mi", "mi_lower_bound"]

    def _forward_value_estimator_keys(self, **kwargs) -> None:
        pass

    @dispatch
    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        latent = tensordict.get(self.tensor_keys.latent)
        emb = tensordict.get(self.tensor_keys.skill_embedding)
        logits = self.estimator(latent.reshape(-1, latent.shape[-1]), emb.reshape(-1, emb.shape[-1]))
        labels = torch.arange(logits.shape[0], device=logits.device)
        loss = F.cross_entropy(logits, labels)
        mi = torch.log(torch.tensor(float(logits.shape[0]), device=loss.device)) - loss.detach()
        return TensorDict({"loss_skill_mi": loss, "mi_lower_bound": mi}, batch_size=[])
