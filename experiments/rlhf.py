"""RLHF on the built-in task: GIFT against GRPO, GRPO + KL, DAPO and GSPO, trained on a learned reward model whose
true utility is known (gift/rlhf.py), each method at its own learning rate, paired by seed.

    python experiments/rlhf.py [--seeds 1 2 3 4 5] [--tuning_seeds 0] [--runs out/experiments] [--out docs/experiments]
                               [--jobs 2] [--threads 1] [--tuning_only]

Stages (every run one thread, so that runs of a seed pair exactly; a finished stage is reused when run again):
1. SFT per seed: common.sft, the built-in task's SFT run (sft-s<seed>, shared with compare.py).
2. A reward model per seed, from that seed's SFT model: `python -m gift.rlhf` (--rm_pairs pairs of its T = 1 samples,
   default 2,000, labelled by a Bradley-Terry draw on the true utility u; --rm_steps Bradley-Terry steps, default
   250; 500 held-out pairs give its accuracy and its correlation with u). <runs>/rm-s<seed>.pt.
3. Tuning on --tuning_seeds: each arm at each rate of GRID, STEPS (30) RL steps of PROMPTS (8) prompts x 8 samples
   (K = 4 mini-batches of 2 groups) against the seed's reward model, EVAL_PROBLEMS (300) held-out greedy responses
   scored every EVAL_EVERY (5) steps (mean reward-model score: the proxy; mean u: the true reward), the KL of the
   sampling policy to the SFT model logged every step (--kl_sft, k3 per token). Each arm's rate is chosen under two
   protocols (PROTOCOLS), both recorded: "true", the highest mean final true reward on the tuning seeds (the best
   each method can reach; a practitioner never sees u), and "proxy", the highest mean final proxy reward (what a
   practitioner would do, and a choice that rewards over-optimisation). The extension rule: where a protocol's best
   is the lowest (highest) rate of its arm's grid, the grid grows by the next rate below (above) it on the 1-3-10
   series (3e-5 -> 1e-5 -> 3e-6; 3e-4 -> 1e-3), run on the tuning seeds, and the rates are chosen again, up to EXTRA
   (2) rates beyond each end of GRID; a best still at an edge then is recorded with `edge_not_passed` (why). Writes
   rlhf_tuning.json (machine, tuning seeds, each arm's grid, both protocols' choices and every rate's mean final true
   and proxy reward; the command and the commit); --tuning_only stops here, before the reporting seeds.
4. The comparison on --seeds (disjoint from the tuning seeds), each arm at the rate of each protocol (the union: an
   arm whose protocols agree runs once). Per arm and seed: the proxy and true reward curves against step and KL,
   their finals, the best true reward and its step (over-optimisation: best minus final), the mean response length.
   GIFT minus each arm, paired by seed, 95% t-intervals, under each protocol.
5. Win rates: each final policy's greedy and T = 1 responses on WIN_PROBLEMS held-out problems, GIFT against each
   arm by u (a tie counts one half); length-controlled: only the problems where both responses have the same number
   of lines. Paired by seed (the interval is over seeds), under each protocol.
6. Reward scale, on the first reporting seed: one rollout of its final GRPO + KL policy (at the rate chosen by u), and
   each loss's gradient with the rewards replaced by a r + b for a in {0.1, 1, 10}, b in {0, 5}: its cosine with, and
   norm relative to, the gradient at (a, b) = (1, 0). GIFT and GRPO (z-scored advantages) should give cosine 1 and
   norm ratio 1 (GRPO up to the 1e-4 its std adds); Dr. GRPO cosine 1 and norm ratio a (which Adam divides out
   again); GRPO + KL and UNA (fixed beta) neither.
Writes rlhf.json and rlhf.png. Top level: machine, seeds, tuning_seeds, reward_models, and the "true" protocol's arms,
results (per-seed proxy_reward, true_reward and kl records), paired and win_rates, as the first report had them (its
rates were tuned by u only), scale; `protocols` ({"true" | "proxy": rule, arms, results, paired, win_rates}); and
`verdicts`: per claim (CLAIMS) "supported" only where it holds under both protocols with no chosen rate at a grid
edge, else what holds (verdicts()). Prints the RLHF page's tables for each protocol (markdown()).
"""

import math
import os
import subprocess
import sys
import tempfile

import torch

from common import (ROOT, bracket, lr_name as rate, machine, mean_sd, metrics, paired_difference, parser, points,
                    pyplot, rl, run_all, run_processes, save_figure, sft, write_json)
from gift.checkpoint import load_checkpoint

STEPS, PROMPTS, EVAL_EVERY, EVAL_PROBLEMS, WIN_PROBLEMS = 30, 8, 5, 300, 300
ARMS = {  # name: train.py settings besides the rate (everything else: train.py's defaults, --task=rlhf)
    "gift": dict(method="gift"),
    "grpo": dict(method="grpo"),
    "grpo-kl": dict(method="grpo", kl_coef=0.04),
    "dapo": dict(method="dapo"),
    "gspo": dict(method="gspo"),
}
# three rates each, around train.py's 1e-4 (at which a one-seed pilot of GIFT and GRPO moved both the proxy and the
# true reward within 20 steps); GSPO clips whole responses at 4e-4, so its grid started at 1e-4. Every arm's best
# (by u) was its lowest rate, so issue 37 added one rate below each grid (1e-5; GSPO's 3e-5). Rates lie on the 1-3-10
# series (beyond() steps along it) and name their runs (name()), so the first grid's finished runs are reused.
GRID = {"gift": (1e-5, 3e-5, 1e-4, 3e-4), "grpo": (1e-5, 3e-5, 1e-4, 3e-4), "grpo-kl": (1e-5, 3e-5, 1e-4, 3e-4),
        "dapo": (1e-5, 3e-5, 1e-4, 3e-4), "gspo": (3e-5, 1e-4, 3e-4, 1e-3)}
EXTRA = 2  # rates a grid may grow by beyond each of its ends while a protocol's best sits there (tune())
# protocol: the tuning seeds' mean final value (run_record's key) whose highest picks an arm's rate
PROTOCOLS = {"true": "true_reward",    # u: the best each method can reach (no practitioner sees it)
             "proxy": "proxy_reward"}  # the reward model's mean score of the held-out greedy responses
LABEL = {"true": "u", "proxy": "the proxy"}  # how the verdicts name a protocol
SCALES = [(a, b) for a in (0.1, 1.0, 10.0) for b in (0.0, 5.0)]


def rm_path(args, seed):
    return os.path.join(args.runs, f"rm-s{seed}.pt")


def name(arm, lr):
    return f"rlhf-{arm}-lr{rate(lr)}"


def rl_run(args, arm, lr, seed):
    return rl(args.runs, name(arm, lr), seed, task="rlhf", reward_model=rm_path(args, seed), rl_steps=STEPS,
              prompts=PROMPTS, eval_every=EVAL_EVERY, eval_problems=EVAL_PROBLEMS, kl_sft=True, rl_lr=lr, **ARMS[arm])


def build_reward_models(args, seeds, rm_args=()):
    """`python -m gift.rlhf` for every seed without a reward model (args.jobs at a time)."""
    todo = [s for s in seeds if not os.path.exists(rm_path(args, s))]
    if todo and args.report_only:
        raise SystemExit(f"error: --report_only but the reward models of seeds {todo} do not exist")
    run_processes([(f"reward model of seed {seed}", dict(
        args=[sys.executable, "-m", "gift.rlhf", os.path.join(args.runs, f"sft-s{seed}", "sft.pt"), rm_path(args, seed),
              f"--seed={seed}", f"--threads={args.threads}", *rm_args],
        cwd=ROOT, stdout=open(rm_path(args, seed) + ".log", "w"), stderr=subprocess.STDOUT),
        lambda proc, seed=seed: f"error: the reward model of seed {seed} failed; see {rm_path(args, seed)}.log")
        for seed in todo], args.jobs)


def rm_info(args, seed):
    return load_checkpoint(rm_path(args, seed))["info"]


def eval_curve(records, key):
    """(steps, values) of the evaluations' held-out `key` (step 0: the SFT model)."""
    from gift.plot import eval_step
    pts = [(eval_step(r), r[f"heldout_{key}"]) for r in records if f"heldout_{key}" in r]
    return [s for s, _ in pts], [v for _, v in pts]


def run_record(args, run):
    """A run's proxy_reward, true_reward, kl and length records (curves at the evaluations, finals)."""
    records = metrics(args, run)
    steps, proxy = eval_curve(records, "proxy_reward")
    _, true = eval_curve(records, "true_reward")
    rl_records = [r for r in records if r.get("stage") == "rl"]
    # KL of the policy after s updates: the k3 estimate of the rollout of RL step s (its samples' policy); the
    # final evaluation's, after the last update, is the last rollout's
    kl = [rl_records[min(s, len(rl_records) - 1)]["kl_sft"] for s in steps]
    best = max(range(len(true)), key=lambda i: true[i])
    return dict(
        proxy_reward=dict(steps=steps, curve=proxy, final=proxy[-1], sft=proxy[0],
                          train=[r["reward"] for r in rl_records]),
        true_reward=dict(steps=steps, curve=true, final=true[-1], sft=true[0], best=true[best], best_step=steps[best],
                         drop_from_best=true[best] - true[-1], train=[r["true_reward"] for r in rl_records]),
        kl=dict(steps=steps, curve=kl, final=kl[-1], train=[r["kl_sft"] for r in rl_records]),
        length=dict(train=[r["response_tokens"] for r in rl_records], final=rl_records[-1]["response_tokens"]))


def beyond(lr, side):
    """The next rate below ("low") or above ("high") lr on the 1-3-10 series: 1e-5 -> 3e-6 or 3e-5. On that series a
    rate is 10^(k/2) to one significant digit, k its half-decade (3e-5 ~ 10^-4.5: k = -9)."""
    k = round(2 * math.log10(lr)) + (-1 if side == "low" else 1)
    return float(f"{10 ** (k / 2):.0e}")


def edges(arm, rates, lr):
    """{side: rates already added beyond GRID[arm]'s end on that side} for each end of `rates` (sorted) that lr is."""
    first = GRID[arm]
    return {side: sum(r < first[0] if side == "low" else r > first[-1] for r in rates)
            for side, end in (("low", rates[0]), ("high", rates[-1])) if lr == end}


def choose_rates(args, grid=None):
    """{protocol: {arm: {"lr", "at_grid_edge", "edge_not_passed", "grid", "final_true_mean", "final_proxy_mean"}}}
    from the finished tuning runs of `grid` (default GRID): under each protocol of PROTOCOLS the rate with the highest
    mean final value of its measure over the tuning seeds (the lower rate on a tie), and every rate's means of both
    measures. edge_not_passed: why a best at its grid's edge stays there (EXTRA rates added past it already)."""
    chosen = {p: {} for p in PROTOCOLS}
    for arm, rates in (GRID if grid is None else grid).items():
        rates = sorted(rates)
        records = {(lr, s): run_record(args, f"{name(arm, lr)}-s{s}") for lr in rates for s in args.tuning_seeds}
        means = {key: {lr: mean_sd([records[lr, s][key]["final"] for s in args.tuning_seeds])[0] for lr in rates}
                 for key in PROTOCOLS.values()}
        for protocol, key in PROTOCOLS.items():
            best = max(rates, key=lambda lr: means[key][lr])  # max keeps the first (lowest) of equal rates
            stuck = " and ".join(f"{'below' if side == 'low' else 'above'} "
                                 f"{rate(GRID[arm][0] if side == 'low' else GRID[arm][-1])}"
                                 for side, added in edges(arm, rates, best).items() if added >= EXTRA)
            chosen[protocol][arm] = dict(
                lr=best, at_grid_edge=best in (rates[0], rates[-1]), grid=rates,
                edge_not_passed=f"best at the grid's edge ({rate(best)}): the rule's limit of {EXTRA} extra rate(s) "
                                f"{stuck} is reached" if stuck else None,
                final_true_mean={rate(lr): m for lr, m in means["true_reward"].items()},
                final_proxy_mean={rate(lr): m for lr, m in means["proxy_reward"].items()})
    return chosen


def widen(chosen):
    """{arm: rates to add}: for each protocol whose best sits at an end of its arm's grid with fewer than EXTRA rates
    added beyond that end, the next rate past it (beyond)."""
    more = {}
    for by_arm in chosen.values():
        for arm, c in by_arm.items():
            for side, added in edges(arm, c["grid"], c["lr"]).items():
                if added < EXTRA:
                    more.setdefault(arm, set()).add(beyond(c["lr"], side))
    return {arm: sorted(rates) for arm, rates in more.items()}


@torch.no_grad()
def responses(path, examples, temperature, seed):
    """The texts of a checkpoint's responses (one each) to examples."""
    from gift.evaluation import evaluate
    from gift.runs import load_model
    model, enc = load_model(path, "builtin", True)
    return evaluate(model, enc, examples, temperature=temperature, seed=seed, max_new_tokens=96)["completions"]


def win_rates(args, chosen, texts=None):
    """{arm: {mode: paired records}}: GIFT's win rate against the arm (u, ties 1/2), minus 1/2, per seed. texts: the
    responses already generated, by (run, mode) (a dict this fills: the protocols share the runs they agree on)."""
    from gift import data
    from gift.rlhf import utility
    examples = [data.builtin_example("test", i) for i in range(WIN_PROBLEMS)]
    texts = {} if texts is None else texts
    run = {(arm, seed): f"{name(arm, c['lr'])}-s{seed}" for arm, c in chosen.items() for seed in args.seeds}
    for (arm, seed), r in run.items():
        for mode, temperature in (("greedy", 0.0), ("t1", 1.0)):
            if (r, mode) not in texts:
                texts[r, mode] = responses(os.path.join(args.runs, r, "ckpt.pt"), examples, temperature, seed)
    out = {}
    for arm in [a for a in chosen if a != "gift"]:
        out[arm] = {}
        for mode in ("greedy", "t1"):
            plain, controlled = [], []
            for seed in args.seeds:
                scores = []
                for ex, a, b in zip(examples, texts[run["gift", seed], mode], texts[run[arm, seed], mode]):
                    ua, ub = utility(a, ex), utility(b, ex)
                    same_length = len(a.strip().split("\n")) == len(b.strip().split("\n"))
                    scores.append((1.0 if ua > ub else 0.5 if ua == ub else 0.0, same_length))
                plain.append(sum(s for s, _ in scores) / len(scores) - 0.5)
                kept = [s for s, same in scores if same]
                controlled.append(sum(kept) / len(kept) - 0.5 if kept else 0.0)
            out[arm][mode] = dict(win_rate_minus_half=paired_difference(plain),
                                  length_controlled_minus_half=paired_difference(controlled))
    return out


SCALE_ARGS = ["--prompts=16", "--group_size=8"]  # the rollout of the scale check: 128 samples


def scale_check(args, seed, final):
    """Cosine and norm ratio of each loss's gradient at rewards a r + b against (a, b) = (1, 0), on one rollout of
    the policy saved in `final` (a run of `seed`), pi_ref the seed's SFT model."""
    import train
    from gift.loss import LOSSES, RLBatch
    with tempfile.TemporaryDirectory() as tmp:
        cfg = train.parse_args(["--task=rlhf", f"--reward_model={rm_path(args, seed)}", f"--seed={seed}",
                                f"--init={os.path.join(args.runs, f'sft-s{seed}', 'sft.pt')}", "--sft_steps=0",
                                "--method=grpo", "--kl_coef=0.04", "--minibatches=1", f"--out_dir={tmp}",
                                "--run_name=scale", "--eval_problems=1", f"--threads={args.threads}", *SCALE_ARGS])
        run = train.setup(cfg)
        try:
            run.reference.copy_of(run.policy)  # pi_ref: the SFT model
            run.policy.load_state_dict(load_checkpoint(final)["model"])
            run.books.rl_drawn = 0
            r = train.rollout(run, cfg)  # old_logp: the policy's; ref_logp: the SFT model's
        finally:
            run.lock.release()
        params = [p for p in run.policy.parameters() if p.requires_grad]
        no_kl = dict(kl_coef=0.0)
        losses = {"gift": ("gift", r.old_logp, {}), "grpo": ("grpo", None, no_kl), "dr_grpo": ("dr_grpo", None, no_kl),
                  "grpo-kl": ("grpo", r.ref_logp, dict(kl_coef=0.04)), "una": ("una", r.ref_logp, {})}
        out = {}
        for label, (method, ref, extra) in losses.items():
            grads = {}
            for a, b in SCALES:
                logp, _ = train.response_logprobs(run.policy.train(), r.idx, r.mask, cfg, cfg.temperature)
                batch = RLBatch(logp, r.old_logp, ref, a * r.rewards + b, r.mask, cfg.group_size,
                                cfg.max_new_tokens, r.truncated)
                opts = dict(vars(cfg), **extra)
                loss, _ = LOSSES[method](batch, type("Cfg", (), opts))
                grads[a, b] = torch.cat([g.flatten() for g in torch.autograd.grad(loss, params)]).double()
            g0 = grads[1.0, 0.0]
            out[label] = {f"a={a:g},b={b:g}": dict(
                cosine=(grads[a, b] @ g0 / (grads[a, b].norm() * g0.norm())).item(),
                norm_ratio=(grads[a, b].norm() / g0.norm()).item()) for a, b in SCALES}
    return out


# the paired differences, GIFT minus each arm
FIELDS = (("true_reward", "final"), ("true_reward", "best"), ("true_reward", "drop_from_best"),
          ("proxy_reward", "final"), ("kl", "final"))


def compare(args, by_arm):
    """One protocol's results ({arm: lr, per-seed records, means over the seeds}) and paired differences (GIFT minus
    each arm, by seed) on the reporting seeds, each arm at that protocol's rate."""
    results, paired = {}, {}
    for arm, c in by_arm.items():
        per_seed = {seed: run_record(args, f"{name(arm, c['lr'])}-s{seed}") for seed in args.seeds}
        results[arm] = dict(lr=c["lr"], per_seed=per_seed, **{
            f"{key}_{field}_mean": mean_sd([v[key][field] for v in per_seed.values()])[0]
            for key, field in FIELDS + (("length", "final"),)})
    for arm in [a for a in results if a != "gift"]:
        paired[f"gift-{arm}"] = {
            f"{key}_{field}": paired_difference([results["gift"]["per_seed"][s][key][field]
                                                 - results[arm]["per_seed"][s][key][field] for s in args.seeds])
            for key, field in FIELDS}
    return results, paired


def holds(d):
    """A paired difference's 95% interval lies above 0 (one seed has no interval, so there it cannot)."""
    return d["ci95"] is not None and d["ci95"][0] > 0


# the claims the page reports, each as the GIFT-minus-arm difference (in one protocol's report) that must lie above 0
# against every arm
CLAIMS = {
    "GIFT overfits a learned reward model less": lambda p, arm: p["paired"][f"gift-{arm}"]["true_reward_final"],
    "GIFT wins more length-controlled head-to-heads (greedy)":
        lambda p, arm: p["win_rates"][arm]["greedy"]["length_controlled_minus_half"],
    "GIFT wins more length-controlled head-to-heads (T = 1)":
        lambda p, arm: p["win_rates"][arm]["t1"]["length_controlled_minus_half"],
}


def verdicts(protocols):
    """{claim: verdict} of CLAIMS over the protocols' reports ({protocol: {"arms", "paired", "win_rates"}}):
    "supported" only where the claim holds (interval above 0 against every arm) under every protocol with no chosen
    rate at its grid's edge; else what holds, where it fails, and which arms leave it undetermined, e.g. "holds by u
    only; by the proxy, not against grpo; undetermined: gspo at its grid edge (by u)"."""
    at_edge = {}
    for p, rep in protocols.items():
        for arm, c in rep["arms"].items():
            if c["at_grid_edge"]:
                at_edge.setdefault(arm, []).append(LABEL[p])
    out = {}
    for claim, diff in CLAIMS.items():
        fails = {p: [arm for arm in rep["arms"] if arm != "gift" and not holds(diff(rep, arm))]
                 for p, rep in protocols.items()}
        held = [LABEL[p] for p, f in fails.items() if not f]
        if len(held) == len(protocols) and not at_edge:
            out[claim] = "supported"
            continue
        parts = ["holds under no protocol" if not held else f"holds by {' and '.join(held)}"
                 + (" only" if len(held) < len(protocols) else "")]
        parts += [f"by {LABEL[p]}, not against {', '.join(f)}" for p, f in fails.items() if f]
        if at_edge:
            parts.append("undetermined: " + ", ".join(f"{arm} at its grid edge (by {' and '.join(by)})"
                                                       for arm, by in at_edge.items()))
        out[claim] = "; ".join(parts)
    return out


def tuning_arms(by_arm):
    """One protocol's choices as the reports record them."""
    return {arm: dict(lr=c["lr"], at_grid_edge=c["at_grid_edge"], edge_not_passed=c["edge_not_passed"],
                      grid=c["grid"], tuning_final_true_mean=c["final_true_mean"],
                      tuning_final_proxy_mean=c["final_proxy_mean"]) for arm, c in by_arm.items()}


def rule(protocol):
    return f"the rate with the highest mean final {PROTOCOLS[protocol]} on the tuning seeds"


def tuning_report(args, chosen):
    """rlhf_tuning.json: the tuning stage alone (each arm's grid, both protocols' choices, every rate's means), so
    that it can be committed while the reporting seeds are owed."""
    write_json(args, "rlhf_tuning", dict(
        machine=machine(), tuning_seeds=args.tuning_seeds, steps=STEPS, eval_problems=EVAL_PROBLEMS, extra=EXTRA,
        reward_models={seed: rm_info(args, seed) for seed in args.tuning_seeds},
        arms={arm: dict(settings=ARMS[arm], first_grid=list(GRID[arm]), grid=c["grid"])
              for arm, c in chosen["true"].items()},
        protocols={p: dict(rule=rule(p), arms=tuning_arms(by_arm)) for p, by_arm in chosen.items()},
        to_compare={arm: sorted({chosen[p][arm]["lr"] for p in chosen}) for arm in chosen["true"]}))
    for arm, c in chosen["true"].items():
        rows = []
        for lr in c["grid"]:
            marks = "".join(f" <- {p}" for p in chosen if chosen[p][arm]["lr"] == lr)
            rows.append(f"{rate(lr)}: u {c['final_true_mean'][rate(lr)]:.3f} proxy "
                        f"{c['final_proxy_mean'][rate(lr)]:.3f}{marks}")
        print(f"tuning {arm:8s} " + "  ".join(rows))
        for p in chosen:
            if chosen[p][arm]["edge_not_passed"]:
                print(f"tuning {arm:8s} {p}: {chosen[p][arm]['edge_not_passed']}")


def report(args, chosen):
    """rlhf.json and rlhf.png from the finished comparison runs of both protocols' rates (chosen: choose_rates')."""
    texts, protocols = {}, {}
    for p, by_arm in chosen.items():
        results, paired = compare(args, by_arm)
        protocols[p] = dict(rule=rule(p), arms=tuning_arms(by_arm), results=results, paired=paired,
                            win_rates=win_rates(args, by_arm, texts))
    true = protocols["true"]
    results, paired, wins = true["results"], true["paired"], true["win_rates"]
    grpo_kl = os.path.join(args.runs, f"{name('grpo-kl', chosen['true']['grpo-kl']['lr'])}-s{args.seeds[0]}", "ckpt.pt")
    scale = scale_check(args, args.seeds[0], grpo_kl)
    reward_models = {seed: rm_info(args, seed) for seed in sorted(set(args.seeds) | set(args.tuning_seeds))}
    verdict = verdicts(protocols)
    doc = dict(
        machine=machine(), seeds=args.seeds, tuning_seeds=args.tuning_seeds, steps=STEPS,
        eval_problems=EVAL_PROBLEMS, win_problems=WIN_PROBLEMS, reward_models=reward_models,
        arms={a: dict(settings=ARMS[a], grid=c["grid"], lr=c["lr"], lr_at_grid_edge=c["at_grid_edge"],
                      edge_not_passed=c["edge_not_passed"], tuning_final_true_mean=c["final_true_mean"],
                      tuning_final_proxy_mean=c["final_proxy_mean"]) for a, c in chosen["true"].items()},
        results=results, paired=paired, win_rates=wins, scale=dict(seed=args.seeds[0], gradients=scale),
        protocols=protocols, verdicts=verdict)
    write_json(args, "rlhf", doc)
    for seed, info in reward_models.items():
        print(f"reward model s{seed}: held-out label accuracy {info['label_accuracy']:.3f}, true-order accuracy "
              f"{info['true_order_accuracy']:.3f}, correlation with u {info['correlation_with_u']:.3f}")
    for p, rep in protocols.items():
        print(f"-- rates chosen by {LABEL[p]} ({rep['rule']})")
        for arm, r in rep["results"].items():
            edge = "  (at its grid's edge)" if rep["arms"][arm]["at_grid_edge"] else ""
            print(f"{arm:8s} lr {rate(r['lr']):6s} true final {r['true_reward_final_mean']:.3f} best "
                  f"{r['true_reward_best_mean']:.3f}  proxy final {r['proxy_reward_final_mean']:.3f}  KL "
                  f"{r['kl_final_mean']:.4f}  length {r['length_final_mean']:.1f}{edge}")
        for key, pair in rep["paired"].items():
            for k, d in pair.items():
                ci = bracket(d, 4, "n/a")
                print(f"{key} {k}: {d['mean']:+.4f} {ci}")
        for arm, modes in rep["win_rates"].items():
            for mode, w in modes.items():
                for k, d in w.items():
                    ci = bracket(d, 3, "n/a")
                    print(f"GIFT vs {arm} ({mode}) {k}: {d['mean']:+.3f} {ci}")
    for label, rows in scale.items():
        print(f"scale {label:8s} " + "  ".join(f"{k}: cos {v['cosine']:+.4f} |g| x{v['norm_ratio']:.3g}"
                                               for k, v in rows.items()))
    for claim, v in verdict.items():
        print(f"verdict: {claim}: {v}")
    for p in protocols:
        print(f"\n-- the page's tables, rates chosen by {LABEL[p]}\n" + "\n".join(markdown(doc, p)))
    plot(args, results)


NAMES = {"gift": "GIFT", "grpo": "GRPO", "grpo-kl": "GRPO + KL 0.04", "dapo": "DAPO", "gspo": "GSPO"}  # as the page


def markdown(doc, protocol):
    """The page's three tables for one protocol of rlhf.json (printed by the report, so that the page's numbers are
    copied, not retyped, and a test ties them to the JSON): each arm's means at its rate, GIFT minus each arm paired
    by seed, and the win rates."""
    rep = doc["protocols"][protocol]
    rows = ["| method | rate (tuning seed's final u there) | true final | true best | best - final | proxy final "
            "| KL to SFT | tokens |", "|---|---|---:|---:|---:|---:|---:|---:|"]
    for arm, r in rep["results"].items():
        a = rep["arms"][arm]
        edge = ", at its grid's edge" if a["at_grid_edge"] else ""
        rows.append(f"| {NAMES[arm]} | {rate(r['lr'])} ({a['tuning_final_true_mean'][rate(r['lr'])]:.3f}{edge}) | "
                    f"{r['true_reward_final_mean']:.3f} | {r['true_reward_best_mean']:.3f} | "
                    f"{r['true_reward_drop_from_best_mean']:.3f} | {r['proxy_reward_final_mean']:.3f} | "
                    f"{r['kl_final_mean']:.3f} | {r['length_final_mean']:.1f} |")
    rows += ["", "| GIFT minus | true reward, final | true reward, best | over-optimisation (best - final) | proxy, "
             "final | KL to SFT, final |", "|---|---:|---:|---:|---:|---:|"]
    for key, p in rep["paired"].items():
        rows.append(f"| {NAMES[key[len('gift-'):]]} | " + " | ".join(
            points(p[k], scale=1, digits=3) for k in ("true_reward_final", "true_reward_best", "true_reward_drop_from_best",
                                   "proxy_reward_final", "kl_final")) + " |")
    rows += ["", "| GIFT against | greedy | greedy, length-controlled | T = 1 | T = 1, length-controlled |",
             "|---|---:|---:|---:|---:|"]
    for arm, w in rep["win_rates"].items():
        rows.append(f"| {NAMES[arm]} | " + " | ".join(
            points(w[mode][k], scale=1, digits=3) for mode in ("greedy", "t1")
            for k in ("win_rate_minus_half", "length_controlled_minus_half")) + " |")
    return rows


def plot(args, results):
    plt = pyplot()
    fig, (ax_p, ax_t, ax_s) = plt.subplots(1, 3, figsize=(16, 4))
    for i, (arm, r) in enumerate(results.items()):
        seeds = list(r["per_seed"].values())
        kl = [sum(x) / len(x) for x in zip(*[s["kl"]["curve"] for s in seeds])]
        proxy = [sum(x) / len(x) for x in zip(*[s["proxy_reward"]["curve"] for s in seeds])]
        true = [sum(x) / len(x) for x in zip(*[s["true_reward"]["curve"] for s in seeds])]
        sq = [math.sqrt(max(k, 0.0)) for k in kl]
        ax_p.plot(sq, proxy, marker="o", color=f"C{i}", label=f"{arm} (lr {rate(r['lr'])})")
        ax_t.plot(sq, true, marker="o", color=f"C{i}", label=arm)
        ax_s.plot(seeds[0]["true_reward"]["steps"], true, marker="o", color=f"C{i}", label=arm)
    ax_p.set(xlabel="sqrt(KL to the SFT model), per token", ylabel="proxy reward (reward model, held-out greedy)")
    ax_t.set(xlabel="sqrt(KL to the SFT model), per token", ylabel="true utility u (held-out greedy)")
    ax_s.set(xlabel="RL step", ylabel="true utility u (held-out greedy)")
    for ax in (ax_p, ax_t, ax_s):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"RLHF on the built-in task: mean of seeds {args.seeds}, one line per method (rates chosen by u)",
                 fontsize=10)
    save_figure(args, fig, "rlhf")


PARSER = parser(__doc__, seeds=(1, 2, 3, 4, 5))
PARSER.add_argument("--tuning_seeds", type=int, nargs="+", default=[0])
PARSER.add_argument("--rm_pairs", type=int, default=2000, help="labelled pairs each reward model is trained on")
PARSER.add_argument("--rm_steps", type=int, default=250, help="Bradley-Terry steps of each reward model")
PARSER.add_argument("--tuning_only", action="store_true",
                    help="stop after the tuning stage (rlhf_tuning.json); only the tuning seeds' SFT and reward models")


def sft_runs(args, seeds=None):
    return [sft(seed) for seed in sorted(set(args.seeds) | set(args.tuning_seeds) if seeds is None else seeds)]


def tuning_runs(args, grid=None):
    return [rl_run(args, arm, lr, seed) for seed in args.tuning_seeds
            for arm, rates in (GRID if grid is None else grid).items() for lr in rates]


def tune(args):
    """Stage 3: the tuning runs of GRID, then, while widen() finds a protocol's best at a grid's edge it may still
    pass, the runs of the rates it adds; choose_rates' result on the final grids."""
    grid = {arm: sorted(rates) for arm, rates in GRID.items()}
    while True:
        run_all(tuning_runs(args, grid), args)
        chosen = choose_rates(args, grid)
        more = widen(chosen)
        if not more:
            return chosen
        for arm, rates in more.items():
            print(f"{arm}: a protocol's best is at its grid's edge, adding {', '.join(map(rate, rates))}", flush=True)
            grid[arm] = sorted(set(grid[arm]) | set(rates))


def comparison_runs(args, chosen):
    """The reporting seeds' runs of every (arm, rate) that a protocol chose (once where the protocols agree)."""
    pairs = dict.fromkeys((arm, by_arm[arm]["lr"]) for arm in chosen["true"] for by_arm in chosen.values())
    return [rl_run(args, arm, lr, seed) for seed in args.seeds for arm, lr in pairs]


def main(args):
    if set(args.seeds) & set(args.tuning_seeds):
        raise SystemExit(f"error: --seeds {args.seeds} and --tuning_seeds {args.tuning_seeds} must not share a seed")
    seeds = sorted(set(args.tuning_seeds) if args.tuning_only else set(args.seeds) | set(args.tuning_seeds))
    run_all(sft_runs(args, seeds), args)
    build_reward_models(args, seeds, [f"--train_pairs={args.rm_pairs}", f"--steps={args.rm_steps}"])
    chosen = tune(args)
    tuning_report(args, chosen)
    if args.tuning_only:
        return
    run_all(comparison_runs(args, chosen), args)
    report(args, chosen)


if __name__ == "__main__":
    main(PARSER.parse_args())
