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


def test_ci_runs_the_readmes_quick_start_in_a_fresh_virtual_environment():
    sys.path.insert(0, os.path.join(ROOT, "scripts"))
    from readme_commands import quickstart_commands

    commands = quickstart_commands(open(os.path.join(ROOT, "README.md")).read())
    assert commands[0].startswith("pip install torch==") and "python train.py" in commands
    assert any(c.endswith("python -m pytest -q") and "requirements-dev.txt" in c for c in commands)
    assert "python -m pytest -q -m slow" in commands  # CI runs the slow tests too
    ci = open(os.path.join(ROOT, ".ci", "run")).read()
    assert "python3 -m venv" in ci and "scripts/readme_commands.py README.md" in ci
    assert "check_default_run.py" in ci
    import pytest
    with pytest.raises(SystemExit, match="^error: the README has no"):
        quickstart_commands("# a README\n\nno quick start here\n")


IMPORT_EACH = """
import importlib.util, os, sys
root, base = sys.argv[1], [p for p in sys.path if p and not os.path.abspath(p).startswith(sys.argv[1])]
failed = []
for path in sys.argv[2:]:
    for name in [m for m in sys.modules if m in ("train", "eval", "common") or m.startswith(("gift", "scripts"))]:
        del sys.modules[name]  # as a fresh `python FOLDER/X.py` would start
    sys.path[:] = [os.path.dirname(path)] + base  # its folder first, not the repository root
    try:
        spec = importlib.util.spec_from_file_location("_script", path)
        spec.loader.exec_module(importlib.util.module_from_spec(spec))
    except BaseException as e:
        failed.append(f"{os.path.relpath(path, root)}: {type(e).__name__}: {e}")
print("\\n".join(failed))
"""


def test_every_script_module_imports():
    """The quick suite covers every module: each experiment, benchmark and script imports as `python FOLDER/X.py`
    would import it (its folder first on the path, not the repository root; nothing under `if __name__ ==
    "__main__"` runs). One process imports them all, forgetting the project's modules between two. The slow tests
    run the experiments end to end."""
    import subprocess

    paths = [os.path.join(ROOT, folder, name + ".py") for folder, name in script_modules()
             if folder != "tests" and name != "__init__"]
    proc = subprocess.run([sys.executable, "-c", IMPORT_EACH, ROOT, *paths], cwd="/", capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "", proc.stdout
