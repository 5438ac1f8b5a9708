"""Losses of torchrl-skills (``torchrl.objectives.LossModule`` subclasses)."""
from torchrl_skills.objectives.skill_model_loss import SkillModelLoss

__all__ = ["SkillModelLoss"]
