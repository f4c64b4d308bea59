"""The writers setting: does GIFT's deficit against GRPO shrink as the batch grows toward the paper's? GIFT and GRPO
at equal prompts per step, paired by seed, each at the rate writers_baselines.py tuned for it at 16 prompts or, at a
size in --tune_prompts, the rate re-tuned there.

    python experiments/writers_batch.py [--prompts 16 32 64] [--seeds 0 1 2] [--long_steps 450 [--long_prompts 16 64]]
                                        [--tune_prompts 32 64 [--tuning_seeds 0 1]]
                                        [--runs out/experiments] [--out docs/experiments] [--jobs 2]

Why: 64 prompts a step raised GIFT's sampled reward by 3.9 points (+0.2 to +7.5; writers_plateau.py) to GRPO's level
at 16, and the paper's own runs use about a thousand prompts a step. The hypothesis is that GIFT's K - 1 matching
steps are noisy and that averaging over more groups removes the deficit. A fair test gives GRPO the same batch: if
GIFT - GRPO moves toward 0 as the batch grows, the batch explains the deficit; if GRPO gains as much, it does not.

Runs: for each size in --prompts, GIFT (4e-5) and GRPO (8e-5) for 150 RL steps from the writers SFT of each seed,
evaluated at the end (the 16-prompt runs are writers_baselines.py's tuning runs, shared). With --long_steps, GIFT at
16 and 64 prompts (--long_prompts) and GRPO at 16 also run that many steps, so a floor can be told from a slow
climb. A long run continues its 150-step run: the rate is constant (no schedule depends on --rl_steps), so its first
150 steps are that run's, and train.py --resume with more --rl_steps goes on from that run's final checkpoint,
which saves a third of the work.
The rates are the 16-prompt ones unless --tune_prompts re-tunes them: a larger batch may move each method's best rate
(the linear scaling rule expects a larger one). At each size in --tune_prompts, each method runs every rate of its
GRID (the 16-prompt rate, halved and doubled) on --tuning_seeds, by writers_baselines.py's protocol: the rate with
the highest mean final held-out accuracy over the tuning seeds wins, a tie (both at the ceiling) going to the higher
mean sampled reward over the last 50 steps. A winner at an end of the grid that has beaten its neighbour there widens
the grid by the rate past it (doubled or halved; at most WIDEN times, as writers_baselines.py widened its grids), and
a winner that no finished rate brackets is flagged as at the grid's edge. The comparison at that size then uses the
chosen rates; its runs on the tuning seeds are the tuning runs themselves (a tuning run is a comparison run: same
settings, evaluated at the end), so only the other seeds are new. Each rate's runs start doubled rate first, then
halved, so that a run stopped part of the way has tried the direction the rule expects.
A rate that has not finished on every tuning seed takes no part in the choice, and the JSON marks the grid
incomplete. Without --report_only the script runs until every rate of the widened grids and every comparison run has
finished. The 16-prompt rates were tuned by writers_baselines.py on seeds 0 and 1 and are not tuned again here.

Reported per size: final held-out accuracy per seed and method, GIFT - GRPO paired by seed with a 95% t-interval,
the same for the sampled reward over the last 50 steps, the rates, and the responses each run sampled. Writes
writers_batch.json (top-level `prompts_per_step`, `seeds`, and `tuning` per re-tuned size) and writers_batch.png.
--report_only starts nothing and reports the runs that have finished.
"""

import os
import shutil

from common import (WRITERS_TASK, lr_name, machine, mean_sd, metrics, paired_difference, parser, points, pyplot,
                    run_all, sample_budget, save_figure, summary, write_json, writers_rl, writers_sft)

RATES = {"gift": 4e-5, "grpo": 8e-5}  # writers_baselines.json's tuned rates (16 prompts a step)
SCALES = (2, 0.5, 1)  # re-tuning at a larger batch (--tune_prompts): the 16-prompt rate times these, doubled first
GRID = {m: tuple(sorted(s * r for s in SCALES)) for m, r in RATES.items()}
WIDEN = 2  # at most this many rates past GRID's ends (tune())
STEPS = 150
LAST = 50  # the sampled reward is averaged over the last LAST steps
EVERY = 10  # reward curve: means over blocks of EVERY steps


def name(method, prompts, steps=STEPS, lr=None):
    lr = lr_name(lr or RATES[method])
    if prompts == 16 and steps == STEPS:
        return f"writers-tune-{method}-lr{lr}"  # writers_baselines.py's tuning run
    return f"writers-batch-{method}-p{prompts}-lr{lr}" + ("" if steps == STEPS else f"-{steps}")


def arms(args):
    """(method, prompts, steps) of every run, cheapest sizes first so that whole pairs finish early."""
    out = [(m, p, STEPS) for p in sorted(args.prompts, key=lambda p: (p != 16, p != 64, p)) for m in RATES]
    if args.long_steps:
        out += [("gift", 16, args.long_steps), ("grpo", 16, args.long_steps)]
        out += [("gift", p, args.long_steps) for p in args.long_prompts if p != 16]
    return out


def tuned_sizes(args):
    return sorted({p for p in args.tune_prompts if p != 16}, reverse=True)  # the largest, the decisive one, first


def one(args, method, prompts, seed, steps=STEPS, lr=None):
    """The train.py run of `method` at `prompts` a step: held-out accuracy at the end only (the long runs continue
    the 150-step runs: module docstring)."""
    lr = lr or RATES[method]
    extra = {} if prompts == 16 else dict(prompts=prompts)
    return writers_rl(args, name(method, prompts, steps, lr), seed, steps, 0, method=method, rl_lr=lr, **extra)


def runs(args):
    """Every run: the SFT models, the tuning runs, the comparison (at a re-tuned size, once every rate of the grid
    has finished on the tuning seeds), the long runs."""
    out = [writers_sft(seed) for seed in sorted(set(args.seeds) | set(args.tuning_seeds if args.tune_prompts else []))]
    sizes, tuned = tuned_sizes(args), tuning(args)
    for prompts in sizes:
        for scale in SCALES:  # each method's doubled rate first (module docstring)
            for method in GRID:
                out += [one(args, method, prompts, seed, lr=scale * RATES[method]) for seed in args.tuning_seeds]
        for method, t in tuned.get(str(prompts), {}).items():  # then the rates past an end that tune() added
            out += [one(args, method, prompts, seed, lr=lr) for lr in t["grid"] if lr not in GRID[method]
                    for seed in args.tuning_seeds]
    for method, prompts, steps in arms(args):
        lr = None
        if steps == STEPS and prompts in sizes:
            t = tuned.get(str(prompts), {}).get(method)
            if not (t and t["complete"]):
                continue  # its rate is not chosen yet
            lr = t["chosen"]
        out += [one(args, method, prompts, seed, steps, lr) for seed in args.seeds]
    return out


def continue_short_runs(args):
    """Each long run starts as a copy of its finished 150-step run (its folder without the summary and the lock), so
    that run_all resumes it to --long_steps (module docstring). A long run that exists already is left as it is."""
    for method, prompts, steps in arms(args):
        if steps <= STEPS:
            continue
        for seed in args.seeds:
            short = os.path.join(args.runs, f"{name(method, prompts)}-s{seed}")
            long = os.path.join(args.runs, f"{name(method, prompts, steps)}-s{seed}")
            if not os.path.exists(long) and os.path.exists(os.path.join(short, "summary.json")):
                shutil.copytree(short, long, ignore=shutil.ignore_patterns("summary.json", ".lock"))


def reward_blocks(records, size):
    r = [x["reward"] for x in records if x.get("stage") == "rl"]
    return [sum(r[i:i + size]) / len(r[i:i + size]) for i in range(0, len(r), size)]


def one_run(args, run):
    s, records = summary(args, run), metrics(args, run)
    rl = [r for r in records if r.get("stage") == "rl"]
    cfg = s["config"]
    return dict(final_accuracy=s["rl_accuracy"], reward=sum(r["reward"] for r in rl[-LAST:]) / len(rl[-LAST:]),
                reward_curve=reward_blocks(records, EVERY), **sample_budget(records, cfg))


def finished(args, run):
    return os.path.exists(os.path.join(args.runs, run, "summary.json"))


def per_seed(args, run, seeds):
    """{seed: one_run} of <run>-s<seed> for the seeds whose run has finished."""
    return {seed: one_run(args, f"{run}-s{seed}") for seed in seeds if finished(args, f"{run}-s{seed}")}


def choose(args, method, prompts, grid):
    """The tuning of `method` at `prompts` over the rates `grid`: per rate and tuning seed the final held-out accuracy
    and the sampled reward over the last LAST steps, their means per rate (rates finished on every tuning seed only),
    the chosen rate (highest mean accuracy, ties to the higher mean reward), whether it is at an end of the finished
    rates (not bracketed: at the grid's edge), and whether every rate of the grid has finished; None when no rate has
    finished."""
    per = {lr_name(lr): per_seed(args, name(method, prompts, lr=lr), args.tuning_seeds) for lr in grid}
    done = [lr for lr in grid if len(per[lr_name(lr)]) == len(args.tuning_seeds)]
    if not done:
        return None
    mean = {lr_name(lr): {k: sum(v[k] for v in per[lr_name(lr)].values()) / len(args.tuning_seeds)
                          for k in ("final_accuracy", "reward")} for lr in done}
    best = max(done, key=lambda lr: (round(mean[lr_name(lr)]["final_accuracy"], 9), mean[lr_name(lr)]["reward"]))
    return dict(grid=list(grid), tuning_seeds=args.tuning_seeds, per_seed=per, mean=mean, chosen=best,
                at_grid_edge=best in (min(done), max(done)), complete=len(done) == len(grid))


def tune(args, method, prompts):
    """choose() over GRID widened by writers_baselines.py's rule (a best at an end of the grid is not trusted): while
    the best finished rate is at an end of the grid and has beaten its neighbour there, the rate past it (doubled at
    the top, halved at the bottom) joins the grid, at most WIDEN times. None when no rate has finished."""
    rates = list(GRID[method])
    t = choose(args, method, prompts, rates)
    for _ in range(WIDEN):
        if t is None or t["chosen"] not in (rates[0], rates[-1]):
            break
        top = t["chosen"] == rates[-1]
        if lr_name(rates[-2] if top else rates[1]) not in t["mean"]:
            break  # its neighbour has not finished: nothing has been beaten yet
        rates = sorted(rates + [t["chosen"] * 2 if top else t["chosen"] / 2])
        t = choose(args, method, prompts, rates)
    return t


def tuning(args):
    """{size: {method: tune(...)}} for each size in --tune_prompts where a rate has finished."""
    out = {}
    for prompts in tuned_sizes(args):
        entry = {m: tune(args, m, prompts) for m in GRID}
        entry = {m: t for m, t in entry.items() if t}
        if entry:
            out[str(prompts)] = entry
    return out


def comparison(args, prompts, rates):
    """GIFT and GRPO at `prompts` a step and `rates`, on the seeds where both finished: per seed, and GIFT - GRPO
    paired by seed (None when no seed has both)."""
    per = {m: per_seed(args, name(m, prompts, lr=rates[m]), args.seeds) for m in RATES}
    seeds = [s for s in args.seeds if all(s in per[m] for m in RATES)]
    if not seeds:
        return None
    entry = {m: dict(lr=rates[m], per_seed=per[m],
                     final_mean=mean_sd([v["final_accuracy"] for v in per[m].values()])[0]) for m in RATES}
    for key, out in (("final_accuracy", "gift_minus_grpo"), ("reward", "reward_gift_minus_grpo")):
        entry[out] = paired_difference([per["gift"][s][key] - per["grpo"][s][key] for s in seeds])
    entry["paired_seeds"] = seeds
    return entry


def collect(args):
    """Per size, the comparison at its rates (re-tuned ones where --tune_prompts chose them from a finished grid; then
    also, under `at_16_prompt_rates`, the comparison at the 16-prompt rates where its runs exist); the long runs; the
    tuning."""
    sizes, tuned = {}, tuning(args)
    for prompts in args.prompts:
        t = tuned.get(str(prompts), {})  # a grid not finished chooses nothing yet (runs() waits for it too)
        rates = {m: t[m]["chosen"] if t.get(m, {}).get("complete") else RATES[m] for m in RATES}
        entry = comparison(args, prompts, rates)
        if entry is None:
            continue
        at16 = comparison(args, prompts, RATES) if rates != RATES else None
        if at16:
            entry["at_16_prompt_rates"] = at16
        sizes[str(prompts)] = entry
    long = {}
    if args.long_steps:
        for method, prompts, steps in arms(args):
            if steps != args.long_steps:
                continue
            per = per_seed(args, name(method, prompts, steps), args.seeds)
            if per:
                long[f"{method}-p{prompts}"] = dict(steps=steps, per_seed=per)
        if "gift-p16" in long and "grpo-p16" in long:  # the decisive pair: at the same batch, after the long run
            gift, grpo = long["gift-p16"]["per_seed"], long["grpo-p16"]["per_seed"]
            seeds = [s for s in args.seeds if s in gift and s in grpo]
            if seeds:
                long["gift_minus_grpo_p16"] = dict(paired_seeds=seeds, **{
                    out: paired_difference([gift[s][key] - grpo[s][key] for s in seeds])
                    for key, out in (("final_accuracy", "final_accuracy"), ("reward", "reward"))})
    return sizes, long, tuned


def tuning_markdown(tuned):
    """The re-tuning: per size, method and rate, the tuning seeds' mean final held-out accuracy and sampled reward
    over the last LAST steps; the chosen rate in bold, flagged at a grid's edge; a rate not run (or not finished on
    every tuning seed) says so."""
    if not tuned:
        return []
    rows = ["| prompts a step | method | rate | final held-out accuracy, mean of the tuning seeds | "
            f"sampled reward, last {LAST} steps, mean | chosen |", "|---:|---|---:|---:|---:|---|"]
    for p, entry in tuned.items():
        for m, t in entry.items():
            for lr in t["grid"]:
                mean = t["mean"].get(lr_name(lr))
                pick = "" if lr != t["chosen"] else "**yes**" + (", at the grid's edge" if t["at_grid_edge"] else "")
                cells = ([f"{mean['final_accuracy']:.4f}", f"{mean['reward']:.3f}"] if mean else
                         ["not run on every tuning seed", ""])
                rows.append(f"| {p} | {m.upper()} | {lr_name(lr)} | {cells[0]} | {cells[1]} | {pick} |")
    return rows


def long_markdown(long):
    """The long runs: held-out accuracy at the end per seed and the sampled reward by blocks of LAST steps (mean of
    the seeds), then GIFT - GRPO at 16 prompts, paired by seed."""
    arms_ = {k: v for k, v in long.items() if "per_seed" in v}
    if not arms_:
        return []
    blocks = max(len(v["reward_curve"]) for e in arms_.values() for v in e["per_seed"].values()) * EVERY // LAST
    rows = ["| run | seeds | held-out accuracy at the end, per seed | sampled reward, steps "
            + " / ".join(f"{LAST * b + 1}-{LAST * (b + 1)}" for b in range(blocks)) + " |", "|---|---|---|---|"]
    for arm, e in arms_.items():
        curves = [v["reward_curve"] for v in e["per_seed"].values()]
        mean = [sum(c) / len(c) for c in zip(*curves)]
        per_block = [sum(mean[i:i + LAST // EVERY]) / len(mean[i:i + LAST // EVERY])
                     for i in range(0, len(mean), LAST // EVERY)]
        finals = ", ".join(f"{v['final_accuracy']:.3f}" for v in e["per_seed"].values())
        rows.append(f"| {arm}, {e['steps']} steps | {', '.join(map(str, e['per_seed']))} | {finals} | "
                    + " / ".join(f"{r:.3f}" for r in per_block) + " |")
    d = long.get("gift_minus_grpo_p16")
    if d:
        rows += ["", f"GIFT - GRPO at 16 prompts after the long runs (seeds {', '.join(map(str, d['paired_seeds']))}):"
                 f" held-out accuracy {points(d['final_accuracy'])} points, sampled reward over the last {LAST} steps "
                 f"{points(d['reward'])} points."]
    return rows


def markdown(sizes):
    rows = ["| prompts a step | rates, GIFT / GRPO | GIFT final, per seed | GRPO final, per seed | "
            f"GIFT - GRPO final (points) | GIFT - GRPO sampled reward, last {LAST} steps (points) | responses a run |",
            "|---:|---|---|---|---:|---:|---:|"]
    for p, e in ((p, e) for p, x in sizes.items() for e in (x.get("at_16_prompt_rates"), x) if e):
        f = {m: ", ".join(f"{v['final_accuracy']:.3f}" for v in e[m]["per_seed"].values()) for m in RATES}
        resp = {v["responses"] for m in RATES for v in e[m]["per_seed"].values()}
        rows.append(f"| {p} | {lr_name(e['gift']['lr'])} / {lr_name(e['grpo']['lr'])} | {f['gift']} | {f['grpo']} | "
                    f"{points(e['gift_minus_grpo'])} | "
                    f"{points(e['reward_gift_minus_grpo'])} | {', '.join(f'{r:,}' for r in sorted(resp))} |")
    return rows


def plot(args, sizes, long):
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    xs = [int(p) for p in sizes]
    at16 = {p: e.get("at_16_prompt_rates", e) for p, e in sizes.items()}  # the lines: the 16-prompt rates
    retuned = {p: e for p, e in sizes.items() if "at_16_prompt_rates" in e}  # hollow markers: re-tuned rates
    for i, (key, label) in enumerate((("gift_minus_grpo", "final held-out accuracy"),
                                      ("reward_gift_minus_grpo", f"sampled reward, last {LAST} steps"))):
        for entries, style, note in ((at16, dict(marker="o"), ""),
                                     (retuned, dict(marker="s", mfc="none", linestyle="none"), ", rates re-tuned")):
            if not entries:
                continue
            m = [100 * e[key]["mean"] for e in entries.values()]
            lo = [100 * (e[key]["ci95"] or [e[key]["mean"]] * 2)[0] for e in entries.values()]
            hi = [100 * (e[key]["ci95"] or [e[key]["mean"]] * 2)[1] for e in entries.values()]
            axes[0].errorbar([int(p) for p in entries], m, yerr=[[a - b for a, b in zip(m, lo)],
                                                                 [b - a for a, b in zip(m, hi)]],
                             color=f"C{i}", capsize=3, label=label + note, **style)
    axes[0].axhline(0, color="k", linewidth=0.8)
    axes[0].set(xscale="log", xlabel="prompts a step (log scale)", ylabel="GIFT - GRPO, points (95% t-interval)")
    axes[0].set_xticks(xs, [str(x) for x in xs])
    axes[0].minorticks_off()  # the log axis's minor labels (2 x 10^1, ...) would overlap the sizes
    axes[0].set_title("GIFT minus GRPO at equal batch, paired by seed", fontsize=10)
    if long:  # the long runs: a floor or a slow climb
        for i, (arm, e) in enumerate((k, v) for k, v in long.items() if "per_seed" in v):
            curves = [v["reward_curve"] for v in e["per_seed"].values()]
            mean = [sum(c) / len(c) for c in zip(*curves)]
            axes[1].plot([EVERY * (k + 1) for k in range(len(mean))], mean, color=f"C{i}", label=arm)
        axes[1].set_title("the long runs: a floor or a slow climb", fontsize=10)
    else:  # the sampled reward of each method at each batch size, mean of the paired seeds
        for j, p in enumerate(sizes):
            for i, m in enumerate(RATES):
                curves = [sizes[p][m]["per_seed"][s]["reward_curve"] for s in sizes[p]["paired_seeds"]]
                mean = [sum(c) / len(c) for c in zip(*curves)]
                axes[1].plot([EVERY * (k + 1) for k in range(len(mean))], mean, color=f"C{i}",
                             linestyle=("-", "--", ":", "-.")[j % 4], label=f"{m.upper()}, {p} prompts")
        axes[1].set_title("sampled reward during RL", fontsize=10)
    axes[1].set(xlabel="RL step", ylabel=f"sampled reward (mean of {EVERY} steps, seeds)")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    save_figure(args, fig, "writers_batch")


def report(args):
    sizes, long, tuned = collect(args)
    write_json(args, "writers_batch", dict(machine=machine(), prompts_per_step=[int(p) for p in sizes],
                                           seeds=args.seeds, rates=RATES, rates_tuned_at=16, steps=STEPS,
                                           task=WRITERS_TASK, last_steps=LAST, results=sizes, long=long,
                                           tuning=tuned))
    print("\n".join(tuning_markdown(tuned) + [""] + markdown(sizes) + [""] + long_markdown(long)))
    plot(args, sizes, long)


PARSER = parser(__doc__, seeds=(0, 1, 2))
PARSER.add_argument("--prompts", type=int, nargs="+", default=[16, 32, 64], help="prompts a step to compare")
PARSER.add_argument("--long_steps", type=int, default=0, help="also run the long arms for this many steps (0: no)")
PARSER.add_argument("--long_prompts", type=int, nargs="+", default=[16, 64],
                    help="prompts a step of GIFT's long runs (GRPO's long run has 16)")
PARSER.add_argument("--tune_prompts", type=int, nargs="*", default=[],
                    help="re-tune each method's rate over GRID at these prompts a step (16: tuned already)")
PARSER.add_argument("--tuning_seeds", type=int, nargs="+", default=[0, 1], help="seeds of the re-tuning runs")

def main(args):
    if not args.report_only:  # --report_only reports the finished runs (a grid not finished is marked so)
        while True:  # SFT, the tuning (each pass may widen a grid), the comparison at the chosen rates,
            todo = [r for r in runs(args) if r["rl_steps"] <= STEPS and not finished(args, r["run_name"])]
            if not todo:
                break
            run_all(todo, args)
        continue_short_runs(args)  # then the long runs, each from its 150-step run's final checkpoint
        run_all(runs(args), args)
    report(args)


if __name__ == "__main__":
    main(PARSER.parse_args())
