#!/usr/bin/env python3
"""Checks that the CUDA backend's accuracy records agree with the CPU backend's (issue 20, item 5).

Usage: backend_agreement.py CPU_REPORT CUDA_REPORT [--rel-l2-tol X]

Records are joined by suite, case name, method spec and mode (the backend is what differs). For
every pair both ok:
  - the accuracy metrics (unit "%": niah / posir `accuracy`, ruler `score`, their stderr) must
    be equal;
  - the fidelity error (`rel_l2`) may differ by bf16 noise: the CUDA
    value at most max(2 x CPU value, CPU value + tol) (default tol 0.02: bf16 keeps 8 significant
    bits, a relative rounding of 2^-8 per operand);
A record ok on one backend and not on the other, or a CPU record with no CUDA twin, is listed.
Prints one line per disagreement and a summary; exits 1 when any accuracy differs or any error
metric is out of tolerance, 2 on unreadable input.
"""
import argparse
import json
import sys


def load(path):
    try:
        with open(path) as f:
            rep = json.load(f)
        return rep, rep.get("metric_info", {})
    except (OSError, ValueError) as e:
        print(f"backend_agreement: cannot read {path}: {e}", file=sys.stderr)
        sys.exit(2)


def key(r):
    return (r["suite"], r["case"], r["method_spec"], r.get("mode", ""))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("cpu")
    ap.add_argument("cuda")
    ap.add_argument("--rel-l2-tol", type=float, default=0.02)
    a = ap.parse_args()
    cpu, cpu_units = load(a.cpu)
    cuda, _ = load(a.cuda)
    units = {m: i.get("unit", "") for m, i in cpu_units.items()}
    gpu = {}
    for r in cuda["records"]:
        gpu.setdefault(key(r), []).append(r)
    bad = compared = equal_acc = 0
    missing = []
    for r in cpu["records"]:
        if r.get("suite") == "latency":
            continue
        twins = gpu.get(key(r), [])
        twin = next((t for t in twins if t.get("seed") == r.get("seed")), twins[0] if twins else None)
        if twin is None:
            missing.append(key(r))
            continue
        if r["status"] != "ok" or twin["status"] != "ok":
            if r["status"] != twin["status"]:
                print(f"status {key(r)}: cpu {r['status']}, cuda {twin['status']} "
                      f"({twin.get('error', {}) if isinstance(twin.get('error'), dict) else twin.get('error', '')})")
                bad += 1
            continue
        compared += 1
        for m, v in r.get("metrics", {}).items():
            if m not in twin.get("metrics", {}):
                continue
            w = twin["metrics"][m]
            unit = units.get(m, "")
            if unit == "%":
                if v != w:
                    print(f"accuracy {key(r)} {m}: cpu {v}, cuda {w}")
                    bad += 1
                else:
                    equal_acc += 1
            elif m == "rel_l2":
                if not (w <= max(2 * v, v + a.rel_l2_tol)):
                    print(f"error metric {key(r)} {m}: cpu {v:.4g}, cuda {w:.4g} (tolerance "
                          f"max(2x, +{a.rel_l2_tol}))")
                    bad += 1
    for k in missing[:20]:
        print(f"no cuda record for {k}")
    print(f"backend_agreement: {compared} record pairs compared, {equal_acc} accuracy metrics "
          f"equal, {bad} disagreements, {len(missing)} cpu records without a cuda twin")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
