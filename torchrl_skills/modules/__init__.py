"""TensorDict-ready networks of torchrl-skills."""
from torchrl_skills.modules.skill_model import (
    GaussianHead,
    SkillModel,
    SkillPolicy,
    SkillPosterior,
    SkillPrior,
    StateNormalizer,
    TemporalAbstractWorldModel,
    load_skill_model,
)

__all__ = [
    "GaussianHead",
    "SkillModel",
    "SkillPolicy",
    "SkillPosterior",
    "SkillPrior",
    "StateNormalizer",
    "TemporalAbstractWorldModel",
    "load_skill_model",
]
