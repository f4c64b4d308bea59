"""SFT, then GIFT (or GRPO) RL, then a held-out evaluation: the whole method in one file.

    python train.py                                  # built-in task on a CPU, no download (a few minutes)
    python train.py --method=grpo --seed=1           # any Config field can be overridden with --key=value
    python train.py --help                           # every setting with its default and meaning
    python train.py --task=gsm8k --init=gpt2 ...     # GSM8K from GPT-2 (GPU settings: docs/gsm8k.md)
    torchrun --standalone --nproc-per-node=2 train.py ...  # DDP: prompts are sharded over ranks, a group never spans two

One RL step, read top to bottom in `rl_step`: take B prompts, sample G responses each (gift/sampler.py), score them
with the verifier (gift/verifier.py), compute the log-probs of the response tokens under the policy and the
reference (gift/kernels.py), form the loss (gift/loss.py), take an optimiser step. `--method` switches the loss and
nothing else, so GIFT and GRPO see the same prompts, samples and optimiser.

The file, top to bottom: Config and parse_args; the data helpers (make_task, pad_rows, response_logprobs); the two
stages (sft_step, rl_step); checkpoints; then the run, which main() reads as four calls: parse_args, setup (devices,
seeds, data, model, optimiser, --resume), train_loop (SFT then RL steps, logging, evaluations, checkpoints) and
summarize (the final evaluation and summary.json).

Outputs in out/<run>/: metrics.jsonl (one line per step), ckpt.pt (model, optimiser, RNG states, step; written
atomically), summary.json (held-out accuracies, config, seed, wall time). A folder that holds a run is never
overwritten silently: --resume continues it, --overwrite starts afresh. Options and measurements: docs/training.md.
"""

import copy
import difflib
import inspect
import io
import json
import math
import os
import random
import re
import sys
import time
import tokenize
from dataclasses import asdict, dataclass, fields

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP

from eval import evaluate, load_checkpoint, load_model
from gift import data
from gift.kernels import linear_token_logprobs_and_entropy, token_logprobs_and_entropy
from gift.loss import gift_loss, group_advantages, grpo_loss, kl_k3
from gift.sampler import generate
from gift.tokenizer import response_text, stop_ids
from gift.verifier import calculate, is_correct


@dataclass
class Config:
    # task and model
    task: str = "builtin"  # builtin | gsm8k
    data_root: str = "data/gsm8k"  # GSM8K files (python -m gift.data gsm8k puts them here)
    max_events: int = 1  # built-in task: events per problem, 1..max_events (gift/data.py)
    tool_fraction: float = 0.5  # built-in task: share of SFT solutions written with the calculator
    mistakes: float = 0.0  # built-in task: > 0, the writers setting (gift/data.py; testbed: --mistakes=0.5)
    init: str = "micro"  # a model preset trained from scratch, a hub name (gpt2), an HF directory, or a ckpt.pt
    seed: int = 0  # model initialisation, training data order and sampling
    out_dir: str = "out"  # runs are written to <out_dir>/<run_name>/
    run_name: str = ""  # default: <task>-<method>-s<seed> (torchrun would take --run= as its own --run-path)
    device: str = "auto"  # auto | cpu | cuda
    dtype: str = "float32"  # float32 | bfloat16 (autocast, on GPU)
    fused_head: str = "auto"  # auto | on | off: log-probs from hidden states, no (N, L, V) logits (auto: V >= 32768)
    threads: int = 0  # torch CPU threads (0: torch's default)
    # SFT: next-token loss on the solution tokens only
    sft_steps: int = 1200  # optimiser steps of SFT (0: start RL from --init as it is)
    sft_batch: int = 16  # solutions per SFT step (global, over all ranks)
    sft_lr: float = 3e-3  # peak SFT learning rate (cosine decay to a tenth)
    sft_warmup: int = 30  # SFT steps of linear warm-up
    # RL
    method: str = "gift"  # gift | grpo
    rl_steps: int = 50  # optimiser steps of RL after SFT (0: SFT only)
    rl_pool: int = 0  # RL prompts cycle through this many training problems (0: a new problem every time)
    prompts: int = 16  # B prompts per step (global, over all ranks)
    group_size: int = 8  # G samples per prompt
    rl_lr: float = 1e-4  # RL learning rate (constant)
    minibatches: int = 4  # K: a step's prompts split into K mini-batches of whole groups, one optimiser step each
    inner_steps: int = 1  # passes over the step's samples (each pass: K optimiser steps)
    ref: str = "old"  # GIFT's pi_ref: old (the sampling policy of each step) | frozen (the SFT model) | refresh
    ref_every: int = 10  # --ref=refresh: RL steps between copies of the policy into pi_ref
    std_floor: float = 1e-3  # GIFT: floor on the group std of the log-ratio, in nats (1: the trust-region variant)
    detach_std: bool = True  # GIFT: the logratio's group std is a constant (the author's choice)
    mask_degenerate: bool = False  # GIFT: zero loss for groups with equal rewards (default: kept, as the author does)
    clip_eps: float = 0.2  # GRPO
    kl_coef: float = 0.0  # GRPO: k3 KL penalty to the frozen SFT model
    agg: str = "token-mean"  # GRPO: token-mean | seq-mean | constant
    scale_by_std: bool = True  # GRPO: divide advantages by the group std (False: Dr. GRPO)
    temperature: float = 1.0  # sampling temperature of the RL responses
    max_new_tokens: int = 96  # longest response, in tokens (RL samples and evaluations)
    micro_batch: int = 0  # groups per forward/backward pass (0: a whole mini-batch); gradients are accumulated
    grad_clip: float = 1.0  # clip the gradient norm at this (SFT and RL)
    weight_decay: float = 0.0  # AdamW weight decay (SFT and RL)
    # evaluation and bookkeeping
    eval_problems: int = 1000  # held-out problems, greedy (standard error ~1.6 points at 1000)
    eval_every: int = 0  # RL steps between held-out evaluations (0: after SFT and at the end); --rl_pool: the pool too
    eval_batch: int = 250  # problems per sampling batch in evaluations
    ckpt_every: int = 25  # steps between checkpoints (ckpt.pt; also written after SFT and at the end)
    log_every: int = 10  # steps between progress lines
    resume: bool = False  # continue <out_dir>/<run_name>/ckpt.pt (bit-identical on CPU)
    overwrite: bool = False  # start afresh over an earlier run of the same name, deleting its outputs
    stop_after: int = 0  # stop (with a checkpoint) after this many steps in total: for tests and time-boxed runs
    max_bad_steps: int = 5  # stop after this many non-finite losses in a row


# fields that may differ when resuming (they do not change what the run computes)
RESUMABLE = {"resume", "stop_after", "log_every", "eval_batch", "threads", "device", "ckpt_every", "max_bad_steps",
             "fused_head", "overwrite"}
# what --overwrite deletes: the files train.py writes, and eval.py's and gift.plot's default outputs made from them
OUTPUTS = ("ckpt.pt", "ckpt.pt.tmp", "sft.pt", "metrics.jsonl", "summary.json", "eval.json", "curves.png")


def config_help():
    """[(section, key, default, meaning)] for every Config field, read from Config's own source: a field's trailing
    comment is its meaning, a comment line above a group of fields is their section. So `--help` cannot drift."""
    meaning, section_of, section = {}, {}, ""
    for tok in tokenize.generate_tokens(io.StringIO(inspect.getsource(Config)).readline):
        field = re.match(r"\s+(\w+)\s*:", tok.line)  # a field's line: "    name: type = default  # meaning"
        if field:
            section_of.setdefault(field.group(1), section)
            if tok.type == tokenize.COMMENT:
                meaning[field.group(1)] = tok.string.lstrip("# ")
        elif tok.type == tokenize.COMMENT:  # a comment line: the section of the fields below it
            section = tok.string.lstrip("# ")
    return [(section_of[f.name], f.name, f.default, meaning.get(f.name, "")) for f in fields(Config)]


def help_text():
    lines = ["usage: python train.py [--key=value ...]   (or --key value; a bare --flag sets a bool to true)", "",
             __doc__.split("\n\n")[0].strip(), ""]
    section = None
    for sec, key, default, meaning in config_help():
        if sec != section:
            lines += ["", sec + ":"] if section is not None else [sec + ":"]
            section = sec
        setting = f"--{key}={str(default).lower() if isinstance(default, bool) else default}"
        lines.append(f"  {setting:<27} {meaning}")
    return "\n".join(lines)


def parse_args(argv):
    """Config from --key=value (or --key value) arguments; unknown keys and bad values are errors naming them."""
    cfg, types = Config(), {f.name: f.type.__name__ for f in fields(Config)}
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg in ("-h", "--help"):
            print(help_text())
            raise SystemExit(0)
        if not arg.startswith("--"):
            raise SystemExit(f"error: unexpected argument {arg!r}; use --key=value")
        key, _, value = arg[2:].partition("=")
        key = key.replace("-", "_")
        if key not in types:
            near = difflib.get_close_matches(key, types, n=1, cutoff=0.5)
            raise SystemExit(f"error: unknown config key {key!r}" + (f"; did you mean --{near[0]}?" if near else "")
                             + " (python train.py --help lists every key with its default)")
        if not _:
            if types[key] == "bool" and (i + 1 == len(argv) or argv[i + 1].startswith("--")):
                value = "true"  # a bare --resume
            else:
                i += 1
                if i == len(argv):
                    raise SystemExit(f"error: --{key} needs a value")
                value = argv[i]
        try:
            if types[key] == "bool":
                if value.lower() not in ("true", "false", "1", "0"):
                    raise ValueError
                value = value.lower() in ("true", "1")
            else:
                value = {"int": int, "float": float, "str": str}[types[key]](value)
        except ValueError:
            raise SystemExit(f"error: --{key}={value!r} is not a valid {types[key]}") from None
        setattr(cfg, key, value)
        i += 1
    choices = dict(task=("builtin", "gsm8k"), method=("gift", "grpo"), ref=("old", "frozen", "refresh"),
                   agg=("token-mean", "seq-mean", "constant"), dtype=("float32", "bfloat16"),
                   fused_head=("auto", "on", "off"))
    for key, allowed in choices.items():
        if getattr(cfg, key) not in allowed:
            raise SystemExit(f"error: --{key}={getattr(cfg, key)!r} must be one of {allowed}")
    if cfg.minibatches < 1 or cfg.inner_steps < 1:
        raise SystemExit("error: --minibatches and --inner_steps must be >= 1")
    if cfg.prompts % cfg.minibatches:
        raise SystemExit(f"error: --prompts={cfg.prompts} must be divisible by --minibatches={cfg.minibatches}")
    if cfg.rl_pool < 0:
        raise SystemExit(f"error: --rl_pool={cfg.rl_pool} must be >= 0 (0: no pool)")
    if cfg.resume and cfg.overwrite:
        raise SystemExit("error: --resume continues a run, --overwrite starts it afresh: choose one")
    if not 0 <= cfg.mistakes <= data.MAX_MISTAKES:
        raise SystemExit(f"error: --mistakes={cfg.mistakes} must be in [0, {data.MAX_MISTAKES:.3f}] (the highest "
                         f"mistake rate, {max(data.MISTAKE_FACTORS.values())} x mistakes, must be at most 1)")
    if cfg.method == "gift" and cfg.kl_coef:
        raise SystemExit("error: --kl_coef is GRPO's KL penalty; GIFT has no beta (choose --method=grpo)")
    cfg.run_name = cfg.run_name or f"{cfg.task}-{cfg.method}-s{cfg.seed}"
    return cfg


# ----------------------------------------------------------------------------------------------------------------
# data: example i of the training stream, and the held-out set


def make_task(cfg):
    """(train_example(i) -> Example, held-out examples). Example i is fixed by (task, seed, i): resumable."""
    if cfg.task == "builtin":
        knobs = dict(max_steps=cfg.max_events, mistakes=cfg.mistakes)
        heldout = [data.builtin_example("test", i, **knobs) for i in range(cfg.eval_problems)]  # same for every seed
        return (lambda i: data.builtin_example("train", i, seed=cfg.seed, tool_fraction=cfg.tool_fraction, **knobs)), heldout
    try:
        train, test = data.load_gsm8k("train", cfg.data_root), data.load_gsm8k("test", cfg.data_root)
    except (OSError, ValueError) as e:  # missing (it names the download command) or malformed files
        raise SystemExit(f"error: {e}") from None
    order = np.random.default_rng(cfg.seed).permutation(len(train))
    return (lambda i: train[order[i % len(train)]]), test[: cfg.eval_problems]


def encode_batch(enc, examples, with_solution):
    """Prompt ids (the chat format for chat tokenizers) and, for SFT, the full sequences: prompt + solution + stop."""
    prompts = [data.encode_prompt(enc, ex.question) for ex in examples]
    if not with_solution:
        return prompts
    return prompts, [p + data.encode_completion(enc, ex.solution) for p, ex in zip(prompts, examples)]


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


def response_logprobs(model, idx, mask, cfg):
    """Log-probs (N, L-1) of each next token (kernel: no (N, L, V) float32 copy) and the entropy at each position.

    Fused head (--fused_head, auto: when the vocabulary has >= 32,768 entries): the model returns its hidden states
    and linear_token_logprobs applies the LM head in blocks, so even the (N, L-1, V) logits never
    exist (GPT-2's 50,257 x 460 tokens x 32 rows is 1.5 GB in bf16, and as much for its gradient), for one more
    matmul in backward. Below 32,768 (the built-in task's 257) the logits are small and the plain path is cheaper.
    """
    bf16 = cfg.dtype == "bfloat16"
    head = (model.module if isinstance(model, DDP) else model).lm_head.weight  # (V, C)
    if cfg.fused_head == "on" or (cfg.fused_head == "auto" and head.shape[0] >= 32768):
        with torch.autocast(idx.device.type, dtype=torch.bfloat16, enabled=bf16):
            hidden = model(idx[:, :-1], return_hidden=True)  # (N, L-1, C)
        dtype = torch.bfloat16 if bf16 else hidden.dtype  # the logits' dtype under autocast, as the plain path
        logp, entropy = linear_token_logprobs_and_entropy(hidden.to(dtype), head.to(dtype), idx[:, 1:])
        return logp * mask, entropy
    with torch.autocast(idx.device.type, dtype=torch.bfloat16, enabled=bf16):
        logits = model(idx[:, :-1])  # (N, L-1, V)
    logp, entropy = token_logprobs_and_entropy(logits, idx[:, 1:])
    return logp * mask, entropy


# ----------------------------------------------------------------------------------------------------------------
# the two stages


def sft_step(step, model, opt, enc, train_example, cfg, rank, world):
    """One next-token step on B solutions (response tokens only; the prompt is context)."""
    b = cfg.sft_batch // world
    examples = [train_example(step * cfg.sft_batch + rank * b + j) for j in range(b)]
    prompts, rows = encode_batch(enc, examples, with_solution=True)
    idx, mask = pad_rows(rows, [len(p) for p in prompts])
    idx, mask = idx.to(cfg.device), mask.to(cfg.device)
    lr = cfg.sft_lr * min(1.0, (step + 1) / cfg.sft_warmup) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * step / cfg.sft_steps)))
    for group in opt.param_groups:
        group["lr"] = lr
    logp, _ = response_logprobs(model, idx, mask, cfg)
    n_tokens = mask.sum()
    if world > 1:  # normalise by the global token count (DDP then averages the ranks' gradients)
        dist.all_reduce(n_tokens)
    loss = -logp.sum() * world / n_tokens  # mean negative log-likelihood per solution token
    return loss, dict(lr=lr, tokens=int(n_tokens))


def rl_example(train_example, k, cfg):
    """The k-th RL prompt: a stream apart from SFT's; with --rl_pool it cycles through the pool's problems."""
    return train_example(10_000_000 + (k % cfg.rl_pool if cfg.rl_pool else k))


def rl_step(step, model, ref_model, opt, enc, train_example, cfg, rank, world):
    """One RL step: sample, score, log-probs, then `minibatches` optimiser steps (GIFT or GRPO) per pass over it."""
    B, G, K = cfg.prompts // world, cfg.group_size, cfg.minibatches
    b = B // K  # this rank's groups per mini-batch; mini-batch k holds global prompts k*P/K .. (k+1)*P/K - 1
    base = (step - cfg.sft_steps) * cfg.prompts  # index of the step's first prompt in the RL stream
    slots = [k * (cfg.prompts // K) + rank * b + i for k in range(K) for i in range(b)]  # this rank's prompts
    examples = [rl_example(train_example, base + j, cfg) for j in slots]
    prompts = encode_batch(enc, examples, with_solution=False)

    # 1. sample G responses per prompt from the current policy (on-policy); the calculator fills in <<expr=...>>
    policy = model.module if isinstance(model, DDP) else model
    policy.eval()
    t0 = time.time()
    out = generate(policy, prompts, num_samples=G, max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature,
                   stop_tokens=stop_ids(enc), calculator=calculate, tokenizer=enc,
                   dtype=torch.bfloat16 if cfg.dtype == "bfloat16" else None,  # bf16 weights and KV cache
                   seed=[(cfg.seed * 1_000_003 + base + j) % 2**62 for j in slots])  # per prompt: rank-invariant
    sample_time = time.time() - t0

    # 2. explicit rewards r_phi from the verifier: 1 if the final answer is right (samples are prompt-major)
    texts = [response_text(enc, seq) for seq in out.sequences]
    rewards = torch.tensor([float(is_correct(t, examples[i // G].answer)) for i, t in enumerate(texts)])

    # 3. rows = prompt + response; mask picks the response tokens the model chose (not the calculator's)
    rows = [prompts[i // G] + seq for i, seq in enumerate(out.sequences)]
    masks = [out.mask[i, : len(seq)] for i, seq in enumerate(out.sequences)]
    idx, mask = pad_rows(rows, [len(prompts[i // G]) for i in range(len(rows))], masks)
    idx, mask, rewards = idx.to(cfg.device), mask.to(cfg.device), rewards.to(cfg.device)

    # mini-batches of whole groups, each cut into micro-batches of `micro_batch` groups (row slices of idx)
    micro = cfg.micro_batch or b
    batches = [[slice(g * G, min(g + micro, m + b) * G) for g in range(m, m + b, micro)] for m in range(0, B, b)]

    # log-probs before any update, in the same chunks as below (so the first mini-batch's logratio is exactly 0):
    # pi_old, GRPO's ratio denominator and GIFT's pi_ref when ref == "old"
    chunks = [rs for mb in batches for rs in mb]
    with torch.no_grad():
        old_logp = torch.cat([response_logprobs(policy, idx[rs], mask[rs], cfg)[0] for rs in chunks])
        ref_logp = None if ref_model is None else torch.cat(
            [response_logprobs(ref_model, idx[rs], mask[rs], cfg)[0] for rs in chunks])
    if cfg.method == "gift" and cfg.ref == "old":
        ref_logp = old_logp  # pi_ref = pi_old: logratio 0 on the first mini-batch, non-zero after
    advantages = group_advantages(rewards, G, scale_by_std=cfg.scale_by_std)

    # 4. one optimiser step per mini-batch, `inner_steps` passes; micro-batches weighted to sum to the mini-batch loss
    model.train()
    losses, per_step, entropy_sum, kl_sum = [], [], 0.0, 0.0
    for _ in range(cfg.inner_steps):
        for mb in batches:
            opt.zero_grad(set_to_none=True)
            total, stats = 0.0, {}
            for rs in mb:
                logp, entropy = response_logprobs(model, idx[rs], mask[rs], cfg)  # (n, L-1), 0 off the response
                if cfg.method == "gift":
                    # implicit reward / beta: sum over response tokens of log pi_theta - log pi_ref (paper eq. 6)
                    # BEGIN SOLUTION rl_step
                    # HINT: logratio (n,) of the rows rs from logp and ref_logp, then loss, micro_stats = gift_loss(...)
                    logratio = (logp - ref_logp[rs]).sum(dim=1)  # (n,)
                    loss, micro_stats = gift_loss(logratio, rewards[rs], G, std_floor=cfg.std_floor,
                                                  detach_std=cfg.detach_std, mask_degenerate=cfg.mask_degenerate)
                    # END SOLUTION
                else:
                    loss, micro_stats = grpo_loss(logp, old_logp[rs], None if ref_logp is None else ref_logp[rs],
                                                  advantages[rs], mask[rs], clip_eps=cfg.clip_eps,
                                                  kl_coef=cfg.kl_coef, agg=cfg.agg, max_len=cfg.max_new_tokens)
                weight = (rs.stop - rs.start) / (b * G)
                (loss * weight).backward()
                total += loss.item() * weight
                stats = {k: stats.get(k, 0.0) + v * weight for k, v in micro_stats.items()}
                with torch.no_grad():
                    entropy_sum += (entropy * mask[rs]).sum().item()
                    if ref_logp is not None:  # k3 estimate of KL(pi_theta || pi_ref) per response token
                        kl_sum += (kl_k3(logp, ref_logp[rs]) * mask[rs]).sum().item()
            if not finite_update(model, opt, total, cfg):
                return None
            losses.append(total)
            per_step.append(stats)
    n_tokens = mask.sum().item()
    stats = {k: sum(s[k] for s in per_step) / len(per_step) for k in per_step[0]}  # mean over optimiser steps
    trace = "logratio_std" if cfg.method == "gift" else "clip_frac"  # zero on the first mini-batch, then not
    return sum(losses) / len(losses), dict(stats, reward=rewards.mean().item(), sample_time=sample_time,
                                           new_tokens=int(n_tokens), entropy=entropy_sum / (n_tokens * cfg.inner_steps),
                                           kl=kl_sum / (n_tokens * cfg.inner_steps),
                                           **{f"{trace}_mb": [s[trace] for s in per_step]})


def finite_update(model, opt, loss_value, cfg):
    """Clip and step, unless the loss or a gradient is not finite: then skip the update (weights stay finite)."""
    norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
    if not (math.isfinite(loss_value) and torch.isfinite(norm)):
        opt.zero_grad(set_to_none=True)
        return False
    opt.step()
    return True


# ----------------------------------------------------------------------------------------------------------------
# checkpoints


def save_checkpoint(path, cfg, step, model, opt, ref_model, extra):
    """Everything needed to continue bit-identically, written to a temporary file then renamed (atomic)."""
    policy = model.module if isinstance(model, DDP) else model
    state = dict(config=asdict(cfg), step=step, model=policy.state_dict(), model_config=asdict(policy.config),
                 opt=opt.state_dict(), ref=ref_model.state_dict() if ref_model is not None else None,
                 rng=dict(torch=torch.get_rng_state(), python=random.getstate(), numpy=np.random.get_state()),
                 **extra)
    tmp = path + ".tmp"
    torch.save(state, tmp)
    os.replace(tmp, path)


def check_fresh(run_dir, cfg):
    """Refuse to start over an earlier run of the same name (its checkpoint, metrics and summary would be replaced
    while its plots stay) unless --resume continues it or --overwrite replaces it."""
    if cfg.resume or cfg.overwrite:
        return
    if os.path.exists(os.path.join(run_dir, "summary.json")):
        raise SystemExit(f"error: {run_dir} holds a finished run (summary.json); to run it again pass --overwrite "
                         f"(deletes its outputs), or choose another --run_name")
    if os.path.exists(os.path.join(run_dir, "ckpt.pt")):
        raise SystemExit(f"error: {run_dir} holds an unfinished run (ckpt.pt); continue it with --resume, start it "
                         f"again with --overwrite (deletes its outputs), or choose another --run_name")


def check_resumable(saved, cfg):
    """Refuse a checkpoint written by another config, naming the first field that differs."""
    for key, value in asdict(cfg).items():
        if key not in RESUMABLE and saved.get(key) != value:
            raise SystemExit(f"error: the checkpoint was written with {key}={saved.get(key)!r}, this run has "
                             f"{key}={value!r}; use the same config or another --run_name/--out_dir")


# ----------------------------------------------------------------------------------------------------------------
# the run: main() = parse the config, set up, the loop, the summary


@dataclass
class Run:
    """The state of one run besides its Config: this process's rank, the data, the model and optimiser, the step, and
    `extra`, the bookkeeping a checkpoint saves (sft_accuracy, sft_eval, elapsed, bad_steps, eval_time)."""
    rank: int
    world: int
    run_dir: str
    train_example: object  # i -> Example: the training stream (make_task)
    heldout: list  # held-out Examples, scored greedily
    pool: list  # --rl_pool: the training problems RL cycles through, scored too
    model: torch.nn.Module  # the policy pi_theta; DDP-wrapped when world > 1
    enc: object  # the tokenizer (tiktoken.Encoding)
    opt: torch.optim.Optimizer
    extra: dict
    ref_model: torch.nn.Module = None  # pi_ref as its own model: --ref=frozen / refresh, or GRPO's --kl_coef
    step: int = 0  # optimiser steps taken (SFT and RL)
    start_time: float = 0.0

    @property
    def master(self):
        return self.rank == 0

    @property
    def policy(self):
        return self.model.module if isinstance(self.model, DDP) else self.model

    def path(self, name):
        return os.path.join(self.run_dir, name)


def make_optimizer(model, lr, cfg):
    return torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.99), weight_decay=cfg.weight_decay)


def make_reference(model):
    """A frozen copy of the current policy."""
    ref = copy.deepcopy(model.module if isinstance(model, DDP) else model)
    ref.zero_grad(set_to_none=True)
    return ref.eval().requires_grad_(False)


def init_processes(cfg):
    """(world, rank): the device, DDP's process group under torchrun, the thread count; refuse batches that the ranks
    cannot split into whole groups."""
    world, rank = int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("RANK", 0))
    if cfg.device == "auto":
        cfg.device = "cuda" if torch.cuda.is_available() else "cpu"
    if world > 1:
        dist.init_process_group("nccl" if cfg.device == "cuda" else "gloo")
        if cfg.device == "cuda":
            cfg.device = f"cuda:{int(os.environ['LOCAL_RANK'])}"
        if cfg.sft_batch % world:
            raise SystemExit(f"error: --sft_batch={cfg.sft_batch} must be divisible by the {world} ranks")
    if cfg.prompts % (cfg.minibatches * world):  # every rank holds whole groups of every mini-batch
        raise SystemExit(f"error: --prompts={cfg.prompts} must be divisible by --minibatches={cfg.minibatches} "
                         f"times the {world} ranks")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    return world, rank


def setup(cfg):
    """Processes, seeds, data, model and optimiser; with --resume the checkpoint's state; the run folder."""
    world, rank = init_processes(cfg)
    run_dir = os.path.join(cfg.out_dir, cfg.run_name)
    check_fresh(run_dir, cfg)  # run_dir itself is made only once there is something to write

    # seeds: the same on every rank (identical initial weights); sampling seeds are derived per prompt
    torch.manual_seed(cfg.seed)
    random.seed(cfg.seed)
    np.random.seed(cfg.seed)
    train_example, heldout = make_task(cfg)  # data first: a missing GSM8K folder is reported before any download
    pool = [rl_example(train_example, k, cfg) for k in range(min(cfg.rl_pool, cfg.eval_problems))]  # --rl_pool
    model, enc = load_model(cfg.init, cfg.task)
    model.to(cfg.device)
    run = Run(rank, world, run_dir, train_example, heldout, pool, model, enc,
              opt=make_optimizer(model, cfg.sft_lr if cfg.sft_steps else cfg.rl_lr, cfg),
              extra=dict(sft_accuracy=None, sft_eval=None, elapsed=0.0, bad_steps=0, eval_time=0.0))
    if cfg.resume:
        resume(run, cfg)
    if run.master:
        open_run_dir(run, cfg)
    if world > 1:
        run.model = DDP(run.model)
    return run


def resume(run, cfg):
    """Continue from ckpt.pt: weights, optimiser (RL's once SFT is over), pi_ref, RNG states, step and extra."""
    path = run.path("ckpt.pt")
    if not os.path.exists(path):
        raise SystemExit(f"error: --resume but no checkpoint at {path}")
    ckpt = load_checkpoint(path, map_location=cfg.device)
    check_resumable(ckpt["config"], cfg)
    run.model.load_state_dict(ckpt["model"])
    run.step = ckpt["step"]
    if run.step >= cfg.sft_steps:
        run.opt = make_optimizer(run.model, cfg.rl_lr, cfg)
    run.opt.load_state_dict(ckpt["opt"])
    if ckpt["ref"] is not None:
        run.ref_model = make_reference(run.model)
        run.ref_model.load_state_dict(ckpt["ref"])
    torch.set_rng_state(ckpt["rng"]["torch"])
    random.setstate(ckpt["rng"]["python"])
    np.random.set_state(ckpt["rng"]["numpy"])
    run.extra = {k: ckpt.get(k, v) for k, v in run.extra.items()}
    if run.master:
        print(f"resumed {path} at step {run.step}")


def open_run_dir(run, cfg):
    """Make the run folder; --overwrite deletes the earlier outputs only now, once the run has started (a failed
    start deletes nothing); a resumed run's metrics.jsonl drops the lines past the checkpoint's step (a killed run
    may have logged steps it never saved)."""
    if cfg.overwrite:
        for name in OUTPUTS:
            if os.path.exists(run.path(name)):
                os.remove(run.path(name))
    os.makedirs(run.run_dir, exist_ok=True)
    metrics_path = run.path("metrics.jsonl")
    lines = open(metrics_path).read().splitlines() if cfg.resume and os.path.exists(metrics_path) else []
    with open(metrics_path, "w") as f:
        f.writelines(line + "\n" for line in lines if json.loads(line)["step"] < run.step)


def held_out(run, cfg):
    """Greedy pass@1 on the held-out problems; on the built-in task also how often each style is chosen and how often
    it is right (tool style: the response calls the calculator)."""
    t0 = time.time()
    res = evaluate(run.policy, run.enc, run.heldout, batch_size=cfg.eval_batch, max_new_tokens=cfg.max_new_tokens)
    out = dict(accuracy=res["pass@1"], ci95=res["pass@1_ci"])
    if cfg.task == "builtin":
        tool = ["<<" in text for text in res["completions"]]
        for name, chosen in (("tool", tool), ("direct", [not t for t in tool])):
            hits = [c for c, pick in zip(res["per_problem"], chosen) if pick]
            out[f"{name}_frac"] = len(hits) / len(tool)
            out[f"{name}_accuracy"] = sum(hits) / max(1, len(hits))
    if cfg.task == "builtin" and cfg.mistakes:  # writers setting: how often each step kind is written mistaken
        steps = [s for ex, text in zip(run.heldout, res["completions"])
                 for s in data.writer_mistakes(ex.question, text)]
        for context in data.WRITER_CONTEXTS:
            picks = [m for c, m in steps if c == context]
            out[f"mistake_{context}"] = sum(m is True for m in picks) / max(1, len(picks))
    if run.pool:  # the same greedy score on the problems RL trains on
        out["train_accuracy"] = evaluate(run.policy, run.enc, run.pool, batch_size=cfg.eval_batch,
                                         max_new_tokens=cfg.max_new_tokens)["pass@1"]
    run.extra["eval_time"] += time.time() - t0  # so that accuracy can be plotted against training time alone
    return out


def log(run, record):
    """One line of metrics.jsonl (rank 0 writes)."""
    if run.master:
        with open(run.path("metrics.jsonl"), "a") as f:
            f.write(json.dumps(record) + "\n")


def fmt(ev):
    """One line from a held_out() dict."""
    return " ".join(f"{k} {v:.3f}" for k, v in ev.items())


def start_rl(run, cfg):
    """SFT -> RL: evaluate the SFT model, a fresh optimiser at the RL learning rate, pi_ref if it is its own model."""
    run.extra["sft_eval"] = held_out(run, cfg)
    run.extra["sft_accuracy"] = run.extra["sft_eval"]["accuracy"]
    log(run, dict(step=run.step, stage="sft_eval", **{f"heldout_{k}": v for k, v in run.extra["sft_eval"].items()}))
    if run.master:
        print(f"SFT held-out: {fmt(run.extra['sft_eval'])} ({len(run.heldout)} problems)")
    run.opt = make_optimizer(run.model, cfg.rl_lr, cfg)
    if cfg.ref in ("frozen", "refresh") or cfg.kl_coef:
        run.ref_model = make_reference(run.model)


def train_step(run, cfg):
    """One SFT or RL optimiser step at run.step: (loss, stats, ok); not ok when a non-finite value skipped it."""
    if run.step < cfg.sft_steps:
        run.model.train()
        loss, stats = sft_step(run.step, run.model, run.opt, run.enc, run.train_example, cfg, run.rank, run.world)
        run.opt.zero_grad(set_to_none=True)
        loss.backward()
        ok = finite_update(run.model, run.opt, loss.item(), cfg)
        return loss.item(), stats, ok
    result = rl_step(run.step, run.model, run.ref_model, run.opt, run.enc, run.train_example, cfg, run.rank,
                     run.world)
    return (*result, True) if result is not None else (float("nan"), {}, False)


def progress_line(record, total_steps, seconds_per_step):
    """step N/total, the stage, the loss and the step's main statistics, speed and ETA."""
    extras = "".join(f" {k} {record[k]:.3f}" for k in ("reward", "corr", "logratio_std", "kl", "entropy") if k in record)
    step = record["step"] + 1
    return (f"step {step}/{total_steps} {record['stage']} loss {record['loss']:.4f}{extras} "
            f"({seconds_per_step:.2f} s/step, ETA {seconds_per_step * (total_steps - step) / 60:.1f} min)")


def save_checkpoints(run, cfg):
    """ckpt.pt every --ckpt_every steps, after SFT, at the end and at --stop_after; sft.pt, the SFT model alone, after
    SFT (--init=out/RUN/sft.pt --sft_steps=0 starts RL from it)."""
    step, total_steps = run.step, cfg.sft_steps + cfg.rl_steps
    if step % cfg.ckpt_every == 0 or step in (cfg.sft_steps, total_steps, cfg.stop_after):
        save_checkpoint(run.path("ckpt.pt"), cfg, step, run.model, run.opt, run.ref_model, run.extra)
    if step == cfg.sft_steps:
        save_checkpoint(run.path("sft.pt"), cfg, step, run.model, run.opt, run.ref_model, run.extra)


def train_loop(run, cfg):
    """The SFT steps, then the RL steps, from run.step on: log, evaluate and checkpoint as configured. Returns False
    when --stop_after ended it early, True when every step is done."""
    total_steps = cfg.sft_steps + cfg.rl_steps
    run.start_time = time.time() - run.extra["elapsed"]
    t_last = time.time()
    while run.step < total_steps:
        if run.step == cfg.sft_steps and run.extra["sft_accuracy"] is None:
            start_rl(run, cfg)
        rl_done = run.step - cfg.sft_steps  # RL steps taken
        if rl_done > 0 and cfg.ref == "refresh" and rl_done % cfg.ref_every == 0:
            run.ref_model = make_reference(run.model)  # pi_ref <- pi_theta: every logratio is 0 again, a "first step"

        loss, stats, ok = train_step(run, cfg)
        run.extra["bad_steps"] = 0 if ok else run.extra["bad_steps"] + 1
        run.step += 1
        step = run.step
        record = dict(step=step - 1, stage="sft" if step <= cfg.sft_steps else "rl", loss=loss, skipped=not ok,
                      time=time.time() - run.start_time, eval_time=run.extra["eval_time"], **stats)  # seconds so far
        if cfg.sft_steps < step < total_steps and cfg.eval_every and (step - cfg.sft_steps) % cfg.eval_every == 0:
            record.update({f"heldout_{k}": v for k, v in held_out(run, cfg).items()})
        log(run, record)
        if run.extra["bad_steps"] >= cfg.max_bad_steps:
            raise SystemExit(f"error: {cfg.max_bad_steps} non-finite losses in a row at step {step - 1}; stopping. "
                             f"Skipped steps never update the weights; last checkpoint: {run.path('ckpt.pt')}")
        if run.master and (step % cfg.log_every == 0 or step == total_steps):
            dt, t_last = time.time() - t_last, time.time()
            print(progress_line(record, total_steps, dt / cfg.log_every), flush=True)
        run.extra["elapsed"] = time.time() - run.start_time
        if run.master:
            save_checkpoints(run, cfg)
        if step == cfg.stop_after:
            if run.master:
                print(f"stopped after step {step} (--stop_after); continue with --resume")
            return False
    return True


def summarize(run, cfg):
    """The final held-out evaluation, summary.json and the closing line; the summary dict."""
    final = held_out(run, cfg)
    if run.extra["sft_accuracy"] is None:  # no RL steps: the final model is the SFT model
        run.extra["sft_eval"], run.extra["sft_accuracy"] = final, final["accuracy"]
    summary = dict(sft_accuracy=run.extra["sft_accuracy"], rl_accuracy=final["accuracy"],
                   heldout_problems=len(run.heldout), sft_eval=run.extra["sft_eval"], rl_eval=final, seed=cfg.seed,
                   wall_time_s=round(time.time() - run.start_time, 1), torch=torch.__version__,
                   threads=torch.get_num_threads(), config=asdict(cfg))
    if run.master:
        log(run, dict(step=run.step, stage="final", time=time.time() - run.start_time,
                      eval_time=run.extra["eval_time"], **{f"heldout_{k}": v for k, v in final.items()}))
        print(f"final held-out: {fmt(final)}")
        with open(run.path("summary.json"), "w") as f:
            json.dump(summary, f, indent=2)
        print(f"held-out accuracy: SFT {run.extra['sft_accuracy']:.4f} -> {cfg.method.upper()} "
              f"{final['accuracy']:.4f} ({len(run.heldout)} problems, {summary['wall_time_s']:.0f} s); "
              f"wrote {run.run_dir}/summary.json")
    if run.world > 1:
        dist.destroy_process_group()
    return summary


def main(argv):
    """SFT -> RL -> evaluation for the config in argv; the summary (also in summary.json), None if stopped early."""
    cfg = parse_args(argv)
    run = setup(cfg)
    if not train_loop(run, cfg):  # --stop_after: a checkpoint to --resume from, no summary
        return None
    return summarize(run, cfg)


if __name__ == "__main__":
    main(sys.argv[1:])
