"""Benchmark gift.sampler.generate: new tokens per second against a naive loop and Hugging Face transformers.

All three sample at temperature 1 from the same random-weight GPT-2-shaped model, with no stop token, so every row
generates exactly --new-tokens tokens:
- gift: `gift.sampler.generate` (one prefill per prompt shared by its samples, preallocated KV cache).
- naive: re-runs the full forward on the whole sequence at every step (no cache). It is timed on its first
  --naive-tokens tokens only (it gets slower with every token, so this overstates its speed).
- transformers: `GPT2LMHeadModel.generate(do_sample=True, num_return_sequences=N)` with our weights copied in.

    python benchmarks/sampler.py                        # defaults: micro model, 8 prompts x 16 x 128, about 1 min
    python benchmarks/sampler.py --full                 # the issue's sizes: GPT-2 small, 8 x 16 x 256 (~17 min)
    python benchmarks/sampler.py --full --device cuda

Prints a Markdown table.
"""

import argparse
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from gift.model import GPT, preset  # noqa: E402
from gift.sampler import generate  # noqa: E402


def naive_generate(model, prompts, num_samples, max_new_tokens, generator):
    """The no-cache baseline: equal-length prompts, every step re-runs the model on all tokens so far."""
    idx = torch.tensor(prompts, device=generator.device).repeat_interleave(num_samples, dim=0)  # (B*N, P)
    for _ in range(max_new_tokens):
        probs = torch.softmax(model(idx)[:, -1].float(), dim=-1)  # only the last position is used
        idx = torch.cat([idx, torch.multinomial(probs, 1, generator=generator)], dim=1)
    return idx[:, len(prompts[0]) :]


def hf_copy(model):
    """A transformers GPT2LMHeadModel with our weights (HF's Conv1D layers store Linear weights transposed)."""
    import transformers

    c = model.config
    hf_config = transformers.GPT2Config(
        vocab_size=c.vocab_size, n_positions=c.block_size, n_embd=c.n_embd, n_layer=c.n_layer, n_head=c.n_head,
        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=None, eos_token_id=None, pad_token_id=0,
    )
    hf = transformers.GPT2LMHeadModel(hf_config)
    transposed = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")
    state = {k: (v.t() if k.endswith(transposed) else v) for k, v in model.state_dict().items()}
    hf.load_state_dict(state)
    hf.generation_config.eos_token_id = None
    hf.generation_config.pad_token_id = 0
    return hf.to(next(model.parameters()).device).eval()


def timed(fn, device):
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    out = fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return out, time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="a gift.model preset: micro (default), nano, gpt2 (--full), ...")
    ap.add_argument("--vocab-size", type=int, default=None, help="override the preset's vocabulary size")
    ap.add_argument("--prompts", type=int, default=8)
    ap.add_argument("--samples", type=int, default=16, help="samples per prompt")
    ap.add_argument("--prompt-len", type=int, default=32)
    ap.add_argument("--new-tokens", type=int, default=None, help="default 128, or 256 with --full")
    ap.add_argument("--naive-tokens", type=int, default=None, help="tokens the slow naive loop is timed on (16, --full 4)")
    ap.add_argument("--full", action="store_true", help="the issue's sizes: GPT-2 small and 256 new tokens")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    ap.add_argument("--repeats", type=int, default=1, help="time each method this many times, keep the best")
    ap.add_argument("--skip", default="", help="comma-separated methods to skip: naive, transformers")
    args = ap.parse_args()
    args.model = args.model or ("gpt2" if args.full else "micro")  # explicit flags win over --full
    args.new_tokens = args.new_tokens or (256 if args.full else 128)
    args.naive_tokens = args.naive_tokens or (4 if args.full else 16)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    torch.manual_seed(0)
    overrides = {} if args.vocab_size is None else {"vocab_size": args.vocab_size}
    config = preset(args.model, **overrides)
    config.block_size = max(config.block_size, args.prompt_len + args.new_tokens)
    model = GPT(config).to(device).eval()
    g = torch.Generator().manual_seed(1)
    prompts = torch.randint(0, config.vocab_size, (args.prompts, args.prompt_len), generator=g).tolist()
    new = args.prompts * args.samples * args.new_tokens
    rows = []

    def run(name, fn, n_tokens):
        best = None
        for i in range(args.repeats):
            _, dt = timed(fn, device)
            best = dt if best is None else min(best, dt)
        rows.append((name, n_tokens, best))
        print(f"  {name}: {n_tokens} tokens in {best:.2f} s", file=sys.stderr)

    generate(model, prompts[:1], num_samples=2, max_new_tokens=4, seed=0)  # warm-up
    run("gift.sampler.generate", lambda: generate(model, prompts, args.samples, args.new_tokens, seed=0), new)
    skip = set(args.skip.split(","))
    if "naive" not in skip:
        n = min(args.naive_tokens, args.new_tokens)
        gen = torch.Generator(device=device).manual_seed(0)
        with torch.inference_mode():
            run(f"naive loop, no cache (first {n} tokens)", lambda: naive_generate(model, prompts, args.samples, n, gen),
                args.prompts * args.samples * n)
    if "transformers" not in skip:
        import transformers

        hf = hf_copy(model)
        ids = torch.tensor(prompts, device=device)
        with torch.inference_mode():
            ours = model(ids)
            err = (hf(ids, attention_mask=torch.ones_like(ids)).logits - ours).abs().max().item()
        assert err < 1e-3 * max(1.0, ours.abs().max().item()), f"transformers copy differs from ours: {err}"
        hf_kwargs = dict(do_sample=True, temperature=1.0, top_k=0, top_p=1.0, max_new_tokens=args.new_tokens,
                         num_return_sequences=args.samples)
        with torch.inference_mode():
            hf.generate(ids[:1], attention_mask=torch.ones_like(ids[:1]), **{**hf_kwargs, "max_new_tokens": 4})
            run(f"transformers {transformers.__version__} generate",
                lambda: hf.generate(ids, attention_mask=torch.ones_like(ids), **hf_kwargs), new)

    c = config
    print(f"\n{args.prompts} prompts x {args.samples} samples x {args.new_tokens} new tokens, prompt length "
          f"{args.prompt_len}; model {args.model} (n_layer={c.n_layer}, n_embd={c.n_embd}, vocab={c.vocab_size}), "
          f"random weights, temperature 1; device {args.device}, {torch.get_num_threads()} threads, torch {torch.__version__}\n")
    ours_rate = rows[0][1] / rows[0][2]
    print("| method | new tokens | seconds | new tokens/s | gift speed-up |")
    print("|---|---:|---:|---:|---:|")
    for name, n, dt in rows:
        print(f"| {name} | {n} | {dt:.2f} | {n / dt:.0f} | {ours_rate / (n / dt):.1f}x |")


if __name__ == "__main__":
    main()
