"""Check the verifier and the calculator against the whole of GSM8K (run `python -m gift.data gsm8k` first).

    python scripts/check_gsm8k.py [--root data/gsm8k]

1. Every reference solution (7,473 train + 1,319 test) must have an answer the verifier extracts, and be judged
   correct against itself, against its bare answer, and in flexible mode.
2. Every `<<expr=result>>` annotation (27,998): calculate(expr), printed with format_number as the sampler writes it,
   must equal the written result as an exact rational number (Fraction, so "9.00" == 9 and "3/4" == 0.75, but
   "0.33" != 1/3).
   At least 99.9% must agree; the failures are listed.
3. Adversarial calculator inputs must each be answered within milliseconds (50 ms at most), mostly with None.
4. The verifier must read 2 MB of adversarial text within a second.

Exits with status 1 if any check fails.
"""
import argparse
import hashlib
import os
import re
import sys
import time
from fractions import Fraction

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from anywhere
from gift.data import GSM8K_SHA256, load_gsm8k  # noqa: E402
from gift.verifier import calculate, extract_answer, format_number, is_correct  # noqa: E402

ANNOTATION = re.compile(r"<<([^<>]*)>>")
ADVERSARIAL = [  # (description, expression, the answer calculate must give)
    ("9**9**9**9", "9**9**9**9", None),
    ("10**10**10", "10**10**10", None),
    ("2**10**9", "2**10**9", None),
    ("(10**300)**(10**300)", "(10**300)**(10**300)", None),
    ("1/0", "1/0", None),
    ("1e999", "1e999", None),
    ("__import__('os').system('true')", "__import__('os').system('true')", None),
    ("(lambda: 1)()", "(lambda: 1)()", None),
    ("'a'*10**9", "'a'*10**9", None),
    ("1 nested in 99 parentheses", "(" * 99 + "1" + ")" * 99, 1),
    ("1 nested in 100,000 parentheses", "(" * 100_000 + "1" + ")" * 100_000, None),
    ("199 unary minuses", "-" * 199 + "1", -1),
    ("a million 9s", "9" * 1_000_000, None),
    ("1+1+...+1, a million characters", "1+" * 500_000 + "1", None),
    ("2**999 (largest allowed power of 2)", "2**999", 2**999),
    ("2**1000", "2**1000", None),
]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", default="data/gsm8k", help="folder with train.jsonl and test.jsonl")
    args = parser.parse_args(argv)
    ok = True

    try:  # a missing download: one line naming the file and `python -m gift.data gsm8k`, not a traceback
        examples = load_gsm8k("train", args.root) + load_gsm8k("test", args.root)
    except (OSError, ValueError) as e:  # ValueError: a malformed row, with its file and line number
        raise SystemExit(f"error: {e}") from None
    for split, sha256 in GSM8K_SHA256.items():
        with open(os.path.join(args.root, f"{split}.jsonl"), "rb") as f:
            data = f.read()
        same = hashlib.sha256(data).hexdigest() == sha256
        print(f"{split}.jsonl: {len(data):,} bytes, sha256 {'matches the pinned sum' if same else 'DIFFERS'}")

    # 1. reference answers
    failures = [ex for ex in examples if not (
        extract_answer(ex.solution) is not None
        and is_correct(ex.solution, ex.solution)
        and is_correct(ex.solution, ex.answer)
        and is_correct(ex.solution, ex.solution, mode="flexible"))]
    print(f"\nreferences: {len(examples) - len(failures):,} of {len(examples):,} extract and judge correct")
    for ex in failures:
        print(f"  FAIL: {ex.solution[-60:]!r}")
    ok &= not failures

    # 2. annotations
    annotations = [a for ex in examples for a in ANNOTATION.findall(ex.solution)]
    wrong = []
    for annotation in annotations:
        expr, _, written = annotation.rpartition("=")
        value = calculate(expr)
        try:
            same = value is not None and Fraction(format_number(value)) == Fraction(written.replace(",", ""))
        except (ValueError, ZeroDivisionError):  # the written result is not a number
            same = False
        if not same:
            wrong.append((annotation, value))
    agree = len(annotations) - len(wrong)
    print(f"annotations: calculate recomputes {agree:,} of {len(annotations):,} ({agree / len(annotations):.3%})")
    for annotation, value in wrong:
        print(f"  FAIL: <<{annotation}>>  calculate gives {value!r}")
    ok &= agree >= 0.999 * len(annotations)

    # 3. adversarial calculator inputs
    print("\nadversarial calculator inputs (each must give the expected answer within milliseconds):")
    for name, expr, expected in ADVERSARIAL:
        start = time.perf_counter()
        value = calculate(expr)
        ms = 1000 * (time.perf_counter() - start)
        passed = value == expected and ms < 50
        shown = "None" if value is None else format_number(value)[:12]
        print(f"  {name:40s} -> {shown:12s} {ms:7.3f} ms {'' if passed else ' FAIL'}")
        ok &= passed

    # 4. the verifier on megabytes of adversarial text
    print("\nverifier on 2 MB adversarial texts (strict + flexible + is_correct, each must take < 1 s):")
    n = 2_000_000
    texts = {"digits": "1" * n, "#### digits": "#### " + "1" * n, "####": "####" * (n // 4),
             "#### spaces": "####" + " " * n, "1,1,1,...": "1," * (n // 2),
             "#### 1,234,234,...5": "#### 1" + ",234" * (n // 4) + "5", "1.1.1.1...": "1." * (n // 2),
             "-": "-" * n, "unicode digits": "\u0661" * n, "binary": bytes(range(256)) * (n // 256)}
    for name, text in texts.items():
        start = time.perf_counter()
        extract_answer(text), extract_answer(text, "flexible"), is_correct(text, "#### 1", "flexible")
        ms = 1000 * (time.perf_counter() - start)
        print(f"  {name:20s} {ms:8.1f} ms")
        ok &= ms < 1000

    print("\nall checks passed" if ok else "\nSOME CHECKS FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
