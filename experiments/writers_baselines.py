"""The writers setting: GIFT against the paper's comparison set (GRPO, DAPO, GSPO, and GRPO + KL), each method at its
own learning rate chosen on tuning seeds, then compared on fresh seeds, paired by seed.

    python experiments/writers_baselines.py [--tuning_seeds 0 1 2] [--seeds 5 6 7 8 9] [--runs out/experiments]
                                            [--out docs/experiments] [--jobs 2] [--pass_problems 300]
                                            [--share_rate grpo-kl=grpo]
    python experiments/writers_baselines.py --replot [--out docs/experiments]   # redraw the PNG from the JSON
    python experiments/writers_baselines.py --budget [--runs out/experiments]   # add the sample budget (below)

Every run starts from its seed's writers SFT model (experiments/common.py) and takes 150 RL steps, 16 prompts x 8
samples, K = 4 rollout mini-batches, held-out accuracy (greedy, 1,000 problems) every 10 steps; only the loss and the
learning rate differ (ARMS), and DAPO's dynamic sampling, which draws up to --max_draws rounds of prompts a step.
Two stages, in one arithmetic (all on one machine: the CPU, or one GPU with --jobs N):

1. Tuning, on --tuning_seeds: each arm at each rate of its GRID. The arm's rate is the one with the highest mean
   final held-out accuracy over the tuning seeds. A best rate at either end of the grid is flagged in the JSON and
   printed: the grid should then be widened before the comparison is believed. Only the final accuracy decides, so
   a tuning run (writers-tune-...) evaluates once, at the end, not every 10 steps (about a third less time on the
   CPU). --share_rate ARM=OTHER skips ARM's tuning and gives it OTHER's chosen rate (the JSON says so): a saving
   for a machine that cannot run every grid.
2. The comparison, on --seeds (disjoint from the tuning seeds, so the choice of rate does not flatter the reported
   numbers): each arm at its chosen rate. Per arm and seed: final held-out accuracy, steps to 90% of the final
   accuracy, the area under the accuracy curve (its trapezoid average over the 150 steps: how fast and how far),
   and pass@1 / pass@16 at T = 1 on --pass_problems held-out problems. GIFT minus each arm, paired by seed, with 95%
   t-intervals.
Writes writers_baselines.json (top level: machine, seeds, tuning_seeds, arms with their grids and chosen rates,
tuning, results, paired) and writers_baselines.png, drawn from that JSON's contents alone (so --replot redraws it).
Each arm and seed records its sample budget (common.sample_budget: rounds drawn, groups filled, responses sampled,
and the responses sampled by each evaluation), so that the figure shows accuracy against responses as well as steps.

--budget adds that budget to a report made before it was recorded, without rerunning the report: an arm that samples
one round a step (every arm but DAPO) sampled steps x prompts x group size responses by construction (train.py draws
once a step; `budget_from` "settings"); an arm with dynamic sampling is rerun on the report's seeds at its chosen rate
as a tuning run (one evaluation, at the end: the evaluations do not change training, the sampler's random numbers
being per prompt and step), and its final accuracy must equal the report's to the last digit (else an error: training
has changed since the report, rerun the experiment); `budget_from` names that run.
"""

import json
import os

from common import (WRITERS_EVAL_EVERY, WRITERS_STEPS, WRITERS_TASK, area_under, bracket, command_line, commit, curve,
                    lr_name, machine, mean_sd, metrics, paired_difference, parser, pass_at_16, points, pyplot,
                    read_pass, run_all, sample_budget, save_figure, steps_to, summary, write_json, writers_rl,
                    writers_sft)

from gift.loss import LOSSES  # noqa: E402  (common puts the repository on the path)
from train import Config  # noqa: E402

ARMS = {  # name: train.py settings besides the learning rate (everything else: train.py's defaults)
    "gift": dict(method="gift"),                   # pi_ref = pi_old, std floor 1e-3, std detached, equal groups kept
    "grpo": dict(method="grpo"),                   # clipped ratio (0.2), token-mean, no KL
    "dapo": dict(method="dapo"),                   # clip-higher 0.2/0.28, token-mean, overlong filtering, dynamic sampling
    "gspo": dict(method="gspo"),                   # sequence-level ratio clipped to 3e-4 / 4e-4
    "grpo-kl": dict(method="grpo", kl_coef=0.04),  # + k3 KL to the SFT model, DeepSeekMath's coefficient
}
GRID = {  # the learning rates each arm is tuned over. The earlier sweep (docs/results.md) had GIFT flat over 2e-5 to
    # 8e-5 and GRPO best at its grid's top, 4e-5; GSPO clips whole responses at 4e-4, so its later mini-batches are
    # mostly clipped and it was expected to need a larger rate. On the CPU's tuning seed 0 GRPO was best at the top
    # (8e-5) and GSPO at the bottom (4e-5) of their first grids, so each got one more rate past that edge
    "gift": (2e-5, 4e-5, 8e-5),
    "grpo": (2e-5, 4e-5, 8e-5, 1.6e-4),
    "dapo": (2e-5, 4e-5, 8e-5),
    "gspo": (2e-5, 4e-5, 8e-5, 1.6e-4),
    "grpo-kl": (2e-5, 4e-5, 8e-5),
}
KEYS = ("final_accuracy", "auc", "steps_to_90pct", "pass1", "pass16")  # what the comparison pairs


def name(arm, lr):
    """The run name (without -s<seed>) of an arm at a learning rate, e.g. writers-gift-lr4e-5 (writers_lr.py's runs
    of GIFT and GRPO at 4e-5 and 8e-5 are these runs)."""
    return f"writers-{arm}-lr{lr_name(lr)}"


def tune_name(arm, lr):
    """A tuning run's name (without -s<seed>): its own, since it evaluates only at the end."""
    return f"writers-tune-{arm}-lr{lr_name(lr)}"


def shared_rates(args):
    """{arm: the arm whose chosen rate it takes} from --share_rate ARM=OTHER (both in GRID, OTHER tuned)."""
    pairs = [item.partition("=")[::2] for item in args.share_rate]
    shared = {}
    for item, (arm, other) in zip(args.share_rate, pairs):
        if arm not in GRID or other not in GRID or other == arm or other in [a for a, _ in pairs]:
            raise SystemExit(f"error: --share_rate {item}: expected ARM=OTHER, two different arms of "
                             f"{', '.join(GRID)}, OTHER tuned itself")
        shared[arm] = other
    return shared


def tuned(args):
    return [arm for arm in GRID if arm not in shared_rates(args)]


def tuning_runs(args, steps=WRITERS_STEPS):
    out = [writers_sft(seed) for seed in args.tuning_seeds]
    for seed in args.tuning_seeds:
        out += [writers_rl(args, tune_name(arm, lr), seed, steps, 0, rl_lr=lr, **ARMS[arm])
                for arm in tuned(args) for lr in GRID[arm]]
    return out


def finals(args, run, seeds):
    return [summary(args, f"{run}-s{seed}")["rl_accuracy"] for seed in seeds]


def choose_rates(args):
    """{arm: {"lr", "at_grid_edge", "final_mean" by rate, "per_seed"}} from the finished tuning runs; an arm of
    --share_rate gets {"lr", "rate_from"} instead."""
    chosen = {}
    for arm in tuned(args):
        rates = GRID[arm]
        per_seed = {lr: finals(args, tune_name(arm, lr), args.tuning_seeds) for lr in rates}
        means = {lr: mean_sd(per_seed[lr])[0] for lr in rates}
        best = max(rates, key=lambda lr: means[lr])
        chosen[arm] = dict(lr=best, at_grid_edge=best in (rates[0], rates[-1]),
                           final_mean={lr_name(lr): m for lr, m in means.items()},
                           per_seed={lr_name(lr): dict(zip(args.tuning_seeds, per_seed[lr])) for lr in rates})
    for arm, other in shared_rates(args).items():
        chosen[arm] = dict(lr=chosen[other]["lr"], rate_from=other)
    return {arm: chosen[arm] for arm in GRID}


def comparison_runs(args, chosen, steps=WRITERS_STEPS, eval_every=WRITERS_EVAL_EVERY):
    out = [writers_sft(seed) for seed in args.seeds]
    for seed in args.seeds:
        out += [writers_rl(args, name(arm, c["lr"]), seed, steps, eval_every, rl_lr=c["lr"], **ARMS[arm])
                for arm, c in chosen.items()]
    return out


def pass_models(args, chosen):
    return [(f"{name(arm, c['lr'])}-s{seed}", "ckpt.pt") for arm, c in chosen.items() for seed in args.seeds]


def collect(args, chosen):
    results = {}
    for arm, c in chosen.items():
        per_seed = {}
        for seed in args.seeds:
            run = f"{name(arm, c['lr'])}-s{seed}"
            records, s = metrics(args, run), summary(args, run)
            steps, _, acc = curve(records)
            final = s["rl_accuracy"]
            pass1, pass16 = read_pass(args, run)
            per_seed[seed] = dict(final_accuracy=final, auc=area_under(steps, acc),
                                  steps_to_90pct=steps_to(steps, acc, 0.9 * final), pass1=pass1, pass16=pass16,
                                  sft_accuracy=acc[0], steps=steps, accuracy=acc, budget_from=run,
                                  **sample_budget(records, s["config"], steps))  # draws, filled, responses sampled
        results[arm] = dict(lr=c["lr"], per_seed=per_seed,
                            **{f"{k}_mean": mean_sd([v[k] for v in per_seed.values()])[0]
                               for k in KEYS if all(v[k] is not None for v in per_seed.values())})
    paired = {}
    for arm in [a for a in results if a != "gift"]:
        paired[f"gift-{arm}"] = {
            k: paired_difference([results["gift"]["per_seed"][s][k] - results[arm]["per_seed"][s][k]
                                  for s in args.seeds])
            for k in KEYS if all(results[a]["per_seed"][s][k] is not None for a in ("gift", arm) for s in args.seeds)}
    return results, paired


def report(args, chosen):
    results, paired = collect(args, chosen)
    arms = {arm: dict(settings=ARMS[arm], lr=c["lr"], **(dict(rate_from=c["rate_from"], grid=[]) if "rate_from" in c
                                                          else dict(grid=list(GRID[arm]),
                                                                    lr_at_grid_edge=c["at_grid_edge"])))
            for arm, c in chosen.items()}
    doc = dict(
        machine=machine(), seeds=args.seeds, tuning_seeds=args.tuning_seeds, steps=WRITERS_STEPS, task=WRITERS_TASK,
        pass_problems=args.pass_problems, arms=arms, tuning={a: dict(final_mean=c["final_mean"],
                                                                     per_seed=c["per_seed"])
                                                             for a, c in chosen.items() if "rate_from" not in c},
        results=results, paired=paired)
    price_samples(doc)
    write_json(args, "writers_baselines", doc)
    for arm, c in chosen.items():
        if "rate_from" in c:
            print(f"tuning {arm:8s} not tuned: {c['rate_from']}'s rate {lr_name(c['lr'])} (--share_rate)")
            continue
        edge = "  (at the grid's edge: widen it)" if c["at_grid_edge"] else ""
        print(f"tuning {arm:8s} " + "  ".join(f"{k}: {m:.3f}" for k, m in c["final_mean"].items())
              + f"  -> {lr_name(c['lr'])}{edge}")
    for arm, r in results.items():
        v = r["per_seed"].values()
        print(f"{arm:8s} lr {lr_name(r['lr']):6s} final " + " ".join(f"{x['final_accuracy']:.3f}" for x in v)
              + "  AUC " + " ".join(f"{x['auc']:.3f}" for x in v)
              + "  steps to 90% " + ",".join(str(x["steps_to_90pct"]) for x in v))
    for key, p in paired.items():
        for k, d in p.items():
            print(f"{key} {k}: mean {d['mean']:+.3f}, 95% t-interval {bracket(d)}")
    print("\n" + "\n".join(markdown(results, paired)))
    plot(args, doc)


def markdown(results, paired):
    """The README's headline table, printed so that its numbers are copied, not retyped."""
    rows = ["| arm | learning rate | final accuracy (mean) | GIFT minus it: final | GIFT minus it: area under the "
            "curve | steps to 90% of final | pass@16 (mean) | responses sampled (mean) |",
            "|---|---:|---:|---:|---:|---|---:|---:|"]
    for arm, r in results.items():
        p = paired.get(f"gift-{arm}", {})
        cell = lambda k: points(p[k]) if k in p else ""
        p16 = f"{r['pass16_mean']:.3f}" if "pass16_mean" in r else ""
        sampled = f"{r['responses_mean']:,.0f}" if "responses_mean" in r else ""
        rows.append(f"| {arm} | {lr_name(r['lr'])} | {r['final_accuracy_mean']:.3f} | {cell('final_accuracy')} | "
                    f"{cell('auc')} | {', '.join(str(v['steps_to_90pct']) for v in r['per_seed'].values())} | {p16} | "
                    f"{sampled} |")
    return rows


def price_samples(doc):
    """From each run's sample budget: each arm's mean responses sampled (`responses_mean`) and accuracy at equal
    samples: per arm and seed, the held-out accuracy at the last evaluation by which the arm had sampled no more
    responses than the seed's smallest budget of any arm (`accuracy_at_equal_responses`, with the responses and step
    there), and GIFT minus each arm of it, paired by seed (into doc["paired"]). Against an arm that samples as much as
    GIFT it is the final accuracy; against DAPO it prices the extra rounds it draws."""
    results = doc["results"]
    for r in results.values():
        r["responses_mean"] = mean_sd([x["responses"] for x in r["per_seed"].values()])[0]
    for seed in results["gift"]["per_seed"]:
        least = min(r["per_seed"][seed]["responses"] for r in results.values())
        for r in results.values():
            x = r["per_seed"][seed]
            i = max(k for k, n in enumerate(x["responses_at"]) if n <= least)
            x.update(accuracy_at_equal_responses=x["accuracy"][i], equal_responses_step=x["steps"][i],
                     equal_responses=x["responses_at"][i])
    for arm in [a for a in results if a != "gift" and f"gift-{a}" in doc["paired"]]:
        doc["paired"][f"gift-{arm}"]["accuracy_at_equal_responses"] = paired_difference(
            [results["gift"]["per_seed"][s]["accuracy_at_equal_responses"]
             - results[arm]["per_seed"][s]["accuracy_at_equal_responses"] for s in results["gift"]["per_seed"]])


def dynamic(settings):
    """Whether an arm's method draws a varying number of rounds a step (DAPO's dynamic sampling)."""
    return LOSSES[settings["method"]].filter_groups


def budget_runs(args, doc):
    """The runs --budget needs: each dynamic-sampling arm as a tuning run on the report's seeds at its chosen rate."""
    out = [writers_sft(seed) for seed in doc["seeds"]]
    for seed in doc["seeds"]:
        out += [writers_rl(args, tune_name(arm, a["lr"]), seed, doc["steps"], 0, rl_lr=a["lr"], **a["settings"])
                for arm, a in doc["arms"].items() if dynamic(a["settings"])]
    return out


def budget(args):
    """--budget: the sample budget of each arm and seed added to the report in --out (see the module's docstring),
    with `responses_mean` per arm and `budget_added` (the command and commit that added it)."""
    path = os.path.join(args.out, "writers_baselines.json")
    if not os.path.exists(path):
        raise SystemExit(f"error: --budget completes {path}, which does not exist: run the experiment")
    with open(path) as f:
        doc = json.load(f)
    run_all(budget_runs(args, doc), args)
    rerun = {arm: {seed: f"{tune_name(arm, a['lr'])}-s{seed}" for seed in doc["results"][arm]["per_seed"]}
             for arm, a in doc["arms"].items() if dynamic(a["settings"])}
    # prompts x group size a round, the same for every arm: a rerun's, else train.py's defaults
    config = next((summary(args, r)["config"] for runs in rerun.values() for r in runs.values()),
                  dict(vars(Config()), **WRITERS_TASK))
    one_round = [dict(stage="rl", step=t) for t in range(doc["steps"])]  # train.py draws one round a step
    for arm in doc["arms"]:
        for seed, x in doc["results"][arm]["per_seed"].items():
            if arm not in rerun:  # the budget follows from the settings
                x.update(sample_budget(one_round, config, x["steps"]), budget_from="settings")
                continue
            run = rerun[arm][seed]
            final = summary(args, run)["rl_accuracy"]
            if final != x["final_accuracy"]:
                raise SystemExit(f"error: {run} ends at accuracy {final}, the report's run at {x['final_accuracy']}: "
                                 "training has changed since the report; rerun the experiment instead")
            x.update(sample_budget(metrics(args, run), config, x["steps"]), budget_from=run)
    price_samples(doc)
    doc["budget_added"] = dict(command=command_line(), commit=commit())
    with open(path, "w") as f:
        json.dump(doc, f, indent=2)
    print(f"wrote {path}")
    for arm, r in doc["results"].items():
        print(f"{arm:8s} responses sampled " + " ".join(f"{x['responses']:,}" for x in r["per_seed"].values())
              + "  groups filled " + " ".join(str(x["filled"]) for x in r["per_seed"].values())
              + "  accuracy at equal responses (step) "
              + " ".join(f"{x['accuracy_at_equal_responses']:.3f} ({x['equal_responses_step']})"
                         for x in r["per_seed"].values()))
    for key, p in doc["paired"].items():
        print(f"{key} accuracy at equal responses: {points(p['accuracy_at_equal_responses'])} points")
    print("\n" + "\n".join(markdown(doc["results"], doc["paired"])))
    plot(args, doc)


LABELS = {"gift": "GIFT", "grpo": "GRPO", "dapo": "DAPO", "gspo": "GSPO", "grpo-kl": "GRPO + KL"}  # as the text


def plot(args, doc):
    """writers_baselines.png from the report itself (the contents of writers_baselines.json), so that --replot
    redraws it from the committed JSON alone. An arm in one colour throughout: the tuning (final accuracy against the
    rate, the chosen rate ringed), the mean held-out curves on the fresh seeds against RL steps and, where the report
    holds the sample budget, against responses sampled (DAPO's dynamic sampling is priced there), and GIFT minus each
    arm in points, as the tables write them (final accuracy; area under the curve), each seed a small mark."""
    from matplotlib.ticker import NullLocator

    plt = pyplot()
    arms = list(doc["arms"])
    colour = {arm: f"C{i}" for i, arm in enumerate(arms)}
    label = lambda arm: LABELS.get(arm, arm)
    seeds = lambda s: ", ".join(map(str, s))
    priced = all("responses_at" in x for r in doc["results"].values() for x in r["per_seed"].values())
    with plt.rc_context({"font.size": 11, "axes.titlesize": 11, "legend.fontsize": 9.5}):
        fig, axes = plt.subplots(2, 3 if priced else 2, figsize=(15 if priced else 10, 8))
        (ax_tune, ax_acc, *ax_resp), (ax_final, ax_auc, *ax_budget) = axes
        for arm, a in doc["arms"].items():
            if a["grid"]:
                means = doc["tuning"][arm]["final_mean"]
                ax_tune.plot(a["grid"], [means[lr_name(lr)] for lr in a["grid"]], marker="o", color=colour[arm])
                ax_tune.plot([a["lr"]], [means[lr_name(a["lr"])]], "o", markersize=13, fillstyle="none",
                             color=colour[arm])
            runs = list(doc["results"][arm]["per_seed"].values())
            mean = [sum(x) / len(x) for x in zip(*[r["accuracy"] for r in runs])]
            shared = f", {label(a['rate_from'])}'s" if "rate_from" in a else ""
            ax_acc.plot(runs[0]["steps"], mean, color=colour[arm], linewidth=1.8,
                        label=f"{label(arm)} ({lr_name(a['lr'])}{shared})")
            if priced:  # the mean over seeds of the responses sampled by each evaluation
                sampled = [sum(x) / len(x) / 1000 for x in zip(*[r["responses_at"] for r in runs])]
                ax_resp[0].plot(sampled, mean, color=colour[arm], linewidth=1.8, label=label(arm))
        rates = sorted({lr for a in doc["arms"].values() for lr in a["grid"]})
        ax_tune.set_xscale("log")
        ax_tune.set_xticks(rates, [lr_name(lr) for lr in rates])
        ax_tune.xaxis.set_minor_locator(NullLocator())
        ax_tune.set(xlabel="learning rate", ylabel="final held-out accuracy")
        ax_tune.set_title(f"tuning, seeds {seeds(doc['tuning_seeds'])}: mean final\naccuracy (ringed: the rate chosen)")
        ax_acc.set(xlabel="RL step", ylabel="held-out accuracy (greedy)")
        ax_acc.set_title(f"fresh seeds {seeds(doc['seeds'])}:\nmean held-out accuracy at the chosen rate")
        ax_acc.legend(title="arm (learning rate)", loc="lower right")
        others = [arm for arm in arms if f"gift-{arm}" in doc["paired"]]
        for ax, key, what in ((ax_final, "final_accuracy", "final accuracy"),
                              (ax_auc, "auc", "area under the curve\n(trapezoid average of the accuracy curve)")):
            for y, arm in enumerate(others):
                d = doc["paired"][f"gift-{arm}"][key]
                m = 100 * d["mean"]
                lo, hi = (100 * v for v in d["ci95"]) if d["ci95"] else (m, m)
                ax.errorbar([m], [y], xerr=[[m - lo], [hi - m]], fmt="o", markersize=8, capsize=5, linewidth=2,
                            color=colour[arm])
                ax.plot([100 * v for v in d["per_seed"]], [y + 0.25] * len(d["per_seed"]), "|", markersize=9,
                        color=colour[arm], alpha=0.7)
            ax.set_yticks(range(len(others)), [f"GIFT - {label(arm)}" for arm in others])
            ax.set_ylim(len(others) - 0.4, -0.6)  # the tables' order, top to bottom
            ax.axvline(0, color="k", linewidth=0.8)
            ax.set_xlabel("points (mean, 95% t-interval; a tick per seed)")
            ax.set_title(f"GIFT minus each arm: {what}")
        lo = min(ax.get_xlim()[0] for ax in (ax_final, ax_auc))
        hi = max(ax.get_xlim()[1] for ax in (ax_final, ax_auc))
        for ax in (ax_final, ax_auc):
            ax.set_xlim(lo, max(hi, 0.5))  # one scale for both, 0 in view
        if priced:
            ax_resp[0].set(xlabel="responses sampled (thousands; seeds' mean)", ylabel="held-out accuracy (greedy)")
            ax_resp[0].set_title("the same curves against\nthe responses each arm sampled")
            ax_resp[0].legend(loc="lower right")
            for y, arm in enumerate(arms):
                per_seed = [x["responses"] / 1000 for x in doc["results"][arm]["per_seed"].values()]
                ax_budget[0].plot([sum(per_seed) / len(per_seed)], [y], "o", markersize=8, color=colour[arm])
                ax_budget[0].plot(per_seed, [y + 0.25] * len(per_seed), "|", markersize=9, color=colour[arm],
                                  alpha=0.7)
            ax_budget[0].set_yticks(range(len(arms)), [label(arm) for arm in arms])
            ax_budget[0].set_ylim(len(arms) - 0.4, -0.6)
            ax_budget[0].set_xlim(0, None)
            ax_budget[0].set_xlabel("thousands (mean; a tick per seed)")
            ax_budget[0].set_title(f"responses sampled in {doc['steps']} RL steps")
        for ax in axes.flat:
            ax.grid(alpha=0.3)
        save_figure(args, fig, "writers_baselines")


PARSER = parser(__doc__, seeds=(5, 6, 7, 8, 9))
PARSER.add_argument("--tuning_seeds", type=int, nargs="+", default=[0, 1, 2])
PARSER.add_argument("--pass_problems", type=int, default=300, help="held-out problems for pass@1 / pass@16")
PARSER.add_argument("--share_rate", nargs="*", default=[], metavar="ARM=OTHER",
                    help="ARM is not tuned and takes OTHER's chosen rate, e.g. grpo-kl=grpo")
PARSER.add_argument("--replot", action="store_true",
                    help="run nothing: redraw writers_baselines.png from the writers_baselines.json in --out")
PARSER.add_argument("--budget", action="store_true",
                    help="add the sample budget to the writers_baselines.json in --out (reruns only DAPO's runs)")


def replot(args):
    path = os.path.join(args.out, "writers_baselines.json")
    if not os.path.exists(path):
        raise SystemExit(f"error: --replot redraws the figure from {path}, which does not exist: run the experiment")
    with open(path) as f:
        plot(args, json.load(f))


def main(args):
    if args.replot:
        return replot(args)
    if args.budget:
        return budget(args)
    if set(args.seeds) & set(args.tuning_seeds):
        raise SystemExit(f"error: --seeds {args.seeds} and --tuning_seeds {args.tuning_seeds} must not share a seed "
                         "(a rate chosen on a seed flatters its result there)")
    shared_rates(args)  # a bad --share_rate fails before any run starts
    run_all(tuning_runs(args) + [writers_sft(seed) for seed in args.seeds], args)  # the fresh seeds' SFT models
    chosen = choose_rates(args)  # are made while the last tuning runs finish
    run_all(comparison_runs(args, chosen), args)
    pass_at_16(args, pass_models(args, chosen), args.pass_problems)
    report(args, chosen)


if __name__ == "__main__":
    main(PARSER.parse_args())
