#!/usr/bin/env python3
"""Peer measurement for the `latency` suite: PyTorch's scaled_dot_product_attention.

Times torch.nn.functional.scaled_dot_product_attention with the cuDNN and FlashAttention-2
backends (torch.nn.attention.sdpa_kernel) at the latency suite's shapes and writes an attnbench
report (reports/report.schema.json, schema 1.x): suite "latency", the same canonical case names,
axes and metric names, methods "sdpa_cudnn" and "sdpa_flash", backend "cuda". A table or
`attnbench compare` then shows attnbench's kernels and the peer's side by side.

Timing follows the suite (DESIGN section 7): warm-up, then `--repetitions` samples (>= 10), each
the mean of enough calls to fill `--min-time` seconds; before every call the L2 cache is flushed
by reading a buffer of twice its size on the same stream (`--flush-mode write` writes it instead,
which adds the write-back of the flush's dirty lines to a short call), and CUDA events bracket
the call.

GQA (32 query / 8 KV heads by default): `enable_gqa=True` is tried first; a backend that refuses
it gets K and V expanded with repeat_interleave (the expansion is untimed, but the kernel then
reads the expanded copies). Each record's extra.gqa says which. KV bytes are counted as the
unique K/V of the GQA shape in both cases, as the suite counts them.

The report's meta also holds the device's measured copy bandwidth (a large device-to-device
copy, bytes read plus written per second) and the peak from device properties when CuPy can
read them (SM count x max clock x 4096 dense bf16 FLOP/clock/SM on sm_90; memory clock x 2 x
bus width / 8).

Example (the shapes of issue 6's targets):
  python3 tools/peers/sdpa_peer.py --phase prefill --lengths 4k,8k,16k --causal 1,0 --batch 1 \
      --out sdpa-prefill.json
  python3 tools/peers/sdpa_peer.py --phase decode --lengths 32k,64k,128k --batch 8 --out sdpa-decode.json
"""

import argparse
import datetime
import json
import math
import os
import platform
import sys

TOOL_VERSION = "1.0.0"


def parse_lengths(text):
    """`4k,16k,1m` -> [4096, 16384, 1048576] (k = 1024, m = 1024^2), as attnbench reads them."""
    out = []
    for item in text.split(","):
        item = item.strip().lower()
        scale = 1
        if item.endswith("k"):
            scale, item = 1024, item[:-1]
        elif item.endswith("m"):
            scale, item = 1024 * 1024, item[:-1]
        value = float(item) * scale
        if value < 1 or value != math.floor(value):
            raise SystemExit(f"sdpa_peer: malformed length '{item}'")
        out.append(int(value))
    return out


def parse_heads(text):
    q, _, kv = text.partition("/")
    q, kv = int(q), int(kv or q)
    if q % kv:
        raise SystemExit(f"sdpa_peer: query heads must be a multiple of KV heads, got '{text}'")
    return q, kv


def quantile(samples, p):
    """Type-7 quantile (numpy's default), as suites/common/ops/op_math.cpp computes it."""
    xs = sorted(samples)
    h = (len(xs) - 1) * p
    lo = math.floor(h)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (h - lo) * (xs[hi] - xs[lo])


def case_axes(phase, batch, length, q_heads, kv_heads, head_dim, dtype, causal):
    """The latency suite's axes in its product order (suites/common/ops/op_axes.cpp)."""
    axes = [("backend", "cuda"), ("phase", phase), ("batch", batch), ("length", length),
            ("q_heads", q_heads), ("kv_heads", kv_heads), ("head_dim", head_dim),
            ("dtype", dtype)]
    if phase == "prefill":
        axes.append(("causal", causal))
    return axes


def case_name(axes):
    def text(v):
        if isinstance(v, bool):
            return "true" if v else "false"
        return str(v)
    return "latency(" + ",".join(f"{k}={text(v)}" for k, v in axes) + ")"


def dense_flops(phase, batch, length, q_heads, head_dim, causal):
    if phase == "decode":
        return 4.0 * batch * q_heads * length * head_dim
    full = 4.0 * batch * q_heads * length * length * head_dim
    return full / 2 if causal else full


def device_peak(torch):
    """Peak from device attributes through CuPy (the CUDA runtime's cudaDeviceGetAttribute)."""
    try:
        import cupy  # noqa: F401  (present on the GPU machines' image)
        from cupy.cuda import runtime
    except Exception as e:  # pragma: no cover - depends on the machine
        return {"basis": f"CuPy unavailable ({e}); no peak from properties"}
    dev = torch.cuda.current_device()
    # cudaDeviceAttr values: 16 SM count, 13 max SM clock (kHz), 36 memory clock (kHz),
    # 37 global memory bus width (bits).
    sms = runtime.deviceGetAttribute(16, dev)
    sm_khz = runtime.deviceGetAttribute(13, dev)
    mem_khz = runtime.deviceGetAttribute(36, dev)
    bus = runtime.deviceGetAttribute(37, dev)
    major, minor = torch.cuda.get_device_capability(dev)
    per_sm = {(7, 0): 1024, (8, 0): 2048, (9, 0): 4096}.get((major, minor), 0)
    return {
        "tensor_flops": sms * sm_khz * 1e3 * per_sm,
        "flops_basis": f"{sms} SMs x {sm_khz // 1000} MHz (max SM clock) x {per_sm} dense bf16 "
                       f"tensor FLOP/clock/SM (sm_{major}{minor})",
        "dram_bytes_per_s": 2.0 * mem_khz * 1e3 * bus / 8,
        "bandwidth_basis": f"{mem_khz // 1000} MHz memory clock x 2 (double data rate) x {bus}-bit "
                           "bus / 8",
    }


class event_timer:
    """CUDA events around one call, after an L2 flush on the same stream."""

    def __init__(self, torch, flush, flush_mode="read"):
        self.torch = torch
        l2 = getattr(torch.cuda.get_device_properties(0), "L2_cache_size", 64 << 20)
        self.flush_bytes = 2 * l2 if flush else 0
        self.flush_mode = flush_mode
        self.buffer = torch.ones(self.flush_bytes // 4, dtype=torch.int32, device="cuda") \
            if flush else None
        self.start = torch.cuda.Event(enable_timing=True)
        self.stop = torch.cuda.Event(enable_timing=True)
        self.generation = 0

    def time(self, fn):
        if self.buffer is not None:
            if self.flush_mode == "read":
                # As the latency suite flushes: a reduction reads the buffer and leaves the L2
                # full of clean lines, so no write-back of dirty flush lines is timed.
                self.buffer.sum()
            else:
                self.generation = (self.generation + 1) % 255
                self.buffer.fill_(self.generation)
        self.start.record()
        fn()
        self.stop.record()
        self.stop.synchronize()
        return self.start.elapsed_time(self.stop) * 1e-3

    def samples(self, fn, repetitions, min_time, warmup):
        spent = 0.0
        while True:  # warm-up: at least one call
            spent += self.time(fn)
            if spent >= warmup:
                break
        one = self.time(fn)
        calls = max(1, math.ceil(min_time / one)) if min_time > 0 else 1
        out = []
        for _ in range(repetitions):
            out.append(sum(self.time(fn) for _ in range(calls)) / calls)
        return out, calls


def copy_bandwidth(torch, gib=2):
    """Device-to-device copy of `gib` GiB: bytes read plus written per second (median of 10)."""
    n = gib << 30
    src = torch.empty(n, dtype=torch.uint8, device="cuda")
    dst = torch.empty_like(src)
    timer = event_timer(torch, flush=False)
    samples, _ = timer.samples(lambda: dst.copy_(src), 10, 0.0, 0.05)
    del src, dst
    torch.cuda.empty_cache()
    return 2.0 * n / quantile(samples, 0.5)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--phase", default="prefill,decode", help="prefill, decode or both")
    ap.add_argument("--lengths", default="4k,16k")
    ap.add_argument("--batch", default="1", help="comma-separated batch sizes")
    ap.add_argument("--heads", default="32/8", help="query/KV heads, comma-separated")
    ap.add_argument("--head-dim", default="128")
    ap.add_argument("--dtype", default="bf16", help="bf16 or fp16")
    ap.add_argument("--causal", default="1", help="1, 0 or 1,0 (prefill only)")
    ap.add_argument("--backends", default="cudnn,flash", help="cudnn, flash or both")
    ap.add_argument("--repetitions", type=int, default=10)
    ap.add_argument("--min-time", type=float, default=0.01, help="seconds of calls per sample")
    ap.add_argument("--warmup", type=float, default=0.05, help="seconds of warm-up calls")
    ap.add_argument("--no-flush", action="store_true", help="do not flush L2 before each call")
    ap.add_argument("--flush-mode", choices=["read", "write"], default="read",
                    help="flush by reading the buffer (as the latency suite does) or by writing it")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="sdpa-peer.json")
    args = ap.parse_args()
    if args.repetitions < 10:
        raise SystemExit("sdpa_peer: --repetitions must be >= 10")

    import torch
    import torch.nn.functional as F
    from torch.nn.attention import SDPBackend, sdpa_kernel

    if not torch.cuda.is_available():
        raise SystemExit("sdpa_peer: no CUDA device")
    torch.manual_seed(args.seed)
    dtypes = {"bf16": torch.bfloat16, "fp16": torch.float16}
    if args.dtype not in dtypes:
        raise SystemExit(f"sdpa_peer: unknown dtype '{args.dtype}' (known: bf16, fp16)")
    backends = {"cudnn": ("sdpa_cudnn", SDPBackend.CUDNN_ATTENTION),
                "flash": ("sdpa_flash", SDPBackend.FLASH_ATTENTION)}
    timer = event_timer(torch, flush=not args.no_flush, flush_mode=args.flush_mode)
    peak = device_peak(torch)
    start_time = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")

    records = []
    for phase in args.phase.split(","):
        causals = [c in ("1", "true") for c in args.causal.split(",")] if phase == "prefill" \
            else [False]
        for batch in map(int, args.batch.split(",")):
            for length in parse_lengths(args.lengths):
                for heads in args.heads.split(","):
                    q_heads, kv_heads = parse_heads(heads)
                    for head_dim in map(int, args.head_dim.split(",")):
                        for causal in causals:
                            records += run_case(torch, F, sdpa_kernel, backends, args, timer,
                                                peak, dtypes, phase, batch, length, q_heads,
                                                kv_heads, head_dim, causal)

    props = torch.cuda.get_device_properties(0)
    meta = {
        "tool": "sdpa_peer", "tool_version": TOOL_VERSION,
        "git_sha": os.environ.get("ATTNBENCH_GIT_SHA", "unknown"), "argv": sys.argv,
        "start_time": start_time,
        "end_time": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "host": {"hostname": platform.node(), "cpu": platform.processor(),
                 "cores": os.cpu_count()},
        "gpus": [{"index": 0, "name": props.name, "memory_bytes": props.total_memory,
                  "multiprocessors": props.multi_processor_count,
                  "compute_capability": f"{props.major}.{props.minor}",
                  "l2_bytes": getattr(props, "L2_cache_size", 0)}],
        "torch": torch.__version__, "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version(),
        "device_copy_bytes_per_s": copy_bandwidth(torch),
        "device_copy_doc": "2 GiB device-to-device copy, bytes read + written / median time",
        "device_peak": peak,
        "workload": {"kind": "seeded standard-normal Q/K/V", "seed": args.seed},
    }
    metric_info = {
        "median_s": {"unit": "s", "higher_is_better": False,
                     "doc": "median seconds per call over the raw samples"},
        "p10_s": {"unit": "s", "higher_is_better": False, "doc": "10th percentile (type 7)"},
        "p90_s": {"unit": "s", "higher_is_better": False, "doc": "90th percentile (type 7)"},
        "tflops": {"unit": "TFLOP/s", "higher_is_better": True,
                   "doc": "4*b*h*s^2*d per prefill (halved when causal), 4*b*h*n*d per decode "
                          "step, over the median"},
        "kv_gbps": {"unit": "GB/s", "higher_is_better": True,
                    "doc": "unique K/V bytes per call / median, 1e9 bytes per GB"},
        "peak_fraction": {"unit": "fraction", "higher_is_better": True,
                          "doc": "prefill: TFLOP/s over the dense tensor peak; decode: KV bytes/s "
                                 "over the DRAM bandwidth (device properties)"},
    }
    report = {"schema_version": "1.0.0", "meta": meta, "metric_info": metric_info,
              "records": records}
    tmp = args.out + ".tmp"
    with open(tmp, "w") as f:
        json.dump(report, f, indent=1)
    os.replace(tmp, args.out)
    for r in records:
        m = r["metrics"]
        if r["status"] == "ok":
            print(f"{r['method']:11s} {r['case']}: median {m['median_s'] * 1e6:9.1f} us  "
                  f"{m['tflops']:7.1f} TFLOP/s  {m['kv_gbps']:7.1f} GB/s")
        else:
            print(f"{r['method']:11s} {r['case']}: {r['status']} ({r['reason']})")
    print(f"copy bandwidth {meta['device_copy_bytes_per_s'] / 1e9:.0f} GB/s; report: {args.out}")


def run_case(torch, F, sdpa_kernel, backends, args, timer, peak, dtypes, phase, batch, length,
             q_heads, kv_heads, head_dim, causal):
    dtype = dtypes[args.dtype]
    q_len = length if phase == "prefill" else 1
    axes = case_axes(phase, batch, length, q_heads, kv_heads, head_dim, args.dtype, causal)
    name = case_name(axes)
    flops = dense_flops(phase, batch, length, q_heads, head_dim, causal)
    kv_bytes = 2.0 * batch * length * kv_heads * head_dim * torch.finfo(dtype).bits / 8
    out = []
    try:
        q = torch.randn(batch, q_heads, q_len, head_dim, dtype=dtype, device="cuda")
        k = torch.randn(batch, kv_heads, length, head_dim, dtype=dtype, device="cuda")
        v = torch.randn_like(k)
    except torch.cuda.OutOfMemoryError as e:
        return [record(name, axes, m, "oom", str(e).splitlines()[0]) for m, _ in
                (backends[b] for b in args.backends.split(","))]
    for key in args.backends.split(","):
        method, backend = backends[key]
        rec = record(name, axes, method, "ok", "")
        try:
            gqa = "enable_gqa"
            with sdpa_kernel(backend):
                try:
                    F.scaled_dot_product_attention(q, k, v, is_causal=causal, enable_gqa=True)
                    kk, vv = k, v
                    fn = lambda: F.scaled_dot_product_attention(q, kk, vv, is_causal=causal,
                                                                enable_gqa=True)
                except RuntimeError:
                    gqa = "repeat_interleave"
                    group = q_heads // kv_heads
                    kk = k.repeat_interleave(group, dim=1)
                    vv = v.repeat_interleave(group, dim=1)
                    fn = lambda: F.scaled_dot_product_attention(q, kk, vv, is_causal=causal)
                    fn()
                samples, calls = timer.samples(fn, args.repetitions, args.min_time, args.warmup)
            median = quantile(samples, 0.5)
            rec["metrics"] = {"median_s": median, "p10_s": quantile(samples, 0.1),
                              "p90_s": quantile(samples, 0.9), "tflops": flops / median / 1e12,
                              "kv_gbps": kv_bytes / median / 1e9}
            if phase == "prefill" and peak.get("tensor_flops"):
                rec["metrics"]["peak_fraction"] = flops / median / peak["tensor_flops"]
            if phase == "decode" and peak.get("dram_bytes_per_s"):
                rec["metrics"]["peak_fraction"] = kv_bytes / median / peak["dram_bytes_per_s"]
            rec["extra"] = {"samples_s": samples, "calls_per_sample": calls,
                            "repetitions": args.repetitions, "gqa": gqa,
                            "flops_per_call": flops, "kv_bytes_per_call": kv_bytes,
                            "clock": "cuda_events", "flush_bytes": timer.flush_bytes,
                            "flush_mode": timer.flush_mode,
                            "engine": "sdpa_peer"}
            del kk, vv
        except torch.cuda.OutOfMemoryError as e:
            rec.update(status="oom", reason=str(e).splitlines()[0], metrics={})
        except RuntimeError as e:
            # A backend that cannot take the shape (the warning says why) is skipped.
            rec.update(status="skipped", reason=str(e).splitlines()[0][:300], metrics={})
        out.append(rec)
    del q, k, v
    torch.cuda.empty_cache()
    return out


def record(name, axes, method, status, reason):
    return {"suite": "latency", "case": name, "axes": dict(axes), "method": method,
            "method_spec": method, "params": {}, "backend": "cuda", "mode": "query_aware",
            "seed": 0, "status": status, "reason": reason, "metrics": {}, "extra": {}}


if __name__ == "__main__":
    main()
