"""How well a goal-switching data collector reached its goals, from the success flags it stored.

Both maze generators (:mod:`torchrl_skills.data.pointmaze`, :mod:`torchrl_skills.data.ogbench`)
walk an expert to a goal, draw a new goal on arrival and store a per-step ``success`` flag in the
episode's infos. The flags alone give the steps spent on every goal, so the statistics are
computed once, here, both while generating and afterwards from a stored dataset with another
budget (:func:`dataset_goal_reaching_stats`).
"""
from __future__ import annotations

from collections.abc import Iterable

import numpy as np

__all__ = ["dataset_goal_reaching_stats", "goal_reaching_stats"]


def goal_reaching_stats(successes: Iterable[np.ndarray], goal_budget: int) -> dict:
    """Goal-reaching statistics of episodes whose goal is replaced on every arrival.

    Args:
        successes (iterable of np.ndarray): per episode, the ``[n + 1]`` success flags of its
            states (``success[t]``: step ``t`` arrived at the goal of the moment, and a new one was
            drawn). The flag of the start state is ignored.
        goal_budget (int): a goal counts as reached if reached within this many steps of being
            set. A goal reached later counts as timed out; a goal still pending at the end of its
            episode counts as timed out if it had its whole budget, and is left out otherwise (its
            outcome is unknown).

    Returns:
        dict: ``goals_reached`` (arrivals, however late), ``goals_timed_out``,
        ``goal_reaching_rate`` (reached in budget / (reached in budget + timed out)),
        ``mean_steps_to_goal`` (over all arrivals) and ``goal_budget``.

    Examples:
        >>> flags = np.zeros(11, dtype=bool)
        >>> flags[[3, 9]] = True  # goals reached after 3 and 6 steps; the third is pending for 1 step
        >>> stats = goal_reaching_stats([flags], goal_budget=5)
        >>> stats["goals_reached"], stats["goals_timed_out"], stats["goal_reaching_rate"]
        (2, 1, 0.5)
    """
    if isinstance(goal_budget, bool) or not isinstance(goal_budget, (int, np.integer)) or goal_budget < 1:
        raise ValueError(f"goal_budget must be an integer >= 1 (steps), got {goal_budget!r}.")
    steps, pending = [], []
    for success in successes:
        success = np.asarray(success, dtype=bool).reshape(-1)
        arrivals = np.flatnonzero(success[1:]) + 1
        bounds = np.concatenate([[0], arrivals])
        steps.append(np.diff(bounds))
        pending.append(len(success) - 1 - bounds[-1])
    steps = np.concatenate(steps) if steps else np.zeros(0, dtype=np.int64)
    in_budget = int((steps <= goal_budget).sum())
    timed_out = int((steps > goal_budget).sum() + (np.asarray(pending) >= goal_budget).sum())
    attempts = in_budget + timed_out
    return {
        "goals_reached": int(steps.size),
        "goals_timed_out": timed_out,
        "goal_reaching_rate": in_budget / attempts if attempts else float("nan"),
        "mean_steps_to_goal": float(steps.mean()) if steps.size else float("nan"),
        "goal_budget": int(goal_budget),
    }


def dataset_goal_reaching_stats(dataset_id: str, goal_budget: int) -> dict:
    """:func:`goal_reaching_stats` of a stored Minari dataset (its episodes' ``success`` infos).

    Scores the data as it is, with any budget: e.g. the 1000 steps of OGBench's evaluation
    episodes, or a shorter one, without generating the data again.

    Args:
        dataset_id (str): a local Minari dataset written by one of the package's generators.
        goal_budget (int): see :func:`goal_reaching_stats`.

    Examples:
        >>> from torchrl_skills.data.ogbench import ensure_ogbench_dataset
        >>> dataset_id = ensure_ogbench_dataset(num_episodes=2, episode_length=400, progress=False)
        >>> dataset_goal_reaching_stats(dataset_id, goal_budget=1000)["goal_budget"]
        1000
    """
    import minari

    dataset = minari.load_dataset(dataset_id)
    flags = []
    for episode in dataset.iterate_episodes():
        if "success" not in (episode.infos or {}):
            raise ValueError(
                f"{dataset_id} stores no per-step 'success' infos, so its goal-reaching rate cannot be computed: "
                "only datasets of torchrl_skills.data.pointmaze / torchrl_skills.data.ogbench have them."
            )
        flags.append(episode.infos["success"])
    return goal_reaching_stats(flags, goal_budget)
