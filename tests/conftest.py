"""Shared test setup.

Triton kernels run on the CPU through Triton's interpreter when no GPU is present. The interpreter is chosen when a
kernel is decorated, so the variable must be set before anything imports `gift.kernels`.
"""
import os
import sys

os.environ.setdefault("TRITON_INTERPRET", "1")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# The test models are tiny: one thread is faster than two (no cross-thread syncs on small ops) and steadier when the
# cores are shared.
import torch  # noqa: E402

torch.set_num_threads(1)


# Slow tests (the experiments' end-to-end runs, the course's build-and-grade round trips) are marked
# @pytest.mark.slow. `python -m pytest -q` leaves them out (the quick suite); `python -m pytest -q -m slow` runs only
# them; CI runs both. Any other -m expression chooses as pytest always does.
def pytest_configure(config):
    config.addinivalue_line("markers", "slow: an end-to-end run of minutes; left out unless -m selects it")


def pytest_collection_modifyitems(config, items):
    if config.getoption("markexpr"):
        return
    slow = [item for item in items if item.get_closest_marker("slow")]
    if slow:
        config.hook.pytest_deselected(items=slow)
        items[:] = [item for item in items if not item.get_closest_marker("slow")]
