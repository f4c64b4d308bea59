"""Processes and sharding (torchrun, DDP): which rows of a step each rank holds. train.py asks a Shard for its
slice and never does rank arithmetic itself; with one process every slice is the whole step.

Layout of an RL step: B prompts in K mini-batches of B/K whole groups; each rank holds b = B/(K*world) groups of
every mini-batch, so rank r's groups are, in round order, k*B/K + r*b + i for k < K, i < b. Seeds are per prompt,
so the ranks together sample exactly what one process would, and DDP's mean over ranks of the per-rank gradients is
the one-process gradient (each rank's loss is weighted by its share of the rows).

    shard = init_processes(cfg)          # the process group, the device, the thread count
    shard.rl_slots(first, B, K)          # this rank's round positions, in mini-batch order
    shard.mine(groups, B, K)             # this rank's share of a whole round's B groups (DAPO's filtered step)
    shard.gather(groups, B, K)           # every rank's groups of a round, in round order
    shard.sft_slots(step, batch)         # this rank's SFT examples
    shard.all_sum(x)                     # a count summed over the ranks
    shard.wrap(model)                    # DDP with several ranks
"""
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Shard:
    rank: int = 0
    world: int = 1

    def rl_slots(self, first, prompts, minibatches):
        """Positions in the prompt stream of this rank's prompts of a round that starts at `first`."""
        per_mb, b = prompts // minibatches, prompts // minibatches // self.world
        return [first + k * per_mb + self.rank * b + i for k in range(minibatches) for i in range(b)]

    def mine(self, groups, prompts, minibatches):
        """This rank's share of a round's `prompts` groups (listed in round order), as rl_slots lays it out."""
        return [groups[p] for p in self.rl_slots(0, prompts, minibatches)]

    def gather(self, groups, prompts, minibatches):
        """Every rank's groups of one round (each rank passes its own, as rl_slots laid them out), in round order."""
        if self.world == 1:
            return groups
        everyone = [None] * self.world
        dist.all_gather_object(everyone, groups)
        per_mb, b = prompts // minibatches, prompts // minibatches // self.world
        # round position p = k*B/K + rank*b + i sits at everyone[rank][k*b + i]
        return [everyone[(p % per_mb) // b][(p // per_mb) * b + p % b] for p in range(prompts)]

    def sft_slots(self, step, batch):
        b = batch // self.world
        return [step * batch + self.rank * b + j for j in range(b)]

    def all_sum(self, x):
        """x summed over the ranks (x itself with one process)."""
        if self.world > 1:
            dist.all_reduce(x)
        return x

    def wrap(self, model):
        from torch.nn.parallel import DistributedDataParallel as DDP
        return DDP(model) if self.world > 1 else model


def init_processes(cfg):
    """The Shard of this process: torchrun's process group (DDP) when WORLD_SIZE > 1, the device (auto: cuda if there
    is one), the thread count; batches the ranks cannot split into whole groups are refused."""
    world, rank = int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("RANK", 0))
    cfg.device = ("cuda" if torch.cuda.is_available() else "cpu") if cfg.device == "auto" else cfg.device
    if cfg.sft_batch % world or cfg.prompts % (cfg.minibatches * world):  # every rank holds whole groups
        raise SystemExit(f"error: --sft_batch={cfg.sft_batch} and --prompts={cfg.prompts} / --minibatches="
                         f"{cfg.minibatches} must be divisible by the {world} ranks")
    if world > 1:
        dist.init_process_group("nccl" if cfg.device == "cuda" else "gloo")
        cfg.device = f"cuda:{int(os.environ['LOCAL_RANK'])}" if cfg.device == "cuda" else cfg.device
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    if cfg.dtype == "bfloat16" and cfg.device == "cpu" and rank == 0:
        print("note: --dtype=bfloat16 on a CPU: autocast computes in bfloat16 there too, usually slower than float32")
    return Shard(rank, world)
