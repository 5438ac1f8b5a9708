"""The README's code examples run as written (the planning ones need a trained checkpoint and are
covered by tests/test_plan_to_goals.py and tests/test_ogbench_eval.py instead)."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)


def test_readme_has_the_documented_examples():
    assert len(BLOCKS) == 4


@pytest.mark.slow
@pytest.mark.parametrize(
    "index", [pytest.param(0, id="skill-model-api"), pytest.param(3, id="higl-api")]
)
def test_readme_example_runs(index, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    exec(compile(BLOCKS[index], f"README.md[python block {index}]", "exec"), {"__name__": "readme"})
