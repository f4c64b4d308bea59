"""What each memory option of train.py costs in time: one RL-like step with the option against the same step without
it, at a small shape (a CPU runs the default in under a minute, on one thread). Prints a Markdown table.

    python benchmarks/options.py                  # micro model (4 layers, width 128), 8 prompts x 4 samples, CPU
    python benchmarks/options.py --smoke          # a few seconds: nano model, tiny batch (the test runs this)
    python benchmarks/options.py --device cuda    # on a GPU, with the peak memory of each phase

The step has the two phases of train.py's RL step, timed apart:
- training: forward + backward of the response log-probs (gift/kernels.py's model_logprobs, the plain LM head) over
  the rollout's rows, --prompts x --group-size rows of --prompt-tokens + --new-tokens random tokens, loss = minus the
  masked mean log-prob; no optimiser step (no option changes it, except --optim, which is not timed here).
- sampling: one gift.sampler.generate call on --prompts prompts x --group-size samples, temperature 1, no stop token,
  so every row samples all --new-tokens tokens.
On a GPU both run in bf16 (autocast for training, a bf16 copy for sampling), as train.py --dtype=bfloat16 does.
The options, each against the same phase without it (one option at a time; "+" rows compare a combination with the
first part alone):
- grad_ckpt: recompute each block in backward (model.grad_ckpt);
- offload_activations: what the blocks save for backward kept in CPU memory (model.offload_activations). On a CPU
  nothing moves, so its ratio there is the cost of the hooks alone; the copies are a GPU's cost;
- micro_batch: the rows in micro-batches of --micro-batch groups, gradients accumulated;
- sample_chunk: the prompts sampled --sample-chunk at a time (generate(chunk=...));
- quant nf4: LoRA (rank 8) over a 4-bit base (gift/quant.py's quantize_base) against LoRA over the full-precision
  base; a row with a note when gift/quant.py or bitsandbytes cannot do it here.
Each phase runs once to warm up, then --repeats times alternating with its baseline; the table gives the medians and
their ratio (option / baseline: above 1 is slower). On a CPU shared with other work, ratios within about 10% of 1
are noise.
"""

import argparse
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from gift.kernels import model_logprobs  # noqa: E402
from gift.lora import add_lora  # noqa: E402
from gift.model import GPT, preset  # noqa: E402
from gift.sampler import generate  # noqa: E402


def make_model(args, lora=False, quant=False):
    torch.manual_seed(0)
    model = GPT(preset(args.preset, block_size=args.prompt_tokens + args.new_tokens)).to(args.device)
    if lora:
        add_lora(model, 8)
    if quant:
        from gift.quant import quantize_base  # ImportError when it is not there: the row says so

        quantize_base(model)
    return model


def batch(args, model):
    """The rollout's rows: token ids (N, L) and the response mask (N, L-1) (1 on the --new-tokens last targets)."""
    g = torch.Generator().manual_seed(1)
    N, L = args.prompts * args.group_size, args.prompt_tokens + args.new_tokens
    idx = torch.randint(0, model.config.vocab_size, (N, L), generator=g).to(args.device)
    mask = torch.zeros(N, L - 1, device=args.device)
    mask[:, args.prompt_tokens - 1 :] = 1.0
    return idx, mask


def train_step(model, idx, mask, micro_rows):
    """Forward + backward of minus the masked mean log-prob, in micro-batches of micro_rows rows (0: all at once);
    under bf16 autocast on a GPU, as train.py --dtype=bfloat16."""
    model.train()
    model.zero_grad(set_to_none=True)
    step = micro_rows or len(idx)
    for s in range(0, len(idx), step):
        logp, _ = model_logprobs(model, idx[s : s + step], mask[s : s + step], bf16=idx.is_cuda)
        (-logp.sum() / mask.sum()).backward()


def sample(model, args, chunk):
    prompts = [[(7 * i + j) % model.config.vocab_size for j in range(args.prompt_tokens)] for i in range(args.prompts)]
    generate(model, prompts, num_samples=args.group_size, max_new_tokens=args.new_tokens,
             seed=list(range(len(prompts))), chunk=chunk, dtype=torch.bfloat16 if args.device != "cpu" else None)


def timed(fn, device):
    """(seconds, peak MiB on a GPU or None) of one call."""
    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    fn()
    if cuda:
        torch.cuda.synchronize()
    return time.perf_counter() - t0, torch.cuda.max_memory_allocated() / 2**20 if cuda else None


def compare(base, option, args):
    """Median seconds and peak MiB of base() and option(), each warmed up once, then run alternately."""
    runs = {"base": [], "option": []}
    for fn in (base, option):
        fn()
    for _ in range(args.repeats):
        for name, fn in (("base", base), ("option", option)):
            runs[name].append(timed(fn, args.device))
    medians = []
    for r in (runs["base"], runs["option"]):
        peaks = [m for _, m in r if m is not None]
        medians.append((statistics.median(t for t, _ in r), max(peaks) if peaks else None))
    return medians


def rows(args):
    """(option, phase, without, with) for the table: the last two are the functions to time."""
    model = make_model(args)
    idx, mask = batch(args, model)
    micro_rows = args.micro_batch * args.group_size

    def train_with(grad_ckpt=False, offload=False, micro=0):
        def run():
            model.grad_ckpt, model.offload_activations = grad_ckpt, offload
            train_step(model, idx, mask, micro)
        return run

    return [
        ("grad_ckpt", "training", train_with(), train_with(grad_ckpt=True)),
        ("offload_activations", "training", train_with(), train_with(offload=True)),
        ("grad_ckpt + offload_activations", "training", train_with(grad_ckpt=True),
         train_with(grad_ckpt=True, offload=True)),
        (f"micro_batch={args.micro_batch}", "training", train_with(), train_with(micro=micro_rows)),
        (f"sample_chunk={args.sample_chunk}", "sampling", lambda: sample(model, args, 0),
         lambda: sample(model, args, args.sample_chunk)),
    ]


def quant_row(args):
    """The nf4 row: (base, option) functions, or a note saying why it cannot run here."""
    try:
        lora = make_model(args, lora=True)
        quant = make_model(args, lora=True, quant=True)
    except ImportError as e:
        return f"skipped: {e}"
    except (Exception, SystemExit) as e:  # no bitsandbytes or no kernel for this device; quantize_base refusing
        return f"skipped: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
    idx, mask = batch(args, lora)
    return (lambda: train_step(lora, idx, mask, 0)), (lambda: train_step(quant, idx, mask, 0))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="micro")
    p.add_argument("--prompts", type=int, default=8)
    p.add_argument("--group-size", type=int, default=4)
    p.add_argument("--prompt-tokens", type=int, default=32)
    p.add_argument("--new-tokens", type=int, default=48)
    p.add_argument("--micro-batch", type=int, default=2, help="groups per micro-batch in the micro_batch row")
    p.add_argument("--sample-chunk", type=int, default=2, help="prompts per chunk in the sample_chunk row")
    p.add_argument("--repeats", type=int, default=5, help="timed runs of each phase (the median is shown)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1,
                   help="torch.set_num_threads (0: torch's default); 1 by default: on a shared CPU, several threads "
                        "wait at each operation's barrier for one another, which swamps the differences")
    p.add_argument("--smoke", action="store_true", help="a few seconds: the nano model, a tiny batch, 1 repeat")
    args = p.parse_args(argv)
    if args.smoke:
        args.preset, args.prompts, args.group_size, args.prompt_tokens, args.new_tokens = "nano", 4, 2, 8, 8
        args.repeats = 1
    for name in ("prompts", "group_size", "prompt_tokens", "new_tokens", "micro_batch", "sample_chunk", "repeats"):
        if getattr(args, name) < 1:
            raise SystemExit(f"error: --{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.threads < 0:
        raise SystemExit(f"error: --threads must be >= 0 (0: torch's default), got {args.threads}")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit(f"error: --device={args.device} but this torch ({torch.__version__}) sees no CUDA GPU")
    if args.threads:
        torch.set_num_threads(args.threads)

    cuda = args.device.startswith("cuda")
    model = make_model(args)
    print(f"{args.preset}: {model.num_params() / 1e6:.2f}M parameters, {args.prompts} prompts x {args.group_size} "
          f"samples, {args.prompt_tokens} + {args.new_tokens} tokens, {args.device}, {torch.get_num_threads()} "
          f"threads, median of {args.repeats}\n")
    print("| option | phase | without (s) | with (s) | time ratio |" + (" peak without (MiB) | peak with (MiB) |"
                                                                       if cuda else ""))
    print("|---|---|---|---|---|" + ("---|---|" if cuda else ""))

    def line(option, phase, base, opt):
        (t0, m0), (t1, m1) = compare(base, opt, args)
        peaks = f" {m0:.0f} | {m1:.0f} |" if cuda else ""
        print(f"| {option} | {phase} | {t0:.3f} | {t1:.3f} | {t1 / t0:.2f} |{peaks}", flush=True)

    for option, phase, base, opt in rows(args):
        line(option, phase, base, opt)
    quant = quant_row(args)
    if isinstance(quant, str):
        print(f"| quant=nf4 (LoRA rank 8) | training | - | - | {quant} |" + (" - | - |" if cuda else ""))
    else:
        line("quant=nf4 (LoRA rank 8, vs LoRA)", "training", *quant)
    return 0


if __name__ == "__main__":
    sys.exit(main())
