"""Export a train.py checkpoint as a Hugging Face model folder, for lm-evaluation-harness, vLLM or transformers.

    python -m gift.export out/qwen-gift/ckpt.pt out/qwen-gift/hf        # config.json + model.safetensors (+ tokenizer)
    python -m gift.export out/builtin-gift-s0/ckpt.pt out/hf --overwrite --dtype bfloat16

The folder holds config.json and model.safetensors in the layout `transformers.AutoModelForCausalLM.from_pretrained`
reads, with the same logits as our model (tests/test_export.py checks this against transformers within 1e-5, fp32):

- GPT-2 (`model_type: gpt2`, GPT2LMHeadModel) for a GPTConfig with learned positions, LayerNorm and the GELU MLP.
  HF keeps GPT-2's Linear layers as Conv1D, whose weights are stored transposed, (in, out). A GPTConfig without
  biases (`bias=False`) is written with zero biases, which computes the same function.
- Qwen2 (`model_type: qwen2`, Qwen2ForCausalLM) for one with rotary positions and RMSNorm (plus the SwiGLU MLP,
  biases on q/k/v only; grouped-query attention as configured). Our fused c_attn (q | k | v) and c_fc (gate | up) are
  split back into HF's q/k/v_proj and gate/up_proj. The config holds both `rope_theta` (transformers 4, vLLM) and
  `rope_parameters` (transformers 5).
A GPTConfig that is neither (rotary positions with LayerNorm, say) is refused: neither HF class computes it.

A tied head (`tie_embeddings`, as in GPT-2 and Qwen2.5-0.5B) is written once, as the token embedding, with
`tie_word_embeddings: true` (safetensors cannot hold one tensor under two names); an untied one as `lm_head.weight`.

The tokenizer files (vocab.json, merges.txt, tokenizer.json, tokenizer_config.json, special_tokens_map.json,
added_tokens.json, whichever exist) are copied from the model the run started from (its config's `init`, followed
back through `--init=...sft.pt` chains): an HF directory, or a hub name already in the local Hugging Face cache (looked
up without downloading). The built-in task's byte tokenizer has no HF files, so none are written; either case is said
in one line. bos/eos token ids come from the source's config.json (the byte tokenizer's <|endoftext|> is 256).

`export(state_dict, model_config, out_dir, ...)` takes a plain state dict of our GPT. A state dict holding LoRA
adapters is refused for now: merging them into the weights (W + B @ A * scale) would go in front of `export`.
A --quant=nf4 run's merge dequantises its 4-bit base (gift/quant.py): the exported model is the 4-bit base plus the
adapters, dequantised, written in --dtype.

The calculator is not exported. This project's sampler (gift/sampler.py) forces the calculator's results: when a
response ends inside an open `<<expr=`, it appends `gift.verifier.calculate(expr)` and `>>` as if the model had written
them, in training and in every evaluation. transformers' `generate` (and vLLM, lm-evaluation-harness) leaves the
model's own arithmetic, so the same weights answer differently there (`<<86+5*16=160>>160` where ours forces 166). For
the project's answers, evaluate the folder with eval.py (`python eval.py OUT_DIR --task builtin` or `--task gsm8k`:
our sampler, calculator included), or force the same tokens in `generate` with a LogitsProcessor (docs/training.md,
"Exporting", says how).
"""
import argparse
import functools
import json
import os
import shutil
from dataclasses import fields

import torch

from gift.checkpoint import load_checkpoint, plain_model, safe_load  # weights_only: one error line for a bad file
from gift.model import GPT, GPTConfig, HUB_FILES, PRESETS

TOKENIZER_FILES = ("vocab.json", "merges.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                   "added_tokens.json")
# what an earlier export (or another HF model) may have left in the folder: removed by --overwrite, nothing else is
MODEL_FILES = ("config.json", "generation_config.json", "model.safetensors", "model.safetensors.index.json",
               "pytorch_model.bin", "pytorch_model.bin.index.json")
GPT2_TRANSPOSED = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
BUILTIN_EOT = 256  # the byte tokenizer's <|endoftext|> (gift.tokenizer.builtin_tokenizer)


def family(cfg):
    """'gpt2' or 'qwen2': the HF architecture that computes exactly what GPT(cfg) computes; ValueError otherwise."""
    kind = "qwen2" if cfg.rmsnorm or cfg.rope_theta else "gpt2"
    if kind == "gpt2":
        wrong = [name for name, bad in (("n_kv_head < n_head (grouped-query attention)", cfg.kv_heads != cfg.n_head),
                                        ("mlp_hidden > 0 (the SwiGLU MLP)", cfg.mlp_hidden > 0)) if bad]
    else:
        wrong = [name for name, bad in (("rope_theta = 0 (learned positions)", not cfg.rope_theta),
                                        ("rmsnorm = false (LayerNorm)", not cfg.rmsnorm),
                                        ("mlp_hidden = 0 (the GELU MLP)", not cfg.mlp_hidden),
                                        ("bias = true (biases beyond q/k/v)", cfg.bias)) if bad]
    if wrong:
        raise ValueError(f"the model config mixes GPT-2 and Qwen2 parts ({', '.join(wrong)}, with "
                         f"{'rotary positions or RMSNorm' if kind == 'qwen2' else 'learned positions and LayerNorm'}"
                         f"): no Hugging Face architecture computes it, so it cannot be exported")
    if cfg.n_embd % cfg.n_head or cfg.n_head % cfg.kv_heads:
        raise ValueError(f"n_embd {cfg.n_embd}, n_head {cfg.n_head}, n_kv_head {cfg.kv_heads} do not divide evenly")
    return kind


def hf_config(cfg, dtype=torch.float32, special_ids=None):
    """The config.json (a dict) of the HF model equivalent to GPT(cfg); special_ids: {bos_token_id, eos_token_id}."""
    dtype_name = str(dtype).removeprefix("torch.")
    if family(cfg) == "gpt2":
        out = dict(architectures=["GPT2LMHeadModel"], model_type="gpt2", vocab_size=cfg.vocab_size,
                   n_positions=cfg.block_size, n_ctx=cfg.block_size, n_embd=cfg.n_embd, n_layer=cfg.n_layer,
                   n_head=cfg.n_head, n_inner=None, activation_function="gelu_new",  # tanh-approximated GELU
                   resid_pdrop=cfg.dropout, embd_pdrop=cfg.dropout, attn_pdrop=cfg.dropout,
                   layer_norm_epsilon=cfg.norm_eps, initializer_range=0.02, scale_attn_weights=True,
                   scale_attn_by_inverse_layer_idx=False, reorder_and_upcast_attn=False,
                   tie_word_embeddings=cfg.tie_embeddings)
    else:
        out = dict(architectures=["Qwen2ForCausalLM"], model_type="qwen2", vocab_size=cfg.vocab_size,
                   hidden_size=cfg.n_embd, intermediate_size=cfg.mlp_hidden, num_hidden_layers=cfg.n_layer,
                   num_attention_heads=cfg.n_head, num_key_value_heads=cfg.kv_heads,
                   head_dim=cfg.n_embd // cfg.n_head, hidden_act="silu", max_position_embeddings=cfg.block_size,
                   rms_norm_eps=cfg.norm_eps, rope_theta=cfg.rope_theta,
                   rope_parameters=dict(rope_theta=cfg.rope_theta, rope_type="default"), rope_scaling=None,
                   use_sliding_window=False, sliding_window=None, attention_dropout=cfg.dropout,
                   initializer_range=0.02, tie_word_embeddings=cfg.tie_embeddings)
    out.update(bos_token_id=None, eos_token_id=None)  # unknown: null, not GPT2Config's default 50256
    out.update({k: v for k, v in (special_ids or {}).items() if v is not None})
    out.update(dtype=dtype_name, torch_dtype=dtype_name, use_cache=True)  # transformers 5 reads dtype, 4 torch_dtype
    return out


def check_state_dict(state_dict, cfg):
    """The state dict must be exactly GPT(cfg)'s: names and shapes (checked against a weightless meta-device model).
    LoRA adapters are refused: they must be merged into the weights first."""
    lora = [k for k in state_dict if "lora" in k.lower()]
    if lora:
        raise ValueError(f"the state dict holds LoRA adapters ({lora[0]!r}, ...); merge them into the weights first "
                         f"(export takes a plain, merged state dict of gift.model.GPT)")
    with torch.device("meta"):
        expected = {k: tuple(v.shape) for k, v in GPT(cfg).state_dict().items()}
    missing = sorted(set(expected) - set(state_dict))
    extra = sorted(set(state_dict) - set(expected))
    if missing or extra:
        raise ValueError("the weights do not fit the model config: "
                         + (f"missing {missing[0]!r}" if missing else f"unexpected {extra[0]!r}")
                         + f" ({len(missing)} missing, {len(extra)} unexpected)")
    for name, shape in expected.items():
        if tuple(state_dict[name].shape) != shape:
            raise ValueError(f"tensor {name!r} has shape {tuple(state_dict[name].shape)}, the model config gives "
                             f"{shape}")
    if cfg.tie_embeddings and not torch.equal(state_dict["lm_head.weight"], state_dict["transformer.wte.weight"]):
        raise ValueError("the model config ties the LM head to the token embedding, but the two weights differ")


def hf_state_dict(state_dict, cfg):
    """Our GPT's state dict renamed (and for GPT-2 transposed, for Qwen2 split) into the HF model's names: the inverse
    of GPT.load_hf_state_dict / load_qwen2_state_dict. A tied head is left out (HF ties it on load)."""
    sd = {k: v.detach() for k, v in state_dict.items()}
    out = {}
    if family(cfg) == "gpt2":
        for name, t in sd.items():
            if name == "lm_head.weight":
                continue
            out[name] = t.t() if name.endswith(GPT2_TRANSPOSED) else t
        if not cfg.bias:  # HF GPT-2 always has biases: zeros compute what bias-free layers compute
            widths = dict(ln_1=cfg.n_embd, ln_2=cfg.n_embd, **{"attn.c_attn": 3 * cfg.n_embd,
                          "attn.c_proj": cfg.n_embd, "mlp.c_fc": 4 * cfg.n_embd, "mlp.c_proj": cfg.n_embd})
            like = sd["transformer.wte.weight"]
            for i in range(cfg.n_layer):
                for module, width in widths.items():
                    out.setdefault(f"transformer.h.{i}.{module}.bias", like.new_zeros(width))
            out.setdefault("transformer.ln_f.bias", like.new_zeros(cfg.n_embd))
    else:
        H, K, D = cfg.n_head, cfg.kv_heads, cfg.n_embd // cfg.n_head
        out["model.embed_tokens.weight"] = sd["transformer.wte.weight"]
        out["model.norm.weight"] = sd["transformer.ln_f.weight"]
        for i in range(cfg.n_layer):
            ours, hf = f"transformer.h.{i}.", f"model.layers.{i}."
            out[hf + "input_layernorm.weight"] = sd[ours + "ln_1.weight"]
            out[hf + "post_attention_layernorm.weight"] = sd[ours + "ln_2.weight"]
            w = sd[ours + "attn.c_attn.weight"]
            b = sd.get(ours + "attn.c_attn.bias")
            if b is None:  # qkv_bias=False: Qwen2 always has q/k/v biases, zeros compute the same
                b = w.new_zeros(w.shape[0])
            for x, wx, bx in zip("qkv", w.split([H * D, K * D, K * D]), b.split([H * D, K * D, K * D])):
                out[hf + f"self_attn.{x}_proj.weight"], out[hf + f"self_attn.{x}_proj.bias"] = wx, bx
            out[hf + "self_attn.o_proj.weight"] = sd[ours + "attn.c_proj.weight"]
            gate, up = sd[ours + "mlp.c_fc.weight"].chunk(2)
            out[hf + "mlp.gate_proj.weight"], out[hf + "mlp.up_proj.weight"] = gate, up
            out[hf + "mlp.down_proj.weight"] = sd[ours + "mlp.c_proj.weight"]
    if not cfg.tie_embeddings:
        out["lm_head.weight"] = sd["lm_head.weight"]
    return out


def check_out_dir(out_dir, overwrite=False):
    """A new or empty folder; a non-empty one only with overwrite. ValueError otherwise."""
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise ValueError(f"{out_dir} exists and is not a folder")
    if os.path.isdir(out_dir) and os.listdir(out_dir) and not overwrite:
        raise ValueError(f"{out_dir} is not empty; pass --overwrite to replace the model files in it "
                         f"(config.json, model.safetensors, tokenizer files), or choose another folder")


def export(state_dict, model_config, out_dir, tokenizer_dir=None, special_ids=None, dtype=None, overwrite=False):
    """Write out_dir/config.json and out_dir/model.safetensors for our GPT's (already merged) state dict, and copy the
    tokenizer files found in tokenizer_dir. model_config: a GPTConfig or its asdict. dtype: of the written tensors
    (default: the state dict's own). Returns the names of the files written."""
    from safetensors.torch import save_file  # imported here: only exporting needs it

    cfg = model_config if isinstance(model_config, GPTConfig) else GPTConfig(**model_config)
    check_out_dir(out_dir, overwrite)
    check_state_dict(state_dict, cfg)
    tensors = hf_state_dict(state_dict, cfg)
    # the state dict's own dtype; float32 where it mixes dtypes (a 4-bit run's bfloat16 embedding beside float32)
    dtype = dtype or functools.reduce(torch.promote_types, {v.dtype for v in state_dict.values()
                                                            if v.is_floating_point()})
    # safetensors refuses views that share memory (q/k/v split from one c_attn, transposes): each tensor its own copy
    tensors = {k: v.to(device="cpu", dtype=dtype).contiguous().clone() for k, v in tensors.items()}
    config = hf_config(cfg, dtype, special_ids)
    os.makedirs(out_dir, exist_ok=True)
    for name in MODEL_FILES + TOKENIZER_FILES:  # --overwrite: nothing of an earlier model may stay beside this one
        path = os.path.join(out_dir, name)
        if os.path.isfile(path):
            os.remove(path)
    written, umask = [], os.umask(0)
    os.umask(umask)

    def place(name, write):  # write to a temporary name, then rename: never a half-written file under the real one
        tmp = os.path.join(out_dir, name + ".tmp")
        write(tmp)
        os.chmod(tmp, 0o666 & ~umask)  # safetensors writes its file private (0600): readable like the others
        os.replace(tmp, os.path.join(out_dir, name))
        written.append(name)

    place("model.safetensors", lambda p: save_file(tensors, p, metadata={"format": "pt"}))

    def write_config(path):
        with open(path, "w") as f:
            f.write(json.dumps(config, indent=2) + "\n")

    place("config.json", write_config)
    if tokenizer_dir is not None:
        for name in TOKENIZER_FILES:
            if os.path.isfile(os.path.join(tokenizer_dir, name)):
                place(name, lambda p, name=name: shutil.copyfile(os.path.join(tokenizer_dir, name), p))
    return written


# ----------------------------------------------------------------------------------------------------------------
# where the tokenizer files are: the model a run started from


def cached_snapshot(name, cache_dir=None):
    """The local snapshot folder of a hub model already in the Hugging Face cache, or None: never downloads."""
    try:
        from huggingface_hub import snapshot_download

        path = snapshot_download(repo_id=name, allow_patterns=HUB_FILES, local_files_only=True, cache_dir=cache_dir)
    except Exception:  # not cached, not a valid repo name, huggingface_hub missing
        return None
    return path if isinstance(path, str) and os.path.isdir(path) else None


def tokenizer_source(run_config, cache_dir=None, depth=0):
    """(folder or None, one line saying what was found) for the tokenizer of a run with this train.py config: the
    folder holds vocab.json (and the other tokenizer files); None with the reason why no files can be written."""
    task, init = run_config.get("task"), run_config.get("init")
    if task == "builtin":
        return None, ("tokenizer: none written: the built-in task's byte tokenizer (a token per byte, "
                      "<|endoftext|> = 256) has no Hugging Face files")
    if not isinstance(init, str) or not init:
        return None, "tokenizer: not written: the checkpoint's config does not name the model its run started from"
    if init.endswith(".pt"):  # --init=out/RUN/sft.pt: the tokenizer is that run's
        if depth >= 8 or not os.path.isfile(init):
            return None, (f"tokenizer: not written: the run started from {init}, which is not there to say where its "
                          f"tokenizer came from; copy vocab.json and merges.txt into the folder by hand")
        try:
            parent = safe_load(init, mmap=True)  # weights_only: the parent file runs no code either
            return tokenizer_source(parent["config"], cache_dir, depth + 1)
        except SystemExit as e:  # unsafe or unreadable: no tokenizer, but the export goes on
            return None, f"tokenizer: not written: {str(e).removeprefix('error: ')}"
        except Exception:  # not ours (no config in it)
            return None, (f"tokenizer: not written: cannot read the config of {init}, the checkpoint the run "
                          f"started from")
    if os.path.isdir(init):
        if os.path.isfile(os.path.join(init, "vocab.json")):
            return init, f"tokenizer: copied from {init}"
        name = "gpt2"  # gift.runs.load_model falls back to GPT-2's tokenizer
    elif init in PRESETS and not init.startswith("gpt2"):
        name = "gpt2"  # a preset trained from scratch on a BPE task uses GPT-2's tokenizer
    else:
        name = init  # a hub name (gpt2, Qwen/Qwen2.5-0.5B-Instruct)
    for candidate in (name, "openai-community/gpt2") if name == "gpt2" else (name,):
        path = cached_snapshot(candidate, cache_dir)
        if path and os.path.isfile(os.path.join(path, "vocab.json")):
            return path, f"tokenizer: copied from {candidate}'s snapshot in the Hugging Face cache ({path})"
    return None, (f"tokenizer: not written: {name}'s tokenizer files are not in the local Hugging Face cache (nothing "
                  f"is downloaded here); add them with huggingface_hub's snapshot_download('{name}', "
                  f"allow_patterns=['vocab.json', 'merges.txt', 'tokenizer*']) into the folder")


def special_ids(run_config, tokenizer_dir):
    """bos/eos token ids for config.json: the source model's own, the byte tokenizer's <|endoftext|>, or none."""
    if run_config.get("task") == "builtin":
        return dict(bos_token_id=BUILTIN_EOT, eos_token_id=BUILTIN_EOT)
    path = os.path.join(tokenizer_dir, "config.json") if tokenizer_dir else None
    if path and os.path.isfile(path):
        try:
            with open(path) as f:
                source = json.load(f)
            return {k: source.get(k) for k in ("bos_token_id", "eos_token_id")}
        except (OSError, ValueError):
            pass
    return {}


# ----------------------------------------------------------------------------------------------------------------
# the command line


def _error_line(message):
    raise SystemExit(f"error: {message} (python -m gift.export --help)")


def main(argv=None):
    """Returns the output folder."""
    p = argparse.ArgumentParser(prog="python -m gift.export", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.error = _error_line
    p.add_argument("ckpt", help="a train.py checkpoint (ckpt.pt, sft.pt)")
    p.add_argument("out_dir", help="the Hugging Face model folder to write (new or empty)")
    p.add_argument("--overwrite", action="store_true",
                   help="write into a non-empty folder, replacing its model and tokenizer files")
    p.add_argument("--dtype", choices=sorted(DTYPES), default=None,
                   help="dtype of the written weights (default: the checkpoint's, float32 for train.py's)")
    args = p.parse_args(argv)
    try:
        check_out_dir(args.out_dir, args.overwrite)  # before loading: a refused folder costs nothing
    except ValueError as e:
        raise SystemExit(f"error: {e}") from None
    ckpt = load_checkpoint(args.ckpt)
    if not isinstance(ckpt.get("model_config"), dict) or not isinstance(ckpt.get("config"), dict):
        raise SystemExit(f"error: {args.ckpt} is not a gift checkpoint (no model_config and run config in it)")
    known = {f.name for f in fields(GPTConfig)}
    unknown = sorted(set(ckpt["model_config"]) - known)
    if unknown:
        raise SystemExit(f"error: {args.ckpt} has a model config with unknown field {unknown[0]!r} (written by a newer "
                         f"gift?)")
    cfg = GPTConfig(**ckpt["model_config"])
    state = ckpt["model"]
    if ckpt["config"].get("lora_rank"):  # a LoRA run (--lora_rank): base + adapters, merged into plain weights
        state = plain_model(ckpt).state_dict()
        print(f"merged the LoRA adapters (rank {ckpt['config']['lora_rank']}) into the weights"
              + (" (the 4-bit base dequantised)" if ckpt["config"].get("quant", "none") != "none" else ""))
    tok_dir, tok_line = tokenizer_source(ckpt["config"])
    try:
        written = export(state, cfg, args.out_dir, tok_dir, special_ids(ckpt["config"], tok_dir),
                         DTYPES.get(args.dtype), args.overwrite)
    except ValueError as e:
        raise SystemExit(f"error: {args.ckpt}: {e}") from None
    size = os.path.getsize(os.path.join(args.out_dir, "model.safetensors")) / 2**20
    head = "tied" if cfg.tie_embeddings else "untied"
    print(f"wrote {args.out_dir}: config.json ({family(cfg)}, {cfg.n_layer} layers, width {cfg.n_embd}, vocabulary "
          f"{cfg.vocab_size}, {head} head) and model.safetensors ({size:.1f} MiB)")
    print(tok_line if tok_dir is None else f"{tok_line}: {', '.join(w for w in written if w in TOKENIZER_FILES)}")
    return args.out_dir


if __name__ == "__main__":
    main()
