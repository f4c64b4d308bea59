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
