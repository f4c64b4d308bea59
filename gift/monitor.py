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

from gift.loss import group_zscore


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
                 mini-batch's log-ratios are all 0, so its gradient is GRPO's REINFORCE direction); 0 when either is 0
    equal_share  the part of the gradient from groups whose rewards are all equal: <g_equal, g> / |g|^2 (the rest is
                 the other groups'; for GRPO and DAPO it is exactly 0, their advantages are 0 there)

    g_equal comes from a second backward pass of the same loss with the other groups' log-probs detached (the loss
    is a sum over groups, so this is exactly their share); the first, ordinary pass fills .grad as without the probe,
    so the update is the same. One process only (under DDP .grad is the ranks' mean, g_equal would be local)."""

    def __init__(self, model):
        self.model, self.params, self.first, self.equal = model, [], None, None

    def new_rollout(self):
        self.params = [p for p in self.model.parameters() if p.requires_grad]  # LoRA re-adds adapters at RL's start
        self.first = None

    def backward(self, loss_fn, batch, cfg, weight):
        """loss_fn(batch, cfg), backpropagated into .grad with `weight`, plus the equal-reward groups' part of it
        into self.equal; returns what loss_fn returns."""
        loss, stats = loss_fn(batch, cfg)
        (loss * weight).backward(retain_graph=True)
        groups = batch.rewards.view(-1, batch.group_size)
        equal = (groups.amax(dim=1) == groups.amin(dim=1)).repeat_interleave(batch.group_size)[:, None]  # (N, 1)
        if equal.any():
            only_equal = dataclasses.replace(batch, logp=torch.where(equal, batch.logp, batch.logp.detach()))
            part = loss_fn(only_equal, cfg)[0] * weight
            grads = torch.autograd.grad(part, self.params, allow_unused=True)
            flat = torch.cat([(g if g is not None else torch.zeros_like(p)).flatten().float()
                              for g, p in zip(grads, self.params)])
            self.equal = flat if self.equal is None else self.equal + flat
        return loss, stats

    def step_stats(self):
        """Call after the mini-batch's backward passes, before the optimiser step: (cos_mb1, equal_share)."""
        g = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).flatten().float()
                       for p in self.params])
        if self.first is None:
            self.first = g.clone()
        norm2 = g.dot(g).clamp_min(1e-30)
        cos = (g.dot(self.first) / (norm2.sqrt() * self.first.norm().clamp_min(1e-30))).item()
        share = 0.0 if self.equal is None else (self.equal.dot(g) / norm2).item()
        self.equal = None
        return cos, share
