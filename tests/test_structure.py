"""The shape of the code: imports run one way, the loss is a leaf, and one RL step stays short to read.

gift/ holds the method's concepts; train.py reads them; experiments, benchmarks and scripts read both. Checked from
the source (every import, also those inside functions) and, for the step, by tracing one GIFT RL step
(scripts/trace_step.py prints the full list)."""
import ast
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GIFT = os.path.join(ROOT, "gift")


def gift_imports(path):
    """The gift modules a file imports, anywhere in it (module level or inside a function), and whether it imports or
    names train.py's module."""
    tree = ast.parse(open(path).read())
    found, train = set(), False
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                found |= {a.name.split(".")[1]} if a.name.startswith("gift.") else set()
                train |= a.name == "train"
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "gift":
                found |= {a.name for a in node.names}
            elif node.module.startswith("gift."):
                found.add(node.module.split(".")[1])
            train |= node.module == "train"
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "train":
            train = True
    return found, train


def graph():
    return {name[:-3]: gift_imports(os.path.join(GIFT, name)) for name in sorted(os.listdir(GIFT))
            if name.endswith(".py") and name != "__init__.py"}


def test_the_loss_is_a_leaf():
    assert graph()["loss"][0] == set()


def test_nothing_in_gift_refers_to_train():
    assert [m for m, (_, train) in graph().items() if train] == []


def find_cycle(edges):
    """A list of modules that import each other in a circle, or None."""
    state = {}

    def visit(m, path):
        state[m] = "open"
        for n in sorted(edges.get(m, ())):
            if state.get(n) == "open":
                return path[path.index(n):] + [n] if n in path else [m, n]
            if n not in state:
                cycle = visit(n, path + [n])
                if cycle:
                    return cycle
        state[m] = "done"
        return None

    for m in sorted(edges):
        if m not in state:
            cycle = visit(m, [m])
            if cycle:
                return cycle
    return None


def test_no_import_circle_in_gift():
    edges = {m: imports - {m} for m, (imports, _) in graph().items()}
    assert find_cycle(edges) is None, " -> ".join(find_cycle(edges))
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]  # the check can fail


def test_one_rl_step_is_short_to_read():
    """The functions train.py's step calls directly are few, and the loss is four calls below rl_step
    (rl_step -> update_policy -> Method.__call__ -> gift_objective -> gift_loss)."""
    sys.path.insert(0, os.path.join(ROOT, "scripts"))
    import trace_step

    functions, direct, depth = trace_step.traced_step()
    assert "train.py" in functions and {"rollout", "update_policy"} <= set(functions["train.py"])
    assert len(direct) <= 20, direct
    assert depth["gift/loss.py:gift_loss"] <= 4
    assert sum(len(n) for n in functions.values()) <= 75  # all of it, sampler and kernel internals included


@pytest.mark.parametrize("name", ["rollout", "update_policy"])
def test_the_step_functions_fit_a_screen(name):
    import inspect

    import train

    source = inspect.getsource(getattr(train, name))
    assert len(source.splitlines()) <= 40
    for word in ("rank", "world", "probe", "lora", "adapter", "dist."):
        assert word not in source, word
