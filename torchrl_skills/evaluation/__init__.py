"""Evaluation protocols: OGBench's goal-reaching tasks, all episodes side by side, skill-model and HIGL diagnostics."""
# Imported lazily so that `python -m torchrl_skills.evaluation.ogbench` runs without a double import.
_OGBENCH = ["OGBenchOraclePolicy", "OGBenchResult", "evaluate_ogbench", "make_ogbench_policy", "validation_tasks"]
_HIGL_DIAGNOSTICS = [
    "LatentGoalReacher",
    "NearbyGoalWrapper",
    "latent_vs_shortest_path",
    "low_level_success",
    "nearest_states",
    "plot_high_level_goals",
    "plot_latent_vs_shortest_path",
    "sample_free_positions",
]
_SKILL_REPLAY = ["plot_skill_replay", "replay_skills", "restore_maze_state"]
__all__ = [*_OGBENCH, *_HIGL_DIAGNOSTICS, *_SKILL_REPLAY, "SeededRandomPolicy", "rollout_side_by_side"]


def __getattr__(name):
    if name in _OGBENCH:
        from torchrl_skills.evaluation import ogbench

        return getattr(ogbench, name)
    if name in _HIGL_DIAGNOSTICS:
        from torchrl_skills.evaluation import higl_diagnostics

        return getattr(higl_diagnostics, name)
    if name in _SKILL_REPLAY:
        from torchrl_skills.evaluation import skill_replay

        return getattr(skill_replay, name)
    if name in ("rollout_side_by_side", "SeededRandomPolicy"):
        from torchrl_skills.evaluation import side_by_side

        return getattr(side_by_side, name)
    raise AttributeError(f"module 'torchrl_skills.evaluation' has no attribute {name!r}")
