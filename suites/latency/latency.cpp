/// `latency`: operator time per (backend, phase, batch, length, heads, head_dim, dtype, causal),
/// for every method with a timed op (DESIGN §5, §7). Google Benchmark is the timing engine
/// (gbench_timing.hpp): a warm-up, >= 10 repetitions each one raw sample, CUDA events with the
/// L2 flushed before every call on the GPU, steady_clock on the CPU. Metrics: median / p10 / p90
/// seconds per call, TFLOP/s (4·b·h·s²·d for a dense prefill, halved when causal; 4·d per key
/// scored in decode), KV GB/s (K/V bytes read per call over the median), and the fraction of
/// the device's peak computed from its properties (tensor FLOP/s for prefill, DRAM bandwidth
/// for decode, which is bandwidth-bound). The suite runs exclusively: one case at a time.
#include <sstream>

#include "harness/error.hpp"
#include "suites/common/suite_helpers.hpp"
#include "suites/common/ops/cpu_ops.hpp"
#include "suites/common/timing/gbench_timing.hpp"
#include "suites/common/ops/op_axes.hpp"
#include "suites/common/timing/op_clock.hpp"
#include "suites/common/ops/op_math.hpp"
#include "suites/common/timing/yardstick.hpp"

namespace attnbench {

namespace {

constexpr const char* k_latency_suite = "latency";

/// Per-backend defaults (default_op_axes). The CPU preset is tiny (the quick preset times every
/// CPU method): one decode step at 1K, 2 ms of calls per sample after a 10 ms warm-up. The CUDA
/// preset times prefill and decode at 4K and 16K, 10 ms of calls per sample after a 50 ms
/// warm-up, L2 flushed.
op_axes latency_axes(const run_options& o) {
  op_axes a = default_op_axes(o);
  if (o.backend == "cuda") {
    a.phases = {"prefill", "decode"};
    a.lengths = {4096, 16384};
  }
  return a;
}

struct latency_settings {
  timing_config timing;
  bool flush = false;
};

latency_settings parse_settings(const run_options& o) {
  const bool cuda = o.backend == "cuda";
  latency_settings s;
  // DESIGN §7: at least 10 samples, so the compare gate's U test has >= 9 per side.
  s.timing.repetitions =
      static_cast<int>(int_setting(o, k_latency_suite, "repetitions", 10, 10, 100000));
  // A CPU decode call of the quick preset takes ~0.1 ms: with one call per sample and no warm-up
  // the first samples ran cold. 2 ms of calls per sample after 10 ms of warm-up cost ~50 ms per
  // method and case.
  s.timing.min_time_s =
      real_setting(o, k_latency_suite, "min_time", cuda ? 0.01 : 0.002, 0.0, 60.0);
  s.timing.warmup_s = real_setting(o, k_latency_suite, "warmup", cuda ? 0.05 : 0.01, 0.0, 60.0);
  s.flush = bool_setting(o, k_latency_suite, "flush", cuda);
  return s;
}

class latency_suite final : public suite {
 public:
  std::string name() const override { return k_latency_suite; }
  std::string description() const override {
    return "operator time per phase x batch x length x heads x head_dim x dtype: median/p10/p90 "
           "of >= 10 raw samples (Google Benchmark), TFLOP/s, KV GB/s, fraction of device peak";
  }
  std::vector<axis_def> axes() const override {
    run_options cpu;
    cpu.shape = shape_preset("small");
    return op_axis_defs(latency_axes(cpu));  // the CPU preset's; CUDA's in latency_axes
  }
  std::map<std::string, metric_info> metrics() const override {
    return {
        {"median_s", {"s", false, "median seconds per call over the raw samples"}},
        {"p10_s", {"s", false, "10th percentile of seconds per call (type-7 quantile)"}},
        {"p90_s", {"s", false, "90th percentile of seconds per call (type-7 quantile)"}},
        {"tflops",
         {"TFLOP/s", true,
          "FLOPs per call / median: 4*b*h*s^2*d per dense prefill (halved when causal), "
          "4*d per key scored in decode"}},
        {"kv_gbps", {"GB/s", true, "K/V bytes read per call / median, 1e9 bytes per GB"}},
        {"peak_fraction",
         {"fraction", true,
          "prefill: TFLOP/s over the device's dense tensor peak; decode: KV bytes/s over its "
          "DRAM bandwidth (both from device properties; absent on the CPU)"}},
    };
  }
  std::vector<std::string> param_names() const override {
    return {"phase",     "batch",       "heads",    "head_dim", "dtype", "causal",
            "page_size", "repetitions", "min_time", "warmup",   "flush"};
  }
  bool exclusive() const override { return true; }

  std::vector<suite_case> cases(const run_options& o) const override {
    parse_settings(o);  // validate every setting before anything runs
    const op_axes axes = parse_op_axes(o, k_latency_suite, latency_axes(o));
    std::vector<suite_case> out;
    for (const op_shape& shape : op_shapes(axes))
      out.push_back(make_case(k_latency_suite, op_case_axes(o.backend, shape)));
    return out;
  }

  void run(const suite_case& c, const method_instance& method, const run_context& ctx,
           record& rec) const override {
    const run_options& o = *ctx.options;
    const latency_settings settings = parse_settings(o);
    const op_shape shape = op_shape_from_axes(c.axes);
    const bool cuda = o.backend == "cuda";

    std::unique_ptr<op_clock> clock =
        cuda ? make_cuda_clock(settings.flush) : make_host_clock(settings.flush);
    exec_context exec = ctx.exec;
    exec.stream = clock->stream();
    auto op = make_timed_op(method, shape, exec, op_calibration(shape, ctx));

    // CPU decode: the machine yardstick, interleaved call by call (capped at 256 MiB of K/V).
    timing_config timing = settings.timing;
    std::unique_ptr<yardstick> stick;
    if (!cuda && shape.phase == "decode" && yardstick::bytes(shape) <= (256ull << 20)) {
      stick = std::make_unique<yardstick>(shape);
      timing.reference = [&stick] { return stick->time_call(); };
    }
    const timing_result t = time_op(c.name + " " + method.canonical, *op, *clock, timing);
    const sample_summary s = summarize(t.samples_s);
    rec.metrics["median_s"] = s.median;
    rec.metrics["p10_s"] = s.p10;
    rec.metrics["p90_s"] = s.p90;
    rec.metrics["tflops"] = op->flops() / s.median / 1e12;
    rec.metrics["kv_gbps"] = op->kv_bytes() / s.median / 1e9;

    nlohmann::json peak = {{"kind", "none"}, {"basis", "no peak model for the host CPU"}};
    if (cuda) {
      const device_peak p = query_device_peak();
      if (shape.phase == "prefill") {
        peak = {{"kind", "tensor_flops"},
                {"value", p.tensor_flops},
                {"basis", p.flops_basis},
                {"device", p.device}};
        if (p.tensor_flops > 0)
          rec.metrics["peak_fraction"] = op->flops() / s.median / p.tensor_flops;
      } else {
        peak = {{"kind", "dram_bytes_per_s"},
                {"value", p.dram_bytes_per_s},
                {"basis", p.bandwidth_basis},
                {"device", p.device}};
        rec.metrics["peak_fraction"] = op->kv_bytes() / s.median / p.dram_bytes_per_s;
      }
    }
    rec.extra["samples_s"] = t.samples_s;
    rec.extra["calls_per_sample"] = t.calls_per_sample;
    if (!t.reference_s.empty()) {
      rec.extra["reference_s"] = t.reference_s;
      rec.extra["reference"] =
          "yardstick: frozen single-thread fp32 decode at the case's shape, "
          "one untimed call after every timed call (suites/common/timing/yardstick)";
    }
    rec.extra["repetitions"] = settings.timing.repetitions;
    rec.extra["min_time_s"] = settings.timing.min_time_s;
    rec.extra["warmup_s"] = settings.timing.warmup_s;
    rec.extra["mean_s"] = s.mean;
    rec.extra["min_s"] = s.min;
    rec.extra["max_s"] = s.max;
    rec.extra["flops_per_call"] = op->flops();
    rec.extra["kv_bytes_per_call"] = op->kv_bytes();
    rec.extra["resident_bytes"] = op->resident_bytes();
    rec.extra["threads"] = exec.threads;
    rec.extra["clock"] = clock->name();
    rec.extra["flush_bytes"] = clock->flush_bytes();
    // The CUDA flush reads its buffer (op_clock.hpp); the host flush writes its own.
    if (clock->flush_bytes() > 0) rec.extra["flush_mode"] = cuda ? "read" : "write";
    rec.extra["engine"] = "google_benchmark";
    rec.extra["peak"] = peak;
  }
};

ATTNBENCH_REGISTER_SUITE(latency_suite);

}  // namespace

}  // namespace attnbench
