"""SFT, then GIFT (or GRPO) RL, then a held-out evaluation: the method in one file, read top to bottom.

    python train.py                                  # built-in task on a CPU, no download
    python train.py --method=grpo --seed=1           # any setting: --key=value (--help, --help-all list them)
    python train.py --task=gsm8k --init=gpt2 ...     # GSM8K from GPT-2 (GPU settings: docs/gsm8k.md)
    torchrun --standalone --nproc-per-node=2 train.py ...  # DDP: prompts sharded over ranks, whole groups each

One RL step (`rl_step`) is GRPO-Zero's shape: `rollout` (sample G responses to each of B prompts and score them;
their log-probs under pi_old and pi_ref), then `update_policy` (K mini-batches of whole groups, one optimiser step
each, with the loss `--method` names in gift/loss.py). Only the loss differs between methods. What a reader of the
method can skip sits behind named seams: sharding (gift/shard.py), pi_ref (gift/reference.py), DAPO's resampling
(gift/resample.py), logs and probes (gift/monitor.py), memory (gift/memory.py), run folder and checkpoints
(gift/runs.py). Writes out/<run>/: metrics.jsonl, samples.jsonl, ckpt.pt, sft.pt, summary.json.
"""

import math
import os
import random
import sys
import time
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch

from gift import data
from gift.evaluation import evaluate_heldout
from gift.kernels import response_logprobs
from gift.loss import LOSSES, BaselineSettings, RLBatch
from gift.memory import MemorySettings, check_fits, fit_memory, new_adapters
from gift.monitor import UpdateLog, log_samples, rollout_logs
from gift.reference import Reference
from gift.resample import DynamicSampling, one_round
from gift.runs import (OPTIMIZERS, Run, RunSettings, check_fresh, interrupted, load_model,  # noqa: F401
                       make_optimizer, open_run, resumed_config)
from gift.sampler import generate
from gift.settings import check_config, parse_config, require, resumable, setting
from gift.shard import init_processes
from gift.tasks import TASKS, TaskSettings, make_task, rl_example
from gift.tokenizer import response_text, stop_ids
from gift.verifier import calculate


@dataclass
class Config(BaselineSettings, TaskSettings, MemorySettings, RunSettings):
    """The method's settings (`--help`); `--help-all` adds the baselines' options (gift/loss.py), the task variants
    (gift/tasks.py), memory (gift/memory.py) and bookkeeping (gift/runs.py)."""
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
    detach_std: bool = setting(True, "GIFT: the log-ratio's group std is a constant (the author's choice)",
                               section="ablations of the author's recipe (experiments/)")
    mask_degenerate: bool = setting(False, "GIFT: zero loss for groups with equal rewards (the author keeps them)")
    ref_every: int = setting(10, "--ref=refresh: RL steps between copies of the policy into pi_ref")
    inner_steps: int = setting(1, "passes over a step's samples (each pass: K optimiser steps)")
    weight_decay: float = setting(0.0, "AdamW weight decay (SFT and RL)")

    def check(self):
        require(self, choices=dict(task=TASKS, method=LOSSES, ref=("old", "frozen", "refresh"),
                                   dtype=("float32", "bfloat16"), rl_schedule=("constant", "cosine")),
                at_least=dict(sft_batch=1, prompts=1, group_size=2, minibatches=1, inner_steps=1, max_new_tokens=1,
                              ref_every=1), positive=("sft_lr", "rl_lr", "std_floor", "temperature"),
                within=dict(grad_clip=(0, math.inf)))
        if self.prompts % self.minibatches:
            raise SystemExit(f"error: --prompts={self.prompts} must be divisible by --minibatches={self.minibatches}")


RESUMABLE = resumable(Config)  # settings a resumed run may change: they do not change what it computes


def parse_args(argv):
    """The Config of a command line, every setting checked before any work: one error line for the first bad one."""
    cfg = parse_config(Config, argv, __doc__.split("\n\n")[0])
    cfg.run_name = cfg.run_name or f"{cfg.task}-{cfg.method}-s{cfg.seed}"
    if cfg.resume:  # the checkpoint's settings, changed only where argv may change them (gift/runs.py)
        cfg = resumed_config(cfg, argv, RESUMABLE)
    check_config(cfg)  # each settings class checks its own (Config.check above, and its bases')
    return cfg


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


def set_lr(run, lr):
    for group in run.opt.param_groups:
        group["lr"] = lr


def sft_step(run, cfg):
    """One next-token step on B solutions (response tokens only; the prompt is context): (loss, stats)."""
    examples = [run.task.train_example(j) for j in run.shard.sft_slots(run.step, cfg.sft_batch)]
    prompts, rows = data.encode_batch(run.enc, examples, with_solution=True)
    idx, mask = (t.to(cfg.device) for t in data.pad_rows(rows, [len(p) for p in prompts]))
    s = run.step
    warmup, cosine = min(1.0, (s + 1) / cfg.sft_warmup), 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * s / cfg.sft_steps))
    set_lr(run, cfg.sft_lr * warmup * cosine)  # linear warm-up, then cosine decay to a tenth
    run.model.train()
    logp, _ = response_logprobs(run.model, idx, mask, cfg)
    n_tokens = run.shard.all_sum(mask.sum())  # every rank's solution tokens
    loss = -logp.sum() * run.world / n_tokens  # mean NLL per token (DDP averages the ranks' gradients: x world)
    run.opt.zero_grad(set_to_none=True)
    loss.backward()
    ok, norm = optimizer_step(run, cfg, loss.item())
    return loss.item(), dict(lr=run.opt.param_groups[0]["lr"], tokens=int(n_tokens), grad_norm=norm, skipped=not ok)


def rl_prompts(run, cfg):
    """This rank's share of the next B prompts of the RL stream (gift/shard.py lays it out: mini-batch k holds the
    round's prompts k*B/K .. (k+1)*B/K - 1) and their sampling seeds, one per prompt, so that ranks sample exactly
    what one process would."""
    slots = run.shard.rl_slots(run.books.rl_drawn, cfg.prompts, cfg.minibatches)
    run.books.rl_drawn += cfg.prompts
    return [rl_example(run.task, j, cfg.rl_pool) for j in slots], [(cfg.seed * 1_000_003 + j) % 2**62 for j in slots]


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


def generate_groups(run, cfg, examples, seeds):
    """G responses to each example from the current policy (gift/sampler.py), scored by the task: one Group each."""
    G, enc = cfg.group_size, run.enc
    prompts = data.encode_batch(enc, examples, with_solution=False)
    out = generate(run.policy.eval(), prompts, num_samples=G, max_new_tokens=cfg.max_new_tokens,
                   temperature=cfg.temperature, stop_tokens=stop_ids(enc), calculator=calculate, tokenizer=enc,
                   dtype=torch.bfloat16 if cfg.dtype == "bfloat16" else None, seed=seeds,
                   decode_graphs=run.decode_graphs, chunk=cfg.sample_chunk)  # the calculator writes each <<expr=
    groups = []
    for i, ex in enumerate(examples):
        seqs = out.sequences[i * G:(i + 1) * G]
        texts = [response_text(enc, seq) for seq in seqs]
        groups.append(Group(ex.question, prompts[i], seqs, [out.mask[i * G + j, :len(s)] for j, s in enumerate(seqs)],
                            texts, [run.task.reward(t, ex) for t in texts], out.finished[i * G:(i + 1) * G].tolist(),
                            [run.task.extras(t, ex) for t in texts] if run.task.extras else None))
    return groups


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


def rollout(run, cfg):
    """Sample G responses per prompt from the current policy, score them, and take their log-probs under pi_old and
    pi_ref. run.draw takes one round of B prompts, or for DAPO as many rounds as fill the step (gift/resample.py)."""
    G, t0 = cfg.group_size, time.time()
    groups, draws, filled = run.draw(lambda: generate_groups(run, cfg, *rl_prompts(run, cfg)))
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
        ref_logp = run.reference.logprobs(old_logp, score, run.policy)  # gift/reference.py
    rewards = torch.tensor([r for g in groups for r in g.rewards], device=cfg.device)
    truncated = torch.tensor([not f for g in groups for f in g.finished], device=cfg.device)
    return Rollout(idx, mask, rewards, old_logp, ref_logp, batches, sample_time, [g.question for g in groups],
                   [t for g in groups for t in g.texts], truncated, draws, filled,
                   rollout_logs(run, groups, old_logp, score, mask))  # the task's extras, --kl_sft


def update_policy(run, cfg, r):
    """One optimiser step per mini-batch of the rollout (`inner_steps` passes), with the loss --method names; a
    mini-batch's gradient is accumulated over its micro-batches, each weighted by its share of the rows."""
    run.model.train()
    if cfg.rl_schedule == "cosine":  # from rl_lr down to 0 over the RL steps (else the rate stays rl_lr)
        set_lr(run, cfg.rl_lr * 0.5 * (1 + math.cos(math.pi * (run.step - cfg.sft_steps) / cfg.rl_steps)))
    # BEGIN SOLUTION update
    # HINT: per pass and mini-batch: backward each micro-batch's loss x its share of the rows, then one optimizer_step
    log, losses, n = UpdateLog(run, cfg, r), [], len(r.rewards) // cfg.minibatches  # n: rows in a mini-batch
    for _ in range(cfg.inner_steps):
        for mb in r.batches:
            total = 0.0
            for rs in mb:  # micro-batches, weighted to sum to the mini-batch's loss
                logp, entropy = response_logprobs(run.model, r.idx[rs], r.mask[rs], cfg, cfg.temperature)  # (n, L-1)
                batch = RLBatch(logp, r.old_logp[rs], None if r.ref_logp is None else r.ref_logp[rs], r.rewards[rs],
                                r.mask[rs], cfg.group_size, cfg.max_new_tokens, r.truncated[rs])
                weight = (rs.stop - rs.start) / n
                loss, stats = run.loss_fn(batch, cfg)  # gift/loss.py
                (loss * weight).backward()
                total += loss.item() * weight
                log.micro_batch(rs, batch, weight, stats, entropy)  # entropy, KL, --grad_stats (gift/monitor.py)
            ok, grad_norm = optimizer_step(run, cfg, total)
            if not ok:
                return float("nan"), dict(skipped=True)
            losses.append(total)
            log.optimizer_step(grad_norm)
    return sum(losses) / len(losses), log.summary()
    # END SOLUTION


def rl_step(run, cfg):
    """One RL step (GRPO-Zero's shape): a rollout, then the policy update. (loss, stats), like sft_step."""
    r = rollout(run, cfg)
    loss, stats = update_policy(run, cfg, r)
    log_samples(run, cfg, r)  # every --log_samples_every steps, a few groups to samples.jsonl (gift/monitor.py)
    return loss, stats


# ----------------------------------------------------------------------------------------------------------------
# the run: setup, evaluations, checkpoints, the loop


def setup(cfg, loss_fn=None):
    """Processes, seeds, task, model, optimiser, loss (LOSSES[cfg.method], or an experiment's own loss_fn(batch, cfg))
    and reference; then gift/runs.py's open_run (--resume, logs, probes, the locked run folder)."""
    shard = init_processes(cfg)  # torchrun's ranks (DDP), the device, the thread count (gift/shard.py)
    run_dir = os.path.join(cfg.out_dir, cfg.run_name)
    check_fresh(run_dir, cfg)  # run_dir itself is made only once there is something to write
    torch.manual_seed(cfg.seed)  # the same on every rank: identical initial weights; sampling seeds are per prompt
    random.seed(cfg.seed)
    np.random.seed(cfg.seed)
    task = make_task(cfg)  # data first: a missing GSM8K folder is reported before any download
    check_fits(cfg)  # with --gpu_memory=N, a run the planner says does not fit is refused here (gift/memory.py)
    pool = [rl_example(task, k, cfg.rl_pool) for k in range(min(cfg.rl_pool, cfg.eval_problems))]
    model, enc = load_model(cfg.init, cfg.task, task.byte_tokenizer)
    model = fit_memory(model, cfg, shard).to(cfg.device)  # --grad_ckpt, LoRA, the nf4 base (gift/memory.py)
    method = LOSSES[cfg.method]
    run = Run(shard, run_dir, task, pool, model, enc, make_optimizer(model, cfg.sft_lr if cfg.sft_steps else cfg.rl_lr,
              cfg), loss_fn or method, Reference.of(method, cfg), DynamicSampling(cfg, shard)
              if method.filter_groups else one_round)
    return open_run(run, cfg, response_logprobs)


def start_rl(run, cfg):
    """SFT -> RL: evaluate the SFT model, then a fresh optimiser at the RL learning rate."""
    run.books.sft_eval = evaluate_heldout(run, cfg)
    run.books.sft_accuracy = run.books.sft_eval["accuracy"]
    run.log(dict(step=run.step, stage="sft_eval", **{f"heldout_{k}": v for k, v in run.books.sft_eval.items()}))
    run.say(f"SFT held-out: {run.fmt(run.books.sft_eval)} ({len(run.task.heldout)} problems)")
    new_adapters(run.policy, cfg)  # LoRA: the SFT adapters join the base, so pi_ref's base is the SFT model
    run.opt = make_optimizer(run.model, cfg.rl_lr, cfg)


def train(run, cfg):
    """The SFT steps, then the RL steps, from run.step on; False when --stop_after ended it early."""
    total = cfg.sft_steps + cfg.rl_steps
    run.start_time = start = time.time() - run.books.elapsed
    t_last = time.time()
    while run.step < total:
        rl = run.step >= cfg.sft_steps
        if rl and run.books.sft_accuracy is None:
            start_rl(run, cfg)
        if rl:
            run.reference.before_rl_step(run.policy, run.step - cfg.sft_steps)
        loss, stats = rl_step(run, cfg) if rl else sft_step(run, cfg)
        skipped = stats.pop("skipped")
        record = dict(step=run.step, stage="rl" if rl else "sft", loss=loss, skipped=skipped,
                      time=time.time() - start, eval_time=run.books.eval_time, **stats)  # seconds so far
        run.step += 1
        if rl and run.step < total and cfg.eval_every and (run.step - cfg.sft_steps) % cfg.eval_every == 0:
            record.update({f"heldout_{k}": v for k, v in evaluate_heldout(run, cfg).items()})
        if rl and run.step < total and cfg.watch_every and (run.step - cfg.sft_steps) % cfg.watch_every == 0:
            record["watch_accuracy"] = evaluate_heldout(run, cfg, cfg.watch_problems)["accuracy"]
        run.log(record)
        run.count_skipped(skipped, cfg)  # stops after --max_bad_steps non-finite steps in a row (gift/runs.py)
        if run.step % cfg.log_every == 0 or run.step == total:
            run.progress(record, cfg, (time.time() - t_last) / cfg.log_every)
            t_last = time.time()
        run.books.elapsed = time.time() - start
        run.checkpoint(cfg)  # ckpt.pt every --ckpt_every steps and at the end; sft.pt after SFT (gift/runs.py)
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
        run.close()  # the logs, the run folder's lock, the process group


if __name__ == "__main__":
    main(sys.argv[1:])
