"""Every Examples section in the package runs and prints what it says (they are the API's first documentation)."""
import doctest
import importlib
import pkgutil

import pytest

import torchrl_skills

MODULES = sorted(
    name for _, name, _ in pkgutil.walk_packages(torchrl_skills.__path__, prefix="torchrl_skills.")
)


@pytest.mark.parametrize("name", MODULES)
def test_examples_in_docstrings(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} docstring examples of {name} failed (run pytest -s to see them)"
