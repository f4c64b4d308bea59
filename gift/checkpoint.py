"""Checkpoints, written and read in one place: train.py's ckpt.pt and sft.pt, gift.rlhf's reward models.

    save_checkpoint(path, state)          # a temporary file renamed into place, with the weights' sha256 beside them
    state = load_checkpoint(path)         # tensors and plain containers only; one error line for a bad file
    rng_states() / set_rng_states(rng)    # torch's, python's and numpy's RNG states as plain containers

A checkpoint is a dict of tensors and plain containers (dict, list, tuple, str, int, float, bool, None): the weights
(`model`, their `checksum` beside them), the run's config as a dict, the optimiser's state dict, the RNG states and
counters. It is read with torch.load(weights_only=True), whose unpickler builds only those: a pickle that names any
other global (a __reduce__ that calls os.system or open) is refused before anything of it runs, and the error line
names that global.

Files written before the RNG states were plain (up to issue 40) hold numpy's state as np.random.get_state() gives it,
its key an ndarray. They load with numpy's array globals allowed and nothing else (OLD_NUMPY, the minimal list that
torch's refusals name one by one): the array reconstruction (_reconstruct, under numpy 1's and 2's module names),
ndarray, dtype and the uint32 dtype's class. They build an array from its bytes and call nothing else. That reads
simpler than a converter, which would need the same allow-list to read the old file (or weights_only=False, the very
thing removed) and would leave a second copy of every old checkpoint.
"""
import hashlib
import os
import pickle
import random
import re

import numpy as np
import torch

# numpy's ndarray pickle: _reconstruct(ndarray, shape, dtype) then ndarray.__setstate__(bytes), its dtype built by
# dtype("u4") then __setstate__ (an instance of np.dtypes.UInt32DType: the key is uint32). numpy 2 writes the module
# as numpy._core.multiarray, numpy 1 as numpy.core.multiarray (the same function).
_reconstruct = np.zeros(0).__reduce__()[0]  # numpy._core.multiarray._reconstruct (numpy 2; numpy.core in numpy 1)
OLD_NUMPY = [(_reconstruct, "numpy._core.multiarray._reconstruct"),
             (_reconstruct, "numpy.core.multiarray._reconstruct"),  # a file written under numpy 1
             np.ndarray, np.dtype, type(np.dtype(np.uint32))]  # the last: np.dtypes.UInt32DType


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


def _clip(text, limit=120):
    """The first line of text, cut at the last word boundary within limit characters (never mid-word)."""
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= limit else line[:limit + 1].rsplit(" ", 1)[0].rstrip(" ,;:") + " ..."


def safe_load(path, map_location="cpu", what="checkpoint", remedy="", **kwargs):
    """torch.load(path, weights_only=True) (kwargs: e.g. mmap=True). A missing file, one that asks for code to run
    (a global weights_only does not allow) and an unreadable one are each one error line naming the file; `what` names
    the kind of file in it and `remedy` (": copy it again ...") ends the unreadable file's line."""
    if not os.path.isfile(path):
        raise SystemExit(f"error: {what} {path!r} does not exist")
    try:
        with torch.serialization.safe_globals(OLD_NUMPY):
            return torch.load(path, map_location=map_location, weights_only=True, **kwargs)
    except Exception as e:  # a truncated zip (a copy cut short, a full disk) fails deep inside torch.load
        error = str(e)
        if isinstance(e, pickle.UnpicklingError) and "Weights only load failed" in error:  # nothing in it ran
            named = re.search(r"GLOBAL ([\w.]+)", error)  # a function or class the pickle would call
            if named:
                raise SystemExit(f"error: {path} is not a safe gift {what}: it holds {named.group(1)}, which is "
                                 f"neither a tensor nor a plain container; it was not loaded (loading it could run "
                                 f"code)") from None
            error = error.split("WeightsUnpickler error:")[-1]  # torch's reason, not its advice (garbage bytes)
        name = type(e).__name__
    raise SystemExit(f"error: cannot read {what} {path} ({name}: {_clip(error)}); the file is truncated or not a "
                     f"torch checkpoint{remedy}")


def verify_checksum(path, state, what="checkpoint", remedy=""):
    """One error line when state["model"] no longer matches the checksum saved with it (files without one pass)."""
    if "checksum" in state and weights_checksum(state["model"]) != state["checksum"]:
        raise SystemExit(f"error: {what} {path} is damaged: its weights do not match the checksum saved with "
                         f"them{remedy}")


def load_checkpoint(path, map_location="cpu", **kwargs):
    """A .pt file written by train.py (ckpt.pt, sft.pt). A missing, unsafe, truncated, unreadable or damaged file (its
    weights no longer match the checksum saved with them) is one error line naming it, not a traceback or a silent
    load."""
    remedy = ": copy it again, or start the run afresh (train.py --overwrite)"
    state = safe_load(path, map_location, "checkpoint", remedy, **kwargs)
    if not isinstance(state, dict) or "model" not in state:
        raise SystemExit(f"error: {path} is not a gift checkpoint (no model weights in it)")
    verify_checksum(path, state, "checkpoint", "; copy it again, or start the run afresh (train.py --overwrite)")
    return state


# ----------------------------------------------------------------------------------------------------------------
# RNG states, as plain containers


def rng_states():
    """torch's, python's and numpy's global RNG states: a uint8 tensor, tuples of ints, and numpy's legacy tuple
    (name, key as a list of 624 ints, pos, has_gauss, cached_gaussian) with the key array made a list."""
    name, key, pos, has_gauss, cached = np.random.get_state(legacy=True)
    return dict(torch=torch.get_rng_state(), python=random.getstate(),
                numpy=(name, key.tolist(), int(pos), int(has_gauss), float(cached)))


def set_rng_states(rng):
    """Restore rng_states() exactly; numpy's key may also be the ndarray of a checkpoint from before issue 40."""
    torch.set_rng_state(rng["torch"].cpu())  # a checkpoint loaded with map_location=cuda holds it on the GPU
    random.setstate(rng["python"])
    name, key, pos, has_gauss, cached = rng["numpy"]
    np.random.set_state((name, np.asarray(key, dtype=np.uint32), pos, has_gauss, cached))


def plain_model(ckpt):
    """The plain GPT (no adapters, float32 weights) that computes what a train.py checkpoint's model computes: a LoRA
    run's (--lora_rank) adapters are added, its 4-bit base (--quant=nf4) quantised the same way, the weights loaded,
    then everything merged into plain layers (gift/lora.py merge_lora dequantises the 4-bit base). eval.py, --init and
    the export read a run through it."""
    from gift.model import GPT, GPTConfig
    model, run = GPT(GPTConfig(**ckpt["model_config"])), ckpt["config"]
    if run.get("lora_rank"):
        from gift.lora import add_lora, merge_lora
        add_lora(model, run["lora_rank"], run.get("lora_alpha") or None)
        if run.get("quant", "none") != "none":
            from gift.quant import check_quant, quantize_base
            check_quant(run["quant"], run["lora_rank"], "cpu")  # one error line without bitsandbytes
            quantize_base(model)  # the state dict holds the 4-bit bytes: load_state_dict copies them in
    model.load_state_dict(ckpt["model"])  # a bfloat16 embedding (--quant=nf4 --dtype=bfloat16) is widened exactly
    if run.get("lora_rank"):
        merge_lora(model).requires_grad_(True)  # plain again: every weight trainable, as in a model built fresh
    return model
