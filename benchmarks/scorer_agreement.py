"""Scorer agreement with ground truth on random rendered scenes (sizes, aspect ratios,
backgrounds, shots): the true prompt must pass; a changed colour, shape or direction must
fail. Run: python benchmarks/scorer_agreement.py [--n 500] [--json OUT]."""

import argparse
import json

from nanosora.world.agreement import run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    a = run(args.n, args.seed)
    print(f"{'check':28s} {'agreed':>8s} {'of':>6s} {'rate':>7s}")
    out = {}
    for kind in a.trials:
        out[kind] = {"agreed": a.agreed[kind], "trials": a.trials[kind], "rate": a.rate(kind)}
        print(f"{kind:28s} {a.agreed[kind]:8d} {a.trials[kind]:6d} {a.rate(kind):7.1%}")
    for f in a.failures:
        print("  disagreed:", f)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"results": out, "disagreements": a.failures}, fh, indent=2)


if __name__ == "__main__":
    main()
