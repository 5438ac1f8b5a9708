"""Losses of torchrl-skills (``torchrl.objectives.LossModule`` subclasses) and reward helpers."""
from torchrl_skills.objectives.higl import HighLevelReward, HIGLLoss, high_level_update, latent_progress, make_high_level_loss
from torchrl_skills.objectives.higl_skill_mi import SkillMILoss
from torchrl_skills.objectives.latent_goal_reward import LatentGoalReward, LatentWindowRelabel, latent_goal_reward
from torchrl_skills.objectives.skill_model_loss import SkillModelLoss
from torchrl_skills.objectives.temporal_contrastive import (
    TemporalContrastiveLoss,
    TemporalReconstructionLoss,
    info_nce,
)

__all__ = [
    "SkillModelLoss",
    "SkillMILoss",
    "HIGLLoss",
    "HighLevelReward",
    "make_high_level_loss",
    "high_level_update",
    "latent_progress",
    "LatentGoalReward",
    "LatentWindowRelabel",
    "latent_goal_reward",
    "TemporalContrastiveLoss",
    "TemporalReconstructionLoss",
    "info_nce",
]
