r"""The verifier (the explicit reward) and the calculator for GSM8K-style solutions.

GIFT, like GRPO, needs an explicit reward r for every sampled response: here r = 1 if the final answer is right and
0 otherwise. The reward is only as good as this judge: a lenient one teaches the model to cheat, a strict one hides
real gains. So the rules are written down and tested:

- A GSM8K solution ends with a line `#### N`. In "strict" mode the answer is the number right after the *last*
  `####` (spaces, `$`, `*` and `:` may come between), and whatever follows the number is ignored: `#### 18`,
  `####18`, `#### $18`, `#### 18.`, `#### 18.00`, `#### 1,234`, `#### 18 dollars` all read 18 or 1234.
  No marker, no number right after the last one, or a number that runs on into a form not read here
  (`#### 3/4`, `#### 1e5`, `#### 1,2`): no answer (None).
- Instruct and math models are asked for `\boxed{N}` instead (gift/data.py). When a `\boxed` comes after the last
  `####`, strict mode reads the *last* box: its content (braces matched, nested ones included) must be one number,
  optionally with `$` or `\$` before it and one unit after it (`%`, `\%`, a word, `\text{...}`) and a final `.`;
  the whole content may be wrapped in `{}`, `\text{}`, `\textbf{}`, `\mathbf{}` or `\mathrm{}`, and `{,}` or `\,`
  between digit groups read as thousands commas. `\boxed{18}`, `\boxed{\$1{,}234}`, `\boxed{18 \text{ dollars}}`,
  `\boxed{\textbf{18}}` read 18 or 1234; `\boxed{\frac{3}{4}}`, `\boxed{x = 18}`, `\boxed{18 + 2}`, an unclosed
  box or one longer than 200 characters: no answer.
- In "flexible" mode (for base models that never learned the marker) the strict answer is used when there is one,
  otherwise the last number anywhere in the text ("The answer is 18.").
- Numbers are ASCII digits with an optional minus sign, comma thousands separators (groups of exactly three digits)
  and an optional decimal part: `-3`, `.5`, `1,234,567.25`. Exponents (`1e5`), `nan`, `inf`, fractions and
  non-ASCII digits are not read as numbers.
- Answers are compared exactly, as decimal numbers (18 == 18.0 == 18.00, 1,234 == 1234, -5 != 5): never by string
  and never with a float tolerance that would accept a near miss.

Nothing here raises on odd text (empty, binary, megabytes long, unicode), and everything runs in linear time: the
scans are `str.rfind` and regular expressions without nested repetition, whose backtracking is bounded by the
length of the number being read.

`calculate(expr)` computes the `<<48/2=24>>` annotations of GSM8K solutions during sampling: the model writes
`<<48/2=`, the sampler appends `format_number(calculate("48/2"))` and `>>`. It parses with `ast` (never `eval`),
allows only numbers, + - * / // % **, unary signs and parentheses, and computes with exact fractions, so
0.1 + 0.2 is 0.3, not 0.30000000000000004. Both are checked against every row of GSM8K by
`python scripts/check_gsm8k.py` (what it measured: docs/code.md).
"""
import ast
import operator
import re
import warnings
from decimal import Decimal
from fractions import Fraction

# One number: an optional minus sign (only where it cannot be a subtraction, so "16-3" is 16 and 3, not 16 and -3),
# then digits with optional comma groups and an optional decimal part, or just a decimal part (".5").
# The comma form must be followed by a non-digit, so "1,2345" reads as 1 rather than 1234.
_NUMBER_RE = re.compile(
    r"(?:(?<![\w)])[-\u2212])?(?:(?:[0-9]{1,3}(?:,[0-9]{3})+(?![0-9])|[0-9]+)(?:\.[0-9]+)?|\.[0-9]+)")
# After `####`: spaces, `$`, `*` or `:`, then the number, which must not run on into a form not read here
# ("3/4", "1e5", "1.2.3", "1,2"): those give no answer rather than the wrong one.
_SKIP_RE = re.compile(r"[\s$*:]*")
_RUN_ON_RE = re.compile(r"[0-9]|[.,/][0-9]|[eE][-+]?[0-9]")
_FLEXIBLE_WINDOW = 1000  # flexible mode reads the last number from at most this many characters
_MARKER = "####"
_BOX = "\\boxed"
_SPACES_RE = re.compile(r" *")
_MAX_BOX = 200  # longest box content read; a number with its unit is far shorter, and the scan stays bounded
# The content of a box: optional $ or \$, the number, an optional unit (%, \%, a word, \text{...}), an optional ".".
_BOXED_RE = re.compile(r"(?:\\?\$\s*)?(" + _NUMBER_RE.pattern + r")"
                       r"(?:\s*(?:\\?%|\\(?:text|mbox|mathrm)\{[^{}]*\}|[A-Za-z][A-Za-z ]*))?\s*\.?")
_WRAPPED_RE = re.compile(r"(?:\\(?:text|textbf|mathbf|mathrm))?\{(.*)\}", re.DOTALL)  # \textbf{18}, {18} -> 18


def _normalise(number):
    """Canonical decimal string of a matched number: no commas, no leading or trailing zeros, no '-0'.

    Two numbers are equal exactly when their canonical strings are equal: "1,234.50" -> "1234.5", ".5" -> "0.5",
    "-0.0" -> "0".
    """
    number = number.replace(",", "").replace("\u2212", "-")
    sign = "-" if number.startswith("-") else ""
    whole, _, frac = number.lstrip("-").partition(".")
    whole = whole.lstrip("0") or "0"
    frac = frac.rstrip("0")
    if whole == "0" and not frac:
        sign = ""
    return sign + whole + ("." + frac if frac else "")


def _as_text(text):
    """Strings pass through, bytes are decoded (bad bytes become U+FFFD), anything else is None."""
    if isinstance(text, (bytes, bytearray)):
        return bytes(text).decode("utf-8", errors="replace")
    return text if isinstance(text, str) else None


def _boxed(text, start):
    """The number in the box whose `{` is the first non-space at or after `start`, or None (module docstring)."""
    start = _SPACES_RE.match(text, start).end()
    if text[start : start + 1] != "{":
        return None
    depth = 0
    for end in range(start, min(len(text), start + _MAX_BOX + 2)):  # the matching "}", at most _MAX_BOX chars on
        depth += {"{": 1, "}": -1}.get(text[end], 0)
        if depth == 0:
            break
    else:
        return None
    content = text[start + 1 : end].strip()
    wrapped = _WRAPPED_RE.fullmatch(content)
    if wrapped:
        content = wrapped.group(1).strip()
    content = content.replace("{,}", ",").replace("\\,", ",")  # LaTeX thousands separators: 1{,}234, 1\,234
    match = _BOXED_RE.fullmatch(content)
    return _normalise(match.group(1)) if match else None


def extract_answer(text, mode="strict"):
    """The final answer in `text` as a canonical number string ("1234", "-3", "0.5"), or None if there is none.

    strict: the number right after the last `####`, or in the last `\boxed{}` when that comes later.
    flexible: the strict answer if any, else the last number.
    """
    if mode not in ("strict", "flexible"):
        raise ValueError(f"mode must be 'strict' or 'flexible', got {mode!r}")
    # BEGIN SOLUTION verifier
    # HINT: the number after the last #### (strict), else the last number (flexible)
    text = _as_text(text)
    if text is None:
        return None
    marker, box = text.rfind(_MARKER), text.rfind(_BOX)
    if box > marker:  # a \boxed{} after the last #### (or without any)
        answer = _boxed(text, box + len(_BOX))
        if answer is not None or mode == "strict":
            return answer
    elif marker >= 0:
        start = _SKIP_RE.match(text, marker + len(_MARKER)).end()
        match = _NUMBER_RE.match(text, start)
        if match and not _RUN_ON_RE.match(text, match.end()):
            return _normalise(match.group())
    if mode == "strict":
        return None
    # flexible: the last number ends with the text's last digit, and starts after the stretch of digits, commas and
    # points before it (one character earlier may be its minus sign), at most _FLEXIBLE_WINDOW characters back.
    end = 1 + max(text.rfind(digit) for digit in "0123456789")
    if end == 0:
        return None
    start = max(len(text[:end].rstrip("0123456789,.")) - 1, end - _FLEXIBLE_WINDOW, 0)
    numbers = list(_NUMBER_RE.finditer(text, start, end))
    return _normalise(numbers[-1].group())
    # END SOLUTION


def is_correct(completion, reference, mode="strict"):
    """True if the completion's answer (read in `mode`) equals the reference's, compared exactly as numbers.

    The reference is a full GSM8K solution (ending in `#### N`) or a bare number such as "1,234" or 18.
    """
    answer = extract_answer(completion, mode)
    if not isinstance(reference, (str, bytes, bytearray)):
        reference = str(reference)  # a bare int such as 18
    reference = _as_text(reference)
    if _MARKER in reference:
        want = extract_answer(reference, "strict")
    else:
        bare = _NUMBER_RE.fullmatch(reference.strip().lstrip("$"))
        want = _normalise(bare.group(0)) if bare else None
    if answer is None or want is None:
        return False
    return Decimal(answer) == Decimal(want)  # exact: Decimal("18") == Decimal("18.00"), no rounding involved


# --------------------------------------------------------------------------------------------------- calculator

MAX_CHARS = 200  # longer expressions are refused; GSM8K's longest annotation has 36 characters
MAX_BITS = 1000  # numerators and denominators stay below 2**1000 (about 1e301); beyond that the answer is None
_THOUSANDS_RE = re.compile(r"(?<=[0-9]),(?=[0-9]{3}(?![0-9]))")  # a comma between digits, before exactly three

def _too_big(x):
    return x.numerator.bit_length() > MAX_BITS or x.denominator.bit_length() > MAX_BITS


def _power(base, exponent):
    """base ** exponent for an integer exponent; None (before computing anything) if the result would be too big."""
    if exponent.denominator != 1:
        return None  # roots are not supported: the result would not be exact
    size = max(base.numerator.bit_length(), base.denominator.bit_length())
    if size > 1 and abs(exponent.numerator) * (size - 1) > MAX_BITS:  # |base| is not 0 or 1, so the size grows
        return None
    return base ** exponent.numerator  # 0 ** -1 raises ZeroDivisionError, caught in calculate


_OPERATORS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
              ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: _power}


def _evaluate(node, expr):
    """Exact value (a Fraction) of an ast node, or None if anything in it is not allowed or cannot be computed."""
    # BEGIN SOLUTION verifier
    # HINT: Fraction for literals as written, unary + -, the _OPERATORS, else None
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        literal = ast.get_source_segment(expr, node)  # the digits as written: 0.1 stays exactly 1/10
        if not literal or not literal.isascii() or not literal.replace(".", "", 1).isdigit():
            return None  # 1e999, 0x10, 1_000 and other literal forms are refused
        return Fraction(literal)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        value = _evaluate(node.operand, expr)
        if value is None:
            return None
        return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
        left = _evaluate(node.left, expr)
        right = _evaluate(node.right, expr)
        if left is None or right is None:
            return None
        value = _OPERATORS[type(node.op)](left, right)  # division by zero raises, caught in calculate
        return None if value is None or _too_big(value) else Fraction(value)  # // gives an int: back to Fraction
    return None  # names, calls, attributes, strings, comparisons, lambdas, ...
    # END SOLUTION


def calculate(expr):
    """Value of an arithmetic expression such as "48/2" or "1,200*3", or None if it is unsafe or invalid.

    Returns an int when the exact value is integral (48/2 -> 24, 0.1*30 -> 3), else the float nearest to the exact
    value (10/4 -> 2.5, 1/3 -> 0.333...). Commas between digits are thousands separators. Never raises.
    """
    # BEGIN SOLUTION verifier
    # HINT: refuse long or non-str input, drop thousands commas, parse, evaluate, None on errors
    if not isinstance(expr, str) or len(expr) > MAX_CHARS:
        return None
    expr = _THOUSANDS_RE.sub("", expr).strip()  # "1,200*3" -> "1200*3", but "(1,2)" stays a (refused) tuple
    try:
        with warnings.catch_warnings():  # "3x" parses with a SyntaxWarning printed to stderr: the answer is None
            warnings.simplefilter("ignore", SyntaxWarning)
            tree = ast.parse(expr, mode="eval")
        value = _evaluate(tree.body, expr)
        if value is None:
            return None
        return int(value) if value.denominator == 1 else float(value)
    except Exception:  # SyntaxError, ZeroDivisionError, RecursionError, MemoryError, ...
        return None
    # END SOLUTION


def format_number(x):
    """How the sampler writes a calculator result: 24 -> "24", 2.0 -> "2", 2.5 -> "2.5", 1e-7 -> "0.0000001".

    Ints print in full. Floats print as the shortest decimal that reads back as the same float (Python's repr),
    never with an exponent (so the verifier can read them back) and without a trailing ".0".
    """
    if isinstance(x, int):
        return str(x)
    if x == 0:
        return "0"  # also -0.0
    text = format(Decimal(repr(x)), "f")  # repr(1e16) is "1e+16": Decimal writes it out as digits
    return text.rstrip("0").rstrip(".") if "." in text else text
