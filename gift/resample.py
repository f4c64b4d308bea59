"""Which groups an RL step trains on. Every method but DAPO takes one round of B prompts as it comes; DAPO's dynamic
sampling (arXiv 2503.14476) draws more rounds until B groups have rewards that differ.

    groups, draws, filled = one_round(draw)                 # draw(): this rank's groups of the next round
    groups, draws, filled = DynamicSampling(cfg, shard)(draw)

draws: rounds drawn (each B prompts of the stream); filled: groups with equal rewards kept because --max_draws rounds
did not find B groups whose rewards differ.
"""


def one_round(draw):
    return draw(), 1, 0


class DynamicSampling:
    """Of each round's groups (every rank's, in the round's prompt order) keep those whose rewards differ; the others
    are spares, used only if --max_draws rounds do not fill the step. Under DDP every rank sees every group, so all
    ranks choose the same B groups, the ones one process would."""

    def __init__(self, cfg, shard):
        self.prompts, self.minibatches, self.max_draws, self.shard = cfg.prompts, cfg.minibatches, cfg.max_draws, shard

    def __call__(self, draw):
        kept, spare, draws = [], [], 0
        while len(kept) < self.prompts and draws < self.max_draws:
            for g in self.shard.gather(draw(), self.prompts, self.minibatches):
                (kept if max(g.rewards) > min(g.rewards) else spare).append(g)
            draws += 1
        groups = self.shard.mine((kept + spare)[:self.prompts], self.prompts, self.minibatches)
        return groups, draws, max(0, self.prompts - len(kept))
