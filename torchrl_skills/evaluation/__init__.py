"""Evaluation protocols: OGBench's goal-reaching tasks, all episodes side by side."""
# Imported lazily so that `python -m torchrl_skills.evaluation.ogbench` runs without a double import.
__all__ = ["OGBenchOraclePolicy", "OGBenchResult", "evaluate_ogbench", "make_ogbench_policy", "validation_tasks"]


def __getattr__(name):
    if name in __all__:
        from torchrl_skills.evaluation import ogbench

        return getattr(ogbench, name)
    raise AttributeError(f"module 'torchrl_skills.evaluation' has no attribute {name!r}")
