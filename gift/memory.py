"""Fitting a small GPU: the memory options of train.py, and (python -m gift.memory) a planner that says before any
download how much memory a run needs at each phase.

    micro_batch, grad_ckpt, lora_rank, lora_alpha, quant, optim, sample_chunk, offload_activations, gpu_memory
"""
import contextlib
import json
import math
import os
import sys
import weakref
from dataclasses import dataclass, fields
from types import SimpleNamespace

import torch
from torch._subclasses.fake_tensor import DataDependentOutputException, FakeTensor, FakeTensorMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_map_only
from torch.utils.weak import WeakIdKeyDictionary

from gift.settings import check_config, config_parser, parse_config, require, setting

from gift.quant import QUANTS  # none | nf4: --quant


@dataclass
class MemorySettings:
    """train.py's options for fitting memory. None changes what a run computes except --quant (a 4-bit base) and
    --optim=adamw8bit (8-bit optimiser state): the others trade time for memory with the same numbers."""
    micro_batch: int = setting(0, "groups per forward/backward pass (0: a whole mini-batch); gradients accumulate",
                               section="memory: fitting a small GPU (python -m gift.memory plans a run)")
    grad_ckpt: bool = setting(False, "recompute each block in backward instead of keeping its activations")
    lora_rank: int = setting(0, "train LoRA adapters of this rank on the attention and MLP projections, the rest "
                                "frozen (0: full fine-tuning; gift/lora.py)")
    lora_alpha: float = setting(0.0, "LoRA's scale is alpha / rank (0: alpha = rank)")
    quant: str = setting("none", "none | nf4: keep the frozen base weights in 4 bits under the LoRA adapters "
                                 "(QLoRA; needs --lora_rank and bitsandbytes)")
    optim: str = setting("adamw", "adamw | adamw8bit (bitsandbytes, optional: 8-bit optimiser state)")
    sample_chunk: int = setting(0, "sample a step's prompts this many groups at a time (0: all at once); the same "
                                   "samples whatever the chunk")
    offload_activations: bool = setting(False, "keep the checkpointed block inputs in CPU memory during backward")
    gpu_memory: float = setting(0.0, "GiB of the GPU: refuse at setup a run the planner says does not fit (0: no "
                                     "check)")

    def check(self):
        """The memory options' own bad values, one error line each (train.py's check_config calls this)."""
        require(self, choices=dict(quant=QUANTS, optim=OPTIMS))
        if self.quant == "nf4" and not self.lora_rank:
            raise SystemExit("error: --quant=nf4 keeps the frozen base in 4 bits under LoRA adapters: it needs "
                             "--lora_rank (e.g. --lora_rank=16)")
        if self.quant == "nf4" and hasattr(self, "device"):  # train.py: bitsandbytes and its device, before loading
            from gift.quant import check_quant
            device = ("cuda" if torch.cuda.is_available() else "cpu") if self.device == "auto" else self.device
            check_quant(self.quant, self.lora_rank, device)


# ----------------------------------------------------------------------------------------------------------------
# The planner: python -m gift.memory --init=qwen2.5-1.5b --task=gsm8k --lora_rank=16 --quant=nf4 --grad_ckpt
#
# What a run holds on the GPU at the peak of each phase, before anything is downloaded. Nothing is estimated by a
# formula: the planner runs train.py's own code (gift/model.py, gift/lora.py, gift/quant.py, gift/runs.py's
# make_optimizer, gift/sampler.py's generate, gift/kernels.py's response_logprobs, gift/loss.py's objectives) at the
# run's real shapes on fake tensors (torch's FakeTensorMode: shapes and dtypes, no storage, so a 7B model costs
# nothing) and counts the bytes of every live tensor storage after every operation (`_Tracker`, the way torch's
# MemTracker does). One RL step of train.py, in its order:
#
#   weights            ("setup") train.setup: the float32 model on the device, then fit_memory's adapters and 4-bit
#                        base (SETUP_ON_DEVICE): the peak of that, which can exceed what stays
#   optimiser_state    ("resident") what stays from then on: the fitted model, a frozen reference copy if --ref
#                        needs one, the optimiser's state (make_optimizer; AdamW: 2 float32 moments a trained
#                        parameter; adamw8bit: a byte each + a float32 absmax per 256); every later phase includes it
#   sft                (--sft_steps > 0) one SFT step: --sft_batch rows of prompt + solution, forward, backward, step;
#                        then start_rl's new adapters (merged into the base, quantised again)
#   sampling           generate(): the KV cache of a chunk of prompts x G rows, the prefill, a decode step, the
#                        --dtype=bfloat16 copy of the weights; every row samples --max_new_tokens (the worst case)
#   old_logprobs       rollout's no-grad pass over the B x G rows, micro-batch by micro-batch (+ pi_ref's, if any)
#   training           update_policy: the last micro-batch of a mini-batch (the earlier ones' gradients already
#                        held), forward, loss, backward, then clip and the optimiser step
#   evaluation         evaluate(): greedy decoding of --eval_batch held-out prompts (the model's dtype: fp32, or
#                        bf16 for a model whose frozen matrices are bf16, --quant=nf4 --dtype=bfloat16)
#
# Each phase's figure is everything alive at its peak (the weights and optimiser state included), plus what the
# GPU adds around the tensors: CUDA_CONTEXT_GIB and ALLOCATOR_MARGIN below. Where the planner cannot run the code
# as it is (reading values from fake tensors, Triton kernels, host copies), `_patched` says what stands in for it.
#
# The CPU check (tests/test_memory.py): with device="cpu" the planner counts what this code allocates on a CPU, and
# the CPU allocator's real peak during train.update_policy (torch.profiler's memory timeline) agrees within 10%.

OPTIMS = ("adamw", "adamw8bit")
PHASES = {"weights": "setup", "optimiser_state": "resident", "sft": "SFT step", "sampling": "sampling",
          "old_logprobs": "old-log-prob pass", "training": "training", "evaluation": "evaluation"}
GIB = 2**30

# What a GPU holds beyond the tensors (named here so that each can be checked and corrected on a card):
CUDA_CONTEXT_GIB = 0.5  # the CUDA context (kernel images of torch, cuBLAS and cuDNN, their handles and workspaces),
# outside torch's allocator: nvidia-smi shows 0.3-0.6 GiB for a process that has run one matmul on recent cards with
# CUDA 12's lazy module loading. A figure to measure on each card: `torch.cuda.mem_get_info` before and after.
ALLOCATOR_MARGIN = 0.10  # the caching allocator reserves more than its tensors hold (blocks split and cached between
# steps of different shapes: fragmentation); 5-15% in training loops is the usual range, to be measured on a card
# (torch.cuda.max_memory_reserved against max_memory_allocated). PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True
# lowers it.
ALLOCATOR_ROUND = 512  # bytes: CUDACachingAllocator rounds every block up to a multiple of 512 (kMinBlockSize)

# train.setup runs fit_memory(model.to(cfg.device), ...): the float32 model is on the device before LoRA and the
# 4-bit base are applied, so the weights phase peaks at the full model. False if train.py fits the model on the host
# first and then moves it: the weights phase is then what stays resident.
SETUP_ON_DEVICE = False  # train.setup fits the model (adapters, nf4) on the host, then moves it to the device

# Prompt lengths when the task's data is not on this machine (stated in the plan's notes):
GSM8K_PROMPT_TOKENS = 200  # a step's longest of 16 chat-formatted GSM8K prompts is ~150-200 tokens; the longest of
GSM8K_SOLUTION_TOKENS = 300  # all is ~280 (train + test); solutions (SFT): the 99th percentile is ~300
PIECE_TOKENS = 1.1  # tokens per piece of the tokenizer's pre-tokenisation pattern, to count without its vocabulary

# The names the planner knows (no download): the published models' shapes, gift/model.py's PRESETS
KNOWN = {"qwen2.5-0.5b", "qwen2.5-1.5b", "qwen2.5-3b", "qwen2.5-7b", "gpt2", "gpt2-medium", "gpt2-large", "gpt2-xl"}


@dataclass
class PlanSettings(MemorySettings):
    """The settings of train.py that decide a run's memory, with train.py's defaults (gift/ does not import
    train.py; tests/test_memory.py checks that the defaults agree), and the planner's own options."""
    init: str = setting("micro", "a preset (qwen2.5-0.5b/1.5b/3b/7b, their hub names, gpt2, gpt2-medium, ...), an "
                                 "HF directory or config.json path, or a train.py ckpt.pt",
                        section="the run: train.py's settings (python train.py --help-all explains them)")
    task: str = setting("builtin", "builtin | gsm8k")
    data_root: str = setting("data/gsm8k", "GSM8K files: the longest prompt is read from them when present")
    dtype: str = setting("float32", "float32 | bfloat16 (autocast; the GPU recipes use bfloat16)")
    prompts: int = setting(16, "B prompts per step")
    group_size: int = setting(8, "G samples per prompt")
    max_new_tokens: int = setting(96, "longest response, in tokens")
    minibatches: int = setting(4, "K mini-batches of whole groups per step")
    temperature: float = setting(1.0, "sampling temperature")
    method: str = setting("gift", "the RL loss (gift/loss.py)")
    ref: str = setting("old", "pi_ref: old | frozen | refresh (frozen/refresh without LoRA: a second copy)")
    kl_coef: float = setting(0.0, "GRPO's KL penalty (a frozen reference copy)")
    sft_steps: int = setting(2400, "SFT steps before RL (0: none; its step is planned when > 0)")
    sft_batch: int = setting(16, "solutions per SFT step")
    fused_head: str = setting("auto", "auto | on | off")
    eval_problems: int = setting(1000, "held-out problems")
    eval_batch: int = setting(250, "problems per sampling batch in evaluations")
    prompt_len: int = setting(0, "prompt tokens (0: the task's longest, or the stated default)",
                              section="the planner's own options")
    json: bool = setting(False, "print one JSON object: peak_gib, peak_phase, phases {phase: GiB}, ...")
    table: bool = setting(False, "print docs/gsm8k.md's memory table (Qwen2.5 x three recipes) and exit")

    def check(self):
        from gift.loss import LOSSES
        if self.task == "rlhf":
            raise SystemExit("error: the memory planner does not plan --task=rlhf (its reward model is not counted); "
                             "plan --task=builtin, the same prompts, and add the reward model's weights")
        require(self, choices=dict(task=("builtin", "gsm8k"), dtype=("float32", "bfloat16"), method=tuple(LOSSES),
                                   ref=("old", "frozen", "refresh"), fused_head=("auto", "on", "off")),
                at_least=dict(prompts=1, group_size=2, max_new_tokens=1, minibatches=1, sft_batch=1, eval_problems=1,
                              eval_batch=1), positive=("temperature",))
        if self.prompts % self.minibatches:
            raise SystemExit(f"error: --prompts={self.prompts} must be divisible by --minibatches={self.minibatches}")


def settings_of(cfg):
    """PlanSettings from train.py's Config, a dict or PlanSettings: the fields they have, the defaults for the rest."""
    values = cfg if isinstance(cfg, dict) else vars(cfg)
    names = {f.name for f in fields(PlanSettings)}
    unknown = [k for k in values if k not in names]
    if isinstance(cfg, dict) and unknown:
        raise SystemExit(f"error: the planner does not know the setting {unknown[0]!r}")
    s = PlanSettings(**{k: v for k, v in values.items() if k in names})
    check_config(s)  # each settings class's check(), then no negative numbers
    return s


# ----------------------------------------------------------------------------------------------------------------
# the model's shape and the task's token lengths, without weights or a download


def model_config(s):
    """(GPTConfig, name) for --init: a preset (the published models' shapes), a hub name the planner knows, an HF
    directory or its config.json, or a train.py ckpt.pt. The built-in task trains a small preset with the byte
    tokenizer (vocabulary 257), as gift/runs.py's load_model does."""
    from gift.model import PRESETS, gpt2_config, preset, qwen2_config
    init = s.init
    name = init.lower().split("/")[-1].removesuffix("-instruct")  # Qwen/Qwen2.5-1.5B-Instruct -> qwen2.5-1.5b
    small = [p for p in PRESETS if p not in KNOWN]
    if init.endswith(".pt") and os.path.isfile(init):  # a train.py checkpoint: its own shape
        from gift.checkpoint import load_checkpoint
        from gift.model import GPTConfig
        ckpt = load_checkpoint(init)
        if "model_config" not in ckpt:
            raise SystemExit(f"error: {init} is not a train.py checkpoint (no model_config)")
        return GPTConfig(**ckpt["model_config"]), os.path.basename(os.path.dirname(os.path.abspath(init)))
    if s.task == "builtin":
        if init not in small:
            raise SystemExit(f"error: --init={init}: the built-in task trains a small preset from scratch with the "
                             f"byte tokenizer ({', '.join(small)}); use --task=gsm8k for {init}")
        return preset(init, vocab_size=257), init
    if name in KNOWN and name in PRESETS and not os.path.exists(init):
        return preset(name), name  # the published shape and vocabulary
    if init in small:
        return preset(init, vocab_size=50257), init  # trained from scratch with GPT-2's tokenizer (load_model)
    path = init if init.endswith(".json") else os.path.join(init, "config.json")
    if os.path.isfile(path):
        try:
            with open(path) as f:
                hf = json.load(f)
            kind = hf.get("model_type")
            if kind not in ("gpt2", "qwen2"):
                raise ValueError(f"{path} has model_type {kind!r}, expected 'gpt2' or 'qwen2'")
            return (gpt2_config if kind == "gpt2" else qwen2_config)(hf, os.path.dirname(path) or "."), init
        except (ValueError, KeyError, OSError) as e:
            raise SystemExit(f"error: --init={init}: {e}") from None
    raise SystemExit(f"error: --init={init}: the planner knows {', '.join(sorted(KNOWN))} (and their hub names, "
                     f"e.g. Qwen/Qwen2.5-1.5B-Instruct), the small presets, an HF directory or config.json path and "
                     f"train.py checkpoints; it downloads nothing")


def token_lengths(s, config):
    """{prompt, solution, eval_prompt: tokens, note: how they were found}: the task's longest prompt (the one that
    decides a step's padded length) and solution. --prompt_len sets the prompts' length."""
    from gift import data
    from gift.tokenizer import builtin_tokenizer
    if s.task == "builtin":  # the byte tokenizer: a token a byte; 200 generated problems reach the longest form
        enc = builtin_tokenizer()
        train = [data.builtin_example("train", i) for i in range(200)]
        prompt = max(len(data.encode_prompt(enc, ex.question)) for ex in train)
        out = dict(prompt=prompt, solution=max(len(data.encode_completion(enc, ex.solution)) for ex in train),
                   eval_prompt=prompt, note=f"built-in task: prompts of up to {prompt} tokens (bytes)")
    else:
        out = _gsm8k_lengths(s, config)
    if s.prompt_len:
        out.update(prompt=s.prompt_len, eval_prompt=s.prompt_len, note=f"prompts of {s.prompt_len} tokens "
                                                                       f"(--prompt_len)")
    return out


def _gsm8k_lengths(s, config):
    """GSM8K's longest prompt and solution: counted with the model's tokenizer when --init is a directory that has
    it, else estimated from the pre-tokenisation pattern (Qwen2's chat format or GPT-2's plain one): PIECE_TOKENS
    tokens a piece; without data/gsm8k the stated defaults."""
    import regex

    from gift import data
    from gift.tokenizer import GPT2_PATTERN, QWEN2_PATTERN, get_tokenizer
    files = [os.path.join(s.data_root, f"{split}.jsonl") for split in ("train", "test")]
    if not all(os.path.isfile(f) for f in files):
        return dict(prompt=GSM8K_PROMPT_TOKENS, solution=GSM8K_SOLUTION_TOKENS, eval_prompt=GSM8K_PROMPT_TOKENS,
                    note=f"no GSM8K files in {s.data_root}: prompts of {GSM8K_PROMPT_TOKENS} tokens assumed (a step's "
                         f"longest chat-formatted prompt; GSM8K's longest is ~280), solutions {GSM8K_SOLUTION_TOKENS}")
    train, test = data.load_gsm8k("train", s.data_root), data.load_gsm8k("test", s.data_root)
    if os.path.isfile(os.path.join(s.init, "vocab.json")) and os.path.isfile(os.path.join(s.init, "merges.txt")):
        enc = get_tokenizer(s.init)
        prompt = lambda ex: len(data.encode_prompt(enc, ex.question))  # noqa: E731
        solution = lambda ex: len(data.encode_completion(enc, ex.solution))  # noqa: E731
        how = f"counted with {s.init}'s tokenizer"
    else:
        chat = bool(config.rope_theta)  # Qwen2's tokenizer has the chat markers: prompts in the chat format
        pieces = regex.compile(QWEN2_PATTERN if chat else GPT2_PATTERN).findall
        count = lambda text: math.ceil(PIECE_TOKENS * len(pieces(text)))  # noqa: E731
        if chat:  # 3 turn starts, 2 turn ends, the newline after each end (gift/data.py's encode_prompt)
            prompt = lambda ex: 7 + count(f"system\n{data.CHAT_SYSTEM}") + count(  # noqa: E731
                f"user\n{ex.question.strip()}\n\n{data.CHAT_INSTRUCTION}") + count("assistant\n")
            solution = lambda ex: count(ex.solution.strip()) + 1  # noqa: E731
        else:
            prompt = lambda ex: count(data.format_prompt(ex.question))  # noqa: E731
            solution = lambda ex: count(data.format_completion(ex.solution)) + 1  # noqa: E731
        how = f"estimated: {PIECE_TOKENS} tokens per piece of {'Qwen2' if chat else 'GPT-2'}'s pre-tokenisation"
    longest = max(prompt(ex) for ex in train + test)
    return dict(prompt=longest, solution=max(solution(ex) for ex in train), eval_prompt=max(prompt(ex) for ex in
                test[:s.eval_problems]), note=f"GSM8K's longest prompt: {longest} tokens ({how})")


# ----------------------------------------------------------------------------------------------------------------
# counting: live storages on fake tensors


class _Tracker(TorchDispatchMode):
    """Bytes of the tensor storages alive, updated after every operation: a storage is counted when an operation
    first returns it and uncounted when Python frees it (a weak reference's callback). `round_to`: the allocator's
    block granularity (ALLOCATOR_ROUND for a GPU, 1 for a CPU). `phase(name)` records the peak inside it."""

    def __init__(self, round_to=1):
        super().__init__()
        self.round_to, self.live, self.now, self.peak = round_to, WeakIdKeyDictionary(), 0, 0
        self.peaks, self.before = {}, {}

    def _count(self, t):
        storage = t.untyped_storage()
        if storage in self.live:
            return
        size = -(-storage.nbytes() // self.round_to) * self.round_to

        def freed(_, size=size):
            self.now -= size

        self.live[storage] = weakref.ref(storage, freed)
        self.now += size
        self.peak = max(self.peak, self.now)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        tree_map_only(torch.Tensor, self._count, out)
        return out

    @contextlib.contextmanager
    def phase(self, name):
        self.before[name], self.peak = self.now, self.now
        yield
        self.peaks[name] = self.peak


class _HostCopy:
    """A saved tensor offloaded to host memory (not counted); `to(device)` brings back a new device tensor."""

    def __init__(self, t):
        self.shape, self.stride, self.dtype = t.shape, t.stride(), t.dtype

    def to(self, device, non_blocking=False):
        return torch.empty_strided(self.shape, self.stride, dtype=self.dtype, device=device)


class _FakeOffload(torch.autograd.graph.saved_tensors_hooks):
    """gift.model.OffloadActivations' policy on fake tensors, whose storages have no address to compare: the
    parameters and buffers (and views of them) stay, every other saved tensor goes to host memory and comes back as
    a new device tensor when backward needs it."""

    def __init__(self, model):
        kept = WeakIdKeyDictionary({t.untyped_storage(): True for t in (*model.parameters(), *model.buffers())})
        super().__init__(lambda t: t if t.untyped_storage() in kept else (t.device, _HostCopy(t)),
                         lambda packed: packed if isinstance(packed, torch.Tensor) else packed[1].to(packed[0]))


class _NoLaunch:
    """A Triton kernel that is not launched: `_triton_forward`/`_triton_backward` allocate their outputs as on a GPU."""

    def __getitem__(self, grid):
        return lambda *args, **kwargs: None


def _zeros_list(self):
    """Fake tensors have no values: read them as zeros (the loss's logged statistics, bitsandbytes' constant maps)."""
    def zeros(shape):
        return 0.0 if not shape else [zeros(shape[1:]) for _ in range(shape[0])]
    return zeros(tuple(self.shape))


@contextlib.contextmanager
def _patched(cuda, ends):
    """What stands in, during a plan, for code that cannot run on fake tensors; nothing else is changed.

    - values read from tensors (`.item()`: 1, e.g. AdamW's step count; `.tolist()`: zeros, e.g. the loss's
      statistics, bitsandbytes' quantisation maps); the targets' range check of gift/kernels.py (a value read) is
      skipped, as on a GPU.
    - the sampler's per-step host copy of the stop flags says every row stopped after the first decode step
      (`ends` counts it): the KV cache is allocated whole before decoding, so one decode step at full size holds what
      every later step does (rows that stop early only free memory).
    - cuda: gift/kernels.py takes its Triton path (the GPU's: outputs allocated, no kernel launched); activation
      offloading sends saved tensors to uncounted host memory (`_FakeOffload`; on a CPU it does nothing).
    """
    from gift import kernels, model, sampler

    def all_stopped(x):
        n = x.shape[0]
        ends.append(n)
        return lambda: [1] * n

    changes = [(torch.Tensor, "item", lambda self: 1.0), (torch.Tensor, "tolist", _zeros_list),
               (FakeTensor, "tolist", _zeros_list), (kernels, "_check_targets", lambda *a: None),
               (sampler, "_start_copy_to_host", all_stopped)]
    if cuda:
        changes += [(kernels, "_resolve_backend", lambda backend, x: "triton"),
                    (kernels, "launch_config", lambda V: (None, None)),
                    (kernels, "_logprobs_fwd_kernel", _NoLaunch()), (kernels, "_logprobs_bwd_kernel", _NoLaunch()),
                    (model, "OffloadActivations", _FakeOffload)]
    missing = object()
    saved = [(owner, name, owner.__dict__.get(name, missing)) for owner, name, _ in changes]
    try:
        for owner, name, value in changes:
            setattr(owner, name, value)
        yield
    finally:
        for owner, name, value in reversed(saved):
            if value is missing:
                delattr(owner, name)
            else:
                setattr(owner, name, value)


# ----------------------------------------------------------------------------------------------------------------
# one RL step of train.py on fake tensors


def _generate(model, prompts, num_samples, max_new_tokens, temperature, dtype, cuda, chunk, ends):
    """gift.sampler.generate as train.py and evaluate() call it, up to the last decode step: it then reads the
    sampled lengths back (`int(lengths.max())`), which fake tensors cannot give; that error is the expected end."""
    from gift.sampler import generate
    decoded = len(ends)
    try:
        generate(model, prompts, num_samples=num_samples, max_new_tokens=max_new_tokens, temperature=temperature,
                 stop_tokens=(0,), seed=list(range(len(prompts))), dtype=dtype, decode_graphs=True if cuda else None,
                 chunk=chunk)
    except DataDependentOutputException:
        if len(ends) == decoded:  # failed before its first decode step: a real problem
            raise


def _optimizer_step(model, opt):
    """train.optimizer_step: clip the gradient norm, step, drop the gradients."""
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    opt.zero_grad(set_to_none=True)


def _loss_options(s):
    """The losses' options: gift/loss.py's BaselineSettings defaults and GIFT's (train.py's Config), --kl_coef."""
    from gift.loss import BaselineSettings
    options = {f.name: f.default for f in fields(BaselineSettings)}
    options.update(kl_coef=s.kl_coef, std_floor=1e-3, detach_std=True, mask_degenerate=False, beta=1.0)
    return SimpleNamespace(**options)


def _materialize(model):
    """model.to_empty(device="cpu") on fake tensors, keeping tied weights one tensor (to_empty would give the head a
    tensor of its own): the model as load_model and .to(device) leave it."""
    made = {}
    for module in model.modules():
        for table in (module._parameters, module._buffers):
            for name, t in table.items():
                if t is not None and id(t) not in made:
                    empty = torch.empty_like(t, device="cpu")
                    made[id(t)] = torch.nn.Parameter(empty, t.requires_grad) if isinstance(t, torch.nn.Parameter) \
                        else empty
                if t is not None:
                    table[name] = made[id(t)]
    return model


def _new_optimizer(model, s, cuda):
    """make_optimizer's optimiser with its state made (a first step on zero gradients), as in every step after the
    first. On a GPU torch's AdamW steps all parameters at once (foreach), with a temporary of their size."""
    from gift.runs import make_optimizer
    opt = make_optimizer(model, 1e-4, SimpleNamespace(optim=s.optim, weight_decay=0.0, device="cuda"))
    if cuda and s.optim == "adamw":  # what torch picks for CUDA tensors
        for group in opt.param_groups:
            group["foreach"] = True
    for p in model.parameters():
        if p.requires_grad:
            p.grad = torch.zeros_like(p)
    opt.step()
    opt.zero_grad(set_to_none=True)
    return opt


def simulate(s, config, lengths, cuda=True, only=None):
    """Bytes allocated at the peak of each phase of a train.py run (module comment above): {"peaks": {phase:
    bytes}, "before": {phase: bytes resident when it starts}, "params", "trainable", "resident": {kind: bytes}}.
    weights is the peak of train.setup (the model is on the device before fit_memory adds adapters and quantises);
    optimiser_state what stays resident once the optimiser has its state. cuda: count as a GPU does (blocks rounded
    to ALLOCATOR_ROUND, AdamW's foreach step, the Triton log-prob path, the static decode buffers of CUDA graphs,
    offloading); else as this CPU does (the test's comparison). only: the phases to run (weights and optimiser
    state always are)."""
    from gift.kernels import response_logprobs
    from gift.loss import LOSSES, RLBatch, kl_k3
    from gift.model import GPT
    from gift.reference import Reference
    B, G, K, T = s.prompts, s.group_size, s.minibatches, s.max_new_tokens
    P = lengths["prompt"]
    rows = [(P + T, f"a {P}-token prompt and --max_new_tokens={T}"),
            (lengths["eval_prompt"] + T, f"a {lengths['eval_prompt']}-token held-out prompt and --max_new_tokens={T}")]
    if s.sft_steps:
        rows.append((P + lengths["solution"], f"an SFT row of a {P}-token prompt and a {lengths['solution']}-token "
                                              f"solution"))
    for length, what in rows:
        if length > config.block_size:
            raise SystemExit(f"error: {what} exceed the model's {config.block_size} positions")
    run = lambda phase: only is None or phase in only  # noqa: E731
    loss_fn = LOSSES[s.method]
    reference = Reference.of(loss_fn, SimpleNamespace(ref=s.ref, ref_every=10, lora_rank=s.lora_rank,
                                                      kl_coef=s.kl_coef))
    logprobs = lambda m, idx, mask, t=s.temperature: response_logprobs(m, idx, mask, s, t)  # noqa: E731
    if s.quant == "nf4" or s.optim == "adamw8bit":
        from gift.quant import _bnb
        _bnb()  # bitsandbytes, imported quietly (one error line when it is missing)
    tracker, ends = _Tracker(ALLOCATOR_ROUND if cuda else 1), []
    with torch.device("meta"):
        model = GPT(config)
    params = model.num_params()
    with FakeTensorMode(allow_non_fake_inputs=True), tracker, _patched(cuda, ends):
        with tracker.phase("weights"), contextlib.redirect_stdout(None):  # train.setup (its notes are not ours)
            fit_memory(_materialize(model), s, SimpleNamespace(world=1, rank=0))
        if not SETUP_ON_DEVICE:  # fit_memory ran on the host: the device receives the fitted model only
            tracker.peaks["weights"] = tracker.now
        with tracker.phase("optimiser_state"):
            opt = _new_optimizer(model, s, cuda)
        tracker.peaks["optimiser_state"] = tracker.now  # resident: the first step's zero gradients are gone
        if s.sft_steps and run("sft"):
            with tracker.phase("sft"):  # train.sft_step (the whole batch in one pass), then start_rl's new adapters
                L = lengths["prompt"] + lengths["solution"]
                idx, mask = torch.zeros(s.sft_batch, L, dtype=torch.long), torch.ones(s.sft_batch, L - 1)
                model.train()
                logp, _ = logprobs(model, idx, mask, 1.0)
                loss = -logp.sum() / mask.sum()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                _optimizer_step(model, opt)
                del idx, mask, logp, _, loss
                new_adapters(model, s)  # LoRA: merge into the base, new adapters, quantise again
        if s.sft_steps and s.lora_rank:
            opt = None
            opt = _new_optimizer(model, s, cuda)  # start_rl: RL's optimiser, over the new adapters
        trainable = [p for p in model.parameters() if p.requires_grad]
        reference.before_rl_step(model, 0)  # --ref=frozen/refresh without LoRA: a copy of the policy
        resident = _resident(model, trainable, reference.model, torch.bfloat16 if s.dtype == "bfloat16" else None)
        if run("sampling"):
            with tracker.phase("sampling"):  # train.generate_groups
                _generate(model.eval(), [[1] * P] * B, G, T, s.temperature,
                          torch.bfloat16 if s.dtype == "bfloat16" else None, cuda, s.sample_chunk, ends)
        # train.rollout: rows of prompt + response, right-padded to P + T; K mini-batches of B/K whole groups, each
        # in micro-batches of --micro_batch groups (row slices)
        N, L, b = B * G, P + T, B // K
        micro = s.micro_batch or b
        batches = [[slice(g * G, min(g + micro, m + b) * G) for g in range(m, m + b, micro)] for m in range(0, B, b)]
        chunks = [rs for mb in batches for rs in mb]
        if run("old_logprobs") or run("training"):
            idx, mask = torch.zeros(N, L, dtype=torch.long), torch.ones(N, L - 1)
            rewards, truncated = torch.zeros(N), torch.zeros(N, dtype=torch.bool)

            def score(m):  # torch.cat of every chunk's log-probs: the others' outputs are held while one runs
                held = [torch.empty(rs.stop - rs.start, L - 1) for rs in chunks[1:]]
                return torch.cat(held + [logprobs(m, idx[chunks[0]], mask[chunks[0]])[0]])

            with tracker.phase("old_logprobs"), torch.no_grad():
                old_logp = score(model)
                ref_logp = reference.logprobs(old_logp, score, model)  # gift/reference.py
        if run("training"):
            with tracker.phase("training"):  # train.update_policy: a mini-batch's last micro-batch, then the step
                model.train()
                rs, n_micro = batches[0][0], len(batches[0])
                if n_micro > 1:  # the earlier micro-batches' gradients, accumulated
                    for p in trainable:
                        p.grad = torch.zeros_like(p)
                logp, ent = logprobs(model, idx[rs], mask[rs])
                ref = None if ref_logp is None else ref_logp[rs]
                batch = RLBatch(logp, old_logp[rs], ref, rewards[rs], mask[rs], G, T, truncated[rs])
                loss, _ = loss_fn(batch, _loss_options(s))
                (loss * (rs.stop - rs.start) / (N // K)).backward()
                with torch.no_grad():  # the logged entropy and KL (gift/monitor.py's UpdateLog)
                    (ent * mask[rs]).sum()
                    if ref is not None:
                        (kl_k3(logp, ref) * mask[rs]).sum()
                _optimizer_step(model, opt)
                del logp, ent, ref, batch, loss
        if run("old_logprobs") or run("training"):
            del idx, mask, rewards, truncated, old_logp, ref_logp
        if run("evaluation"):
            with tracker.phase("evaluation"):  # evaluate(): greedy, the fp32 model, --eval_batch prompts at a time
                _generate(model.eval(), [[1] * lengths["eval_prompt"]] * min(s.eval_batch, s.eval_problems), 1, T,
                          0.0, None, cuda, 0, ends)
        peaks = {k: v for k, v in tracker.peaks.items() if run(k) or k in ("weights", "optimiser_state")}
        before = dict(tracker.before, weights=0)
        return dict(peaks=peaks, before={k: before[k] for k in peaks}, params=params,
                    trainable=sum(p.numel() for p in trainable), resident=resident)


def _storage_bytes(tensors):
    return sum({id(t.untyped_storage()): t.untyped_storage().nbytes() for t in tensors}.values())


def _resident(model, trainable, ref_model, sample_dtype):
    """What the weights phase holds, by kind (bytes of the fake tensors), and the copy generate() makes to sample
    in another dtype (parameters and floating buffers cast; the others, a 4-bit base among them, shared:
    gift/sampler.py)."""
    trained = {id(p) for p in trainable}
    nf4 = [b for m in model.modules() if type(m).__name__ == "NF4Weight" for b in m.buffers()]
    frozen = [p for p in model.parameters() if id(p) not in trained]
    out = {"4-bit base": _storage_bytes(nf4), "trained parameters (fp32)": _storage_bytes(trainable),
           "frozen parameters": _storage_bytes(frozen)}
    if ref_model is not None:
        out["reference copy"] = _storage_bytes([*ref_model.parameters(), *ref_model.buffers()])
    if sample_dtype is not None:
        size = sample_dtype.itemsize  # what is already in sample_dtype is shared, and so are integer buffers
        out["sampling's cast copy"] = sum(t.numel() * size for t in [*model.parameters(), *model.buffers()]
                                          if t.is_floating_point() and t.dtype != sample_dtype)
    return out


# ----------------------------------------------------------------------------------------------------------------
# the plan, the check train.py calls, and the command line


def kv_cache_bytes(config, rows, slots, dtype_bytes):
    """gift.model.KVCache's keys and values: layers x 2 x rows x kv_heads x head_dim x slots x dtype bytes (+ the
    valid flags). For the plan's notes; the plan itself counts the cache that generate() allocates."""
    return (config.n_layer * 2 * rows * config.kv_heads * (config.n_embd // config.n_head) * slots * dtype_bytes
            + rows * slots)


def gib(x):
    """GiB as printed: 2 decimals, 3 below 1 GiB."""
    return f"{x:.2f}" if x >= 1 else f"{x:.3f}"


def _on_gpu(tensors, cuda=True):
    """What the GPU holds for `tensors` GiB of tensors: the allocator's margin and the CUDA context on top."""
    return tensors * (1 + ALLOCATOR_MARGIN) + CUDA_CONTEXT_GIB if cuda else tensors


def plan(cfg, device="cuda", _counted=None, _only=None):
    """The memory plan of a run. cfg: train.py's Config, a dict of its settings, or PlanSettings. Returns

        peak_gib, peak_phase     the largest phase
        phases {phase: GiB}      what the GPU holds at each phase's peak: the tensors (allocated_gib) plus
                                 ALLOCATOR_MARGIN and CUDA_CONTEXT_GIB (device="cpu": the tensors only)
        allocated_gib, before_gib   the tensors at each phase's peak, and those resident when it starts
        model, params, trainable, prompt_tokens, device, notes

    Phases (in train.py's order): weights, optimiser_state, sft (with --sft_steps), sampling, old_logprobs,
    training, evaluation. device="cpu" plans what this code allocates on a CPU (tests/test_memory.py)."""
    s = cfg if isinstance(cfg, PlanSettings) else settings_of(cfg)
    config, name = model_config(s)
    lengths = token_lengths(s, config)
    cuda = device == "cuda"
    counted = simulate(s, config, lengths, cuda, _only)
    if _counted:  # the phases this plan did not run, from an earlier plan (suggest(): one option at a time)
        counted = dict(_counted, peaks={**_counted["peaks"], **counted["peaks"]},
                       before={**_counted["before"], **counted["before"]})
    allocated = {k: counted["peaks"][k] / GIB for k in PHASES if k in counted["peaks"]}
    phases = {k: _on_gpu(v, cuda) for k, v in allocated.items()}
    peak_phase = max(phases, key=phases.get)
    rows = min(s.sample_chunk or s.prompts, s.prompts) * s.group_size
    slots = lengths["prompt"] + s.max_new_tokens - 1
    kv = kv_cache_bytes(config, rows, slots, 2 if s.dtype == "bfloat16" else 4)
    notes = [lengths["note"], f"sampling: every row samples --max_new_tokens (the worst case); the KV cache of {rows} "
                              f"rows x {slots} slots is {kv / GIB:.2f} GiB"]
    if min(s.eval_batch, s.eval_problems) > (s.sample_chunk or s.prompts) * s.group_size:
        notes.append(f"evaluation decodes {min(s.eval_batch, s.eval_problems)} prompts at once in the model's dtype "
                     f"(--eval_batch; a smaller one costs only time)")
    parts = {k: v / GIB for k, v in counted["resident"].items() if v}
    copy_ = parts.pop("sampling's cast copy", None)
    notes.append("resident: " + ", ".join(f"{k} {gib(v)}" for k, v in parts.items()) + " GiB")
    if copy_:
        notes.append(f"sampling: generate(dtype=bfloat16) holds a bfloat16 copy of the model ({gib(copy_)} GiB: "
                     f"floating tensors cast, integer buffers such as the 4-bit base shared)")
    setup, kept = allocated["weights"], counted["before"]["optimiser_state"] / GIB
    if setup > 1.05 * kept:
        notes.append(f"setup: train.setup puts the float32 model on the device before fit_memory adds adapters and "
                     f"quantises ({gib(setup)} GiB of tensors at setup, {gib(kept)} GiB after)")
    if s.sft_steps and s.lora_rank and s.quant == "nf4" and "sft" in allocated:
        notes.append("SFT step: at RL's start new_adapters merges the adapters into a float32 base, then quantises it "
                     "again: the whole base is float32 for a moment")
    return dict(peak_gib=phases[peak_phase], peak_phase=peak_phase, phases=phases, allocated_gib=allocated,
                before_gib={k: counted["before"][k] / GIB for k in allocated},
                model=name, params=counted["params"], trainable=counted["trainable"],
                resident_gib={k: v / GIB for k, v in counted["resident"].items()}, kv_cache_gib=kv / GIB,
                prompt_tokens=lengths["prompt"], device=device, notes=notes, _counted=counted)


# what each option changes: only these phases are planned again when suggest() tries it (the resident weights and
# optimiser state stay as they are); the others change everything
AFFECTS = dict(sample_chunk={"sampling"}, eval_batch={"evaluation"}, grad_ckpt={"sft", "training"},
               offload_activations={"sft", "training"}, micro_batch={"old_logprobs", "training"})


def _options(s, phase):
    """The options that shrink `phase`, as (flag, changes), in the order to try: those that change only time
    first, then those that change what is trained (8-bit moments, LoRA, a 4-bit base)."""
    b = s.prompts // s.minibatches
    chunk = min(s.sample_chunk or s.prompts, s.prompts)
    timing = dict(
        sampling=[(f"--sample_chunk={c}", dict(sample_chunk=c)) for c in (chunk // 2,) if c >= 1],
        evaluation=[(f"--eval_batch={c}", dict(eval_batch=c)) for c in (min(s.eval_batch, s.eval_problems) // 4,)
                    if c >= 1],
        training=([("--grad_ckpt", dict(grad_ckpt=True))] if not s.grad_ckpt else [])
        + ([("--micro_batch=1", dict(micro_batch=1))] if (s.micro_batch or b) > 1 else [])
        + ([("--offload_activations", dict(offload_activations=True))]
           if s.grad_ckpt and not s.offload_activations else []),
        old_logprobs=[("--micro_batch=1", dict(micro_batch=1))] if (s.micro_batch or b) > 1 else [],
        sft=[("--grad_ckpt", dict(grad_ckpt=True))] if not s.grad_ckpt else [])
    trained = ([("--optim=adamw8bit", dict(optim="adamw8bit"))] if s.optim == "adamw" and not s.lora_rank else []) \
        + ([("--lora_rank=16", dict(lora_rank=16))] if not s.lora_rank else []) \
        + ([("--quant=nf4", dict(quant="nf4", lora_rank=s.lora_rank or 16))] if s.quant == "none" else [])
    return timing.get(phase, []) + trained


def suggest(s, result, limit, device="cuda", tries=6):
    """Options that make the run fit in `limit` GiB, found by planning: an option of the largest phase at a time
    (AFFECTS: only the phases an option changes are planned again), each kept, until every phase fits or `tries`
    plans were made. Returns (flags, the last plan, whether it fits)."""
    flags, values = [], {f.name: getattr(s, f.name) for f in fields(s)}
    for _ in range(tries):
        if result["peak_gib"] <= limit:
            break
        options = _options(PlanSettings(**values), result["peak_phase"])
        if not options:
            break
        flag, changes = options[0]
        values.update(changes)
        only = set.union(*(AFFECTS.get(k, set(PHASES)) for k in changes))
        partial = only != set(PHASES)
        result = plan(PlanSettings(**values), device, _counted=result["_counted"] if partial else None,
                      _only=only if partial else None)
        flags = [f for f in flags if f.split("=")[0] != flag.split("=")[0]] + [flag]
    return flags, result, result["peak_gib"] <= limit


def check_fits(cfg, device="cuda"):
    """train.py's check at setup: with --gpu_memory=N, refuse (one error line) a run whose planned peak exceeds N
    GiB, naming the options that would make it fit. Returns the plan, or None without --gpu_memory."""
    if not (cfg.get("gpu_memory") if isinstance(cfg, dict) else getattr(cfg, "gpu_memory", 0)):
        return None  # no check asked for: nothing is planned (or refused)
    s = cfg if isinstance(cfg, PlanSettings) else settings_of(cfg)
    result = plan(s, device)
    if result["peak_gib"] > s.gpu_memory:
        raise SystemExit(f"error: does not fit in --gpu_memory={s.gpu_memory:g} GiB: {_verdict(s, result, device)}")
    return result


def _verdict(s, result, device):
    """'<phase> needs X GiB; try <options>', or what the options tried still need."""
    phase = result["peak_phase"]
    text = f"{PHASES[phase]} needs {result['phases'][phase]:.2f} GiB"
    if device == "cuda" and s.gpu_memory <= CUDA_CONTEXT_GIB:
        return text + (f"; --gpu_memory={s.gpu_memory:g} GiB does not even hold the CUDA context "
                       f"({CUDA_CONTEXT_GIB} GiB)")
    flags, best, fits = suggest(s, result, s.gpu_memory, device)
    if fits:
        return text + f"; try {' '.join(flags)} (planned peak {best['peak_gib']:.2f} GiB)"
    if best["peak_phase"] == "weights" and SETUP_ON_DEVICE:
        return text + (f" at setup: train.setup holds the float32 model on the GPU before fitting it; past setup "
                       f"{_in_the_way(best).split('past setup the peak is ')[1].split(';')[0]}")
    if flags:
        return text + (f"; even with {' '.join(flags)} {PHASES[best['peak_phase']]} needs {best['peak_gib']:.2f} "
                       f"GiB: a smaller model or a larger GPU")
    return text + "; no option of train.py shrinks it further: a smaller model or a larger GPU"


def describe(s, result):
    """The plan as text: a header, one line per phase, the notes, the verdict for --gpu_memory, `peak X GiB (phase)`
    last."""
    cuda = result["device"] == "cuda"
    trained = ("full fine-tuning" if not s.lora_rank else f"LoRA r{s.lora_rank}") + (", nf4 base" if s.quant ==
                                                                                       "nf4" else "")
    b = s.prompts // s.minibatches
    options = [o for o, on in (("grad_ckpt", s.grad_ckpt), ("offload_activations", s.offload_activations)) if on]
    count = lambda n: f"{n / 1e9:.2f}B" if n >= 1e9 else f"{n / 1e6:.1f}M"  # noqa: E731
    lines = [f"plan for {result['model']}: {count(result['params'])} parameters, {count(result['trainable'])} "
             f"trained ({trained}), {s.optim}, {s.dtype}" + "".join(f", {o}" for o in options),
             f"  {s.task}: {s.prompts} prompts x {s.group_size} samples, {result['prompt_tokens']}-token prompts + "
             f"{s.max_new_tokens} new tokens, {s.minibatches} mini-batches of {b} groups in micro-batches of "
             f"{min(s.micro_batch or b, b)}, sampled {min(s.sample_chunk or s.prompts, s.prompts)} prompts at a time",
             f"{'phase':<20}{'GPU GiB' if cuda else 'GiB':>9}{'tensors':>10}{'this phase adds':>17}"]
    for k, value in result["phases"].items():
        tensors, before = result["allocated_gib"][k], result["before_gib"][k]
        lines.append(f"{PHASES[k]:<20}{gib(value):>9}{gib(tensors):>10}{'+' + gib(tensors - before):>17}")
    if cuda:
        lines.append(f"GPU GiB = tensors x {1 + ALLOCATOR_MARGIN:.2f} (ALLOCATOR_MARGIN) + {CUDA_CONTEXT_GIB:.2f} "
                     f"(CUDA_CONTEXT_GIB): gift/memory.py says where each comes from")
    lines += [f"note: {n}" for n in result["notes"]]
    if s.gpu_memory:
        if result["peak_gib"] <= s.gpu_memory:
            lines.append(f"fits in --gpu_memory={s.gpu_memory:g} GiB ({s.gpu_memory - result['peak_gib']:.2f} GiB "
                         f"to spare)")
        else:
            lines.append(f"does not fit: {_verdict(s, result, result['device'])}")
    lines.append(f"peak {gib(result['peak_gib'])} GiB ({PHASES[result['peak_phase']]})")
    return "\n".join(lines)


def _public(result):
    """The plan as JSON: everything but the counts kept for suggest()."""
    return {k: v for k, v in result.items() if not k.startswith("_")}


# ----------------------------------------------------------------------------------------------------------------
# docs/gsm8k.md's table: python -m gift.memory --table

TABLE_SHAPE = dict(task="gsm8k", prompts=16, group_size=8, prompt_len=200, max_new_tokens=512, minibatches=4,
                   dtype="bfloat16", sft_steps=0, eval_batch=8)  # the GSM8K RL shape; evaluations 8 at a time
RECIPES = {"full": dict(grad_ckpt=True, optim="adamw8bit"),
           "LoRA": dict(lora_rank=16, grad_ckpt=True),
           "QLoRA": dict(quant="nf4", lora_rank=16, grad_ckpt=True, sample_chunk=4, micro_batch=1,
                         offload_activations=True)}
GOALS = {"qwen2.5-0.5b": 3, "qwen2.5-1.5b": 4, "qwen2.5-3b": 6, "qwen2.5-7b": 10}  # GiB, the recommended recipe
CARDS = (8, 12, 16, 24)  # GB cards of the ready commands
RUN = dict(rl_steps=200, rl_lr="1e-6", eval_problems=1319, eval_every=50)  # the ready commands' run (docs/gsm8k.md)
GPT2_RECIPE = dict(task="gsm8k", dtype="bfloat16", sft_steps=2000, sft_batch=32, prompts=32, group_size=8,
                   max_new_tokens=256, micro_batch=4, eval_problems=1319, prompt_len=200)  # docs/gsm8k.md's GPT-2


def _flags(values):
    return " ".join(f"--{k}" if v is True else f"--{k}={v}" for k, v in values.items())


def _in_the_way(r):
    """What makes a plan's peak: the setup transient, what stays resident, and what the largest later phase adds."""
    a, before, parts = r["allocated_gib"], r["before_gib"], dict(r["resident_gib"])
    rest = max((k for k in r["phases"] if k != "weights"), key=r["phases"].get)
    out = []
    if r["peak_phase"] == "weights":
        out.append(f"train.setup puts the float32 model on the GPU before fit_memory quantises it ({gib(a['weights'])} "
                   f"GiB of tensors); past setup the peak is {gib(r['phases'][rest])} GiB ({PHASES[rest]})")
    copy_ = parts.pop("sampling's cast copy", 0)
    out.append(f"{gib(before[rest])} GiB stay resident (" + ", ".join(f"{k} {gib(v)}" for k, v in parts.items() if v)
               + ")")
    own = a[rest] - before[rest]
    if rest == "sampling":
        out.append(f"sampling adds {gib(own)} GiB, of which generate()'s bfloat16 copy of the model "
                   f"{gib(copy_)} (its float weights cast; integer buffers shared) and the KV cache "
                   f"{gib(r['kv_cache_gib'])}"
                   if copy_ else f"sampling adds {gib(own)} GiB, of which the KV cache {gib(r['kv_cache_gib'])}")
    else:
        out.append(f"{PHASES[rest]} adds {gib(own)} GiB")
    return "; ".join(out)


def table(models=tuple(GOALS), recipes=RECIPES):
    """docs/gsm8k.md's memory section: the planned GPU GiB of each phase for each model and recipe at TABLE_SHAPE,
    whether the recommended recipe (the one with the smallest peak) meets GOALS and what stands in its way, and one
    command per card of CARDS (the largest model that fits, in the recipe that trains the most that fits)."""
    from gift.model import published  # qwen2.5-1.5b -> Qwen/Qwen2.5-1.5B-Instruct, for the ready commands
    shape = {k: v for k, v in TABLE_SHAPE.items() if k != "prompt_len"}  # --prompt_len is the planner's, not train.py's
    lines = [f"Every figure below is **planned** (`python -m gift.memory --table`: train.py's code counted on fake "
             f"tensors, not measured on a GPU), in GiB on the GPU: the tensors x {1 + ALLOCATOR_MARGIN:.2f} + "
             f"{CUDA_CONTEXT_GIB:.2f} (allocator margin and CUDA context, gift/memory.py). Shape: 16 prompts x 8 "
             f"samples, 200-token prompts, 512 new tokens, K = 4, bf16 autocast, evaluations 8 prompts at a time "
             f"(`{_flags(TABLE_SHAPE)}`). Setup is train.setup (" + ("the float32 model on the GPU, then fitted"
             if SETUP_ON_DEVICE else "the model fitted on the host: adapters, 4-bit base; then moved to the GPU")
             + "); resident is what stays from then on (weights and optimiser state), which every later phase "
             "includes.", "",
             "| model | recipe | setup | resident | sampling | old log-probs | training | evaluation | peak, planned "
             "| measured on a GPU |", "|---|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    results = {}
    for name in models:
        for recipe, options in recipes.items():
            r = results[name, recipe] = plan(dict(TABLE_SHAPE, init=name, **options))
            p = r["phases"]
            lines.append(f"| {name} | {recipe} | {gib(p['weights'])} | {gib(p['optimiser_state'])} | "
                         f"{gib(p['sampling'])} | {gib(p['old_logprobs'])} | {gib(p['training'])} | "
                         f"{gib(p['evaluation'])} | **{gib(r['peak_gib'])}** ({PHASES[r['peak_phase']]}) | owed |")
    lines += ["", "Recipes: " + "; ".join(f"{k} `{_flags(v)}`" for k, v in recipes.items()) + ". The last column "
              "is owed: no GPU was available to measure these runs.", "",
              "The goal for each model's recommended recipe (the smallest planned peak), and what stands in the way "
              "where it is not met:", ""]
    for name in models:
        recipe = min(recipes, key=lambda k: results[name, k]["peak_gib"])
        r, goal = results[name, recipe], GOALS.get(name, math.inf)
        met = r["peak_gib"] <= goal
        lines.append(f"- **{name}**, {recipe}: {gib(r['peak_gib'])} GiB ({PHASES[r['peak_phase']]}); goal <= {goal} "
                     f"GiB: " + ("**met**" if met else f"**not met**. {_in_the_way(r)}"))
    lines += ["", "Ready commands, one per card (the largest model whose planned peak fits, in the recipe that "
                  "trains the most that fits; `--gpu_memory` makes train.py refuse a run the planner says does not "
                  "fit):", ""]
    for card in CARDS:
        fits = [(n, k) for n in models for k in recipes if results[n, k]["peak_gib"] <= card]
        if not fits:
            lines.append(f"- {card} GB: no planned recipe fits")
            continue
        name = fits[-1][0]
        recipe = next(k for n, k in fits if n == name)  # recipes in order: the most trained first
        lines.append(f"- {card} GB ({name}, {recipe}, planned {gib(results[name, recipe]['peak_gib'])} GiB): "
                     f"`python train.py --init={published(name)} {_flags(shape)} {_flags(RUN)} "
                     f"{_flags(recipes[recipe])} --device=cuda --gpu_memory={card}`")
    lines += ["", f"GPT-2's recipe above (`{_flags(GPT2_RECIPE)}`, the evaluations {250} prompts at a time), planned "
                  f"the same way:", "", "| model | setup | resident | SFT step | sampling | old log-probs | training "
                  "| evaluation | peak, planned | measured on a GPU |",
              "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for name in ("gpt2", "gpt2-medium"):
        r = plan(dict(GPT2_RECIPE, init=name))
        lines.append(f"| {name} | " + " | ".join(gib(r["phases"][k]) for k in PHASES) + f" | **{gib(r['peak_gib'])}** "
                     f"({PHASES[r['peak_phase']]}) | owed |")
    return "\n".join(lines)


DESCRIPTION = ("Plan a train.py run's GPU memory, phase by phase, before any download: train.py's own code run on fake "
               "tensors (gift/memory.py). The last line is `peak <GiB> GiB (<phase>)`; with --gpu_memory the exit "
               "status is 1 when the run does not fit.")


def main(argv=None):
    """python -m gift.memory [train.py's settings] [--json] [--table]"""
    argv = sys.argv[1:] if argv is None else argv
    if "-h" in argv or "--help" in argv:  # every setting: the memory options are the point here
        config_parser(PlanSettings, DESCRIPTION, everything=True, prog="python -m gift.memory").print_help()
        return 0
    s = parse_config(PlanSettings, argv, DESCRIPTION, prog="python -m gift.memory")
    settings_of(s)  # the settings' checks: one error line for a bad value
    if s.table:
        print(table())
        return 0
    result = plan(s)
    if s.json:
        out = _public(result)
        if s.gpu_memory:
            out["fits"] = result["peak_gib"] <= s.gpu_memory
        print(json.dumps(out))
    else:
        print(describe(s, result))
    return 0 if not s.gpu_memory or result["peak_gib"] <= s.gpu_memory else 1



# ----------------------------------------------------------------------------------------------------------------
# applying the options to train.py's model


def fit_memory(model, cfg, shard):
    """The model as --grad_ckpt, --offload_activations, --lora_rank and --quant ask (train.setup): checkpointed
    blocks, activations kept on the CPU during backward, LoRA adapters on every block's projections with the rest
    frozen (gift/lora.py), the frozen base in NF4 (gift/quant.py)."""
    model.grad_ckpt = cfg.grad_ckpt  # gift/model.py: torch.utils.checkpoint per block in training
    model.offload_activations = cfg.offload_activations
    if cfg.lora_rank:
        if shard.world > 1:
            raise SystemExit("error: --lora_rank with several ranks (DDP) is not supported; run one process")
        if cfg.sft_steps and not cfg.init.endswith(".pt") and cfg.task == "builtin" and shard.rank == 0:
            print(f"note: --lora_rank on --init={cfg.init} trained from scratch: adapters on random weights learn "
                  f"little (LoRA adapts a trained model); start from a trained one (--init=out/RUN/sft.pt)")
        new_adapters(model, cfg, merge=False)
    return model


def new_adapters(model, cfg, merge=True):
    """LoRA: fresh adapters (merge: the current ones join the base weights first, as at SFT's end, so that the base
    is the SFT model, which --ref=frozen reads with the adapters off); with --quant=nf4 the base is stored in 4 bits
    (re-quantised after a merge). No-op without --lora_rank."""
    if not cfg.lora_rank or (merge and not cfg.sft_steps):
        return model
    from gift.lora import add_lora, merge_lora
    if merge:
        merge_lora(model)
    add_lora(model, cfg.lora_rank, cfg.lora_alpha or None)
    if cfg.quant == "nf4":
        from gift.quant import frozen_matrices_in, quantize_base
        quantize_base(model)
        if cfg.dtype == "bfloat16":  # the frozen embedding and head too, in the compute dtype
            frozen_matrices_in(model, torch.bfloat16)
    return model


if __name__ == "__main__":
    sys.exit(main())
