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
import json
import os

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
