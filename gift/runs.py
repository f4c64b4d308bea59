"""Run management for train.py, kept out of the loop file: the command line, the run folder (fresh, --resume,
--overwrite, a lock), checkpoints (atomic, checksummed) and loading a model from whatever --init names.

    cfg = parse_config(Config, argv)               # --key=value or --key value; --help lists every setting
    check_fresh(run_dir, cfg)                      # refuses to start over an earlier run unless asked
    lock = open_run_dir(run_dir, cfg, step, outputs)   # makes the folder and holds a lock on it for the run
    save_run(run, cfg, "ckpt.pt") / resume_run(run, cfg, ...)   # a whole run's state, bit-identical on one machine
    save_checkpoint(path, state)                   # a temporary file renamed into place: never a half-written ckpt
    state = load_checkpoint(path)                  # verifies the checksum of the weights: one error line if damaged
    model, enc = load_model(init, task)            # a preset, one of our .pt files, an HF directory or a hub name
"""
import argparse
import difflib
import glob
import hashlib
import json
import os
import random
import socket
import time
from dataclasses import MISSING, asdict, dataclass, field, fields

import numpy as np
import torch

from gift.model import GPT, GPTConfig, PRESETS, checkpoint_dir, preset
from gift.tokenizer import builtin_tokenizer, get_tokenizer

# ----------------------------------------------------------------------------------------------------------------
# the command line: argparse built from a dataclass whose fields carry their help (and the first of a group its title)


def setting(default, help, section=None):
    """A Config field with its --help text; `section` starts a group of settings in --help."""
    return field(default=default, metadata=dict(help=help, section=section))


@dataclass
class RunSettings:
    """train.py's settings for fitting memory and for bookkeeping: the device, evaluations, logs, checkpoints and the
    output folder. train.py's Config adds the method's own settings to these (they come first in --help)."""
    micro_batch: int = setting(0, "groups per forward/backward pass (0: a whole mini-batch); gradients accumulate",
                               section="memory: fitting a small GPU")
    grad_ckpt: bool = setting(False, "recompute each block in backward instead of keeping its activations")
    lora_rank: int = setting(0, "train LoRA adapters of this rank on the attention and MLP projections, the rest "
                                "frozen (0: full fine-tuning; gift/lora.py)")
    lora_alpha: float = setting(0.0, "LoRA's scale is alpha / rank (0: alpha = rank)")
    optim: str = setting("adamw", "adamw | adamw8bit (bitsandbytes, optional: 8-bit optimiser state)")
    device: str = setting("auto", "auto | cpu | cuda", section="device, evaluation and bookkeeping")
    threads: int = setting(0, "torch CPU threads (0: torch's default)")
    fused_head: str = setting("auto", "auto | on | off: log-probs from hidden states, no (N, L, V) logits "
                                      "(auto: V >= 32768)")
    eval_problems: int = setting(1000, "held-out problems, greedy (standard error ~1.6 points at 1000)")
    eval_every: int = setting(0, "RL steps between held-out evaluations (0: after SFT and at the end)")
    watch_every: int = setting(10, "RL steps between quick greedy scores of the first --watch_problems held-out "
                                   "problems (watch_accuracy in metrics.jsonl; 0: none)")
    watch_problems: int = setting(200, "held-out problems of the quick scores")
    eval_batch: int = setting(250, "problems per sampling batch in evaluations")
    out_dir: str = setting("out", "runs are written to <out_dir>/<run_name>/")
    run_name: str = setting("", "default: <task>-<method>-s<seed> (torchrun would take --run= as its own "
                                "--run-path)")
    ckpt_every: int = setting(25, "steps between checkpoints (ckpt.pt; also written after SFT and at the end)")
    log_every: int = setting(10, "steps between progress lines")
    log_samples_every: int = setting(10, "RL steps between dumps of a few sampled groups to samples.jsonl "
                                         "(gift/monitor.py; 0: never)")
    tensorboard: bool = setting(False, "also write TensorBoard scalars and samples to <run>/tensorboard (optional)")
    kl_sft: bool = setting(False, "log kl_sft per RL step: the k3 KL of the samples' policy to the --init model "
                                  "(an RL-only run's SFT model)")
    grad_stats: bool = setting(False, "log where each RL optimiser step's gradient comes from (gift/monitor.py's "
                                      "GradientProbe; a second backward pass; one process only)")
    resume: bool = setting(False, "continue <out_dir>/<run_name>/ckpt.pt (bit-identical on one machine)")
    overwrite: bool = setting(False, "start afresh over an earlier run of the same name, deleting its outputs")
    stop_after: int = setting(0, "stop (with a checkpoint) after this many steps in total: for tests and "
                                 "time-boxed runs")
    max_bad_steps: int = setting(5, "stop after this many non-finite losses in a row")


# train.py's settings that may differ when resuming (they do not change what the run computes)
RESUMABLE = {"resume", "stop_after", "log_every", "eval_batch", "threads", "device", "ckpt_every", "max_bad_steps",
             "fused_head", "overwrite", "grad_ckpt", "log_samples_every", "tensorboard", "watch_every",
             "watch_problems", "grad_stats", "kl_sft"}
# what --overwrite deletes: the files train.py writes, and eval.py's and gift.plot's default outputs made from them
OUTPUTS = ("ckpt.pt", "ckpt.pt.tmp", "sft.pt", "metrics.jsonl", "samples.jsonl", "summary.json", "eval*.json",
           "curves.png", "tensorboard/*")



def _typed(kind, key):
    """argparse type for a field: int, float, str or bool (true/false/1/0); a bad value names the setting."""
    def parse(value):
        try:
            if kind is bool:
                if value.lower() not in ("true", "false", "1", "0"):
                    raise ValueError
                return value.lower() in ("true", "1")
            return kind(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"--{key}={value!r} is not a valid {kind.__name__}") from None
    return parse


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, no usage block: "error: <what is wrong>"
        raise SystemExit(f"error: {message.split(': ', 1)[1] if message.startswith('argument ') else message}")


def config_parser(config_cls, description=""):
    """An argparse parser with one --key option per field of config_cls, in groups, defaults shown."""
    p = _Parser(prog="python train.py", description=description, allow_abbrev=False,
                usage="python train.py [--key=value ...]   (or --key value; a bare --flag sets a bool to true)",
                formatter_class=lambda prog: argparse.RawDescriptionHelpFormatter(prog, max_help_position=26,
                                                                                   width=120))
    group = p
    owners = [set(c.__dict__.get("__annotations__", {})) for c in (config_cls, *config_cls.__bases__)]
    rank = lambda f: next((i for i, names in enumerate(owners) if f.name in names), len(owners))  # noqa: E731
    for f in sorted(fields(config_cls), key=rank):  # a class's own settings first, then its bases' in order
        if f.metadata.get("section"):
            group = p.add_argument_group(f.metadata["section"])
        kind = type(f.default) if f.default is not MISSING else str
        shown = str(f.default).lower() if kind is bool else f.default
        extra = dict(nargs="?", const=True, metavar="true|false") if kind is bool else dict(metavar="")
        group.add_argument(f"--{f.name}", type=_typed(kind, f.name), default=f.default,
                           help=f"{f.metadata.get('help', '')} (default: {shown})", **extra)
    return p


def parse_config(config_cls, argv, description=""):
    """config_cls(...) from --key=value / --key value arguments (dashes in keys read as underscores); an unknown key
    is one error line with the nearest key."""
    argv = [a.split("=", 1)[0].replace("-", "_").replace("__", "--", 1) + a[len(a.split("=", 1)[0]):]
            if a.startswith("--") else a for a in argv]
    p = config_parser(config_cls, description)
    args, unknown = p.parse_known_args(argv)
    if unknown:
        key = unknown[0].lstrip("-").split("=")[0]
        names = [f.name for f in fields(config_cls)]
        if not unknown[0].startswith("--"):
            raise SystemExit(f"error: unexpected argument {unknown[0]!r}; use --key=value")
        near = difflib.get_close_matches(key, names, n=1, cutoff=0.5)
        raise SystemExit(f"error: unknown config key {key!r}" + (f"; did you mean --{near[0]}?" if near else "")
                         + " (python train.py --help lists every key with its default)")
    return config_cls(**vars(args))


def check_settings(cfg, choices, at_least, positive, within):
    """One error line for the first setting out of range: choices {key: allowed}, at_least {key: low} (every other
    int setting must be >= 0), positive (keys that must be > 0), within {key: (low, high)} inclusive."""
    for key, allowed in choices.items():
        if getattr(cfg, key) not in allowed:
            raise SystemExit(f"error: --{key}={getattr(cfg, key)!r} must be one of {tuple(allowed)}")
    for f in fields(cfg):
        low = at_least.get(f.name, 0)
        if type(f.default) is int and getattr(cfg, f.name) < low:
            raise SystemExit(f"error: --{f.name}={getattr(cfg, f.name)} must be >= {low}"
                             + (" (a group of 1 has no spread to learn from)" if f.name == "group_size" else ""))
    for key in positive:
        if not getattr(cfg, key) > 0:
            raise SystemExit(f"error: --{key}={getattr(cfg, key)} must be > 0")
    for key, (low, high) in within.items():
        if not low <= getattr(cfg, key) <= high:
            raise SystemExit(f"error: --{key}={getattr(cfg, key)} must be in [{low}, {high:.3g}]")
    if cfg.device != "auto":
        check_device(cfg.device)


def init_processes(cfg):
    """(world, rank): torchrun's process group (DDP) when WORLD_SIZE > 1, the device (auto: cuda if there is one),
    the thread count; batches the ranks cannot split into whole groups are refused."""
    world, rank = int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("RANK", 0))
    cfg.device = ("cuda" if torch.cuda.is_available() else "cpu") if cfg.device == "auto" else cfg.device
    if cfg.sft_batch % world or cfg.prompts % (cfg.minibatches * world):  # every rank holds whole groups
        raise SystemExit(f"error: --sft_batch={cfg.sft_batch} and --prompts={cfg.prompts} / --minibatches="
                         f"{cfg.minibatches} must be divisible by the {world} ranks")
    if world > 1:
        import torch.distributed as dist
        dist.init_process_group("nccl" if cfg.device == "cuda" else "gloo")
        cfg.device = f"cuda:{int(os.environ['LOCAL_RANK'])}" if cfg.device == "cuda" else cfg.device
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    if cfg.dtype == "bfloat16" and cfg.device == "cpu" and rank == 0:
        print("note: --dtype=bfloat16 on a CPU: autocast computes in bfloat16 there too, usually slower than float32")
    return world, rank


def interrupted(run, argv):
    """The line for Ctrl-C: the step reached and the command that continues from the last checkpoint."""
    if run.saved_step is None:
        return f"interrupted at step {run.step}: no checkpoint yet; start again with --overwrite"
    again = " ".join(a for a in argv if not a.startswith(("--resume", "--overwrite")))
    return (f"interrupted at step {run.step}: the last checkpoint is step {run.saved_step}; continue with: "
            f"{' '.join(['python train.py', again, '--resume']).replace('  ', ' ')}")


def check_device(device):
    """'cpu' or 'cuda[:N]', and CUDA only where this torch can use it: one error line otherwise."""
    if device == "cpu":
        return
    if not (device == "cuda" or device.startswith("cuda:")):
        raise SystemExit(f"error: --device={device!r} must be auto, cpu or cuda")
    if not torch.cuda.is_available():
        raise SystemExit(f"error: --device={device} but CUDA is not available (this torch is "
                         f"{torch.__version__}, built {'without' if torch.version.cuda is None else 'with'} CUDA, "
                         f"and sees no GPU); use --device=cpu")


# ----------------------------------------------------------------------------------------------------------------
# the run folder: fresh, resumed or overwritten; one process at a time


def check_fresh(run_dir, cfg):
    """Refuse to start over an earlier run of the same name (its checkpoint, metrics and summary would be replaced
    while its plots stay) unless --resume continues it or --overwrite replaces it."""
    if cfg.resume and cfg.overwrite:
        raise SystemExit("error: --resume continues a run, --overwrite starts it afresh: choose one")
    if cfg.resume:
        if not os.path.exists(os.path.join(run_dir, "ckpt.pt")):
            raise SystemExit(f"error: --resume but no checkpoint at {os.path.join(run_dir, 'ckpt.pt')}")
        return
    if cfg.overwrite:
        return
    if os.path.exists(os.path.join(run_dir, "summary.json")):
        raise SystemExit(f"error: {run_dir} holds a finished run (summary.json); to run it again pass --overwrite "
                         f"(deletes its outputs), or choose another --run_name")
    if os.path.exists(os.path.join(run_dir, "ckpt.pt")):
        raise SystemExit(f"error: {run_dir} holds an unfinished run (ckpt.pt); continue it with --resume, start it "
                         f"again with --overwrite (deletes its outputs), or choose another --run_name")


class RunLock:
    """An exclusive lock on a run folder, held while the run lives (fcntl.flock on <run>/.lock). The kernel drops it
    when the process ends, however it ends, so a killed run leaves no stale lock; the file names its holder."""

    def __init__(self, run_dir):
        self.path = os.path.join(run_dir, ".lock")
        self.file = None

    def acquire(self):
        try:
            import fcntl
        except ImportError:  # Windows: no flock; runs are not locked there
            return self
        self.file = open(self.path, "a+")
        try:
            fcntl.flock(self.file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self.file.seek(0)
            holder = self.file.read().strip() or "another process"
            self.file.close()
            raise SystemExit(f"error: {os.path.dirname(self.path)} is in use by another run ({holder}); wait for it "
                             f"to finish or choose another --run_name") from None
        self.file.seek(0)
        self.file.truncate()
        self.file.write(f"pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%Y-%m-%d %H:%M:%S')}")
        self.file.flush()
        return self

    def release(self):
        if self.file is not None:
            self.file.close()  # closing the file drops the flock
            self.file = None


def open_run_dir(run_dir, cfg, step, outputs):
    """Make the run folder and lock it; --overwrite deletes the earlier outputs only now, once the run has started (a
    failed start deletes nothing); a resumed run's metrics.jsonl drops the lines past the checkpoint's step (a killed
    run may have logged steps it never saved). Returns the lock (keep it alive for the run)."""
    os.makedirs(run_dir, exist_ok=True)
    lock = RunLock(run_dir).acquire()
    if cfg.overwrite:  # outputs: file names or glob patterns (eval.py's eval-*.json)
        for path in sorted({p for pattern in outputs for p in glob.glob(os.path.join(glob.escape(run_dir), pattern))}):
            os.remove(path)
    metrics_path = os.path.join(run_dir, "metrics.jsonl")
    lines = open(metrics_path).read().splitlines() if cfg.resume and os.path.exists(metrics_path) else []
    with open(metrics_path, "w") as f:
        f.writelines(line + "\n" for line in lines if json.loads(line)["step"] < step)
    return lock


def check_resumable(saved, cfg, resumable):
    """Refuse a checkpoint written by another config, naming the first field that differs (fields in `resumable` may
    differ: they do not change what the run computes)."""
    for key, value in vars(cfg).items():
        if key not in resumable and saved.get(key) != value:
            raise SystemExit(f"error: the checkpoint was written with {key}={saved.get(key)!r}, this run has "
                             f"{key}={value!r}; use the same config or another --run_name/--out_dir")


# ----------------------------------------------------------------------------------------------------------------
# the optimiser, a run's state, and checkpoints

OPTIMIZERS = ("adamw", "adamw8bit")


def make_optimizer(model, lr, cfg):
    """AdamW (betas 0.9, 0.99) over the trainable parameters (with LoRA: the adapters). adamw8bit keeps the two
    moments in 8 bits (bitsandbytes' block-wise quantisation): a quarter of AdamW's optimiser memory."""
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg.optim == "adamw":
        return torch.optim.AdamW(params, lr=lr, betas=(0.9, 0.99), weight_decay=cfg.weight_decay)
    try:
        import bitsandbytes
        return bitsandbytes.optim.AdamW8bit(params, lr=lr, betas=(0.9, 0.99), weight_decay=cfg.weight_decay)
    except (ImportError, RuntimeError) as e:  # not installed, or no kernel for this device
        raise SystemExit(f"error: --optim=adamw8bit needs bitsandbytes with a kernel for {cfg.device} "
                         f"(pip install bitsandbytes): {type(e).__name__}: {str(e)[:100]}") from None


@dataclass
class Run:
    """One train.py run's state besides its Config. `books` is what a checkpoint saves besides the weights, optimiser
    and RNG states: sft_accuracy, sft_eval, elapsed (seconds), bad_steps (non-finite in a row), eval_time, rl_drawn (RL prompts
    drawn so far)."""
    rank: int
    world: int
    run_dir: str
    task: object  # gift.tasks.Task: training examples, held-out examples, reward, metrics
    pool: list  # --rl_pool: the training problems RL cycles through, scored too
    model: torch.nn.Module  # the policy pi_theta; DDP-wrapped when world > 1
    enc: object  # the tokenizer (tiktoken.Encoding)
    opt: torch.optim.Optimizer
    loss_fn: object  # gift.loss.LOSSES[cfg.method]
    reference: object  # train.Reference: pi_ref
    books: dict = field(default_factory=lambda: dict(sft_accuracy=None, sft_eval=None, elapsed=0.0, bad_steps=0,
                                                     eval_time=0.0, rl_drawn=None))
    step: int = 0  # optimiser steps taken (SFT and RL)
    saved_step: int = None  # the step of the last ckpt.pt
    start_time: float = 0.0
    lock: object = None  # RunLock: one process per run folder
    monitor: object = None  # gift.monitor.Monitor: samples.jsonl and TensorBoard (rank 0)
    probe: object = None  # gift.monitor.GradientProbe (--grad_stats)
    sft_model: object = None  # a frozen copy of the --init model (--kl_sft)

    @property
    def policy(self):  # the model itself, also under DDP
        return getattr(self.model, "module", self.model)

    def path(self, name):
        return os.path.join(self.run_dir, name)

    def log(self, record):
        """One line of metrics.jsonl (rank 0 writes), and TensorBoard's scalars when asked (--tensorboard)."""
        if self.rank == 0:
            with open(self.path("metrics.jsonl"), "a") as f:
                f.write(json.dumps(record) + "\n")
            if self.monitor:
                self.monitor.scalars(record)

    def say(self, text):
        if self.rank == 0:
            print(text, flush=True)

    @staticmethod
    def fmt(scores):
        return " ".join(f"{k} {v:.3f}" for k, v in scores.items())

    def progress(self, record, total, seconds_per_step):
        """The progress line: step N/total, the stage, the loss and the step's main statistics, speed and ETA."""
        extras = "".join(f" {k} {record[k]:.3f}" for k in ("reward", "corr", "logratio_std", "kl", "entropy")
                         if k in record)
        self.say(f"step {self.step}/{total} {record['stage']} loss {record['loss']:.4f}{extras} ({seconds_per_step:.2f} "
                 f"s/step, ETA {seconds_per_step * (total - self.step) / 60:.1f} min)")

    def summarize(self, cfg, final):
        """summary.json (the SFT and final held-out scores, config, seed, wall time), the "final" record of
        metrics.jsonl and the closing lines, from the final evaluation `final`; returns the summary dict."""
        if self.books["sft_accuracy"] is None:  # no RL steps: the final model is the SFT model
            self.books["sft_eval"], self.books["sft_accuracy"] = final, final["accuracy"]
        summary = dict(sft_accuracy=self.books["sft_accuracy"], rl_accuracy=final["accuracy"],
                       heldout_problems=len(self.task.heldout), sft_eval=self.books["sft_eval"], rl_eval=final,
                       seed=cfg.seed, wall_time_s=round(time.time() - self.start_time, 1), torch=torch.__version__,
                       threads=torch.get_num_threads(), config=asdict(cfg))
        if self.rank == 0:
            self.log(dict(step=self.step, stage="final", time=time.time() - self.start_time,
                          eval_time=self.books["eval_time"], **{f"heldout_{k}": v for k, v in final.items()}))
            self.say(f"final held-out: {self.fmt(final)}")
            with open(self.path("summary.json"), "w") as f:
                json.dump(summary, f, indent=2)
            self.say(f"held-out accuracy: SFT {summary['sft_accuracy']:.4f} -> {cfg.method.upper()} "
                     f"{final['accuracy']:.4f} ({len(self.task.heldout)} problems, {summary['wall_time_s']:.0f} s); "
                     f"wrote {self.run_dir}/summary.json")
        return summary


def save_run(run, cfg, name):
    """<run>/<name>: everything needed to continue bit-identically (config, step, weights, optimiser, pi_ref, RNG
    states, books)."""
    ref = run.reference.model
    save_checkpoint(run.path(name), dict(
        config=asdict(cfg), step=run.step, model=run.policy.state_dict(), model_config=asdict(run.policy.config),
        opt=run.opt.state_dict(), ref=ref.state_dict() if ref is not None else None,
        rng=dict(torch=torch.get_rng_state(), python=random.getstate(), numpy=np.random.get_state()), **run.books))
    run.saved_step = run.step if name == "ckpt.pt" else run.saved_step


def resume_run(run, cfg, resumable, rl_optimizer):
    """Continue from <run>/ckpt.pt: weights, optimiser (rl_optimizer()'s once SFT is over), pi_ref, RNG states,
    step and books; a checkpoint of another config is refused."""
    ckpt = load_checkpoint(run.path("ckpt.pt"), map_location=cfg.device)
    check_resumable(ckpt["config"], cfg, resumable)
    run.model.load_state_dict(ckpt["model"])
    run.step = run.saved_step = ckpt["step"]
    if run.step >= cfg.sft_steps:
        run.opt = rl_optimizer()
    run.opt.load_state_dict(ckpt["opt"])
    if ckpt["ref"] is not None:
        run.reference.copy_of(run.model)
        run.reference.model.load_state_dict(ckpt["ref"])
    torch.set_rng_state(ckpt["rng"]["torch"])
    random.setstate(ckpt["rng"]["python"])
    np.random.set_state(ckpt["rng"]["numpy"])
    run.books = {k: ckpt.get(k, v) for k, v in run.books.items()}
    if run.rank == 0:
        print(f"resumed {run.path('ckpt.pt')} at step {run.step}")


def weights_checksum(state_dict):
    """sha256 over the names, shapes, dtypes and bytes of a state dict's tensors: a damaged file fails to match."""
    h = hashlib.sha256()
    for name in sorted(state_dict):
        t = state_dict[name].detach().cpu().contiguous()
        h.update(f"{name}:{tuple(t.shape)}:{t.dtype};".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def save_checkpoint(path, state):
    """torch.save(state) to a temporary file, then rename (atomic): a crash never leaves a half-written checkpoint.
    state["model"] gets its checksum stored beside it (state["checksum"])."""
    state = dict(state, checksum=weights_checksum(state["model"]))
    tmp = path + ".tmp"
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(path, map_location="cpu", **kwargs):
    """A .pt file written by train.py (ckpt.pt, sft.pt). A missing, truncated, unreadable or damaged file (its weights
    no longer match the checksum saved with them) is one error line naming it, not a traceback or a silent load."""
    if not os.path.isfile(path):
        raise SystemExit(f"error: checkpoint {path!r} does not exist")
    try:
        state = torch.load(path, map_location=map_location, weights_only=False, **kwargs)
    except Exception as e:  # a truncated zip (a copy cut short, a full disk) fails deep inside torch.load
        raise SystemExit(f"error: cannot read checkpoint {path} ({type(e).__name__}: {str(e).splitlines()[0][:120]}); "
                         f"the file is truncated or not a torch checkpoint: copy it again, or start the run afresh "
                         f"(train.py --overwrite)") from None
    if not isinstance(state, dict) or "model" not in state:
        raise SystemExit(f"error: {path} is not a gift checkpoint (no model weights in it)")
    if "checksum" in state and weights_checksum(state["model"]) != state["checksum"]:
        raise SystemExit(f"error: checkpoint {path} is damaged: its weights do not match the checksum saved with "
                         f"them; copy it again, or start the run afresh (train.py --overwrite)")
    return state


# ----------------------------------------------------------------------------------------------------------------
# the model named by --init


def load_model(init, task, byte_tokenizer=None):
    """(model, tokenizer) from a preset name (random init), one of our ckpt.pt files, an HF directory or a hub name.
    On GSM8K the names of the published GPT-2 models (gpt2, gpt2-medium, ...) load their weights, not a random init.

    The tokenizer: the built-in byte tokenizer for the built-in task; otherwise the vocab.json/merges.txt of the
    checkpoint directory or hub snapshot (for a ckpt.pt: of the one its run started from) when present, else GPT-2's.
    A name that is neither a preset, a directory, a checkpoint nor reachable on the hub is one error line.
    byte_tokenizer: the task's (gift.tasks.Task); None: the built-in task's, True only for task == "builtin".
    """
    byte = task == "builtin" if byte_tokenizer is None else byte_tokenizer
    ckpt = None
    if init.endswith(".pt"):
        ckpt = load_checkpoint(init)
        prompts_of = lambda t: "builtin" if t == "rlhf" else t  # the rlhf task asks the built-in task's questions
        if "model_config" not in ckpt or prompts_of(ckpt.get("config", {}).get("task")) != prompts_of(task):
            raise SystemExit(f"error: {init} is not a gift checkpoint for --task {task}")
    elif os.path.isfile(init):
        raise SystemExit(f"error: --init={init} is a file but not a .pt checkpoint; give a preset "
                         f"({', '.join(PRESETS)}), a train.py ckpt.pt, an HF model directory or a hub name")
    published = [p for p in PRESETS if p.startswith(("gpt2", "qwen"))]  # names of published models
    if byte and not ckpt and (init not in PRESETS or init in published):
        raise SystemExit(f"error: --init={init}: the built-in tasks train a small preset from scratch with the byte "
                         f"tokenizer ({', '.join(p for p in PRESETS if p not in published)}), not "
                         f"{'the published weights' if init in published else 'a hub model or directory'}; "
                         f"use --init=micro, or --task=gsm8k for a published model")
    source = ckpt["config"]["init"] if ckpt else init
    if not byte and source not in PRESETS and not os.path.isdir(source):
        source = _hub_snapshot(source)  # a hub name: its snapshot, tokenizer files included (downloaded once)
    if byte:
        enc = builtin_tokenizer()
    elif os.path.isfile(os.path.join(source, "vocab.json")):
        enc = get_tokenizer(source)  # the checkpoint's own vocabulary files: no download
    else:
        try:
            enc = get_tokenizer("gpt2")  # tiktoken downloads GPT-2's BPE files once, then reads its cache
        except Exception as e:
            raise SystemExit(f"error: could not load GPT-2's tokenizer ({type(e).__name__}); it is downloaded on first "
                             f"use, or give --init a checkpoint directory with vocab.json and merges.txt") from None
    if ckpt:
        model = GPT(GPTConfig(**ckpt["model_config"]))
        rank = ckpt["config"].get("lora_rank", 0)
        if rank:  # a LoRA run's weights: base + adapters, merged into a plain model (gift/lora.py)
            from gift.lora import add_lora, merge_lora
            add_lora(model, rank, ckpt["config"].get("lora_alpha") or None)
        model.load_state_dict(ckpt["model"])
        if rank:
            merge_lora(model)
    elif init in PRESETS and not os.path.isdir(init) and (byte or not init.startswith("gpt2")):
        model = GPT(preset(init, vocab_size=enc.n_vocab))  # trained from scratch
    else:
        try:
            model = GPT.from_pretrained(source if os.path.isdir(source) else _hub_snapshot(source))
        except (OSError, ValueError) as e:
            raise SystemExit(f"error: cannot load --init={init}: {e}") from None
    if model.config.vocab_size < enc.n_vocab:
        raise SystemExit(f"error: model vocabulary {model.config.vocab_size} < tokenizer's {enc.n_vocab}")
    return model, enc


def _hub_snapshot(name):
    """The local snapshot of a hub model (downloaded once); one error line when the name is not a directory and the
    hub cannot give it (no such model, or no network)."""
    try:
        return checkpoint_dir(name)
    except FileNotFoundError as e:
        raise SystemExit(f"error: --init={name}: {e}") from None
    except Exception as e:  # huggingface_hub's errors: not found, offline, gated
        raise SystemExit(f"error: --init={name} is neither a preset ({', '.join(PRESETS)}), a directory, a .pt "
                         f"checkpoint nor a model the hub gives ({type(e).__name__}: "
                         f"{str(e).splitlines()[0][:100] if str(e) else 'no answer'})") from None
