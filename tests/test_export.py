"""gift/export.py: a train.py checkpoint written as a Hugging Face folder that transformers' AutoModelForCausalLM loads
with the same logits (GPT-2 and Qwen2 shapes, tied and untied heads, grouped-query attention, q/k/v biases), the
tokenizer files copied from where the run started (or a line saying why not), and one `error:` line for bad input.
Tiny random models, no downloads."""

import json
import os
import subprocess
import sys
from dataclasses import asdict

import pytest
import torch

from gift import export as ex
from gift.model import GPT, GPTConfig
from gift.runs import save_checkpoint

transformers = pytest.importorskip("transformers")  # a test requirement (requirements-dev): never actually skipped

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
V, T = 61, 32
GPT2 = dict(block_size=T, vocab_size=V, n_layer=2, n_head=4, n_embd=32)
QWEN2 = dict(block_size=T, vocab_size=V, n_layer=2, n_head=4, n_kv_head=2, n_embd=32, mlp_hidden=48,
             rope_theta=1e4, rmsnorm=True, norm_eps=1e-6, bias=False, qkv_bias=True)
CONFIGS = {
    "gpt2-tied": GPTConfig(**GPT2),
    "gpt2-untied-no-bias": GPTConfig(**GPT2, tie_embeddings=False, bias=False),
    "qwen2-tied": GPTConfig(**QWEN2),
    "qwen2-untied-mqa": GPTConfig(**{**QWEN2, "n_kv_head": 1, "rope_theta": 500.0}, tie_embeddings=False),
    "qwen2-no-qkv-bias": GPTConfig(**{**QWEN2, "qkv_bias": False}),
}


def random_model(cfg, seed=0):
    """GPT(cfg) with perturbed weights, so that biases and norm weights are not their trivial 0 and 1."""
    torch.manual_seed(seed)
    model = GPT(cfg).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model


def save_run_checkpoint(path, model, task="gsm8k", init="micro"):
    """A checkpoint the way train.py's save_run writes one (the fields export reads)."""
    save_checkpoint(str(path), dict(config=dict(task=task, init=init, method="gift"), step=3,
                                    model=model.state_dict(), model_config=asdict(model.config)))
    return path


def load_hf(out):
    hf, info = transformers.AutoModelForCausalLM.from_pretrained(str(out), torch_dtype=torch.float32,
                                                                output_loading_info=True)
    assert not any(info[k] for k in ("missing_keys", "unexpected_keys", "mismatched_keys")), info
    return hf.eval()


def max_logit_error(model, hf, seed=1):
    idx = torch.randint(0, V, (3, T), generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        return (model(idx) - hf(idx).logits).abs().max().item()


def tensor_names(out):
    from safetensors import safe_open

    with safe_open(os.path.join(out, "model.safetensors"), "pt") as f:
        return set(f.keys())


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_transformers_loads_the_export_with_the_same_logits(tmp_path, name):
    cfg = CONFIGS[name]
    model = random_model(cfg)
    written = ex.export(model.state_dict(), asdict(cfg), str(tmp_path / "hf"))
    assert written == ["model.safetensors", "config.json"]
    hf = load_hf(tmp_path / "hf")
    assert type(hf).__name__ == ("GPT2LMHeadModel" if name.startswith("gpt2") else "Qwen2ForCausalLM")
    err = max_logit_error(model, hf)
    assert err <= 1e-5, f"{name}: max |logit difference| {err:.2e}"
    config = json.loads((tmp_path / "hf" / "config.json").read_text())
    assert config["tie_word_embeddings"] == cfg.tie_embeddings
    names = tensor_names(tmp_path / "hf")
    # a tied head is one tensor, the embedding; an untied one is written beside it
    assert ("lm_head.weight" in names) == (not cfg.tie_embeddings)
    assert ("transformer.wte.weight" in names) or ("model.embed_tokens.weight" in names)
    if cfg.tie_embeddings:
        assert hf.get_output_embeddings().weight.data_ptr() == hf.get_input_embeddings().weight.data_ptr()


@pytest.mark.parametrize("name", ["gpt2-tied", "qwen2-tied", "qwen2-untied-mqa"])
def test_our_own_loader_reads_the_export_back(tmp_path, name):
    """GPT.from_pretrained (no transformers) gives back the same model: export is the inverse of its renaming."""
    model = random_model(CONFIGS[name])
    ex.export(model.state_dict(), CONFIGS[name], str(tmp_path))
    back = GPT.from_pretrained(str(tmp_path)).eval()
    assert back.config == CONFIGS[name]
    for key, tensor in model.state_dict().items():
        assert torch.equal(back.state_dict()[key], tensor), key


def test_bfloat16_export_holds_bfloat16_tensors_and_says_so(tmp_path):
    from safetensors.torch import load_file

    ex.export(random_model(CONFIGS["qwen2-tied"]).state_dict(), CONFIGS["qwen2-tied"], str(tmp_path),
              dtype=torch.bfloat16)
    assert {t.dtype for t in load_file(str(tmp_path / "model.safetensors")).values()} == {torch.bfloat16}
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["dtype"] == config["torch_dtype"] == "bfloat16"


def run_cli(*args):
    proc = subprocess.run([sys.executable, "-m", "gift.export", *map(str, args)], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    return proc.returncode, proc.stdout.splitlines(), proc.stderr.splitlines()


def test_the_command_line_exports_a_builtin_run_without_tokenizer_files(tmp_path):
    """`python -m gift.export CKPT OUT_DIR` on a built-in task run: the byte tokenizer has no HF files, which one line
    says."""
    cfg = GPTConfig(**{**GPT2, "vocab_size": 257})
    model = random_model(cfg)
    ckpt = save_run_checkpoint(tmp_path / "ckpt.pt", model, task="builtin", init="nano")
    rc, out, err = run_cli(ckpt, tmp_path / "hf")
    assert rc == 0, err
    assert out[0].startswith(f"wrote {tmp_path / 'hf'}") and "gpt2" in out[0] and "tied head" in out[0], out
    assert len(out) == 2 and "tokenizer: none written" in out[1] and "byte tokenizer" in out[1], out
    assert sorted(os.listdir(tmp_path / "hf")) == ["config.json", "model.safetensors"]
    config = json.loads((tmp_path / "hf" / "config.json").read_text())
    assert config["eos_token_id"] == config["bos_token_id"] == 256  # the byte tokenizer's <|endoftext|>
    idx = torch.randint(0, 257, (2, T), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert (model(idx) - load_hf(tmp_path / "hf")(idx).logits).abs().max().item() <= 1e-5


def fake_hf_dir(path, eos=7):
    """A source model folder: its tokenizer files (contents are not read by export, only copied) and config.json."""
    path.mkdir(parents=True)
    files = {"vocab.json": '{"a": 0}', "merges.txt": "#version: 0.2\n", "tokenizer_config.json": '{"x": 1}',
             "tokenizer.json": '{"y": 2}', "config.json": json.dumps(dict(bos_token_id=eos - 1, eos_token_id=eos))}
    for name, text in files.items():
        (path / name).write_text(text)
    return files


def test_tokenizer_files_are_copied_from_the_directory_the_run_started_from(tmp_path, capsys):
    files = fake_hf_dir(tmp_path / "base")
    model = random_model(CONFIGS["qwen2-untied-mqa"])
    ckpt = save_run_checkpoint(tmp_path / "ckpt.pt", model, init=str(tmp_path / "base"))
    ex.main([str(ckpt), str(tmp_path / "hf")])
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and lines[1].startswith(f"tokenizer: copied from {tmp_path / 'base'}"), lines
    for name in ("vocab.json", "merges.txt", "tokenizer_config.json", "tokenizer.json"):
        assert (tmp_path / "hf" / name).read_text() == files[name]
    config = json.loads((tmp_path / "hf" / "config.json").read_text())
    assert (config["bos_token_id"], config["eos_token_id"]) == (6, 7)  # the source model's own
    assert max_logit_error(model, load_hf(tmp_path / "hf")) <= 1e-5
    # an RL run started from that run's sft.pt: the tokenizer is followed back to the directory
    rl = save_run_checkpoint(tmp_path / "rl.pt", model, init=str(ckpt))
    ex.main([str(rl), str(tmp_path / "hf2")])
    assert capsys.readouterr().out.splitlines()[1].startswith(f"tokenizer: copied from {tmp_path / 'base'}")
    assert (tmp_path / "hf2" / "vocab.json").read_text() == files["vocab.json"]


def test_a_hub_name_is_looked_up_in_the_local_cache_only(tmp_path):
    snapshot = tmp_path / "cache" / "models--org--tiny" / "snapshots" / ("a" * 40)
    fake_hf_dir(snapshot)
    (tmp_path / "cache" / "models--org--tiny" / "refs").mkdir()
    (tmp_path / "cache" / "models--org--tiny" / "refs" / "main").write_text("a" * 40)
    found, line = ex.tokenizer_source(dict(task="gsm8k", init="org/tiny"), cache_dir=str(tmp_path / "cache"))
    assert found == str(snapshot) and "Hugging Face cache" in line
    found, line = ex.tokenizer_source(dict(task="gsm8k", init="org/absent"), cache_dir=str(tmp_path / "cache"))
    assert found is None and line.startswith("tokenizer: not written") and "org/absent" in line
    assert "\n" not in line


def test_an_uncached_hub_model_exports_weights_and_says_the_tokenizer_was_not_written(tmp_path, capsys):
    model = random_model(CONFIGS["qwen2-tied"])
    ckpt = save_run_checkpoint(tmp_path / "ckpt.pt", model, init="gift-tests/no-such-model-anywhere")
    ex.main([str(ckpt), str(tmp_path / "hf")])
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and lines[1].startswith("tokenizer: not written") and "not in the local" in lines[1]
    assert sorted(os.listdir(tmp_path / "hf")) == ["config.json", "model.safetensors"]


def fails(argv, *words):
    with pytest.raises(SystemExit) as error:
        ex.main([str(a) for a in argv])
    message = str(error.value)
    assert message.startswith("error:") and "\n" not in message, message
    assert all(word in message for word in words), message


def test_bad_input_is_one_error_line(tmp_path):
    model = random_model(CONFIGS["gpt2-tied"])
    ckpt = save_run_checkpoint(tmp_path / "ckpt.pt", model, task="builtin")
    fails([tmp_path / "missing.pt", tmp_path / "a"], "does not exist")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint" * 10)
    fails([tmp_path / "junk.pt", tmp_path / "b"], "cannot read checkpoint")
    torch.save([1, 2, 3], tmp_path / "list.pt")
    fails([tmp_path / "list.pt", tmp_path / "c"], "not a gift checkpoint")
    torch.save(dict(model=model.state_dict()), tmp_path / "bare.pt")  # weights, but no model or run config
    fails([tmp_path / "bare.pt", tmp_path / "d"], "not a gift checkpoint")
    lora = dict(model.state_dict(), **{"transformer.h.0.attn.c_attn.lora_A": torch.zeros(2, 32)})
    save_checkpoint(str(tmp_path / "lora.pt"), dict(config=dict(task="builtin", init="nano"), model=lora,
                                                    model_config=asdict(model.config)))
    fails([tmp_path / "lora.pt", tmp_path / "e"], "LoRA", "merge")
    mixed = GPTConfig(**{**GPT2, "rope_theta": 1e4})  # rotary positions with LayerNorm and the GELU MLP
    save_run_checkpoint(tmp_path / "mixed.pt", random_model(mixed))
    fails([tmp_path / "mixed.pt", tmp_path / "f"], "cannot be exported", "rmsnorm")
    fails([ckpt, tmp_path / "g", "--dtype", "int8"], "--dtype")
    assert not any((tmp_path / d).exists() for d in "abcdefg")  # a refused export leaves no folder behind


def test_a_non_empty_folder_is_refused_unless_overwrite(tmp_path):
    model = random_model(CONFIGS["gpt2-untied-no-bias"])
    ckpt = save_run_checkpoint(tmp_path / "ckpt.pt", model, task="builtin")
    out = tmp_path / "hf"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    (out / "vocab.json").write_text("{}")  # a stale tokenizer file of an earlier export
    (out / "model.safetensors.index.json").write_text("{}")  # stale shards' index: loaders would prefer it
    fails([ckpt, out], "not empty", "--overwrite")
    rc, _, err = run_cli(ckpt, out)  # the same refusal from the command line: exit status 1, one line on stderr
    assert rc == 1 and len(err) == 1 and err[0].startswith("error: ") and "not empty" in err[0], err
    (tmp_path / "file").write_text("x")
    fails([ckpt, tmp_path / "file"], "not a folder")
    ex.main([str(ckpt), str(out), "--overwrite"])
    assert sorted(os.listdir(out)) == ["config.json", "model.safetensors", "notes.txt"]  # only model files replaced
    assert max_logit_error(model, load_hf(out)) <= 1e-5


def test_a_lora_run_is_exported_with_its_adapters_merged(tmp_path):
    from gift.lora import add_lora

    model = random_model(CONFIGS["qwen2-tied"])
    add_lora(model, 4, 8.0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.05)  # adapters that change the logits
    path = tmp_path / "ckpt.pt"
    save_checkpoint(str(path), dict(config=dict(task="gsm8k", init="micro", method="gift", lora_rank=4,
                                                lora_alpha=8.0), step=3, model=model.state_dict(),
                                    model_config=asdict(model.config)))
    out = ex.main([str(path), str(tmp_path / "hf")])
    assert not any("lora" in n for n in tensor_names(out))
    assert max_logit_error(model.eval(), load_hf(out)) < 1e-5  # the adapted model's logits, as one plain model


def test_the_export_docs_say_the_calculator_is_not_exported_and_what_to_do():
    """Our sampler forces the calculator's results; transformers' generate does not, so an exported model answers
    differently there. Where the export is documented (this module, docs/training.md) says so and gives the remedies:
    eval.py on the folder (tests/test_eval_cli.py checks it gives the checkpoint's completions) or a LogitsProcessor."""
    with open(os.path.join(ROOT, "docs", "training.md")) as f:
        training = f.read()
    section = training[training.index("- **Exporting**"):]
    section = " ".join(section[:section.index("\n- ")].split())
    for text in (" ".join(ex.__doc__.split()), section):
        assert "calculator is not exported" in text or "not the calculator" in text, text
        for needed in ("generate", "<<expr=", "python eval.py OUT_DIR --task builtin", "LogitsProcessor"):
            assert needed in text, (needed, text)
    assert "gift.sampler.format_result" in section and "calculate(expr)" in section
