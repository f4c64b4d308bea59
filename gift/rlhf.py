"""RLHF on the built-in task: a known true utility, a reward model learned from noisy preferences, and the task that
trains against it (`train.py --task=rlhf --reward_model=PATH`).

Every other task here has a 0/1 reward, so a group's z-scored reward takes two values and GIFT can only match a sign.
Here the reward is continuous, as in RLHF: GIFT must match the ordering and the spacing of the rewards, and the reward
is a learned proxy that the policy can over-optimise (Gao et al. 2022). Three pieces:

1. The true utility u(x, y) of a response (`utility`), computed in code from the problem's known answer:
       u = 1                              if the final answer is right
           0.5 exp(-|a - a*| / 10)        else, for a final answer a (a near miss is worth more than a far one)
         + 0.2 x the share of the response's steps whose stated value is right ("e=<<e=v>>v" or "e is v")
         - 0.1 x each line beyond the reference solution's (rambling: a length term the reward model may misread,
             since in the SFT model's samples the longer tool-style lines go with right answers)
   so u lies in [-0.1 x extra lines, 1.2] and two samples of one prompt rarely tie.
2. Preference pairs, the RLHF way: two samples of the SFT model (T = 1) per prompt, labelled by a Bradley-Terry draw
   on the true utility, P(first preferred) = sigmoid((u_1 - u_2) / TAU): close pairs get noisy labels.
3. A reward model (`RewardModel`): the SFT decoder with a scalar head on the hidden state of the last response token
   (`last_positions`: right padding never moves it; for an empty response, the prompt's last token), trained with the
   Bradley-Terry loss -log sigmoid(r(chosen) - r(rejected)) (`bt_loss`). Its score of a response is the RL reward.

`python -m gift.rlhf SFT_CKPT OUT` builds a reward model from an SFT checkpoint (experiments/rlhf.py does, per seed)
and prints its held-out pair accuracy and its correlation with u.
"""
import argparse
import math
import os
import random
import re
import sys
import time
from dataclasses import asdict

import torch
import torch.nn as nn
import torch.nn.functional as F

from gift import data
from gift.checkpoint import safe_load, save_checkpoint, verify_checksum
from gift.evaluation import Progress
from gift.model import GPT, GPTConfig
from gift.tokenizer import response_text, stop_ids
from gift.verifier import calculate, extract_answer

TAU = 0.1  # Bradley-Terry temperature of the labels, in units of u
STEP_RE = re.compile(r"^\s*([0-9+\-*/ ()]+?)\s*(?:=<<[^>]*>>|\s+is\s+)\s*(-?[0-9.]+)\s*$")
RM_STREAM = 20_000_000  # the reward model's prompts: training examples far from SFT's (0..) and RL's (10,000,000..)

# ----------------------------------------------------------------------------------------------------------------
# the true utility


def utility(text, example):
    """u(x, y) of a response text to an Example (module docstring)."""
    answer = extract_answer(text)
    if answer is not None and answer == example.answer:
        u = 1.0
    else:
        try:
            u = 0.5 * math.exp(-abs(float(answer) - float(example.answer)) / 10) if answer is not None else 0.0
        except ValueError:
            u = 0.0
    lines = [line for line in text.strip().split("\n") if line.strip()]
    steps = [m for m in (STEP_RE.match(line) for line in lines) if m]
    if steps:
        right = sum(calculate(m.group(1)) is not None and float(calculate(m.group(1))) == float(m.group(2))
                    for m in steps)
        u += 0.2 * right / len(steps)
    reference = len(example.solution.strip().split("\n"))
    return u - 0.1 * max(0, len(lines) - reference)


# ----------------------------------------------------------------------------------------------------------------
# the reward model


def last_positions(mask, idx=None):
    """(N,) index of each row's last token of prompt + response in the (N, L) ids idx, from the (N, L-1) next-token
    mask (target t is token t+1): the last t with mask 1, plus one. Right padding follows it, so padding never moves
    it. A row whose response is empty (the policy stopped at once) has no 1 in its mask; its last token is then the
    prompt's last, read from idx as the row's last id that is not padding (0): a prompt ends in "Answer:", never in
    id 0. Without idx such a row gives 0, the first prompt token."""
    t = torch.arange(mask.shape[1], device=mask.device).expand_as(mask)
    last = torch.where(mask > 0, t, -1).amax(dim=1) + 1  # 0 exactly when the row has no response token
    if idx is not None:
        positions = torch.arange(idx.shape[1], device=idx.device).expand_as(idx)
        prompt_end = torch.where(idx != 0, positions, 0).amax(dim=1)
        last = torch.where(last > 0, last, prompt_end)
    return last


class RewardModel(nn.Module):
    """A decoder (gift/model.py) whose LM head is replaced by a scalar: r(x, y) = w . h_last + b, h_last the final
    hidden state at the response's last token (it has read the prompt and the whole response)."""

    def __init__(self, config):
        super().__init__()
        self.config = config
        self.body = GPT(config)
        self.head = nn.Linear(config.n_embd, 1)

    def forward(self, idx, mask):
        """idx: (N, L) prompt + response ids, right-padded; mask: (N, L-1) as data.pad_rows gives. Returns (N,)."""
        hidden = self.body(idx, return_hidden=True)  # (N, L, C)
        last = last_positions(mask, idx)
        return self.head(hidden[torch.arange(idx.shape[0], device=idx.device), last]).squeeze(-1)


def bt_loss(chosen, rejected):
    """Bradley-Terry: -log P(chosen preferred) = -log sigmoid(r_chosen - r_rejected), mean over pairs. (N,), (N,)."""
    return -F.logsigmoid(chosen - rejected).mean()


def encode(enc, examples, texts, block_size=None):
    """(idx, mask) of responses to examples, as the policy's rows are (prompt, then the response's tokens), each row
    cut to block_size (a sampled text with invalid UTF-8 re-encodes longer than it was sampled)."""
    prompts = data.encode_batch(enc, examples, with_solution=False)
    rows = [(p + enc.encode_ordinary(t))[:block_size] for p, t in zip(prompts, texts)]
    return data.pad_rows(rows, [len(p) for p in prompts])


@torch.no_grad()
def score(rm, enc, examples, texts, batch=256):
    """The reward model's scores (list of floats) of texts answering examples."""
    rm.eval()
    device = next(rm.parameters()).device
    out = []
    for i in range(0, len(texts), batch):
        idx, mask = encode(enc, examples[i:i + batch], texts[i:i + batch], rm.config.block_size)
        out += rm(idx.to(device), mask.to(device)).tolist()
    return out


def save(rm, path, info):
    """rm as a checkpoint (gift/checkpoint.py: atomic, its weights checksummed); info: plain numbers and strings (the
    SFT checkpoint's path, the seed, the held-out numbers of `evaluate_rm`)."""
    save_checkpoint(path, dict(kind="reward_model", config=asdict(rm.config), model=rm.state_dict(), info=info))


def load(path, device="cpu"):
    """A reward model saved by `save`, read with weights_only (nothing in the file runs). One error line for a
    missing, unsafe, unreadable, damaged or foreign file."""
    if not os.path.isfile(path):
        raise SystemExit(f"error: cannot read reward model {path}: no such file")
    ckpt = safe_load(path, device, "reward model", "; make it again with python -m gift.rlhf SFT_CKPT OUT")
    if not isinstance(ckpt, dict) or ckpt.get("kind") != "reward_model":
        raise SystemExit(f"error: {path} is not a reward model (python -m gift.rlhf SFT_CKPT OUT makes one)")
    verify_checksum(path, ckpt, "reward model", "; make it again with python -m gift.rlhf SFT_CKPT OUT")
    rm = RewardModel(GPTConfig(**ckpt["config"]))
    rm.load_state_dict(ckpt["model"])
    return rm.to(device).eval()


# ----------------------------------------------------------------------------------------------------------------
# preference data and training


@torch.no_grad()
def sample_pairs(policy, enc, examples, seed, max_new_tokens=96):
    """Two samples (T = 1) of the policy per example: [(example, text_a, text_b)]."""
    from gift.sampler import generate
    policy.eval()
    prompts = data.encode_batch(enc, examples, with_solution=False)
    out = generate(policy, prompts, num_samples=2, max_new_tokens=max_new_tokens, temperature=1.0,
                   stop_tokens=stop_ids(enc), calculator=calculate, tokenizer=enc,
                   seed=[seed * 1_000_003 + i for i in range(len(examples))])
    texts = [response_text(enc, s) for s in out.sequences]
    return [(ex, texts[2 * i], texts[2 * i + 1]) for i, ex in enumerate(examples)]


def label(pairs, seed):
    """(example, chosen, rejected) by a Bradley-Terry draw on u: the first is chosen with prob sigmoid(du / TAU)."""
    rng = random.Random(seed)
    out = []
    for ex, a, b in pairs:
        p = 1 / (1 + math.exp(-(utility(a, ex) - utility(b, ex)) / TAU))
        out.append((ex, a, b) if rng.random() < p else (ex, b, a))
    return out


def pair_scores(rm, enc, labelled):
    examples = [ex for ex, _, _ in labelled]
    return (torch.tensor(score(rm, enc, examples, [c for _, c, _ in labelled])),
            torch.tensor(score(rm, enc, examples, [r for _, _, r in labelled])))


def evaluate_rm(rm, enc, labelled):
    """Held-out numbers: accuracy on the noisy labels (and the same for u itself: the best any model can do on them),
    accuracy on the true order (pairs whose u differ), and the Pearson correlation of the score with u over the
    pairs' responses."""
    chosen, rejected = pair_scores(rm, enc, labelled)
    u = torch.tensor([[utility(c, ex), utility(r, ex)] for ex, c, r in labelled])
    s = torch.stack([chosen, rejected], dim=1)
    differ = u[:, 0] != u[:, 1]
    true_acc = ((s[:, 0] > s[:, 1]) == (u[:, 0] > u[:, 1]))[differ].float().mean().item()
    su, ss = u.flatten() - u.mean(), s.flatten() - s.mean()
    corr = (su @ ss / (su.norm() * ss.norm()).clamp_min(1e-12)).item()
    u_agrees = torch.where(differ, (u[:, 0] > u[:, 1]).float(), 0.5).mean().item()  # the noisy labels' ceiling
    return dict(label_accuracy=(chosen > rejected).float().mean().item(), label_accuracy_of_u=u_agrees,
                true_order_accuracy=true_acc,
                correlation_with_u=corr, pairs=len(labelled), u_ties=int((~differ).sum()))


def train_rm(rm, enc, labelled, steps=400, batch=32, lr=1e-3, seed=0, log=print):
    """Bradley-Terry training of rm on labelled pairs (AdamW, constant rate, pairs drawn with a seeded stream)."""
    g = torch.Generator().manual_seed(seed)
    start = time.time()
    opt = torch.optim.AdamW(rm.parameters(), lr=lr, weight_decay=0.0)
    device = next(rm.parameters()).device
    for step in range(steps):
        rm.train()
        pick = torch.randint(len(labelled), (batch,), generator=g).tolist()
        exs = [labelled[i][0] for i in pick]
        idx, mask = encode(enc, exs + exs, [labelled[i][1] for i in pick] + [labelled[i][2] for i in pick],
                           rm.config.block_size)
        scores = rm(idx.to(device), mask.to(device))
        loss = bt_loss(scores[:batch], scores[batch:])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(rm.parameters(), 1.0)
        opt.step()
        if log and ((step + 1) % 50 == 0 or step + 1 == steps):
            log(f"reward model step {step + 1}/{steps}: Bradley-Terry loss {loss.item():.4f}, "
                f"{time.time() - start:.0f} s")
    return rm


def build(sft_path, out, seed=0, train_pairs=3000, heldout_pairs=500, steps=400, batch=32, lr=1e-3, log=print,
          example=None):
    """The reward model of an SFT checkpoint: pairs of its samples on RM_STREAM prompts, labelled by u, Bradley-Terry
    training from the SFT weights; saved to `out` with its held-out numbers (returned)."""
    from gift.runs import load_model
    torch.manual_seed(seed)
    policy, enc = load_model(sft_path, "builtin", True)
    example = example or (lambda i: data.builtin_example("train", i, seed=seed))
    examples = [example(RM_STREAM + i) for i in range(train_pairs + heldout_pairs)]
    pairs = []
    progress = Progress("sampling pairs: prompts", log) if log else None  # a line per batch: the longest phase
    for i in range(0, len(examples), 250):  # sampling batches
        pairs += sample_pairs(policy, enc, examples[i:i + 250], seed * 7919 + i)
        if progress:
            progress(len(pairs), len(examples))
    labelled = label(pairs, seed)
    train, heldout = labelled[:train_pairs], labelled[train_pairs:]
    rm = RewardModel(policy.config)
    rm.body.load_state_dict(policy.state_dict())  # the SFT model, its LM head unused
    train_rm(rm, enc, train, steps, batch, lr, seed, log)
    if log:
        log(f"scoring the {len(heldout)} held-out pairs")
    info = dict(sft=sft_path, seed=seed, tau=TAU, train_pairs=train_pairs, steps=steps, **evaluate_rm(rm, enc, heldout))
    save(rm, out, info)
    return info


# ----------------------------------------------------------------------------------------------------------------
# the task


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m gift.rlhf",
                                description="Build a reward model from an SFT checkpoint of the built-in task.",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("sft", help="an SFT checkpoint (out/<run>/sft.pt)")
    p.add_argument("out", help="where to write the reward model")
    p.add_argument("--seed", type=int, default=0, help="the prompts, samples, labels and training order")
    p.add_argument("--train_pairs", type=int, default=3000, help="labelled pairs to train on")
    p.add_argument("--heldout_pairs", type=int, default=500, help="labelled pairs to report accuracy on")
    p.add_argument("--steps", type=int, default=400, help="Bradley-Terry steps")
    p.add_argument("--batch", type=int, default=32, help="pairs per Bradley-Terry step")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    log = lambda line: print(line, flush=True)  # flushed: experiments/rlhf.py sends it to a log file
    info = build(args.sft, args.out, args.seed, args.train_pairs, args.heldout_pairs, args.steps, args.batch, log=log)
    print(f"held-out pairs: label accuracy {info['label_accuracy']:.3f}, true-order accuracy "
          f"{info['true_order_accuracy']:.3f}, correlation with u {info['correlation_with_u']:.3f}; wrote {args.out}")


if __name__ == "__main__":
    sys.exit(main())
