"""The writers setting: the built-in task (gift/data.py) with SFT demonstrations pooled from writers who each make one
systematic mistake, so that RL has several choices to fix, each at its own speed. `train.py --mistakes=0.5
--tool_fraction=1` selects it (gift/tasks.py); docs/results.md ("The writers setting") says why it is built so.
"""
from gift.data import EVENTS, ITEMS, NAMES, Example, builtin_solution, split_problem
from gift.verifier import calculate

# A task on which RL has several choices to fix, each at its own speed, so that methods can differ. Every problem is
# one event as in the built-in task (or 1..max_events), then a scaling step:
#     "Ivy has 49 eggs. Gives away 19. Then triples them. How many eggs now?"
#     right:   "49-19=<<49-19=30>>30\n30*3=<<30*3=90>>90\n#### 90"
# The SFT demonstrations are pooled from writers who each make one systematic mistake, on one kind of step:
#     gets     written as a subtraction     t-n        (right: t+n)
#     gives    written as an addition       t+n        (right: t-n)
#     boxes    the box count added          t+b+c      (right: t+b*c)
#     doubles  the factor added             t+2        (right: t*2)
#     triples  the factor added             t+3        (right: t*3)
# A mistaken line is computed by the calculator as written and later lines chain from its value, as a writer would;
# the final "#### N" of a mistaken solution is therefore wrong. Each of the five contexts has its own mistake rate,
# MISTAKE_FACTORS x M: at M = 0.5 the mistake is the majority for gives (0.6) and triples (0.7) and a minority
# elsewhere (0.2-0.25). The context is a word the model must read anyway to write the line, so imitation learns the
# rates per context: greedy decoding then makes the mistake on every gives and triples step (right on about a third
# of the problems), while sampling still finds the right solution often (each choice is right with probability
# 1 - rate). Only the reward says which form is right, and the two majority mistakes start from different odds, so
# RL fixes them at different speeds. All arithmetic is the calculator's and the numbers to copy are those of one
# event (the factor is a word), so the ceiling is the choices', not the micro model's copying. Held-out references
# are always right (tool style); held-out problems are disjoint from training ones as above (the hash).

WRITER_CONTEXTS = ("gets", "gives", "boxes", "doubles", "triples")
MISTAKE_FACTORS = dict(gets=0.5, gives=1.2, boxes=0.4, doubles=0.5, triples=1.4)  # rate = factor x mistakes
MAX_MISTAKES = 1 / max(MISTAKE_FACTORS.values())  # so that every rate is at most 1
# (right form, mistaken form) of each step kind: t is the running total, x the step's numbers from the question
WRITER_FORMS = {
    "gets": ("{t}+{x[0]}", "{t}-{x[0]}"),
    "gives": ("{t}-{x[0]}", "{t}+{x[0]}"),
    "boxes": ("{t}+{x[0]}*{x[1]}", "{t}+{x[0]}+{x[1]}"),
    "scales": ("{t}*{x[0]}", "{t}+{x[0]}"),
}


def writer_context(kind, x):
    """The context a step's mistake rate depends on: its kind, and for a scaling step its word (doubles/triples)."""
    return kind if kind != "scales" else ("doubles" if x[0] == 2 else "triples")


def mistake_rate(context, mistakes):
    """How often the writers' mistake appears on steps of this context (one of WRITER_CONTEXTS)."""
    return MISTAKE_FACTORS[context] * mistakes


def writers_problem(rng, min_steps=1, max_steps=1, max_number=99):
    """One problem of the writers setting: (question, start amount, steps [(kind, numbers), ...])."""
    name, item = rng.choice(NAMES), rng.choice(ITEMS)
    total = start = rng.randint(10, max_number)
    question, steps = [f"{name} has {total} {item}."], []
    for _ in range(rng.randint(min_steps, max_steps)):
        kind = rng.choice(EVENTS)
        if kind == "gives" and total > 10:
            x = (rng.randint(2, total - 1),)
            question.append(f"Gives away {x[0]}.")
        elif kind == "boxes":
            x = (rng.randint(2, 9), rng.randint(11, 29))
            question.append(f"Buys {x[0]} boxes of {x[1]}.")
        else:  # "gets", and "gives" when too little is left to give
            kind, x = "gets", (rng.randint(10, max_number),)
            question.append(f"Gets {x[0]} more.")
        steps.append((kind, x))
        total = calculate(WRITER_FORMS[kind][0].format(t=total, x=x))  # the right total decides what can be given away
    k = rng.choice((2, 3))
    question.append(f"Then {'doubles' if k == 2 else 'triples'} them.")
    steps.append(("scales", (k,)))
    question.append(f"How many {item} now?")
    return " ".join(question), start, steps


def writer_mistakes(question, completion):
    """Which of a problem's steps a response wrote in the writers' mistaken form: [(context, True | False | None)],
    one per step of the question, None when the line is missing or neither form (read from the operators of each
    line's expression, so a wrongly copied number still counts as the form it used)."""
    cues = (("gets", "Gets "), ("gives", "Gives away "), ("boxes", "Buys "), ("doubles", "Then doubles"),
            ("triples", "Then triples"))
    contexts = [c for sentence in question.split(". ") for c, cue in cues if sentence.startswith(cue)]
    lines = [line.split("=")[0] for line in completion.strip().split("\n") if not line.startswith("####")]
    out = []
    for i, context in enumerate(contexts):
        ops = "".join(c for c in lines[i].strip().lstrip("-") if c in "+-*/") if i < len(lines) else None
        kind = "scales" if context in ("doubles", "triples") else context
        right, wrong = ("".join(c for c in form if c in "+-*") for form in WRITER_FORMS[kind])
        out.append((context, True if ops == wrong else False if ops == right else None))
    return out


def writers_ops(start, steps, wrong):
    """[(expression, value), ...] of a solution: each step in its right or mistaken form (wrong[i]), chained."""
    ops, t = [], start
    for (kind, x), w in zip(steps, wrong):
        expression = WRITER_FORMS[kind][w].format(t=t, x=x)
        ops.append((expression, calculate(expression)))  # what the sampler's calculator writes
        t = ops[-1][1]
    return ops


def writers_example(split, index, seed=0, tool_fraction=1.0, mistakes=0.5, **knobs):
    """Example number `index` of a split of the writers setting, fixed by (split, index, seed, knobs) like
    gift.data.builtin_example (same random stream, same held-out hash). Training solutions carry the writers' mistakes
    at MISTAKE_FACTORS x mistakes per context; the answer is always the right one, as are held-out references."""
    if not 0.0 < mistakes <= MAX_MISTAKES:
        raise ValueError(f"mistakes must be in (0, {MAX_MISTAKES:.3f}] (the highest context rate is "
                         f"{max(MISTAKE_FACTORS.values())} x mistakes), got {mistakes}")
    rng, (question, start, events), tool = split_problem(split, index, seed, tool_fraction,
                                                         lambda rng: writers_problem(rng, **knobs))
    answer = writers_ops(start, events, [False] * len(events))[-1][1]  # the right answer, whoever writes
    wrong = [split == "train" and rng.random() < mistake_rate(writer_context(kind, x), mistakes) for kind, x in events]
    ops = writers_ops(start, events, wrong)
    return Example(question, builtin_solution(ops, ops[-1][1], tool), str(answer))


def mistake_metrics(examples, completions):
    """{mistake_<context>: share of the responses' steps of that context written in the mistaken form}."""
    steps = [s for ex, text in zip(examples, completions) for s in writer_mistakes(ex.question, text)]
    out = {}
    for context in WRITER_CONTEXTS:
        picks = [m for c, m in steps if c == context]
        out[f"mistake_{context}"] = sum(m is True for m in picks) / max(1, len(picks))
    return out

