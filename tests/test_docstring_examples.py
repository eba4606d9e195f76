"""Every public class documents itself with an ``Example:``, and the examples run.

Public classes are found as the API reference finds them (``docs/public_api.py``): the names
in ``__all__`` of ``diffsim``, its public submodules, ``diffsim.envs``,
``diffsim.controllers`` and every public module inside those two.
"""

import importlib
import importlib.util
import inspect
import re
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
FENCE = re.compile(r"^Example:\n((?:[ \t]+.*\n|\n)+)", re.MULTILINE)
CODE = re.compile(r"```python\n(.*?)```", re.DOTALL)


def _public_api():
    spec = importlib.util.spec_from_file_location("public_api", ROOT / "docs" / "public_api.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def public_classes() -> dict[str, type]:
    pages = _public_api()
    found: dict[int, tuple[str, type]] = {}
    for name in pages.api_modules():
        module = importlib.import_module(name)
        for attribute in pages.public_names(module):
            value = getattr(module, attribute)
            if inspect.isclass(value) and id(value) not in found:
                found[id(value)] = (f"{name}.{attribute}", value)
    return dict(found.values())


def examples(cls: type) -> list[str]:
    """The fenced ``python`` blocks of the class docstring's ``Example:`` section."""
    doc = inspect.cleandoc(cls.__doc__ or "") + "\n"
    return [
        inspect.cleandoc(code)
        for section in FENCE.findall(doc)
        for code in CODE.findall(inspect.cleandoc(section))
    ]


CLASSES = public_classes()


def test_every_public_class_has_an_example():
    assert CLASSES, "no public class found"
    missing = [name for name, cls in CLASSES.items() if "Example" not in (cls.__doc__ or "")]
    assert not missing, f"public classes without an Example: section: {missing}"


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(CLASSES))
def test_example_runs(name):
    blocks = examples(CLASSES[name])
    if not blocks:
        pytest.skip("an inline example, not a code block")
    for code in blocks:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            exec(compile(code, f"<{name} example>", "exec"), {})
