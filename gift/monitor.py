"""What to watch while RL trains: a few sampled groups in samples.jsonl, and TensorBoard (optional).

GIFT's loss is not a progress signal: it is 2 (1 - rho) per group, the misfit between the group's z-scored rewards
and z-scored log-ratios, and it stays near its starting value while the policy improves (each step's pi_ref is the
policy that sampled, so every rollout starts the fit afresh). Watch instead the reward and held-out accuracy, the
share of groups whose rewards differ (informative_frac: no spread, no signal), the reward's in-group spread
(reward_std), the share of responses cut at --max_new_tokens (truncated_frac: a truncated response has no final
answer, so a reward that stays flat with many truncations is a length problem, not a learning one), and the samples
themselves. docs/training.md ("Reading a run") says more.

samples.jsonl, one line per logged group (train.py --log_samples_every=N, every N RL steps):
    {"step", "prompt", "beta": std(r) / std(logratio) (the group's implied beta(x); null when the log-ratios are
     all equal), "completions": [{"text", "reward", "z_reward", "logratio", "z_logratio", "truncated"}, ...]}
logratio is sum_t log pi_theta - log pi_ref over the response after the step's update: the implicit reward over beta
that the step moved towards the rewards.
"""
import dataclasses
import json
import os

import torch

from gift.kernels import response_logprobs
from gift.loss import group_zscore, kl_k3


def sample_groups(prompts, texts, rewards, logratio, truncated, group_size, n_groups):
    """The first n_groups groups as dicts (module docstring). prompts: B strings; texts, truncated: B*G;
    rewards, logratio: (B*G,) tensors."""
    G, n = group_size, min(n_groups, len(prompts))
    r, lr = rewards[: n * G].double().cpu(), logratio[: n * G].double().cpu()
    z_r, z_l = group_zscore(r, G, std_floor=1e-12), group_zscore(lr, G, std_floor=1e-12)
    out = []
    for g in range(n):
        rows = range(g * G, (g + 1) * G)
        std_r, std_l = r[g * G:(g + 1) * G].std(unbiased=False).item(), lr[g * G:(g + 1) * G].std(unbiased=False).item()
        out.append(dict(prompt=prompts[g], beta=std_r / std_l if std_l > 0 else None, completions=[
            dict(text=texts[i], reward=r[i].item(), z_reward=z_r.flatten()[i].item(), logratio=lr[i].item(),
                 z_logratio=z_l.flatten()[i].item(), truncated=bool(truncated[i])) for i in rows]))
    return out


class Monitor:
    """samples.jsonl in the run folder, and TensorBoard scalars and sample tables when asked (rank 0 only)."""

    def __init__(self, run_dir, tensorboard=False):
        self.path, self.tb_dir, self._writer = os.path.join(run_dir, "samples.jsonl"), None, None
        if tensorboard:  # checked now, before any training; the writer (and its folder) is made at the first record
            try:
                from torch.utils.tensorboard import SummaryWriter  # noqa: F401
            except ImportError:
                raise SystemExit("error: --tensorboard needs the tensorboard package: pip install tensorboard") \
                    from None
            self.tb_dir = os.path.join(run_dir, "tensorboard")

    @property
    def writer(self):
        if self._writer is None and self.tb_dir:
            from torch.utils.tensorboard import SummaryWriter
            self._writer = SummaryWriter(self.tb_dir)
        return self._writer

    def scalars(self, record):
        """Every number of a metrics.jsonl record, under its stage (sft/, rl/, heldout/)."""
        if self.writer is None:
            return
        for key, value in record.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool) and key != "step":
                tag = f"heldout/{key[8:]}" if key.startswith("heldout_") else f"{record.get('stage', 'run')}/{key}"
                self.writer.add_scalar(tag, value, record["step"])

    def samples(self, step, groups):
        with open(self.path, "a") as f:
            for group in groups:
                f.write(json.dumps(dict(step=step, **group)) + "\n")
        if self.writer is not None:
            rows = ["| reward | z(r) | logratio | z(logratio) | truncated | response |", "|---|---|---|---|---|---|"]
            for group in groups:
                rows += [f"| {c['reward']:.3g} | {c['z_reward']:+.2f} | {c['logratio']:+.3f} | {c['z_logratio']:+.2f} "
                         f"| {c['truncated']} | {c['text'][:200]!r} |" for c in group["completions"]]
            self.writer.add_text("samples", "\n".join(rows), step)
            self.writer.flush()

    def close(self):
        if self._writer is not None:
            self._writer.close()


class GradientProbe:
    """Where a step's gradient comes from (train.py --grad_stats; experiments/writers_plateau.py reads it). Per
    optimiser step of a rollout, before clipping:

    cos_mb1      cosine of the step's gradient with the rollout's first one (for GIFT with pi_ref = pi_old the first
                 mini-batch's log-ratios are all 0, so its gradient is GRPO's REINFORCE direction); None (null in
                 metrics.jsonl) when either gradient is 0 (e.g. every group of mini-batch 1 has equal rewards): no
                 direction to compare, so no cosine, rather than a 0 that would read as "at right angles"
    equal_share  the part of the gradient from groups whose rewards are all equal: <g_equal, g> / |g|^2 (the rest is
                 the other groups'; for GRPO and DAPO it is exactly 0, their advantages are 0 there)

    The probe works on its own copy of each micro-batch's forward pass (logprobs(idx, mask) recomputes the log-probs
    with their graph), so the training step's backward and its .grad are exactly those of a run without it: g is the
    weighted sum of the micro-batches' gradients, as .grad accumulates them, and g_equal the same sum with the other
    groups' log-probs detached (the loss is a sum over groups, so this is exactly their share). One process only
    (under DDP the step's gradient is the ranks' mean, the probe's would be local)."""

    def __init__(self, model, loss_fn, cfg, logprobs):
        self.model, self.loss_fn, self.cfg, self.logprobs = model, loss_fn, cfg, logprobs
        self.params, self.first, self.grad, self.equal = [], None, None, None

    def new_rollout(self):
        self.params = [p for p in self.model.parameters() if p.requires_grad]  # LoRA re-adds adapters at RL's start
        self.first = None

    def _flat(self, loss, retain_graph=False):
        grads = torch.autograd.grad(loss, self.params, allow_unused=True, retain_graph=retain_graph)
        return torch.cat([(g if g is not None else torch.zeros_like(p)).flatten().float()
                          for g, p in zip(grads, self.params)])

    def micro_batch(self, idx, mask, batch, weight):
        """Add one micro-batch (its rows idx, mask and RLBatch, weighted as in the step) to g and g_equal."""
        batch = dataclasses.replace(batch, logp=self.logprobs(idx, mask))
        loss = self.loss_fn(batch, self.cfg)[0]
        g = self._flat(loss * weight, retain_graph=True)
        self.grad = g if self.grad is None else self.grad + g
        groups = batch.rewards.view(-1, batch.group_size)
        equal = (groups.amax(dim=1) == groups.amin(dim=1)).repeat_interleave(batch.group_size)[:, None]  # (N, 1)
        if equal.any():
            only_equal = dataclasses.replace(batch, logp=torch.where(equal, batch.logp, batch.logp.detach()))
            part = self._flat(self.loss_fn(only_equal, self.cfg)[0] * weight)
            self.equal = part if self.equal is None else self.equal + part

    def step_stats(self):
        """After a mini-batch's micro-batches: (cos_mb1, equal_share) of its gradient."""
        g, self.grad = self.grad, None
        if self.first is None:
            self.first = g.clone()
        norm2 = g.dot(g).clamp_min(1e-30)
        defined = bool(g.any()) and bool(self.first.any())
        cos = (g.dot(self.first) / (norm2.sqrt() * self.first.norm())).item() if defined else None
        share = 0.0 if self.equal is None else (self.equal.dot(g) / norm2).item()
        self.equal = None
        return cos, share


class UpdateLog:
    """What one policy update logs besides its loss (train.update_policy feeds it each micro-batch and optimiser
    step): the loss's own statistics (a mean over the optimiser steps, and per optimiser step for the traces), the
    entropy and the k3 KL to pi_ref per response token, the reward, its in-group spread, distinct responses per group,
    and with --grad_stats the GradientProbe's numbers."""

    TRACES = ("logratio_std", "clip_frac", "grad_norm", "cos_mb1", "equal_share")  # also logged per optimiser step

    def __init__(self, run, cfg, rollout):
        self.run, self.cfg, self.r = run, cfg, rollout
        self.per_step, self.stats, self.entropy, self.kl = [], {}, 0.0, 0.0
        if run.probe:
            run.probe.new_rollout()

    def micro_batch(self, rows, batch, weight, stats, entropy):
        """rows: the micro-batch's row slice of the rollout; stats: the loss's; entropy: (n, L-1) per token."""
        self.stats = {k: self.stats.get(k, 0.0) + v * weight for k, v in stats.items()}
        with torch.no_grad():
            self.entropy += (entropy * batch.mask).sum().item()
            if batch.ref_logp is not None:  # k3 estimate of KL(pi_theta || pi_ref) per response token
                self.kl += (kl_k3(batch.logp, batch.ref_logp) * batch.mask).sum().item()
        if self.run.probe:
            self.run.probe.micro_batch(self.r.idx[rows], self.r.mask[rows], batch, weight)

    def optimizer_step(self, grad_norm):
        if self.run.probe:
            self.stats["cos_mb1"], self.stats["equal_share"] = self.run.probe.step_stats()
        self.stats["grad_norm"] = grad_norm
        self.per_step.append(self.stats)
        self.stats = {}

    def summary(self):
        r, cfg, per_step = self.r, self.cfg, self.per_step
        tokens = r.mask.sum().item()
        stats = {k: mean([s[k] for s in per_step]) for k in per_step[0]}  # mean over optimiser steps
        traces = {f"{k}_mb": [s[k] for s in per_step] for k in self.TRACES if k in stats}  # per optimiser step
        G = cfg.group_size
        reward_std = r.rewards.view(-1, G).std(dim=1, unbiased=False).mean().item()  # in-group spread
        distinct = sum(len(set(r.texts[i:i + G])) for i in range(0, len(r.texts), G)) / (len(r.texts) // G)
        return dict(stats, reward=r.rewards.mean().item(), reward_std=reward_std, distinct=distinct, draws=r.draws,
                    filled=r.filled, lr=self.run.opt.param_groups[0]["lr"], response_tokens=tokens / len(r.rewards),
                    **(r.logged or {}), truncated_frac=r.truncated.float().mean().item(), sample_time=r.sample_time,
                    new_tokens=int(tokens), entropy=self.entropy / (tokens * cfg.inner_steps),
                    kl=self.kl / (tokens * cfg.inner_steps), skipped=False, **traces)


def mean(values):
    """The mean of the values that are defined (a cosine with a zero gradient is None); None if none is."""
    defined = [v for v in values if v is not None]
    return sum(defined) / len(defined) if defined else None


@torch.no_grad()
def rollout_logs(run, groups, old_logp, score, mask):
    """Per-step numbers of a rollout's samples: the means of the task's extras (e.g. the rlhf task's true utility)
    and, with --kl_sft, the k3 estimate of KL(pi_old || pi_SFT) per response token."""
    n = sum(len(g.sequences) for g in groups)
    logged = {k: sum(e[k] for g in groups for e in g.extras) / n for k in (groups[0].extras[0] if groups[0].extras
                                                                           else {})}
    if run.sft_model is not None:
        logged["kl_sft"] = ((kl_k3(old_logp, score(run.sft_model)) * mask).sum() / mask.sum()).item()
    return logged


@torch.no_grad()
def log_samples(run, cfg, r, groups=2):
    """Every --log_samples_every RL steps, a few groups to samples.jsonl with their log-ratios to pi_ref (pi_old for
    GRPO) after the update: what the implicit reward looks like once the step has moved it."""
    if not (run.monitor and cfg.log_samples_every and (run.step - cfg.sft_steps + 1) % cfg.log_samples_every == 0):
        return
    rows = slice(0, groups * cfg.group_size)
    logp = response_logprobs(run.policy.eval(), r.idx[rows], r.mask[rows], cfg, cfg.temperature)[0]
    ref = (r.old_logp if r.ref_logp is None else r.ref_logp)[rows]
    logratio = ((logp - ref) * r.mask[rows]).sum(dim=1)
    run.monitor.samples(run.step, sample_groups(r.questions, r.texts, r.rewards, logratio, r.truncated.tolist(),
                                                cfg.group_size, groups))
