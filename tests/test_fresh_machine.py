"""What a fresh machine needs: the scripts' module names must not shadow installed packages.

A script run as `python benchmarks/x.py` puts benchmarks/ first on sys.path, so a file there named like an installed
top-level package (benchmarks/kernels.py once hid the `kernels` package that transformers 5.25 imports) replaces that
package for everything the script imports. The same holds for experiments/, scripts/ and tests/ (pytest puts tests/
on the path)."""
import importlib.machinery
import importlib.metadata
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FOLDERS = ("benchmarks", "experiments", "scripts", "tests")


def script_modules():
    for folder in FOLDERS:
        for name in sorted(os.listdir(os.path.join(ROOT, folder))):
            if name.endswith(".py"):
                yield folder, name[:-3]


def installed_elsewhere(name):
    """Where `name` imports from when the repository is not on the path (None: nowhere)."""
    outside = [p for p in sys.path if p and not os.path.abspath(p).startswith(ROOT + os.sep)
               and os.path.abspath(p) != ROOT]
    spec = importlib.machinery.PathFinder.find_spec(name, outside)
    return spec.origin if spec else None


def test_no_script_module_shadows_an_installed_package():
    owners = importlib.metadata.packages_distributions()  # top-level import name -> distributions
    clashes = []
    for folder, name in script_modules():
        if name in ("__init__", "conftest"):
            continue
        where = (owners.get(name) or (name if name in sys.stdlib_module_names else None)
                 or installed_elsewhere(name))
        if where:
            clashes.append(f"{folder}/{name}.py shadows {where}")
    assert not clashes, "rename: " + "; ".join(clashes)


def test_the_check_would_catch_the_old_collision():
    """The test above can fail: a name that is installed (the stdlib's json, or the suite's own pytest) is found."""
    assert "pytest" in importlib.metadata.packages_distributions()
    assert installed_elsewhere("json") is not None
