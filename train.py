"""SFT, then GIFT (or GRPO) RL, then a held-out evaluation: the method in one file, read top to bottom.

    python train.py                                  # built-in task on a CPU, no download (6-7 min on 2 cores)
    python train.py --method=grpo --seed=1           # any setting: --key=value (--help lists them all)
    python train.py --task=gsm8k --init=gpt2 ...     # GSM8K from GPT-2 (GPU settings: docs/gsm8k.md)
    torchrun --standalone --nproc-per-node=2 train.py ...  # DDP: prompts sharded over ranks, whole groups each

One RL step (`rl_step`) is GRPO-Zero's shape: `rollout` (sample G responses to each of B prompts, gift/sampler.py;
score them, gift/tasks.py; their log-probs under pi_old and pi_ref), then `update_policy` (K mini-batches of whole
groups, one optimiser step each, with the loss `--method` names in gift/loss.py). Only the loss differs between
methods: GIFT and GRPO see the same prompts, samples and optimiser. Writes out/<run>/: metrics.jsonl, samples.jsonl,
ckpt.pt, sft.pt, summary.json; run management (command line, folders, checkpoints, --init) is gift/runs.py.
"""

import copy
import math
import os
import random
import sys
import time
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP

from gift import data
from gift.evaluation import evaluate
from gift.kernels import model_logprobs
from gift.lora import adapters_disabled, add_lora, merge_lora
from gift.loss import LOSSES, BaselineSettings, RLBatch, kl_k3
from gift.monitor import GradientProbe, Monitor, sample_groups
from gift.runs import (OPTIMIZERS, OUTPUTS, RESUMABLE, Run, RunSettings, check_fresh, check_settings,  # noqa: F401
                       init_processes, interrupted, load_model, make_optimizer, open_run_dir, parse_config, resume_run,
                       save_run, setting)
from gift.sampler import generate
from gift.tasks import TASKS, TaskSettings, make_task
from gift.tokenizer import response_text, stop_ids
from gift.verifier import calculate


@dataclass
class Config(BaselineSettings, TaskSettings, RunSettings):
    """The method's settings, in groups. --help lists after them the baselines' options (gift/loss.py), the task
    variants (gift/tasks.py), and memory and bookkeeping (gift/runs.py)."""
    task: str = setting("builtin", "builtin | gsm8k | rlhf (gift/tasks.py)", section="task and model")
    data_root: str = setting("data/gsm8k", "GSM8K files (python -m gift.data gsm8k puts them here)")
    init: str = setting("micro", "a preset trained from scratch, a hub name (gpt2), an HF directory, or a ckpt.pt")
    seed: int = setting(0, "model initialisation, training data order and sampling")
    dtype: str = setting("float32", "float32 | bfloat16 (autocast; meant for GPUs, slow on most CPUs)")
    sft_steps: int = setting(2400, "optimiser steps of SFT (0: start RL from --init as it is)",
                             section="SFT: next-token loss on the solution tokens only")
    sft_batch: int = setting(16, "solutions per SFT step (global, over all ranks)")
    sft_lr: float = setting(3e-3, "peak SFT learning rate (cosine decay to a tenth)")
    sft_warmup: int = setting(30, "SFT steps of linear warm-up")
    method: str = setting("gift", "the RL loss: gift | grpo | dr_grpo | dapo | gspo | una (gift/loss.py, LOSSES)",
                          section="RL: the method")
    rl_steps: int = setting(50, "optimiser steps of RL after SFT (0: SFT only)")
    prompts: int = setting(16, "B prompts per step (global, over all ranks)")
    group_size: int = setting(8, "G samples per prompt")
    rl_lr: float = setting(1e-4, "RL learning rate")
    rl_schedule: str = setting("constant", "constant | cosine (the RL rate decays to 0 over --rl_steps)")
    minibatches: int = setting(4, "K: a step's prompts in K mini-batches of whole groups, one optimiser step each")
    temperature: float = setting(1.0, "sampling temperature of the RL responses")
    max_new_tokens: int = setting(96, "longest response, in tokens (RL samples and evaluations)")
    grad_clip: float = setting(1.0, "clip the gradient norm at this (SFT and RL; 0: no clipping)")
    std_floor: float = setting(1e-3, "floor on the group std of the log-ratio, in nats (1: the trust-region variant)",
                               section="GIFT's options (the defaults are the author's)")
    ref: str = setting("old", "pi_ref: old (the sampling policy of each step) | frozen (the SFT model) | refresh "
                              "(GIFT and UNA)")
    beta: float = setting(1.0, "the weight of z(logratio) in (z(r) - beta z(logratio))^2 (the author's kl_loss_coef)")
    # options only the ablations change (docs/results.md says which experiment uses each)
    detach_std: bool = setting(True, "GIFT: the log-ratio's group std is a constant (the author's choice)",
                               section="ablations of the author's recipe (experiments/)")
    mask_degenerate: bool = setting(False, "GIFT: zero loss for groups with equal rewards (the author keeps them)")
    ref_every: int = setting(10, "--ref=refresh: RL steps between copies of the policy into pi_ref")
    inner_steps: int = setting(1, "passes over a step's samples (each pass: K optimiser steps)")
    weight_decay: float = setting(0.0, "AdamW weight decay (SFT and RL)")


def parse_args(argv):
    """The Config of a command line, every setting checked before any work: one error line for the first bad one."""
    from gift.writers import MAX_MISTAKES
    cfg = parse_config(Config, argv, __doc__.split("\n\n")[0])
    check_settings(cfg, choices=dict(task=TASKS, method=LOSSES, ref=("old", "frozen", "refresh"), optim=OPTIMIZERS,
                                     dtype=("float32", "bfloat16"), agg=("token-mean", "seq-mean", "constant"),
                                     fused_head=("auto", "on", "off"), rl_schedule=("constant", "cosine")),
                   at_least=dict(sft_batch=1, prompts=1, group_size=2, minibatches=1, inner_steps=1, eval_problems=1,
                                 eval_batch=1, ckpt_every=1, log_every=1, max_bad_steps=1, max_new_tokens=1,
                                 max_events=1, ref_every=1),  # the other int settings: >= 0
                   positive=("sft_lr", "rl_lr", "std_floor", "temperature"),
                   within=dict(tool_fraction=(0, 1), mistakes=(0, MAX_MISTAKES), grad_clip=(0, math.inf)))
    if cfg.prompts % cfg.minibatches:
        raise SystemExit(f"error: --prompts={cfg.prompts} must be divisible by --minibatches={cfg.minibatches}")
    if cfg.kl_coef and cfg.method not in ("grpo", "dr_grpo"):
        raise SystemExit(f"error: --kl_coef is GRPO's KL penalty; --method={cfg.method} has none"
                         + (" (GIFT needs no beta)" if cfg.method == "gift" else ""))
    cfg.run_name = cfg.run_name or f"{cfg.task}-{cfg.method}-s{cfg.seed}"
    return cfg


# ----------------------------------------------------------------------------------------------------------------
# token rows and their log-probs


def response_logprobs(model, idx, mask, cfg, temperature=1.0):
    """Log-probs (N, L-1) of each next token, 0 off the mask, and the entropy (gift/kernels.py). RL scores its samples
    at the sampling temperature; --fused_head (auto: vocabularies of >= 32,768) never builds the (N, L-1, V) logits."""
    vocab = getattr(model, "module", model).lm_head.weight.shape[0]
    fused = cfg.fused_head == "on" or (cfg.fused_head == "auto" and vocab >= 32768)
    return model_logprobs(model, idx, mask, cfg.dtype == "bfloat16", fused, temperature)


class Reference:
    """pi_ref, chosen once at setup; the rollout asks it for log-probs.

    old      the sampling policy of each step (GIFT as its author runs it): pi_ref's log-probs are pi_old's
    frozen   the SFT model (the derivation's reference; GRPO's KL anchor)
    refresh  a copy of the policy, renewed every ref_every RL steps
    none     no reference (GRPO without a KL term)
    """

    def __init__(self, kind, every=0, lora=False):
        self.kind, self.every, self.model, self.lora = kind, every, None, lora

    def copy_of(self, policy):
        self.model = copy.deepcopy(policy)
        self.model.zero_grad(set_to_none=True)  # deepcopy copied the policy's gradients too
        self.model.eval().requires_grad_(False)

    def before_rl_step(self, policy, rl_done):
        """At RL's start (frozen, refresh) and every `every` RL steps (refresh): pi_ref <- pi_theta."""
        if (self.kind == "frozen" and self.model is None and not self.lora) or (self.kind == "refresh" and (
                self.model is None or rl_done > 0 and rl_done % self.every == 0)):
            self.copy_of(policy)

    def logprobs(self, old_logp, score, policy):
        """(N, T) log pi_ref of the rollout's tokens (score(model) computes them chunk by chunk), or None."""
        if self.kind == "frozen" and self.lora:  # the SFT model is the base model: adapters off, no second copy
            with adapters_disabled(policy):
                return score(policy)
        if self.kind == "old":
            # pi_ref = pi_old, computed before any update of this step: the log-ratio is exactly 0 on the first
            # mini-batch (GIFT's floor then gives GRPO's direction, and K = 1 is GRPO's update); after each
            # optimiser step the later mini-batches see a policy that moved, and their log-ratios spread
            return old_logp
        return None if self.model is None else score(self.model)


# ----------------------------------------------------------------------------------------------------------------
# the two steps: each computes its loss, backpropagates and steps the optimiser through `optimizer_step`


def optimizer_step(run, cfg, loss_value):
    """Clip and step, unless the loss or a gradient is not finite: then skip the update (weights stay finite).
    Returns (stepped, the gradient norm before clipping)."""
    norm = torch.nn.utils.clip_grad_norm_(run.model.parameters(), cfg.grad_clip or math.inf)
    ok = math.isfinite(loss_value) and bool(torch.isfinite(norm))
    if ok:
        run.opt.step()
    run.opt.zero_grad(set_to_none=True)
    return ok, norm.item()


def sft_step(run, cfg):
    """One next-token step on B solutions (response tokens only; the prompt is context): (loss, stats)."""
    b = cfg.sft_batch // run.world
    examples = [run.task.train_example(run.step * cfg.sft_batch + run.rank * b + j) for j in range(b)]
    prompts, rows = data.encode_batch(run.enc, examples, with_solution=True)
    idx, mask = (t.to(cfg.device) for t in data.pad_rows(rows, [len(p) for p in prompts]))
    s = run.step
    warmup, cosine = min(1.0, (s + 1) / cfg.sft_warmup), 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * s / cfg.sft_steps))
    lr = cfg.sft_lr * warmup * cosine  # linear warm-up, then cosine decay to a tenth
    for group in run.opt.param_groups:
        group["lr"] = lr
    run.model.train()
    logp, _ = response_logprobs(run.model, idx, mask, cfg)
    n_tokens = mask.sum()
    if run.world > 1:  # normalise by the global token count (DDP then averages the ranks' gradients)
        dist.all_reduce(n_tokens)
    loss = -logp.sum() * run.world / n_tokens  # mean negative log-likelihood per solution token
    run.opt.zero_grad(set_to_none=True)
    loss.backward()
    ok, norm = optimizer_step(run, cfg, loss.item())
    return loss.item(), dict(lr=lr, tokens=int(n_tokens), grad_norm=norm, skipped=not ok)


def rl_prompts(run, cfg):
    """This rank's share of the next B prompts of the RL stream and their sampling seeds. Mini-batch k holds the
    round's prompts k*B/K .. (k+1)*B/K - 1, each rank a slice of every mini-batch; seeds are per prompt, so ranks
    sample exactly what one process would. The stream is SFT's shifted far apart (--rl_pool: cycling through a pool);
    books["rl_drawn"] counts the prompts drawn so far (B per step, more with dynamic sampling)."""
    K, b = cfg.minibatches, cfg.prompts // cfg.minibatches // run.world
    base = run.books["rl_drawn"]
    run.books["rl_drawn"] += cfg.prompts
    slots = [base + k * (cfg.prompts // K) + run.rank * b + i for k in range(K) for i in range(b)]
    return [rl_example(run.task, j, cfg) for j in slots], [(cfg.seed * 1_000_003 + j) % 2**62 for j in slots]


def rl_example(task, k, cfg):
    return task.train_example(10_000_000 + (k % cfg.rl_pool if cfg.rl_pool else k))


class Group(NamedTuple):
    """One prompt's G samples, scored."""
    question: str
    prompt: list  # token ids
    sequences: list  # G responses' token ids
    masks: list  # G (len,) tensors: 1 at the tokens the model chose (not the calculator's)
    texts: list  # G responses' texts
    rewards: list  # G explicit rewards r_phi
    finished: list  # G bools: ended with a stop token (else cut at --max_new_tokens)
    extras: list = None  # G dicts of the task's per-sample numbers (Task.extras), or None


def generate_groups(run, cfg, examples, seeds, decode_graphs=None):
    """G responses to each example from the current policy (gift/sampler.py), scored by the task: one Group each."""
    G, enc = cfg.group_size, run.enc
    prompts = data.encode_batch(enc, examples, with_solution=False)
    out = generate(run.policy.eval(), prompts, num_samples=G, max_new_tokens=cfg.max_new_tokens,
                   temperature=cfg.temperature, stop_tokens=stop_ids(enc), calculator=calculate, tokenizer=enc,
                   dtype=torch.bfloat16 if cfg.dtype == "bfloat16" else None, seed=seeds,
                   decode_graphs=decode_graphs)  # the calculator writes the result of each <<expr=
    groups = []
    for i, ex in enumerate(examples):
        seqs = out.sequences[i * G:(i + 1) * G]
        texts = [response_text(enc, seq) for seq in seqs]
        groups.append(Group(ex.question, prompts[i], seqs, [out.mask[i * G + j, :len(s)] for j, s in enumerate(seqs)],
                            texts, [run.task.reward(t, ex) for t in texts], out.finished[i * G:(i + 1) * G].tolist(),
                            [run.task.extras(t, ex) for t in texts] if run.task.extras else None))
    return groups


def dynamic_sampling(run, cfg, drawn, kept, spare):
    """DAPO's dynamic sampling: of a round's groups (every rank's, in the round's prompt order) keep those whose
    rewards differ; the others are spares, used only if --max_draws rounds do not fill the step. Under DDP every rank
    sees every group (all_gather), so all ranks choose the same B groups, the ones one process would."""
    if run.world > 1:
        everyone = [None] * run.world
        dist.all_gather_object(everyone, drawn)
        K, b = cfg.minibatches, cfg.prompts // cfg.minibatches // run.world
        drawn = [everyone[(p % (cfg.prompts // K)) // b][(p // (cfg.prompts // K)) * b + p % b]
                 for p in range(cfg.prompts)]  # round position p = k*B/K + rank*b + i
    for g in drawn:
        (kept if max(g.rewards) > min(g.rewards) else spare).append(g)


def my_groups(run, cfg, groups):
    """This rank's share of the step's B groups (the same slices rl_prompts gives it)."""
    K, b = cfg.minibatches, cfg.prompts // cfg.minibatches // run.world
    return [groups[k * (cfg.prompts // K) + run.rank * b + i] for k in range(K) for i in range(b)]


class Rollout(NamedTuple):
    """One step's samples, rows prompt-major (row i answers prompt i // G), and what the updates need of them."""
    idx: torch.Tensor  # (N, L) prompt + response token ids, right-padded
    mask: torch.Tensor  # (N, L-1) 1 at the response tokens the model chose (not the calculator's, not padding)
    rewards: torch.Tensor  # (N,) explicit rewards r_phi
    old_logp: torch.Tensor  # (N, L-1) log pi_old of each token, before any update
    ref_logp: torch.Tensor  # (N, L-1) log pi_ref, or None
    batches: list  # K mini-batches, each a list of row slices (micro-batches of whole groups)
    sample_time: float
    questions: list  # B prompts' questions
    texts: list  # N responses' texts
    truncated: torch.Tensor  # (N,) bool: cut at --max_new_tokens without a stop token
    draws: int = 1  # rounds of B prompts sampled (dynamic sampling: more than 1)
    filled: int = 0  # groups with equal rewards kept because --max_draws rounds did not fill the step
    logged: dict = None  # per-step numbers of the samples: the means of the task's extras, kl_sft (--kl_sft)


def rollout(run, cfg, decode_graphs=None):
    """Sample G responses per prompt from the current policy, score them, and take their log-probs under pi_old and
    pi_ref. A loss with `filter_groups` (DAPO) draws rounds of B prompts until B groups have rewards that differ
    (at most --max_draws rounds). decode_graphs: the sampler's (None: CUDA graphs on a GPU)."""
    G, t0 = cfg.group_size, time.time()
    if run.books["rl_drawn"] is None:  # a checkpoint from before the count: B prompts per step
        run.books["rl_drawn"] = (run.step - cfg.sft_steps) * cfg.prompts
    if not getattr(run.loss_fn, "filter_groups", False):
        groups, draws, filled = generate_groups(run, cfg, *rl_prompts(run, cfg), decode_graphs), 1, 0
    else:
        kept, spare, draws = [], [], 0
        while len(kept) < cfg.prompts and draws < cfg.max_draws:
            dynamic_sampling(run, cfg, generate_groups(run, cfg, *rl_prompts(run, cfg), decode_graphs), kept, spare)
            draws += 1
        filled = max(0, cfg.prompts - len(kept))
        groups = my_groups(run, cfg, (kept + spare)[:cfg.prompts])
    sample_time = time.time() - t0
    rows = [g.prompt + seq for g in groups for seq in g.sequences]
    idx, mask = data.pad_rows(rows, [len(g.prompt) for g in groups for _ in range(G)],
                              [m for g in groups for m in g.masks])
    # K mini-batches of b whole groups, each cut into micro-batches of --micro_batch groups (row slices)
    B, b = len(groups), len(groups) // cfg.minibatches
    micro = cfg.micro_batch or b
    batches = [[slice(g * G, min(g + micro, m + b) * G) for g in range(m, m + b, micro)] for m in range(0, B, b)]
    idx, mask = idx.to(cfg.device), mask.to(cfg.device)
    chunks = [rs for mb in batches for rs in mb]  # log-probs before any update, in the chunks the updates use
    T = cfg.temperature  # the log-probs of the distribution the tokens were drawn from (as verl scores them)
    score = lambda model: torch.cat([response_logprobs(model, idx[rs], mask[rs], cfg, T)[0] for rs in chunks])
    with torch.no_grad():
        old_logp = score(run.policy)
        ref_logp = run.reference.logprobs(old_logp, score, run.policy)
        logged = {k: sum(e[k] for g in groups for e in g.extras) / (len(groups) * G)
                  for k in (groups[0].extras[0] if groups[0].extras else {})}  # e.g. the true utility (rlhf)
        if run.sft_model is not None:  # k3 estimate of KL(pi_old || pi_SFT) per response token
            logged["kl_sft"] = ((kl_k3(old_logp, score(run.sft_model)) * mask).sum() / mask.sum()).item()
    rewards = torch.tensor([r for g in groups for r in g.rewards], device=cfg.device)
    truncated = torch.tensor([not f for g in groups for f in g.finished], device=cfg.device)
    return Rollout(idx, mask, rewards, old_logp, ref_logp, batches, sample_time, [g.question for g in groups],
                   [t for g in groups for t in g.texts], truncated, draws, filled, logged)


def update_policy(run, cfg, r):
    """One optimiser step per mini-batch of the rollout (`inner_steps` passes), with the loss --method names."""
    run.model.train()
    if cfg.rl_schedule == "cosine":  # from rl_lr down to 0 over the RL steps (else the rate stays rl_lr)
        for group in run.opt.param_groups:
            group["lr"] = cfg.rl_lr * 0.5 * (1 + math.cos(math.pi * (run.step - cfg.sft_steps) / cfg.rl_steps))
    losses, per_step, entropy, kl, n = [], [], 0.0, 0.0, len(r.rewards) // cfg.minibatches
    if run.probe:
        run.probe.new_rollout()
    for _ in range(cfg.inner_steps):
        for mb in r.batches:
            total, stats = 0.0, {}
            for rs in mb:  # micro-batches, weighted to sum to the mini-batch's loss
                logp, ent = response_logprobs(run.model, r.idx[rs], r.mask[rs], cfg, cfg.temperature)  # (n, L-1)
                ref = None if r.ref_logp is None else r.ref_logp[rs]
                batch = RLBatch(logp, r.old_logp[rs], ref, r.rewards[rs], r.mask[rs], cfg.group_size,
                                cfg.max_new_tokens, r.truncated[rs])
                weight = (rs.stop - rs.start) / n
                if run.probe:  # --grad_stats: the same backward, and the equal-reward groups' part apart
                    loss, micro_stats = run.probe.backward(run.loss_fn, batch, cfg, weight)
                else:
                    loss, micro_stats = run.loss_fn(batch, cfg)  # gift/loss.py
                    (loss * weight).backward()
                total += loss.item() * weight
                stats = {k: stats.get(k, 0.0) + v * weight for k, v in micro_stats.items()}
                with torch.no_grad():
                    entropy += (ent * r.mask[rs]).sum().item()
                    if ref is not None:  # k3 estimate of KL(pi_theta || pi_ref) per response token
                        kl += (kl_k3(logp, ref) * r.mask[rs]).sum().item()
            if run.probe:
                stats["cos_mb1"], stats["equal_share"] = run.probe.step_stats()
            ok, stats["grad_norm"] = optimizer_step(run, cfg, total)
            if not ok:
                return float("nan"), dict(skipped=True)
            losses.append(total)
            per_step.append(stats)
    tokens = r.mask.sum().item()
    stats = {k: sum(s[k] for s in per_step) / len(per_step) for k in per_step[0]}  # mean over optimiser steps
    traces = {f"{k}_mb": [s[k] for s in per_step] for k in ("logratio_std", "clip_frac", "grad_norm", "cos_mb1",
                                                             "equal_share") if k in stats}  # per optimiser step
    G = cfg.group_size
    reward_std = r.rewards.view(-1, G).std(dim=1, unbiased=False).mean().item()  # in-group spread
    distinct = sum(len(set(r.texts[i:i + G])) for i in range(0, len(r.texts), G)) / (len(r.texts) // G)
    return sum(losses) / len(losses), dict(stats, reward=r.rewards.mean().item(), reward_std=reward_std,
                                           distinct=distinct, draws=r.draws, filled=r.filled,
                                           lr=run.opt.param_groups[0]["lr"], response_tokens=tokens / len(r.rewards),
                                           **(r.logged or {}),
                                           truncated_frac=r.truncated.float().mean().item(), sample_time=r.sample_time,
                                           new_tokens=int(tokens), entropy=entropy / (tokens * cfg.inner_steps),
                                           kl=kl / (tokens * cfg.inner_steps), skipped=False, **traces)


def rl_step(run, cfg):
    """One RL step (GRPO-Zero's shape): a rollout, then the policy update. (loss, stats), like sft_step."""
    r = rollout(run, cfg)
    loss, stats = update_policy(run, cfg, r)
    if run.monitor and cfg.log_samples_every and (run.step - cfg.sft_steps + 1) % cfg.log_samples_every == 0:
        log_samples(run, cfg, r)
    return loss, stats


@torch.no_grad()
def log_samples(run, cfg, r, groups=2):
    """A few groups to samples.jsonl (gift/monitor.py) with their log-ratios to pi_ref (pi_old for GRPO) after the
    update: what the implicit reward looks like once the step has moved it."""
    rows = slice(0, groups * cfg.group_size)
    logp = response_logprobs(run.policy.eval(), r.idx[rows], r.mask[rows], cfg, cfg.temperature)[0]
    ref = (r.old_logp if r.ref_logp is None else r.ref_logp)[rows]
    logratio = ((logp - ref) * r.mask[rows]).sum(dim=1)
    run.monitor.samples(run.step, sample_groups(r.questions, r.texts, r.rewards, logratio, r.truncated.tolist(),
                                                cfg.group_size, groups))


# ----------------------------------------------------------------------------------------------------------------
# the run: setup, evaluations, checkpoints, the loop


def setup(cfg, loss_fn=None):
    """Processes and device, seeds, task, model, optimiser, loss (LOSSES[cfg.method], or an experiment's own
    loss_fn(batch, cfg) of the same signature) and reference; with --resume the checkpoint's state; the run folder
    (locked). Everything that can be refused is refused before any training."""
    world, rank = init_processes(cfg)  # torchrun's ranks (DDP), the device, the thread count
    run_dir = os.path.join(cfg.out_dir, cfg.run_name)
    check_fresh(run_dir, cfg)  # run_dir itself is made only once there is something to write
    torch.manual_seed(cfg.seed)  # the same on every rank: identical initial weights; sampling seeds are per prompt
    random.seed(cfg.seed)
    np.random.seed(cfg.seed)
    task = make_task(cfg)  # data first: a missing GSM8K folder is reported before any download
    pool = [rl_example(task, k, cfg) for k in range(min(cfg.rl_pool, cfg.eval_problems))]
    model, enc = load_model(cfg.init, cfg.task, task.byte_tokenizer)
    model.to(cfg.device).grad_ckpt = cfg.grad_ckpt  # gift/model.py: torch.utils.checkpoint per block in training
    if cfg.lora_rank:  # gift/lora.py: adapters on every block's projections, everything else frozen
        if world > 1:
            raise SystemExit("error: --lora_rank with several ranks (DDP) is not supported; run one process")
        add_lora(model, cfg.lora_rank, cfg.lora_alpha or None)
    matches_ref = getattr(LOSSES[cfg.method], "uses_ref", False)  # GIFT, UNA: --ref; GRPO: its KL anchor, if any
    ref_kind = cfg.ref if matches_ref else ("frozen" if cfg.kl_coef else "none")
    run = Run(rank, world, run_dir, task, pool, model, enc, make_optimizer(model, cfg.sft_lr if cfg.sft_steps else
              cfg.rl_lr, cfg), loss_fn or LOSSES[cfg.method], Reference(ref_kind, cfg.ref_every, cfg.lora_rank > 0))
    if cfg.resume:
        resume_run(run, cfg, RESUMABLE, lambda: make_optimizer(run.model, cfg.rl_lr, cfg))
    if cfg.kl_sft:  # a frozen copy of the RL run's starting model, for the kl_sft log
        if cfg.sft_steps:
            raise SystemExit("error: --kl_sft measures the distance to --init; use it for RL from an SFT checkpoint "
                             "(--init=out/RUN/sft.pt --sft_steps=0)")
        run.sft_model = load_model(cfg.init, cfg.task, task.byte_tokenizer)[0].to(cfg.device).eval()
        run.sft_model.requires_grad_(False)
    if cfg.grad_stats:
        if world > 1:
            raise SystemExit("error: --grad_stats measures one process's gradient; run it without torchrun")
        run.probe = GradientProbe(run.policy)
    if rank == 0:
        run.monitor = Monitor(run_dir, cfg.tensorboard)
        run.lock = open_run_dir(run_dir, cfg, run.step, OUTPUTS)
    if world > 1:
        run.model = DDP(run.model)
    return run


def evaluate_heldout(run, cfg, problems=None):
    """Greedy pass@1 on the (first `problems`) held-out problems, the task's own metrics, and with --rl_pool the
    pool's accuracy."""
    t0, heldout = time.time(), run.task.heldout[:problems]
    res = evaluate(run.policy, run.enc, heldout, batch_size=cfg.eval_batch, max_new_tokens=cfg.max_new_tokens)
    out = dict(accuracy=res["pass@1"], ci95=res["pass@1_ci"], **run.task.metrics(heldout, res["completions"],
                                                                                 res["per_problem"]))
    if run.pool and problems is None:  # the same greedy score on the problems RL trains on
        out["train_accuracy"] = evaluate(run.policy, run.enc, run.pool, batch_size=cfg.eval_batch,
                                         max_new_tokens=cfg.max_new_tokens)["pass@1"]
    run.books["eval_time"] += time.time() - t0  # so that accuracy can be plotted against training time alone
    return out


def start_rl(run, cfg):
    """SFT -> RL: evaluate the SFT model, then a fresh optimiser at the RL learning rate."""
    run.books["sft_eval"] = evaluate_heldout(run, cfg)
    run.books["sft_accuracy"] = run.books["sft_eval"]["accuracy"]
    run.log(dict(step=run.step, stage="sft_eval", **{f"heldout_{k}": v for k, v in run.books["sft_eval"].items()}))
    run.say(f"SFT held-out: {run.fmt(run.books['sft_eval'])} ({len(run.task.heldout)} problems)")
    if cfg.lora_rank and cfg.sft_steps:  # the SFT adapters join the base weights, so the base is the SFT model
        add_lora(merge_lora(run.policy), cfg.lora_rank, cfg.lora_alpha or None)
    run.opt = make_optimizer(run.model, cfg.rl_lr, cfg)


def train(run, cfg):
    """The SFT steps, then the RL steps, from run.step on; False when --stop_after ended it early."""
    total = cfg.sft_steps + cfg.rl_steps
    run.start_time = start = time.time() - run.books["elapsed"]
    t_last = time.time()
    while run.step < total:
        rl = run.step >= cfg.sft_steps
        if rl and run.books["sft_accuracy"] is None:
            start_rl(run, cfg)
        if rl:
            run.reference.before_rl_step(run.policy, run.step - cfg.sft_steps)
        loss, stats = rl_step(run, cfg) if rl else sft_step(run, cfg)
        skipped = stats.pop("skipped")
        run.books["bad_steps"] = run.books["bad_steps"] + 1 if skipped else 0
        record = dict(step=run.step, stage="rl" if rl else "sft", loss=loss, skipped=skipped,
                      time=time.time() - start, eval_time=run.books["eval_time"], **stats)  # seconds so far
        run.step += 1
        if rl and run.step < total and cfg.eval_every and (run.step - cfg.sft_steps) % cfg.eval_every == 0:
            record.update({f"heldout_{k}": v for k, v in evaluate_heldout(run, cfg).items()})
        if rl and run.step < total and cfg.watch_every and (run.step - cfg.sft_steps) % cfg.watch_every == 0:
            record["watch_accuracy"] = evaluate_heldout(run, cfg, cfg.watch_problems)["accuracy"]
        run.log(record)
        if run.books["bad_steps"] >= cfg.max_bad_steps:
            raise SystemExit(f"error: {cfg.max_bad_steps} non-finite losses in a row at step {run.step - 1}; "
                             f"stopping. Skipped steps never update the weights; last checkpoint: "
                             f"{run.path('ckpt.pt')}")
        if run.step % cfg.log_every == 0 or run.step == total:
            run.progress(record, total, (time.time() - t_last) / cfg.log_every)
            t_last = time.time()
        run.books["elapsed"] = time.time() - start
        if run.rank == 0 and (run.step % cfg.ckpt_every == 0 or run.step in (cfg.sft_steps, total, cfg.stop_after)):
            save_run(run, cfg, "ckpt.pt")
        if run.rank == 0 and run.step == cfg.sft_steps:  # --init=out/RUN/sft.pt --sft_steps=0 starts RL from it
            save_run(run, cfg, "sft.pt")
        if run.step == cfg.stop_after:
            run.say(f"stopped after step {run.step} (--stop_after); continue with --resume")
            return False
    return True


def main(argv, loss_fn=None):
    """SFT -> RL -> evaluation for the config in argv; the summary (also in summary.json), None if stopped early.
    loss_fn: an experiment's own objective in place of LOSSES[--method] (experiments/beta.py)."""
    cfg = parse_args(argv)
    run = setup(cfg, loss_fn)
    try:
        if not train(run, cfg):  # --stop_after ended it: a checkpoint to --resume from, no summary
            return None
        return run.summarize(cfg, evaluate_heldout(run, cfg))  # summary.json (gift/runs.py)
    except KeyboardInterrupt:  # Ctrl-C: one line with the step reached and the command that continues
        raise SystemExit(interrupted(run, argv)) from None
    finally:
        if run.monitor:
            run.monitor.close()
        if run.lock:
            run.lock.release()
        if run.world > 1:
            dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1:])
