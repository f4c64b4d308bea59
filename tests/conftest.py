"""Shared test setup.

Triton kernels run on the CPU through Triton's interpreter when no GPU is present. The interpreter is chosen when a
kernel is decorated, so the variable must be set before anything imports `gift.kernels`.
"""
import os
import sys

os.environ.setdefault("TRITON_INTERPRET", "1")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
