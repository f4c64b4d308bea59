"""pi_ref: the policy the log-ratio is measured against (GIFT, UNA) or the KL anchor (GRPO with --kl_coef).

    old      the sampling policy of each step (GIFT as its author runs it): pi_ref's log-probs are pi_old's
    frozen   the SFT model (the derivation's reference; GRPO's KL anchor)
    refresh  a copy of the policy, renewed every ref_every RL steps
    none     no reference (GRPO without a KL term)

A new reference is a kind here: train.py asks `before_rl_step` at each RL step and `logprobs` in the rollout.
"""
import copy

from gift.lora import adapters_disabled


class Reference:
    def __init__(self, kind, every=0, lora=False):
        self.kind, self.every, self.model, self.lora = kind, every, None, lora

    @classmethod
    def of(cls, method, cfg):
        """The reference a run needs: --ref's for a loss that reads pi_ref (GIFT, UNA); the frozen SFT model for
        GRPO's KL penalty (--kl_coef > 0); none otherwise. With LoRA the frozen SFT model is the base model."""
        kind = cfg.ref if method.uses_ref else ("frozen" if cfg.kl_coef else "none")
        return cls(kind, cfg.ref_every, cfg.lora_rank > 0)

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
