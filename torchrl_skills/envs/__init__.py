"""Environments of torchrl-skills: a model-based env over skills and the HIGL semi-MDP."""
from torchrl_skills.envs.batched_gym import BatchedGymEnv
from torchrl_skills.envs.graph_cost import GraphDistanceCost, OffDataPenalty
from torchrl_skills.envs.ogbench_maze import OGBenchMazeEnv, make_ogbench_env
from torchrl_skills.envs.hierarchical import (
    HierarchicalEnv,
    goal_observation_transform,
    high_level_transitions,
    low_level_transitions,
    make_higl_env,
    make_window_env,
)
from torchrl_skills.envs.skill_model_env import GoalDistanceCost, SkillModelEnv, SkillTransition

__all__ = [
    "BatchedGymEnv",
    "GoalDistanceCost",
    "GraphDistanceCost",
    "OffDataPenalty",
    "HierarchicalEnv",
    "OGBenchMazeEnv",
    "SkillModelEnv",
    "SkillTransition",
    "goal_observation_transform",
    "high_level_transitions",
    "low_level_transitions",
    "make_higl_env",
    "make_ogbench_env",
    "make_window_env",
]
