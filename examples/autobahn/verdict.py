"""Autobahn's verdict on weft, checked against the committed summary.

usage: verdict.py REPORTS SUMMARY [--update]

REPORTS holds the suite's `servers/index.json` (weft as the server) and
`clients/index.json` (weft as the client). Each case's result is its
behaviour and its closing behaviour, e.g. "OK/OK". The run passes when
every case is OK, NON-STRICT or INFORMATIONAL, the cases are those of the
summary, and none does worse than the summary records. --update writes this
run's results as the new summary (when it passes the first rule).
"""

import json
import sys

ACCEPTED = {"OK": 2, "INFORMATIONAL": 2, "NON-STRICT": 1}


def case_key(case_id):
    return tuple(int(p) for p in case_id.split("."))


def load_run(reports):
    run = {}
    for role, sub in (("server", "servers"), ("client", "clients")):
        with open(f"{reports}/{sub}/index.json") as f:
            agents = json.load(f)
        (results,) = agents.values()
        run[role] = {
            case: f"{r['behavior']}/{r['behaviorClose']}"
            for case, r in sorted(results.items(), key=lambda kv: case_key(kv[0]))
        }
    return run


def rank(result):
    """The worse of the two behaviours' ranks; 0 when either is refused."""
    return min(ACCEPTED.get(b, 0) for b in result.split("/"))


def main():
    reports, summary_path = sys.argv[1], sys.argv[2]
    update = "--update" in sys.argv[3:]
    run = load_run(reports)
    problems = []
    for role, results in run.items():
        counts = {}
        for case, result in results.items():
            counts[result] = counts.get(result, 0) + 1
            if rank(result) == 0:
                problems.append(f"{role} case {case}: {result}")
        summary = ", ".join(f"{n} {r}" for r, n in sorted(counts.items()))
        print(f"autobahn: weft as the {role}: {len(results)} cases: {summary}")
    if update:
        if problems:
            print("autobahn: not updating the summary:", *problems, sep="\n  ")
            return 1
        with open(summary_path, "w") as f:
            json.dump(run, f, indent=1, sort_keys=False)
            f.write("\n")
        print(f"autobahn: summary written to {summary_path}")
        return 0
    with open(summary_path) as f:
        committed = json.load(f)
    for role in ("server", "client"):
        want, got = committed.get(role, {}), run[role]
        for case in sorted(set(want) | set(got), key=case_key):
            if case not in got:
                problems.append(f"{role} case {case}: not run (summary: {want[case]})")
            elif case not in want:
                problems.append(f"{role} case {case}: not in the summary (got {got[case]})")
            elif rank(got[case]) < rank(want[case]):
                problems.append(f"{role} case {case}: {got[case]}, was {want[case]}")
    if problems:
        print("autobahn: FAILED:", *problems, sep="\n  ")
        return 1
    print("autobahn: every case as good as the summary or better")
    return 0


if __name__ == "__main__":
    sys.exit(main())
