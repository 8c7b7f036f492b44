"""Exits 1, listing the differences, unless two attnbench reports hold the same records.

usage: same_records.py EXPECTED.json ACTUAL.json

Records are matched by case id and compared field by field (identity, seed, status, reason,
metrics, params, extra: predictions and per-sample detail), except what a rerun measures anew:
metrics in wall-clock units (s, TFLOP/s, GB/s), the allocator's measured_bytes, and the extras of
the timing suites. Both reports must hold every case once and be complete (meta.partial false).
"""
import json
import sys

TIMED_UNITS = {"s", "TFLOP/s", "GB/s"}
MEASURED_METRICS = {"measured_bytes"}
TIMED_SUITES = {"latency", "memory"}


def comparable(report, path):
    info = report.get("metric_info", {})
    out = {}
    for r in report["records"]:
        cid = r.get("case_id")
        if not cid:
            sys.exit(f"same_records: {path}: a record of {r['case']} has no case_id")
        if cid in out:
            sys.exit(f"same_records: {path}: case {cid} ({r['case']}) appears twice")
        kept = {k: v for k, v in r.items() if k not in ("metrics", "extra")}
        kept["metrics"] = {k: v for k, v in r.get("metrics", {}).items()
                           if info.get(k, {}).get("unit") not in TIMED_UNITS
                           and k not in MEASURED_METRICS}
        if r["suite"] not in TIMED_SUITES:
            kept["extra"] = r.get("extra")
        out[cid] = kept
    return out


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    reports = [json.load(open(p)) for p in sys.argv[1:]]
    for path, rep in zip(sys.argv[1:], reports):
        if rep["meta"].get("partial"):
            sys.exit(f"same_records: {path} is partial (meta.partial)")
    expected, actual = (comparable(r, p) for r, p in zip(reports, sys.argv[1:]))
    problems = []
    for cid in sorted(expected.keys() - actual.keys()):
        problems.append(f"missing from {sys.argv[2]}: {expected[cid]['case']} | "
                        f"{expected[cid]['method_spec']} ({cid})")
    for cid in sorted(actual.keys() - expected.keys()):
        problems.append(f"not in {sys.argv[1]}: {actual[cid]['case']} | "
                        f"{actual[cid]['method_spec']} ({cid})")
    for cid in sorted(expected.keys() & actual.keys()):
        a, b = expected[cid], actual[cid]
        for field in sorted(a.keys() | b.keys()):
            if a.get(field) != b.get(field):
                problems.append(f"{a['case']} | {a['method_spec']}: {field} differs: "
                                f"{json.dumps(a.get(field))[:200]} vs "
                                f"{json.dumps(b.get(field))[:200]}")
    if not expected:
        problems.append(f"{sys.argv[1]} holds no records")
    for p in problems:
        print("same_records: " + p)
    if problems:
        return 1
    print(f"same_records: {len(expected)} records identical (timing fields excluded)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
