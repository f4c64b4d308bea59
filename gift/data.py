"""Data: GSM8K (grade-school math word problems), the built-in task, and the prompt format both use.

GSM8K (Cobbe et al. 2021, github.com/openai/grade-school-math, MIT licence) has 7,473 train and 1,319 test problems.
Each row is a question and a solution written step by step, with calculator annotations and the final answer:

    question: "A robe takes 2 bolts of blue fiber and half that much white fiber. How many bolts ...?"
    answer:   "It takes 2/2=<<2/2=1>>1 bolt of white fiber\\nSo the total ... 2+1=<<2+1=3>>3 bolts of fabric\\n#### 3"

We call that second field the *solution* and the number after `####` the *answer*. The model sees

    prompt:      "Question: <question>\\nAnswer:"
    completion:  " <solution>" followed by the end-of-text token (appended by the tokenizer / training code)

so at sampling time it writes the whole solution, calls the calculator at every `<<...=` (see gift/verifier.py),
and the verifier reads the number after its last `####`. Instruct models (tokenizers with `<|im_start|>`, Qwen2's)
get the chat format instead, and are asked for the answer in `\\boxed{N}`, which the verifier reads as strictly
(`encode_prompt`):

    <|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n<|im_start|>user\\n<question>\\n\\n<CHAT_INSTRUCTION>
    <|im_end|>\\n<|im_start|>assistant\\n        (one line here; the model answers, then writes <|im_end|>)

`python -m gift.data gsm8k` downloads the two official files once into data/gsm8k/, checked against pinned sha256 sums.
The built-in task (bottom of this file) generates GSM8K-shaped problems from a seed, so `python train.py` needs no
download; `python -m gift.data builtin` prints a few. Why it is built as it is: docs/training.md (the built-in task)
and docs/results.md (the writers setting, `mistakes` > 0).
"""
import argparse
import hashlib
import json
import os
import random
import urllib.request
import zlib
from typing import NamedTuple

import torch

from gift.tokenizer import IM_END, IM_START, is_chat, stop_ids
from gift.verifier import extract_answer


class Example(NamedTuple):
    question: str  # the word problem
    solution: str  # the worked solution with <<a*b=c>> annotations, ending in "#### N"
    answer: str  # N as a canonical number string ("1234", "-3", "0.5"), read by the verifier


def format_prompt(question):
    """The text the model is conditioned on."""
    return f"Question: {question.strip()}\nAnswer:"


def format_completion(solution):
    """The text the model is trained to write after the prompt (the end-of-text token is appended elsewhere)."""
    return " " + solution.strip()


CHAT_SYSTEM = "You are a helpful assistant."
CHAT_INSTRUCTION = "Solve the problem step by step. At the end, write the final answer as a single number in \\boxed{}."


def encode_prompt(enc, question):
    """Prompt token ids for a question: the chat format for chat tokenizers (`is_chat`), else format_prompt's text.

    Chat turns are <|im_start|>role\\ntext<|im_end|>\\n; the prompt ends with an open assistant turn. The markers are
    inserted as ids and the texts are encoded as ordinary text, so a question cannot open or close a turn.
    """
    if not is_chat(enc):
        return enc.encode(format_prompt(question))
    start, end, newline = enc.encode_single_token(IM_START), enc.encode_single_token(IM_END), enc.encode_ordinary("\n")
    ids = []
    for role, text in (("system", CHAT_SYSTEM), ("user", f"{question.strip()}\n\n{CHAT_INSTRUCTION}")):
        ids += [start] + enc.encode_ordinary(f"{role}\n{text}") + [end] + newline
    return ids + [start] + enc.encode_ordinary("assistant\n")


def encode_completion(enc, solution):
    """Token ids SFT trains on after the prompt: the solution, then the stop token (<|im_end|> in the chat format)."""
    text = solution.strip() if is_chat(enc) else format_completion(solution)
    return enc.encode(text) + [stop_ids(enc)[0]]


def encode_batch(enc, examples, with_solution):
    """Prompt ids (the chat format for chat tokenizers) and, for SFT, the full sequences: prompt + solution + stop."""
    prompts = [encode_prompt(enc, ex.question) for ex in examples]
    if not with_solution:
        return prompts
    return prompts, [p + encode_completion(enc, ex.solution) for p, ex in zip(prompts, examples)]


def pad_rows(rows, resp_start, mask_rows=None):
    """Right-pad token rows into (N, L) ids and a (N, L-1) mask over next-token targets.

    rows: N lists of ids; resp_start[i]: index in row i of its first response token; mask_rows[i]: optional 0/1
    per response token (the sampler's mask: 0 for calculator-forced tokens). target t (token t+1) is trained iff
    it is a response token with mask 1.
    """
    L = max(len(r) for r in rows)
    idx = torch.zeros(len(rows), L, dtype=torch.long)
    mask = torch.zeros(len(rows), L - 1)
    for i, row in enumerate(rows):
        idx[i, : len(row)] = torch.tensor(row)
        resp = torch.ones(len(row) - resp_start[i]) if mask_rows is None else mask_rows[i]
        mask[i, resp_start[i] - 1 : len(row) - 1] = resp
    return idx, mask


# ------------------------------------------------------------------------------------------------------------ GSM8K

GSM8K_URL = "https://raw.githubusercontent.com/openai/grade-school-math/master/grade_school_math/data/{split}.jsonl"
GSM8K_SHA256 = {  # the official files: train.jsonl 4,166,206 bytes, test.jsonl 749,738 bytes
    "train": "17f347dc51477c50d4efb83959dbb7c56297aba886e5544ee2aaed3024813465",
    "test": "3730d312f6e3440559ace48831e51066acaca737f6eabec99bccb9e4b3c39d14",
}


def fetch(url):
    """The bytes at `url` (https:// or file://); a clear error when it cannot be reached."""
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            return response.read()
    except OSError as e:  # URLError, timeouts, refused connections
        raise RuntimeError(f"could not download {url}: {getattr(e, 'reason', e)}; check the network, or put the "
                           f"official train.jsonl/test.jsonl in the target folder yourself (sha256 checked)") from None


def _sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def download_gsm8k(root="data/gsm8k"):
    """Download train.jsonl and test.jsonl into `root`, unless they are already there with the right sha256.

    Each file is checked before it is written, and written atomically (to a temporary name, then renamed), so an
    interrupted or corrupted download never leaves a file that looks finished.
    """
    for split, sha256 in GSM8K_SHA256.items():
        path = os.path.join(root, f"{split}.jsonl")
        if os.path.exists(path) and _sha256(path) == sha256:
            continue
        url = GSM8K_URL.format(split=split)
        print(f"downloading {url} -> {path}")
        data = fetch(url)
        got = hashlib.sha256(data).hexdigest()
        if got != sha256:
            raise RuntimeError(f"{url}: sha256 is {got}, expected {sha256}; the download is corrupt or the file "
                               f"changed upstream, nothing was written")
        os.makedirs(root, exist_ok=True)  # only now: a failed download leaves no empty folder behind
        tmp = path + ".tmp"
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)  # atomic on POSIX and Windows


def load_gsm8k(split, root="data/gsm8k"):
    """The rows of `root/<split>.jsonl` as a list of Example(question, solution, answer)."""
    if split not in GSM8K_SHA256:
        raise ValueError(f"split must be one of {sorted(GSM8K_SHA256)}, got {split!r}")
    path = os.path.join(root, f"{split}.jsonl")
    if not os.path.exists(path):
        command = "python -m gift.data gsm8k" + ("" if os.path.normpath(root) == os.path.normpath("data/gsm8k")
                                                 else f" --root {root}")
        raise FileNotFoundError(f"{path} not found: run `{command}` to download GSM8K")
    examples = []
    with open(path, encoding="utf-8") as f:
        for line_number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}, line {line_number}: not valid JSON ({e})") from None
            if not isinstance(row, dict) or not all(isinstance(row.get(k), str) for k in ("question", "answer")):
                raise ValueError(f"{path}, line {line_number}: expected an object with string fields "
                                 f"'question' and 'answer'")
            answer = extract_answer(row["answer"])
            if answer is None:
                raise ValueError(f"{path}, line {line_number}: the solution does not end in '#### <number>'")
            examples.append(Example(row["question"], row["answer"], answer))
    return examples


# ----------------------------------------------------------------------------------------------------------------
# The built-in task: GSM8K-shaped arithmetic word problems, generated from a seed, for `python train.py` on a CPU.
#
# A problem is a start amount and one or more events (one by default), each a step of arithmetic on the running total:
#     "Ivy has 49 eggs. Gets 19 more. Buys 7 boxes of 26. How many eggs now?"
# The solution is written like GSM8K's, one line per event, then "#### N":
#     tool style    "49+19=<<49+19=68>>68\n68+7*26=<<68+7*26=250>>250\n#### 250"
#     direct style  "49+19 is 68\n68+7*26 is 250\n#### 250"
# Why two styles: SFT demonstrations mix them (like SFT data pooled from several writers). In the tool style the
# sampler's calculator computes every result, so the style is right whenever the model writes the right expression;
# in the direct style the model must do two- and three-digit arithmetic in its head, which a tiny model mostly gets
# wrong. Imitation learns to pick either style about half the time; only a reward can teach it that one of them works.
# The choice is one token after the first expression ("=" or " "), both single characters, so it is a real decision.
# RL can also improve within the tool style (reading the right numbers, chaining the running total).
#
# Distribution: start amount uniform in [10, max_number]; each event uniform over the allowed kinds:
#   "gets"   total + n      n uniform in [10, max_number]
#   "gives"  total - n      n uniform in [2, total - 1] (a "gets" instead when total <= 10)
#   "boxes"  total + b*c    b uniform in [2, 9], c uniform in [11, 29]
# The number of events is uniform in [min_steps, max_steps]. Names and items are cosmetic.
# Held-out problems are those whose question text hashes (crc32) to 0 mod 8; training problems are the rest, so the
# two sets are disjoint by construction whatever the seeds.

NAMES = ["Ann", "Ben", "Cal", "Dee", "Eve", "Fay", "Gus", "Hal", "Ivy", "Jo", "Kim", "Lee", "Max", "Ned", "Ola", "Pam"]
ITEMS = ["pens", "cards", "eggs", "coins", "books", "cups", "apples", "shells"]
EVENTS = ("gets", "gives", "boxes")


def builtin_problem(rng, min_steps=1, max_steps=1, max_number=99, events=EVENTS):
    """One problem: (question, operations [(expression, value), ...], answer). rng: a random.Random."""
    name, item = rng.choice(NAMES), rng.choice(ITEMS)
    total = rng.randint(10, max_number)
    question, ops = [f"{name} has {total} {item}."], []
    for _ in range(rng.randint(min_steps, max_steps)):
        kind = rng.choice(events)
        if kind == "gives" and total > 10:
            n = rng.randint(2, total - 1)
            question.append(f"Gives away {n}.")
            ops.append((f"{total}-{n}", total - n))
        elif kind == "boxes":
            b, c = rng.randint(2, 9), rng.randint(11, 29)
            question.append(f"Buys {b} boxes of {c}.")
            ops.append((f"{total}+{b}*{c}", total + b * c))
        else:  # "gets", and "gives" when too little is left to give
            n = rng.randint(10, max_number)
            question.append(f"Gets {n} more.")
            ops.append((f"{total}+{n}", total + n))
        total = ops[-1][1]
    question.append(f"How many {item} now?")
    return " ".join(question), ops, total


def builtin_solution(ops, answer, tool):
    """The solution text in the tool style (GSM8K's <<expr=value>> annotations) or the direct style."""
    lines = [f"{e}=<<{e}={v}>>{v}" if tool else f"{e} is {v}" for e, v in ops]
    return "\n".join(lines) + f"\n#### {answer}"


def is_heldout(question):
    return zlib.crc32(question.encode()) % 8 == 0


def builtin_example(split, index, seed=0, tool_fraction=0.5, **knobs):
    """Example number `index` of a split ("train" or "test"), the same for the same (split, index, seed, knobs).

    Random access by index keeps data order reproducible and makes resuming a run trivial. Training solutions use
    the tool style with probability tool_fraction; held-out references always use the tool style (only the final
    answer is graded). The writers setting (gift/writers.py) is a variant of this task.
    """
    rng, (question, ops, answer), tool = split_problem(split, index, seed, tool_fraction,
                                                       lambda rng: builtin_problem(rng, **knobs))
    return Example(question, builtin_solution(ops, answer, tool), str(answer))


def split_problem(split, index, seed, tool_fraction, make_problem):
    """(rng, problem, tool): problem = make_problem(rng), a tuple whose first item is the question, drawn from the
    random stream of (split, seed, index) until its question hashes to this split's side; then whether its solution
    is written in the tool style (always for "test"). The rng is returned so a variant can keep drawing from it."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    rng = random.Random(f"builtin-{split}-{seed}-{index}")
    while True:  # rejection: keep only problems on this split's side of the hash
        problem = make_problem(rng)
        if is_heldout(problem[0]) == (split == "test"):
            break
    return rng, problem, split == "test" or rng.random() < tool_fraction


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m gift.data", description="Download or preview the data.")
    commands = parser.add_subparsers(dest="command", required=True)
    gsm8k = commands.add_parser("gsm8k", help="download GSM8K into --root (once, sha256-checked) and show a row")
    gsm8k.add_argument("--root", default="data/gsm8k", help="where to put train.jsonl and test.jsonl")
    builtin = commands.add_parser("builtin", help="print a few built-in problems and their solutions")
    builtin.add_argument("--split", default="train", choices=("train", "test"))
    builtin.add_argument("-n", type=int, default=4)
    builtin.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    if args.command == "gsm8k":
        try:
            download_gsm8k(args.root)
        except RuntimeError as e:  # offline, or a corrupt download: one line, nothing written
            raise SystemExit(f"error: {e}") from None
        for split in ("train", "test"):
            print(f"{split}: {len(load_gsm8k(split, args.root))} examples in {args.root}/{split}.jsonl")
        example = load_gsm8k("test", args.root)[0]
        print("\n" + format_prompt(example.question) + format_completion(example.solution))
        print(f"\n(answer: {example.answer})")
    elif args.command == "builtin":
        for i in range(args.n):
            example = builtin_example(args.split, i, seed=args.seed)
            print(format_prompt(example.question) + format_completion(example.solution) + "\n")


if __name__ == "__main__":
    main()
