"""Which project functions one GIFT RL step calls: the reader's path through the code, measured.

    python scripts/trace_step.py            # the distinct functions, by file, and their count

It builds a run as `python train.py --init=nano --sft_steps=0 --rl_steps=1` would (in a temporary folder), then
traces `train.rl_step` (the rollout and the policy update) with sys.setprofile and lists every function of this
repository that the step entered (comprehensions and generator expressions are part of the function that holds them
and are not counted; lambdas are), which of them train.py's own functions call directly (through torch's
wrappers such as no_grad or nn.Module.__call__), and how deep below rl_step the loss sits. tests/test_structure.py keeps the count at or below its target.
"""
import os
import sys
import tempfile
from collections import defaultdict

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import train  # noqa: E402

EXPRESSIONS = ("<listcomp>", "<genexpr>", "<dictcomp>", "<setcomp>")


def traced_step(argv=()):
    """What one RL step calls: ({relative file: sorted qualified names} of every project function it enters,
    the sorted names of those that train.py's own functions call directly (what a reader of train.py looks up),
    {name: depth below rl_step} of the first call of each function)."""
    with tempfile.TemporaryDirectory() as out:
        cfg = train.parse_args(["--init=nano", "--sft_steps=0", "--rl_steps=1", "--eval_problems=2", "--threads=1",
                                f"--out_dir={out}", *argv])
        run = train.setup(cfg)
        try:
            run.reference.before_rl_step(run.policy, 0)
            seen, direct, depth = defaultdict(set), set(), {}
            train_py = os.path.join(ROOT, "train.py")

            def profile(frame, event, arg):
                code = frame.f_code
                if event == "call" and code.co_filename.startswith(ROOT + os.sep) and \
                        code.co_name not in EXPRESSIONS:
                    name = f"{os.path.relpath(code.co_filename, ROOT)}:{code.co_qualname}"
                    seen[os.path.relpath(code.co_filename, ROOT)].add(code.co_qualname)
                    caller = frame.f_back
                    while caller is not None and (caller.f_code.co_name in EXPRESSIONS or
                                                  not caller.f_code.co_filename.startswith(ROOT + os.sep)):
                        caller = caller.f_back  # a comprehension's call is its function's; torch's wrappers skipped
                    if caller is not None and caller.f_code.co_filename == train_py and \
                            code.co_filename != train_py:
                        direct.add(name)
                    d, f = 0, frame
                    while f is not None and f.f_code.co_name != "rl_step":
                        d, f = d + (f.f_code.co_name not in EXPRESSIONS), f.f_back
                    depth.setdefault(name, d)

            sys.setprofile(profile)
            try:
                train.rl_step(run, cfg)
            finally:
                sys.setprofile(None)
        finally:
            run.close()
    return {f: sorted(names) for f, names in sorted(seen.items())}, sorted(direct), depth


if __name__ == "__main__":
    functions, direct, depth = traced_step(sys.argv[1:])
    for path, names in functions.items():
        print(f"{path} ({len(names)}): {', '.join(names)}")
    print(f"{sum(len(n) for n in functions.values())} distinct project functions in {len(functions)} files")
    print(f"train.py's step calls {len(direct)} functions of gift/ directly: {', '.join(direct)}")
    print(f"the loss is {depth['gift/loss.py:gift_loss']} calls below rl_step: "
          "rl_step -> update_policy -> Method.__call__ -> gift_objective -> gift_loss")
