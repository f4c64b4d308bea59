"""Run management for train.py, kept out of the loop file: the bookkeeping settings, the run folder (fresh,
--resume, --overwrite, a lock), a run's state and its checkpoints, and loading a model from whatever --init names.

    check_fresh(run_dir, cfg)                      # refuses to start over an earlier (or a live) run unless asked
    run = open_run(Run(...), cfg, logprobs)        # --resume, --kl_sft, --grad_stats, logs, the folder's lock, DDP
    save_run(run, cfg, "ckpt.pt") / resume_run(run, cfg, ...)   # a whole run's state, bit-identical on one machine
    model, enc = load_model(init, task)            # a preset, one of our .pt files, an HF directory or a hub name

Checkpoints themselves (atomic, checksummed, loaded without running code) are gift/checkpoint.py; the command line is
gift/settings.py; processes and sharding are gift/shard.py.
"""
import glob
import json
import os
import re
import socket
import time
from dataclasses import asdict, dataclass, field, fields

import torch

from gift.checkpoint import (load_checkpoint, plain_model, rng_states, save_checkpoint, set_rng_states,  # noqa: F401
                             weights_checksum)  # gift.checkpoint is where checkpoints are written and read
from gift.model import GPT, PRESETS, checkpoint_dir, preset, published
from gift.monitor import GradientProbe, Monitor
from gift.settings import parse_config, require, resumable, setting  # noqa: F401  (parse_config: re-exported)
from gift.tokenizer import builtin_tokenizer, get_tokenizer

# ----------------------------------------------------------------------------------------------------------------
# the bookkeeping settings (gift/settings.py builds the command line from them)


@dataclass
class RunSettings:
    """train.py's settings for bookkeeping: the device, evaluations, logs, checkpoints and the output folder.
    train.py's Config adds the method's own settings to these (they come first in --help)."""
    device: str = setting("auto", "auto | cpu | cuda", section="device, evaluation and bookkeeping", resumable=True)
    threads: int = setting(0, "torch CPU threads (0: torch's default)", resumable=True)
    fused_head: str = setting("auto", "auto | on | off: log-probs from hidden states, no (N, L, V) logits "
                                      "(auto: V >= 32768)", resumable=True)
    eval_problems: int = setting(1000, "held-out problems, greedy (standard error ~1.6 points at 1000)")
    eval_every: int = setting(0, "RL steps between held-out evaluations (0: after SFT and at the end)")
    watch_every: int = setting(10, "RL steps between quick greedy scores of the first --watch_problems held-out "
                                   "problems (watch_accuracy in metrics.jsonl; 0: none)", resumable=True)
    watch_problems: int = setting(200, "held-out problems of the quick scores", resumable=True)
    eval_batch: int = setting(250, "problems per sampling batch in evaluations", resumable=True)
    out_dir: str = setting("out", "runs are written to <out_dir>/<run_name>/")
    run_name: str = setting("", "default: <task>-<method>-s<seed> (torchrun would take --run= as its own "
                                "--run-path)")
    ckpt_every: int = setting(25, "steps between checkpoints (ckpt.pt; also written after SFT and at the end)",
                              resumable=True)
    log_every: int = setting(10, "steps between progress lines", resumable=True)
    log_samples_every: int = setting(10, "RL steps between dumps of a few sampled groups to samples.jsonl "
                                         "(gift/monitor.py; 0: never)", resumable=True)
    tensorboard: bool = setting(False, "also write TensorBoard scalars and samples to <run>/tensorboard (optional)",
                                resumable=True)
    kl_sft: bool = setting(False, "log kl_sft per RL step: the k3 KL of the samples' policy to the --init model "
                                  "(an RL-only run's SFT model)", resumable=True)
    grad_stats: bool = setting(False, "log where each RL optimiser step's gradient comes from (gift/monitor.py's "
                                      "GradientProbe; a second backward pass; one process only)", resumable=True)
    resume: bool = setting(False, "continue <out_dir>/<run_name>/ckpt.pt (bit-identical on one machine)",
                           resumable=True)
    overwrite: bool = setting(False, "start afresh over an earlier run of the same name, deleting its outputs",
                              resumable=True)
    stop_after: int = setting(0, "stop (with a checkpoint) after this many steps in total: for tests and "
                                 "time-boxed runs", resumable=True)
    max_bad_steps: int = setting(5, "stop after this many non-finite losses in a row", resumable=True)

    def check(self):
        require(self, choices=dict(fused_head=("auto", "on", "off")),
                at_least=dict(eval_problems=1, eval_batch=1, ckpt_every=1, log_every=1, max_bad_steps=1))
        if self.device != "auto":
            check_device(self.device)


# what --overwrite deletes: the files train.py writes, and eval.py's and gift.plot's default outputs made from them
OUTPUTS = ("ckpt.pt", "ckpt.pt.tmp", "sft.pt", "metrics.jsonl", "samples.jsonl", "summary.json", "eval*.json",
           "curves.png", "tensorboard/*")


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
    holder = RunLock.holder(run_dir)
    if holder:  # before anything else: the folder belongs to a live run, whatever this command asks
        raise SystemExit(f"error: {run_dir} is in use by a live run ({holder}); wait for it to finish, or choose "
                         f"another --run_name")
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

    @staticmethod
    def holder(run_dir):
        """Who holds the lock on run_dir now ('pid N on HOST since ...'), or None when no live process does."""
        try:
            import fcntl
        except ImportError:
            return None
        path = os.path.join(run_dir, ".lock")
        if not os.path.exists(path):
            return None
        with open(path) as f:
            try:
                fcntl.flock(f, fcntl.LOCK_SH | fcntl.LOCK_NB)  # released when the file closes
            except OSError:
                return f.read().strip() or "another process"
        return None

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


WHERE = ("out_dir", "run_name")  # where a run lives, not what it computes: a moved or renamed run folder resumes
EXTENDABLE = ("rl_steps",)  # settings --resume may raise: more RL steps continue a run (a finished one too)


def given_keys(argv):
    """The setting names a command line sets explicitly (--key=value, --key value or a bare --flag)."""
    return {a[2:].split("=", 1)[0].replace("-", "_") for a in argv if a.startswith("--") and len(a) > 2}


def resumed_config(cfg, argv, resumable):
    """--resume: the run's settings come from its checkpoint, so `python train.py --resume` (with --run_name or the
    settings that name the folder) continues a run without retyping it. What argv sets explicitly wins: a setting in
    `resumable` (threads, logs, evaluation batch: nothing the run computes) may change, and so may --rl_steps upwards
    (with a constant rate: the cosine schedule depends on it); any other change is refused, all of them in one line.
    Settings the checkpoint predates keep their defaults (which do what the code did before)."""
    path = os.path.join(cfg.out_dir, cfg.run_name, "ckpt.pt")
    if not os.path.isfile(path):
        return cfg  # check_fresh says so, in its words
    saved, given = load_checkpoint(path, mmap=True)["config"], given_keys(argv)
    values = {k: (v if k in given or k in resumable or k in WHERE or k not in saved else saved[k])
              for k, v in vars(cfg).items()}
    bad = [f"{k}={saved[k]!r} (asked: {v!r})" for k, v in values.items() if k in saved and saved[k] != v
           and k not in resumable and k not in EXTENDABLE + WHERE]
    if "rl_steps" in given and cfg.rl_steps != saved.get("rl_steps", cfg.rl_steps) and (
            cfg.rl_steps < saved["rl_steps"] or values["rl_schedule"] != "constant"):
        bad.append(f"rl_steps={saved['rl_steps']!r} (asked: {cfg.rl_steps!r}; it may only grow, with "
                   f"--rl_schedule=constant)")
    if bad:
        raise SystemExit(f"error: the checkpoint {path} was written with {', '.join(bad)}; these settings change what "
                         f"the run computes: drop them to continue it, or start another --run_name")
    return type(cfg)(**values)


def check_resumable(saved, cfg, resumable):
    """Refuse a checkpoint written by another config, naming the first field that differs (fields in `resumable` may
    differ: they do not change what the run computes; --rl_steps may grow, resumed_config checked how). Where the run
    lives (--out_dir, --run_name) may differ too: a run folder moved or renamed resumes."""
    for key, value in vars(cfg).items():
        if key not in resumable and key not in EXTENDABLE + WHERE and saved.get(key) != value:
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


RL_STEP_IN_SFT_STEPS = 15  # the default run's RL step (16 x 8 samples, 4 updates) costs ~15 SFT steps on a CPU


@dataclass
class Books:
    """What a checkpoint saves of a run besides its weights, optimiser and RNG states: every field here is saved and
    restored (save_run, resume_run), so a new one needs no other change."""
    sft_accuracy: float = None  # held-out accuracy after SFT (None until RL starts)
    sft_eval: dict = None  # the SFT model's held-out evaluation
    elapsed: float = 0.0  # training seconds so far
    bad_steps: int = 0  # non-finite losses in a row
    eval_time: float = 0.0  # seconds spent in evaluations (accuracy can be plotted against training time alone)
    rl_drawn: int = 0  # RL prompts drawn so far from the stream (B a step, more with dynamic sampling)


@dataclass
class Run:
    """One train.py run's state besides its Config."""
    shard: object  # gift.shard.Shard: this process's rank and the number of processes (DDP)
    run_dir: str
    task: object  # gift.tasks.Task: training examples, held-out examples, reward, metrics
    pool: list  # --rl_pool: the training problems RL cycles through, scored too
    model: torch.nn.Module  # the policy pi_theta; DDP-wrapped when world > 1
    enc: object  # the tokenizer (tiktoken.Encoding)
    opt: torch.optim.Optimizer
    loss_fn: object  # gift.loss.Method (LOSSES[cfg.method]) or an experiment's own loss_fn(batch, cfg)
    reference: object  # gift.reference.Reference: pi_ref
    draw: object = None  # gift.resample: one round of groups a step, or DAPO's dynamic sampling
    books: Books = field(default_factory=Books)
    step: int = 0  # optimiser steps taken (SFT and RL)
    saved_step: int = None  # the step of the last ckpt.pt
    start_time: float = 0.0
    lock: object = None  # RunLock: one process per run folder
    monitor: object = None  # gift.monitor.Monitor: samples.jsonl and TensorBoard (rank 0)
    probe: object = None  # gift.monitor.GradientProbe (--grad_stats)
    sft_model: object = None  # a frozen copy of the --init model (--kl_sft)
    decode_graphs: bool = None  # the sampler's CUDA graphs (None: on a GPU); benchmarks switch them off
    stage_time: dict = field(default_factory=dict)  # seconds per step of each stage so far, for the ETA

    @property
    def rank(self):
        return self.shard.rank

    @property
    def world(self):
        return self.shard.world

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

    def progress(self, record, cfg, seconds_per_step):
        """The progress line: step N/total, the stage, the loss and the step's main statistics, speed and ETA. The
        ETA counts each stage at its own speed: an RL step (sampling, K updates) costs many SFT steps. Before the
        first RL step is timed it assumes RL_STEP_IN_SFT_STEPS SFT steps a step (marked '~')."""
        total = cfg.sft_steps + cfg.rl_steps
        self.stage_time[record["stage"]] = seconds_per_step
        sft = self.stage_time.get("sft", seconds_per_step)
        rl = self.stage_time.get("rl", sft * RL_STEP_IN_SFT_STEPS)
        left = max(0, cfg.sft_steps - self.step) * sft + (total - max(self.step, cfg.sft_steps)) * rl
        guess = "~" if "rl" not in self.stage_time and cfg.rl_steps and self.step < total else ""
        extras = "".join(f" {k} {record[k]:.3f}" for k in ("reward", "corr", "logratio_std", "kl", "entropy",
                                                           "watch_accuracy") if k in record)
        self.say(f"step {self.step}/{total} {record['stage']} loss {record['loss']:.4f}{extras} "
                 f"({seconds_per_step:.2f} s/step, ETA {guess}{left / 60:.1f} min)")

    def count_skipped(self, skipped, cfg):
        """After step self.step - 1: count it if its update was skipped (a non-finite loss or gradient); stop after
        --max_bad_steps in a row."""
        self.books.bad_steps = self.books.bad_steps + 1 if skipped else 0
        if self.books.bad_steps >= cfg.max_bad_steps:
            raise SystemExit(f"error: {cfg.max_bad_steps} non-finite losses in a row at step {self.step - 1}; "
                             f"stopping. Skipped steps never update the weights; last checkpoint: "
                             f"{self.path('ckpt.pt')}")

    def checkpoint(self, cfg):
        """After step self.step: ckpt.pt every --ckpt_every steps, at SFT's end, at the end and at --stop_after;
        sft.pt at SFT's end (--init=out/RUN/sft.pt --sft_steps=0 starts RL from it). Rank 0 writes."""
        total = cfg.sft_steps + cfg.rl_steps
        if self.rank == 0 and (self.step % cfg.ckpt_every == 0
                               or self.step in (cfg.sft_steps, total, cfg.stop_after)):
            save_run(self, cfg, "ckpt.pt")
        if self.rank == 0 and self.step == cfg.sft_steps:
            save_run(self, cfg, "sft.pt")

    def close(self):
        """The logs, the run folder's lock, the process group: whatever the run opened."""
        if self.monitor:
            self.monitor.close()
        if self.lock:
            self.lock.release()
        if self.world > 1:
            import torch.distributed as dist
            dist.destroy_process_group()

    def summarize(self, cfg, final):
        """summary.json (the SFT and final held-out scores, config, seed, wall time), the "final" record of
        metrics.jsonl and the closing lines, from the final evaluation `final`; returns the summary dict."""
        rl = self.books.sft_accuracy is not None  # set when RL starts (train.start_rl)
        if not rl:  # no RL steps: the final model is the SFT model
            self.books.sft_eval, self.books.sft_accuracy = final, final["accuracy"]
        summary = dict(sft_accuracy=self.books.sft_accuracy, rl_accuracy=final["accuracy"],
                       heldout_problems=len(self.task.heldout), sft_eval=self.books.sft_eval, rl_eval=final,
                       seed=cfg.seed, wall_time_s=round(time.time() - self.start_time, 1), torch=torch.__version__,
                       threads=torch.get_num_threads(), config=asdict(cfg))
        if self.rank == 0:
            self.log(dict(step=self.step, stage="final", time=time.time() - self.start_time,
                          eval_time=self.books.eval_time, **{f"heldout_{k}": v for k, v in final.items()}))
            self.say(f"final held-out: {self.fmt(final)}")
            with open(self.path("summary.json"), "w") as f:
                json.dump(summary, f, indent=2)
            scores = (f"SFT {summary['sft_accuracy']:.4f} -> {cfg.method.upper()} {final['accuracy']:.4f}" if rl else
                      f"SFT {final['accuracy']:.4f} (no RL steps: the final model is the SFT model)")
            self.say(f"held-out accuracy: {scores} ({len(self.task.heldout)} problems, "
                     f"{summary['wall_time_s']:.0f} s); wrote {self.run_dir}/summary.json")
        return summary


def save_run(run, cfg, name):
    """<run>/<name>: everything needed to continue bit-identically (config, step, weights, optimiser, pi_ref, RNG
    states, books)."""
    ref = run.reference.model
    save_checkpoint(run.path(name), dict(
        config=asdict(cfg), step=run.step, model=run.policy.state_dict(), model_config=asdict(run.policy.config),
        opt=run.opt.state_dict(), ref=ref.state_dict() if ref is not None else None,
        rng=rng_states(), **asdict(run.books)))
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
    set_rng_states(ckpt["rng"])  # numpy's key as a list, or an ndarray in a checkpoint from before issue 40
    run.books = Books(**{f.name: ckpt[f.name] for f in fields(Books) if f.name in ckpt})
    if ckpt.get("rl_drawn", 0) is None:  # a checkpoint from before the count: B prompts per RL step
        run.books.rl_drawn = max(0, run.step - cfg.sft_steps) * cfg.prompts
    if run.rank == 0:
        print(f"resumed {run.path('ckpt.pt')} at step {run.step}")


# ----------------------------------------------------------------------------------------------------------------
# the model named by --init


def open_run(run, cfg, logprobs):
    """What a run needs besides the method, attached once train.setup has built it: the checkpoint's state with
    --resume, the frozen --init model of --kl_sft, the --grad_stats probe (logprobs: train's response log-probs), the
    logs and the run folder's lock (rank 0), and DDP. Everything that can be refused is refused before any training."""
    if cfg.resume:
        resume_run(run, cfg, resumable(type(cfg)), lambda: make_optimizer(run.model, cfg.rl_lr, cfg))
    if cfg.kl_sft:  # a frozen copy of the RL run's starting model, for the kl_sft log
        if cfg.sft_steps:
            raise SystemExit("error: --kl_sft measures the distance to --init; use it for RL from an SFT checkpoint "
                             "(--init=out/RUN/sft.pt --sft_steps=0)")
        run.sft_model = load_model(cfg.init, cfg.task, run.task.byte_tokenizer)[0].to(cfg.device).eval()
        run.sft_model.requires_grad_(False)
    if cfg.grad_stats:
        if run.world > 1:
            raise SystemExit("error: --grad_stats measures one process's gradient; run it without torchrun")
        run.probe = GradientProbe(run.policy, run.loss_fn, cfg,
                                  lambda idx, mask: logprobs(run.policy, idx, mask, cfg, cfg.temperature)[0])
    if run.rank == 0:
        run.monitor = Monitor(run.run_dir, cfg.tensorboard)
        run.lock = open_run_dir(run.run_dir, cfg, run.step, OUTPUTS)
    run.model = run.shard.wrap(run.model)
    return run


# A hub model's name, "gpt2" or "owner/name": anything else that is not on disk can only be a mistyped path.
HUB_NAME = re.compile(r"^[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?$")
FILE_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt", ".safetensors", ".json", ".pkl")  # checkpoint-like file names


def load_model(init, task, byte_tokenizer=None, option="--init"):
    """(model, tokenizer) from a preset name (random init), one of our ckpt.pt files, an HF directory or a hub name.
    On GSM8K the names of the published GPT-2 models (gpt2, gpt2-medium, ...) load their weights, not a random init.
    On the built-in task an HF directory loads when its vocabulary is the byte tokenizer's (257 rows: a built-in run
    exported by `python -m gift.export`).

    The tokenizer: the built-in byte tokenizer for the built-in task; otherwise the vocab.json/merges.txt of the
    checkpoint directory or hub snapshot (for a ckpt.pt: of the one its run started from) when present, else GPT-2's.
    A name that is neither a preset, a directory, a checkpoint nor reachable on the hub is one error line: a path
    that is not there ("no such file"), a run folder ("use its ckpt.pt"), a folder that is not a model.
    byte_tokenizer: the task's (gift.tasks.Task); None: the built-in task's, True only for task == "builtin".
    option: the command-line option that named init, for the error lines ("--init=NAME"); None for a positional
    argument (eval.py's model: the name alone, and a run folder's line says to evaluate its checkpoint).
    """
    byte = task == "builtin" if byte_tokenizer is None else byte_tokenizer
    named = f"{option}={init}" if option else init  # how the error lines name init
    _check_path(init, option, named)
    ckpt = None
    if init.endswith(".pt"):
        ckpt = load_checkpoint(init)
        prompts_of = lambda t: "builtin" if t == "rlhf" else t  # the rlhf task asks the built-in task's questions
        if "model_config" not in ckpt or prompts_of(ckpt.get("config", {}).get("task")) != prompts_of(task):
            raise SystemExit(f"error: {init} is not a gift checkpoint for --task {task}")
    elif os.path.isfile(init):
        presets = f"a preset ({', '.join(PRESETS)}), " if option else ""
        raise SystemExit(f"error: {named} is a file but not a .pt checkpoint; give {presets}a train.py ckpt.pt, an HF "
                         f"model directory or a hub name")
    names = [p for p in PRESETS if p.startswith(("gpt2", "qwen"))]  # names of published models
    if byte and not ckpt and os.path.isdir(init):  # an HF folder: only an exported built-in model fits the task
        vocab, byte_vocab = _hf_vocab(init), builtin_tokenizer().n_vocab
        if vocab != byte_vocab:
            raise SystemExit(f"error: {named}: the built-in tasks use the byte tokenizer ({byte_vocab} tokens) and "
                             f"this model's vocabulary is {vocab}; give a built-in run's checkpoint or its export "
                             f"(python -m gift.export), or use --task=gsm8k for a published model")
    elif byte and not ckpt and (init not in PRESETS or init in names):
        remedy = "use --init=micro" if option else "evaluate a built-in run's checkpoint (out/RUN/ckpt.pt)"
        raise SystemExit(f"error: {named}: the built-in tasks train a small preset from scratch with the byte "
                         f"tokenizer ({', '.join(p for p in PRESETS if p not in names)}), not "
                         f"{'the published weights' if init in names else 'a hub model'}; "
                         f"{remedy}, or --task=gsm8k for a published model")
    source = ckpt["config"]["init"] if ckpt else init
    if not byte:  # a Qwen preset name on a published task is the published model (as gpt2 is), not a random one
        source = published(source)
    if not byte and source not in PRESETS and not os.path.isdir(source):
        source = _hub_snapshot(source, named)  # a hub name: its snapshot, tokenizer files included (downloaded once)
    if byte:
        enc = builtin_tokenizer()
    elif os.path.isfile(os.path.join(source, "vocab.json")):
        enc = get_tokenizer(source)  # the checkpoint's own vocabulary files: no download
    else:
        try:
            enc = get_tokenizer("gpt2")  # tiktoken downloads GPT-2's BPE files once, then reads its cache
        except Exception as e:
            raise SystemExit(f"error: could not load GPT-2's tokenizer ({type(e).__name__}); it is downloaded on first "
                             f"use, or give {option or 'the model'} a checkpoint directory with vocab.json and "
                             f"merges.txt") from None
    if ckpt:
        model = plain_model(ckpt)  # a LoRA run's adapters (and 4-bit base) merged into plain weights
    elif init in PRESETS and not os.path.isdir(init) and (byte or init not in names):
        model = GPT(preset(init, vocab_size=enc.n_vocab))  # trained from scratch
    else:
        try:
            model = GPT.from_pretrained(source if os.path.isdir(source) else _hub_snapshot(source, named))
        except (OSError, ValueError) as e:
            raise SystemExit(f"error: cannot load {named}: {e}") from None
    if model.config.vocab_size < enc.n_vocab:
        raise SystemExit(f"error: model vocabulary {model.config.vocab_size} < tokenizer's {enc.n_vocab}")
    return model, enc


def _check_path(init, option, named):
    """One error line for a name that cannot be a model: a path that is not there (a hub name aside), a run folder
    (train.py's out/RUN, whose checkpoint is out/RUN/ckpt.pt) and a folder that is no Hugging Face model."""
    if os.path.isdir(init):
        run = os.path.join(init, "ckpt.pt")
        if os.path.isfile(run):
            raise SystemExit(f"error: {named} is a run folder: start from its checkpoint, {option}={run}" if option
                             else f"error: {init} is a run folder: evaluate its checkpoint, {run}")
        if not os.path.isfile(os.path.join(init, "config.json")):
            raise SystemExit(f"error: {named} is a folder without config.json: neither a run folder (ckpt.pt) nor a "
                             f"Hugging Face model folder (config.json + model.safetensors, as python -m gift.export "
                             f"writes)")
    elif not os.path.exists(init) and init not in PRESETS and (init.lower().endswith(FILE_SUFFIXES)
                                                                or not HUB_NAME.match(init)):
        raise SystemExit(f"error: {named}: no such file" if option else f"error: no such file: {init}")


def _hf_vocab(path):
    """The vocabulary size in an HF model folder's config.json (None when it cannot be read)."""
    try:
        with open(os.path.join(path, "config.json")) as f:
            return json.load(f).get("vocab_size")
    except (OSError, ValueError, AttributeError):
        return None


def _hub_snapshot(name, named=None):
    """The local snapshot of a hub model (downloaded once); one error line when the name is not a directory and the
    hub cannot give it (no such model, or no network). named: how the line names it (default --init=NAME)."""
    named = named or f"--init={name}"
    try:
        return checkpoint_dir(name)
    except FileNotFoundError as e:
        raise SystemExit(f"error: {named}: {e}") from None
    except Exception as e:  # huggingface_hub's errors: not found, offline, gated
        raise SystemExit(f"error: {named} is neither a preset ({', '.join(PRESETS)}), a directory, a .pt "
                         f"checkpoint nor a model the hub gives ({type(e).__name__}: "
                         f"{str(e).splitlines()[0][:100] if str(e) else 'no answer'})") from None
