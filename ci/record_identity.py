"""The comparison behind ci/record-identity.sh: reduces reports to what a refactor must not move."""
import json
import sys

# Wall-clock units: measured, so they differ from run to run.
TIMED_UNITS = {"s", "TFLOP/s", "GB/s"}
# Measured on the host, not computed: the allocator's growth while an op is built.
MEASURED_METRICS = {"measured_bytes"}
# Suites whose extras hold timings or host facts.
TIMED_SUITES = {"latency", "memory"}


def reduce(path):
    report = json.load(open(path))
    info = report.get("metric_info", {})
    out = {}
    for r in report["records"]:
        key = "|".join([path.rsplit("/", 2)[-2], r["suite"], r["case"], r["method_spec"], r["mode"],
                        r["backend"]])
        metrics = {k: v for k, v in r.get("metrics", {}).items()
                   if info.get(k, {}).get("unit") not in TIMED_UNITS and k not in MEASURED_METRICS}
        kept = {"status": r["status"], "metrics": metrics, "params": r.get("params")}
        if r["suite"] not in TIMED_SUITES:
            kept["extra"] = r.get("extra")
        out[key] = kept
    return out


def main():
    if sys.argv[1] == "snapshot":
        snap = {}
        for path in sys.argv[3:]:
            snap.update(reduce(path))
        with open(sys.argv[2], "w") as f:
            json.dump(snap, f, indent=0, sort_keys=True)
        print(f"record-identity: {len(snap)} records -> {sys.argv[2]}")
        return 0
    before, after = json.load(open(sys.argv[2])), json.load(open(sys.argv[3]))
    for snap in (before, after):
        for kept in snap.values():
            for m in MEASURED_METRICS:
                kept["metrics"].pop(m, None)
    diffs = [f"only before: {k}" for k in before.keys() - after.keys()]
    diffs += [f"only after: {k}" for k in after.keys() - before.keys()]
    for k in sorted(before.keys() & after.keys()):
        if before[k] != after[k]:
            a, b = before[k], after[k]
            what = [f for f in a if a.get(f) != b.get(f)]
            diffs.append(f"differs ({', '.join(what)}): {k}")
    for d in diffs[:50]:
        print(d)
    print(f"record-identity: {len(before)} records before, {len(after)} after, {len(diffs)} differences")
    return 1 if diffs else 0


if __name__ == "__main__":
    sys.exit(main())
