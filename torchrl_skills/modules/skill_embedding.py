"""Discrete skills for HIGL: an embedding table and an InfoNCE skill/state MI estimator (SPEC B1)."""
from __future__ import annotations

import torch
from torch import nn

__all__ = ["SkillEmbedding", "SkillMIEstimator"]


class SkillEmbedding(nn.Module):
    """Maps discrete skill ids to embedding vectors, and samples random skills.

    Used by the discrete-skill variant of the high level (it picks a skill id, whose
    embedding is the latent goal) and by :class:`SkillMIEstimator`.

    Args:
        num_skills (int): number of discrete skills.
        embedding_dim (int): embedding size (the latent goal size).

    Examples:
        >>> import torch
        >>> from tensordict import TensorDict
        >>> from tensordict.nn import TensorDictModule
        >>> from torchrl_skills.modules.skill_embedding import SkillEmbedding
        >>> skills = SkillEmbedding(8, 16)
        >>> ids, emb = skills.sample((4,))
        >>> emb.shape, ids.dtype
        (torch.Size([4, 16]), torch.int64)
        >>> module = TensorDictModule(skills, in_keys=["skill"], out_keys=["goal"])
        >>> module(TensorDict({"skill": ids}, [4]))["goal"].shape
        torch.Size([4, 16])
    """

    def __init__(self, num_skills: int, embedding_dim: int) -> None:
        super().__init__()
        if num_skills < 1:
            raise ValueError(f"num_skills must be >= 1, got {num_skills}.")
        self.num_skills = num_skills
        self.embedding_dim = embedding_dim
        self.embedding = nn.Embedding(num_skills, embedding_dim)

    def forward(self, skill: torch.Tensor) -> torch.Tensor:
        if skill.is_floating_point() or skill.dtype == torch.bool:
            raise TypeError(
                f"SkillEmbedding expects integer skill ids, got dtype {skill.dtype}. "
                "For one-hot skills pass skill.argmax(-1)."
            )
        if skill.numel() and (skill.min() < 0 or skill.max() >= self.num_skills):
            raise IndexError(
                f"skill ids must lie in [0, {self.num_skills - 1}], got range "
                f"[{int(skill.min())}, {int(skill.max())}]."
            )
        return self.embedding(skill)

    def sample(
        self, batch_shape: torch.Size | tuple[int, ...] = (), generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Draws skill ids uniformly and returns ``(ids, embeddings)``."""
        ids = torch.randint(
            self.num_skills, tuple(batch_shape), generator=generator, device=self.embedding.weight.device
        )
        return ids, self.embedding(ids)


class SkillMIEstimator(nn.Module):
    """InfoNCE critic between encoded states and skill embeddings (SPEC B1).

    Two linear projections, ``logits = P_s(z_s) P_k(e_k)^T``; row ``i`` of the batch is a
    (state reached under skill ``i``, skill ``i``) pair, so the diagonal holds the positives.
    The loss module :class:`~torchrl_skills.objectives.higl_skill_mi.SkillMILoss` turns the
    logits into an InfoNCE loss (a lower bound on ``I(s; k)``) that keeps goals diverse.

    Args:
        latent_dim (int): encoded-state size.
        embedding_dim (int): skill-embedding size (also the projection size).

    Examples:
        >>> import torch
        >>> from torchrl_skills.modules.skill_embedding import SkillMIEstimator
        >>> mi = SkillMIEstimator(latent_dim=64, embedding_dim=16)
        >>> mi(torch.randn(5, 64), torch.randn(5, 16)).shape
        torch.Size([5, 5])
    """

    def __init__(self, latent_dim: int, embedding_dim: int) -> None:
        super().__init__()
        self.project_state = nn.Linear(latent_dim, embedding_dim)
        self.project_skill = nn.Linear(embedding_dim, embedding_dim)

    def forward(self, latent: torch.Tensor, skill_embedding: torch.Tensor) -> torch.Tensor:
        if latent.ndim != 2 or skill_embedding.ndim != 2 or latent.shape[0] != skill_embedding.shape[0]:
            raise ValueError(
                "SkillMIEstimator expects latent [N, latent_dim] and skill_embedding [N, embedding_dim] "
                f"with the same N, got {tuple(latent.shape)} and {tuple(skill_embedding.shape)}."
            )
        return self.project_state(latent) @ self.project_skill(skill_embedding).T
