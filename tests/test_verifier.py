"""Tests for gift/verifier.py: answer extraction, exact judging, the safe calculator and number formatting."""
import json
import os
import random
import re
import time

import pytest

from gift.verifier import calculate, extract_answer, format_number, is_correct

FIXTURE = os.path.join(os.path.dirname(__file__), "fixtures", "gsm8k_mini.jsonl")


# ------------------------------------------------------------------------------------------------ extract_answer

@pytest.mark.parametrize("text, answer", [
    ("#### 18", "18"),
    ("####18", "18"),
    ("#### $18", "18"),
    ("#### 18.", "18"),
    ("#### 18.00", "18"),
    ("#### 18.50", "18.5"),
    ("#### 1,234", "1234"),
    ("####  1,234,567", "1234567"),
    ("#### $1,000.50", "1000.5"),
    ("#### 18 dollars", "18"),
    ("#### 18dollars", "18"),
    ("#### 50%", "50"),
    ("#### 5 km/h", "5"),
    ("#### 60mph", "60"),
    ("#### 1,", "1"),
    ("#### 18, which is the total", "18"),
    ("####   18   \n", "18"),
    ("####\t18", "18"),
    ("#### **18**", "18"),
    ("#### : 18", "18"),
    ("She has 3 + 4 = 7 left.\n#### 7\n\nThe answer is 7 apples. 12 more words", "7"),
    ("#### 5 is wrong, so\n#### 18", "18"),  # the last marker wins over an earlier decoy
    ("##### 9", "9"),
    ("#### -3", "-3"),
    ("####-3", "-3"),
    ("#### \u22127", "-7"),  # unicode minus sign
    ("#### -0.00", "0"),
    ("#### .5", "0.5"),
    ("#### -.5", "-0.5"),
    ("#### 007", "7"),
    ("#### 0", "0"),
    ("#### 123456789012345678901234567890", "123456789012345678901234567890"),
])
def test_extract_strict(text, answer):
    assert extract_answer(text) == answer
    assert extract_answer(text, mode="flexible") == answer  # flexible uses the marker when there is one


@pytest.mark.parametrize("text", [
    "",
    "The answer is 18",  # no marker
    "####",
    "#### ",  # a completion that stopped right after the marker
    "#### $",
    "#### -",
    "#### .",
    "#### eighteen",
    "#### nan",
    "#### inf",
    "#### 18\n####",  # the last marker has no number
    "#### 3/4",  # a number that runs on into a form the verifier does not read
    "#### 1e5",
    "#### 1e999",
    "#### 1.2.3",
    "#### 1,2",
    "#### 1,2345",
    "#### 1,23",  # stopped in the middle of 1,234
    "#### \u0661\u0668",  # Arabic-Indic digits are not read
    "#### \uff11\uff18",  # full-width digits neither
    "#### \u00b2",  # nor superscripts
    "# ### 18",
])
def test_extract_strict_none(text):
    assert extract_answer(text) is None


@pytest.mark.parametrize("text, answer", [
    ("The answer is 18", "18"),
    ("The answer is 18.", "18"),
    ("16-3-4=9 eggs, so she sells 9 eggs for $18.", "18"),
    ("She ends with -4 dollars", "-4"),
    ("x = -4.", "-4"),
    ("COVID-19", "19"),  # a hyphen after a word is not a minus sign
    ("5-3", "3"),  # nor is one after a digit
    ("it costs $1,234.50 in total", "1234.5"),
    ("half is .5", "0.5"),
    ("The answer is 18\n#### ", "18"),  # a dangling marker: flexible falls back to the last number
    ("no numbers here", None),
    ("", None),
    ("\u0661\u0668", None),
])
def test_extract_flexible(text, answer):
    assert extract_answer(text, mode="flexible") == answer


def test_extract_rejects_unknown_mode():
    with pytest.raises(ValueError, match="mode"):
        extract_answer("#### 1", mode="lenient")


# ---------------------------------------------------------------------------------------------------- is_correct

@pytest.mark.parametrize("completion, reference, expected", [
    ("#### 18", "#### 18", True),
    ("#### 18.0", "18", True),
    ("#### 18.00", "#### 18", True),
    ("#### 1,234", "1234", True),
    ("#### 1234", "#### 1,234", True),
    ("#### $18 dollars", "18", True),
    ("#### 0.5", ".5", True),
    ("#### -5", "-5", True),
    ("#### -5", "5", False),
    ("#### 5", "-5", False),
    ("#### 18.0000000000000001", "18", False),  # a float tolerance would accept this near miss
    ("#### 17.999999999999999999", "18", False),
    ("#### 99999999999999999", "100000000000000000", False),  # equal as floats, not as numbers
    ("#### 1", "1,000", False),
    ("#### 18", "#### 81", False),
    ("The answer is 18", "18", False),  # strict needs the marker
    ("#### 18", 18, True),  # a bare int reference
    ("#### 18", "$18", True),
    ("#### 18", "eighteen", False),  # an unreadable reference is never matched
    ("#### 18", "", False),
    ("", "#### 18", False),
    ("#### ", "#### 0", False),
    (None, "18", False),
    (b"#### 18\xff\xfe", "18", True),  # bytes are decoded, bad bytes ignored
])
def test_is_correct(completion, reference, expected):
    assert is_correct(completion, reference) is expected


def test_is_correct_flexible():
    assert is_correct("so the answer is 18.", "#### 18", mode="flexible")
    assert not is_correct("so the answer is 18.", "#### 18", mode="strict")
    assert not is_correct("so the answer is 17.", "#### 18", mode="flexible")


def test_fixture_references_judge_themselves_correct():
    rows = [json.loads(line) for line in open(FIXTURE, encoding="utf-8")]
    assert len(rows) >= 5
    for row in rows:
        solution = row["answer"]
        assert extract_answer(solution) is not None
        assert is_correct(solution, solution)
        assert is_correct(solution, solution, mode="flexible")
        assert not is_correct(solution.rsplit("####", 1)[0] + "#### 123456789", solution)


def test_never_raises_on_random_text():
    rng = random.Random(0)
    alphabet = "0123456789,.-$#* \n\t/eE%abc\u2212\u0661\uff11\ud800\x00"
    for _ in range(2000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randrange(40)))
        for mode in ("strict", "flexible"):
            answer = extract_answer(text, mode)
            assert answer is None or re.fullmatch(r"-?[0-9]+(\.[0-9]*[1-9])?", answer)
            assert is_correct(text, text, mode) in (True, False)
        blob = bytes(rng.randrange(256) for _ in range(rng.randrange(40)))
        assert is_correct(blob, "#### 1") in (True, False)


MEGABYTE_TEXTS = {  # built inside the test, so pytest does not print megabytes in test names
    "digits": lambda: "1" * 1_000_000,
    "marker then digits": lambda: "#### " + "1" * 1_000_000,
    "markers": lambda: "####" * 250_000,
    "marker then spaces": lambda: "####" + " " * 1_000_000 + "x",
    "many short numbers": lambda: "1," * 500_000,
    "comma groups that run on": lambda: "#### 1" + ",234" * 250_000 + "5",
    "decimals that run on": lambda: "#### " + "1" * 500_000 + "." + "2" * 500_000 + "/3",
    "points": lambda: "1." * 500_000,
    "minus signs": lambda: "-" * 1_000_000,
    "unicode digits": lambda: "\u0661" * 1_000_000,
    "random": lambda: "".join(random.Random(1).choices("0123456789,.-#$ e/\n", k=1_000_000)),
}


@pytest.mark.parametrize("name", MEGABYTE_TEXTS)
def test_megabyte_inputs_are_fast(name):
    text = MEGABYTE_TEXTS[name]()
    start = time.perf_counter()
    for mode in ("strict", "flexible"):
        extract_answer(text, mode)
        is_correct(text, "#### 1", mode)
    assert time.perf_counter() - start < 1.0, name


def test_megabyte_answer_is_read_exactly():
    big = "9" * 1_000_000
    assert extract_answer("#### " + big) == big
    assert is_correct("#### " + big, big)
    assert not is_correct("#### " + big, big[:-1] + "8")


# ----------------------------------------------------------------------------------------------------- calculate

@pytest.mark.parametrize("expr, value", [
    ("48/2", 24),
    ("16-3-4", 9),
    ("9*2", 18),
    ("80000*1.5", 120000),
    ("0.1*30", 3),
    ("0.1+0.2", 0.3),  # exact: not 0.30000000000000004
    ("10/4", 2.5),
    ("2.5/2", 1.25),
    (".5*2", 1),
    ("12/60", 0.2),
    ("1,250*0.20", 250),  # commas as thousands separators
    ("12,345,678/2", 6172839),
    ("7//2", 3),
    ("-7//2", -4),
    ("7%3", 1),
    ("-7%3", 2),
    ("2**10", 1024),
    ("2**-2", 0.25),
    ("(-2)**3", -8),
    ("(7//2)**2", 9),
    ("(7//2)**-1", 1 / 3),
    ("0**0", 1),
    ("-2**2", -4),
    ("+10", 10),
    ("3*+6", 18),
    ("--5", 5),
    ("(1+2)*(3+4)", 21),
    (" 3 * 4 ", 12),
    ("4-11", -7),
    ("1.", 1),
])
def test_calculate(expr, value):
    result = calculate(expr)
    assert result == value
    assert type(result) is type(value)  # integral results are ints, so they print without ".0"


@pytest.mark.parametrize("expr", [
    "",
    "x",
    "x+1",
    "__import__('os').system('true')",
    "open('/etc/passwd')",
    "(1).real",
    "abs(-1)",
    "lambda: 1",
    "'a'",
    "'a'*3",
    "b'1'",
    "[1]",
    "(1,2)",
    "1 if 1 else 2",
    "1<2",
    "1 and 2",
    "not 1",
    "~1",
    "1<<2",
    "1&1",
    "1@1",
    "True+1",
    "1j",
    "0x10",
    "1_000",
    "1e3",
    "1e999",
    "\uff11+1",
    "1/0",
    "1//0",
    "1%0",
    "0**-1",
    "2**0.5",
    "1,2",
    "48/2=24",
    "(1",
    "1+",
    "9**9**9**9",
    "10**10**10",
    "2**10**9",
    "(10**300)**(10**300)",
    "2**1000",
    "(1/3)**1000",
    "10**200*10**200",
    "(10**100)**4",
    "9" * 201,  # longer than MAX_CHARS
    None,
    48,
])
def test_calculate_refuses(expr):
    start = time.perf_counter()
    assert calculate(expr) is None
    assert time.perf_counter() - start < 0.05  # milliseconds, even for the huge powers


def test_calculate_refuses_huge_inputs_fast():
    for expr in ["9" * 1_000_000, "(" * 100_000 + "1" + ")" * 100_000, "-" * 100_000 + "1", "1+" * 500_000 + "1"]:
        start = time.perf_counter()
        assert calculate(expr) is None
        assert time.perf_counter() - start < 0.05, expr[:20]


def test_calculate_deep_but_short_nesting():
    assert calculate("(" * 90 + "7" + ")" * 90) == 7
    assert calculate("-" * 150 + "7") == 7


def test_calculate_recomputes_fixture_annotations():
    rows = [json.loads(line) for line in open(FIXTURE, encoding="utf-8")]
    annotations = [a for row in rows for a in re.findall(r"<<([^<>]*)>>", row["answer"])]
    assert len(annotations) >= 10
    for annotation in annotations:
        expr, _, written = annotation.rpartition("=")
        assert format_number(calculate(expr)) == written, annotation


# ------------------------------------------------------------------------------------------------- format_number

@pytest.mark.parametrize("x, text", [
    (24, "24"),
    (-7, "-7"),
    (2.0, "2"),
    (2.5, "2.5"),
    (-0.25, "-0.25"),
    (0.1, "0.1"),
    (1e-7, "0.0000001"),
    (1e16, "10000000000000000"),
    (-0.0, "0"),
    (2**70, "1180591620717411303424"),
])
def test_format_number(x, text):
    assert format_number(x) == text


def test_formatted_results_read_back():
    for expr in ["10/3", "1/7", "2/3*1000000", "1/1024", "10**20/3"]:
        value = calculate(expr)
        assert isinstance(value, float)
        assert float(format_number(value)) == value
        assert extract_answer("#### " + format_number(value)) == format_number(value)


# --------------------------------------------------------------------------------------------------- \boxed{N}

@pytest.mark.parametrize("text, answer", [
    (r"\boxed{18}", "18"),
    (r"So she has \boxed{18} apples.", "18"),
    (r"\boxed{ 18 }.", "18"),
    (r"\boxed {-3.50}", "-3.5"),
    (r"\boxed{1,234}", "1234"),
    (r"\boxed{1{,}234}", "1234"),  # LaTeX thousands separators (nested braces)
    (r"\boxed{1\,234,567}", "1234567"),
    (r"\boxed{\$1{,}000.50}", "1000.5"),
    (r"\boxed{$18}", "18"),
    (r"\boxed{18\%}", "18"),
    (r"\boxed{50%}", "50"),
    (r"\boxed{18 \text{ dollars}}", "18"),
    (r"\boxed{18 dollars}", "18"),
    (r"\boxed{18.}", "18"),
    (r"\boxed{\text{18}}", "18"),
    (r"\boxed{\textbf{18}}", "18"),
    (r"\boxed{{18}}", "18"),
    (r"\boxed{.5}", "0.5"),
    (r"first \boxed{3}, then \boxed{5}", "5"),  # several boxes: the last counts
    ("the sum is 7\n#### 7 so \\boxed{8}", "8"),  # a box after the last #### counts
    ("\\boxed{8} but\n#### 9", "9"),  # a #### after the last box counts
    ("\\boxed{18}\n" + "x" * 100_000, "18"),
])
def test_extract_boxed(text, answer):
    assert extract_answer(text) == answer
    assert extract_answer(text, mode="flexible") == answer


@pytest.mark.parametrize("text, flexible", [
    (r"\boxed{\frac{3}{4}}", "4"),  # not one number
    (r"\boxed{3/4}", "4"),
    (r"\boxed{x = 18}", "18"),
    (r"\boxed{18 + 2}", "2"),
    (r"\boxed{1,2}", "2"),
    (r"\boxed{1{,}2345}", "2345"),
    (r"\boxed{1e5}", "5"),
    (r"\boxed{}", None),
    (r"\boxed{18", "18"),  # never closed
    (r"\boxed 18", "18"),
    (r"\boxed{{1}{2}}", "2"),
    (r"\boxed{5} \boxed{\frac12}", "12"),  # the last box is the answer, and it is not a number
    ("#### 18 \\boxed{eighteen}", "18"),  # flexible falls back to the last number
    ("\\boxed{" + "1" * 300 + "}", "1" * 300),  # longer than _MAX_BOX: strict does not read it
    (r"\boxed{\text{18}\text{19}}", "19"),
])
def test_extract_boxed_none(text, flexible):
    assert extract_answer(text) is None
    assert extract_answer(text, mode="flexible") == flexible


def test_boxed_is_correct_and_hashes_unchanged():
    assert is_correct(r"The total is \boxed{1{,}500}.", "#### 1,500")
    assert not is_correct(r"\boxed{1{,}501}", "#### 1,500")
    assert not is_correct("The total is 1500.", "#### 1,500")  # strict needs a marker or a box
    assert is_correct("The total is 1500.", "#### 1,500", mode="flexible")


BOX_MEGABYTE_TEXTS = {
    "boxes": lambda: "\\boxed{" * 150_000,
    "one open box": lambda: "\\boxed{" + "{" * 1_000_000,
    "box then spaces": lambda: "\\boxed" + " " * 1_000_000 + "{1}",
    "closed boxes": lambda: "\\boxed{1}" * 120_000,
    "box of spaces": lambda: "\\boxed{1" + " " * 190 + "x}" + "\\boxed{" * 100_000,
}


@pytest.mark.parametrize("name", BOX_MEGABYTE_TEXTS)
def test_megabyte_box_inputs_are_fast(name):
    text = BOX_MEGABYTE_TEXTS[name]()
    start = time.perf_counter()
    for mode in ("strict", "flexible"):
        extract_answer(text, mode)
        is_correct(text, "#### 1", mode)
    assert time.perf_counter() - start < 1.0, name
    assert extract_answer(BOX_MEGABYTE_TEXTS["closed boxes"]()) == "1"


def test_calculate_is_silent_on_malformed_numbers():
    """Model output such as "3x" or "1if 1else 2" makes Python's parser print a SyntaxWarning to stderr; calculate
    refuses it without a line on the console (an RL run's log once filled with "<unknown>:1: SyntaxWarning")."""
    import subprocess
    import sys

    code = "from gift.verifier import calculate; print([calculate(e) for e in ('3x', '1if 1else 2', '2and 5', '4*2')])"
    out = subprocess.run([sys.executable, "-W", "default", "-c", code], capture_output=True, text=True,
                         cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert out.stdout.strip() == "[None, None, None, 8]" and out.stderr == ""
