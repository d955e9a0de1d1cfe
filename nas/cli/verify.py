"""``nas verify``: retrain a run's Pareto picks and baselines from scratch with several seeds
and test them on the test split, to see whether the search's win survives full training."""

from __future__ import annotations

import json
import sys


def register(subparsers) -> None:
    from nas.verify import DEFAULTS, LIMITS

    p = subparsers.add_parser(
        "verify", help="retrain Pareto networks and baselines from scratch (several seeds) and test them",
        description="Retrain P networks spread along the run's Pareto front (always the fastest and the most "
                    "accurate) and the run's baselines from scratch, S seeds each, E epochs on the whole training "
                    "set with the run's training settings, and test them on the test split the search never saw. "
                    "Finished trainings are cached in the run folder (verify_cache.jsonl): a killed verification "
                    "resumes where it stopped. Writes verify.json and adds a 'Verified' section to report.html.")
    p.add_argument("run", metavar="RUN_FOLDER", help="a folder written by `nas search`")
    # taken as text and checked by nas.verify, which names the value and the range in one line
    p.add_argument("--picks", default=str(DEFAULTS['picks']), metavar="P",
                   help=f"networks of the Pareto front to retrain ({LIMITS['picks'][0]}..{LIMITS['picks'][1]}, "
                        f"default {DEFAULTS['picks']})")
    p.add_argument("--epochs", default=str(DEFAULTS['epochs']), metavar="E",
                   help=f"epochs on the whole training set ({LIMITS['epochs'][0]}..{LIMITS['epochs'][1]}, "
                        f"default {DEFAULTS['epochs']})")
    p.add_argument("--seeds", default=str(DEFAULTS['seeds']), metavar="S",
                   help=f"trainings per network, seeds 0..S-1 ({LIMITS['seeds'][0]}..{LIMITS['seeds'][1]}, "
                        f"default {DEFAULTS['seeds']})")
    p.add_argument("--json", action="store_true", help="print the verdict as JSON (progress goes to stderr)")
    p.set_defaults(handler=cmd_verify)


def cmd_verify(args) -> int:
    from nas.verify import verify_run

    log = (lambda line: print(line, file=sys.stderr, flush=True)) if args.json else print
    verdict = verify_run(args.run, picks=args.picks, epochs=args.epochs, seeds=args.seeds, log=log)
    if args.json:
        print(json.dumps(verdict, indent=2))
    else:
        print(format_verdict(verdict))
    return 0


def format_verdict(verdict: dict) -> str:
    lines = [f"{'network':>22} {'latency ms':>10} {'search':>7} {'test acc':>9} {'+/- std':>8}  arch_id"]
    for role in ("picks", "baselines"):
        for e in verdict[role]:
            label = f"trial {e['trial']}" if role == "picks" else e["name"]
            latency = "" if e["latency_ms"] is None else f"{e['latency_ms']:.3f}"
            score = "" if e["search_score"] is None else f"{e['search_score']:.4f}"
            lines.append(f"{label:>22} {latency:>10} {score:>7} {e['test_acc_mean']:>9.4f} {e['test_acc_std']:>8.4f}"
                         f"  {e['arch_id']}")
    tau = verdict["kendall_tau_search_vs_final"]
    lines.append(f"Kendall tau, search score vs verified accuracy: {'n/a' if tau is None else f'{tau:.3f}'}")
    if verdict["dominating"]:
        for w in verdict["dominating"]:
            lines.append(f"win: trial {w['pick_trial']} is {w['speedup']:.2f}x faster than {w['baseline']} at "
                         f"{100 * w['acc_delta']:+.2f} points of mean test accuracy")
    else:
        lines.append("no verified pick is faster than a baseline at at-least its mean test accuracy")
    return "\n".join(lines)
