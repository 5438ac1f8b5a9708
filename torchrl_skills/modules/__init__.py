"""TensorDict-ready networks of torchrl-skills."""
from torchrl_skills.modules.encoders import ConvEncoder, MLPEncoder, ObservationSlice
from torchrl_skills.modules.higl import (
    HIGLPolicy,
    LandmarkSubgoal,
    RelativeSubgoal,
    ResidualLatentGoal,
    UnitGoal,
    make_high_level_actor,
    make_high_level_value,
)
from torchrl_skills.modules.skill_embedding import SkillEmbedding, SkillMIEstimator
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
from torchrl_skills.modules.skill_planner import SkillCEMPlanner, SkillMPCPolicy, make_skill_planner
from torchrl_skills.modules.stall_escape import StallEscape
from torchrl_skills.modules.upright_guard import UprightGuard, torso_up
from torchrl_skills.modules.transformer_policy import (
    GoalConditionedQValue,
    TransformerPolicy,
    make_goal_conditioned_critic,
    make_transformer_actor,
)

__all__ = [
    # skill models (Part A)
    "GaussianHead",
    "SkillModel",
    "SkillPolicy",
    "SkillPosterior",
    "SkillPrior",
    "StateNormalizer",
    "TemporalAbstractWorldModel",
    "load_skill_model",
    "SkillCEMPlanner",
    "SkillMPCPolicy",
    "make_skill_planner",
    "UprightGuard",
    "StallEscape",
    "torso_up",
    # hierarchical latent goals (Part B)
    "ConvEncoder",
    "MLPEncoder",
    "ObservationSlice",
    "SkillEmbedding",
    "SkillMIEstimator",
    "TransformerPolicy",
    "GoalConditionedQValue",
    "make_transformer_actor",
    "make_goal_conditioned_critic",
    "HIGLPolicy",
    "LandmarkSubgoal",
    "ResidualLatentGoal",
    "RelativeSubgoal",
    "UnitGoal",
    "make_high_level_actor",
    "make_high_level_value",
]
