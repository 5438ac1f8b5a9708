"""Evaluation protocols: OGBench's goal-reaching tasks, all episodes side by side."""
# Imported lazily so that `python -m torchrl_skills.evaluation.ogbench` runs without a double import.
_OGBENCH = ["OGBenchOraclePolicy", "OGBenchResult", "evaluate_ogbench", "make_ogbench_policy", "validation_tasks"]
__all__ = [*_OGBENCH, "rollout_side_by_side"]


def __getattr__(name):
    if name in _OGBENCH:
        from torchrl_skills.evaluation import ogbench

        return getattr(ogbench, name)
    if name == "rollout_side_by_side":
        from torchrl_skills.evaluation.side_by_side import rollout_side_by_side

        return rollout_side_by_side
    raise AttributeError(f"module 'torchrl_skills.evaluation' has no attribute {name!r}")
