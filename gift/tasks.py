"""Tasks: what train.py trains on and how it is scored. A task supplies

    train_example(i) -> Example    the i-th training example, fixed by (task, seed, i), so a run resumes exactly
    heldout                        the held-out Examples, scored greedily (the same for every seed)
    reward(text, example) -> float the explicit reward r_phi of one response (here: the verifier, 1.0 if right)
    metrics(examples, completions, correct) -> dict   the task's own extra evaluation numbers (may be {})
    byte_tokenizer                 True: the built-in byte tokenizer and a small preset trained from scratch
    extras(text, example) -> dict  optional: numbers of each RL sample logged beside its reward (their means per step)

Three are built in, chosen by `--task` and the task options of train.py's Config:
    builtin   GSM8K-shaped arithmetic generated from a seed (gift/data.py): no download, learns on a CPU
              (--mistakes > 0 with --tool_fraction=1: the writers setting of gift/writers.py)
    gsm8k     the official GSM8K files (python -m gift.data gsm8k downloads them)
    rlhf      the built-in prompts rewarded by a learned reward model, with a known true utility (gift/rlhf.py)
A new task is a function returning a Task, added to TASKS.
"""
from dataclasses import dataclass
from typing import Callable

import numpy as np

from gift import data, writers
from gift.settings import require, setting
from gift.writers import MAX_MISTAKES
from gift.verifier import is_correct


@dataclass
class TaskSettings:
    """The task variants experiments use, which train.py's Config takes in (--help lists them)."""
    rl_pool: int = setting(0, "RL prompts cycle through this many training problems (0: a new problem every time)",
                           section="task variants (experiments/)")
    max_events: int = setting(1, "built-in task: events per problem, 1..max_events")
    tool_fraction: float = setting(0.5, "built-in task: share of SFT solutions written with the calculator")
    mistakes: float = setting(0.0, "built-in task: > 0, the writers setting (gift/writers.py: --mistakes=0.5 "
                                   "--tool_fraction=1)")
    reward_model: str = setting("", "rlhf task: the reward model (python -m gift.rlhf SFT_CKPT OUT makes one)")
    reward_scale: float = setting(1.0, "rlhf task: the reward is reward_scale x the reward model's score + "
                                       "reward_shift")
    reward_shift: float = setting(0.0, "rlhf task: see --reward_scale")

    def check(self):
        require(self, at_least=dict(max_events=1), within=dict(tool_fraction=(0, 1), mistakes=(0, MAX_MISTAKES)))
        if self.reward_model and getattr(self, "task", "rlhf") != "rlhf":
            raise SystemExit(f"error: --reward_model scores the rlhf task's responses; --task={self.task} is scored "
                             f"by its verifier: add --task=rlhf, or drop --reward_model")


@dataclass
class Task:
    name: str
    train_example: Callable  # i -> Example
    heldout: list  # [Example]
    reward: Callable  # (response text, Example) -> float
    metrics: Callable  # (examples, completions, per-problem correct counts) -> {name: float}
    byte_tokenizer: bool = True  # the built-in byte tokenizer and small presets (False: the model's own BPE)
    extras: Callable = None  # (response text, Example) -> {name: float}, logged per RL step (their means)


def verifier_reward(text, example):
    """1.0 if the response's final answer equals the example's (gift/verifier.py), else 0.0."""
    return float(is_correct(text, example.answer))


def style_metrics(examples, completions, correct):
    """Built-in task: how often each style is chosen (tool: the response calls the calculator) and how often each is
    right: RL should move answers to the tool style, the one that works."""
    tool = ["<<" in text for text in completions]
    out = {}
    for name, chosen in (("tool", tool), ("direct", [not t for t in tool])):
        hits = [c for c, pick in zip(correct, chosen) if pick]
        out[f"{name}_frac"] = len(hits) / len(tool)
        out[f"{name}_accuracy"] = sum(hits) / max(1, len(hits))
    return out


def builtin_task(cfg):
    """The built-in task; with cfg.mistakes > 0 the writers setting (its held-out problems end in a scaling step, and
    its metrics add how often each step kind is written in the writers' mistaken form)."""
    knobs = dict(max_steps=cfg.max_events)
    if cfg.mistakes:
        example = lambda split, i, **kw: writers.writers_example(split, i, mistakes=cfg.mistakes, **knobs, **kw)

        def metrics(examples, completions, correct):
            return {**style_metrics(examples, completions, correct), **writers.mistake_metrics(examples, completions)}
    else:
        example = lambda split, i, **kw: data.builtin_example(split, i, **knobs, **kw)
        metrics = style_metrics
    heldout = [example("test", i) for i in range(cfg.eval_problems)]  # the same for every seed
    return Task("builtin", lambda i: example("train", i, seed=cfg.seed, tool_fraction=cfg.tool_fraction), heldout,
                verifier_reward, metrics)


def gsm8k_task(cfg):
    """GSM8K from cfg.data_root: training examples in a seeded order (cycled), the first eval_problems test rows."""
    try:
        train, test = data.load_gsm8k("train", cfg.data_root), data.load_gsm8k("test", cfg.data_root)
    except (OSError, ValueError) as e:  # missing (it names the download command) or malformed files
        raise SystemExit(f"error: {e}") from None
    order = np.random.default_rng(cfg.seed).permutation(len(train))
    return Task("gsm8k", lambda i: train[order[i % len(train)]], test[: cfg.eval_problems], verifier_reward,
                lambda examples, completions, correct: {}, byte_tokenizer=False)


def rlhf_task(cfg):
    """The built-in task's prompts, rewarded by the reward model at cfg.reward_model (times cfg.reward_scale, plus
    cfg.reward_shift: the scale experiment); per sample the true utility is logged beside it (`extras`), and each
    evaluation reports the greedy responses' mean proxy reward and true utility (gift/rlhf.py)."""
    from gift.rlhf import load, score, utility  # the reward model's code loads only for this task
    from gift.tokenizer import builtin_tokenizer
    if not cfg.reward_model:
        raise SystemExit("error: --task=rlhf needs --reward_model=PATH (python -m gift.rlhf SFT_CKPT OUT makes one)")
    rm, enc = load(cfg.reward_model), builtin_tokenizer()
    base = builtin_task(cfg)
    a, b = cfg.reward_scale, cfg.reward_shift

    def reward(text, example):
        return a * score(rm, enc, [example], [text])[0] + b

    def metrics(examples, completions, correct):
        return dict(proxy_reward=sum(score(rm, enc, examples, completions)) / len(examples),
                    true_reward=sum(utility(t, ex) for t, ex in zip(completions, examples)) / len(examples))

    return Task("rlhf", base.train_example, base.heldout, reward, metrics,
                extras=lambda text, example: dict(true_reward=utility(text, example)))


def rl_example(task, k, pool=0):
    """The k-th prompt of RL's stream: the training stream shifted far past SFT's, or with --rl_pool cycling through
    the pool's first `pool` problems."""
    return task.train_example(10_000_000 + (k % pool if pool else k))


TASKS = {"builtin": builtin_task, "gsm8k": gsm8k_task, "rlhf": rlhf_task}


def make_task(cfg):
    """The Task named by cfg.task, built from cfg's task options (task, seed, eval_problems, data_root, mistakes,
    tool_fraction, max_events)."""
    return TASKS[cfg.task](cfg)
