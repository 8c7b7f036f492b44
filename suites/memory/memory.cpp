/// `memory`: what a method holds for its KV cache against length and budget (DESIGN §5), for
/// capacity planning. Per (length, budget, heads, head_dim, dtype) one decode-ready op is built
/// (the prompt prefilled, as the latency suite's decode op) and two figures are recorded:
///   kv_resident_bytes  what the method reports as physically resident (CPU: cache_stats; CUDA:
///                      the op's own allocator accounting), and its ratio to dense;
///   measured_bytes     what the allocator saw: on the CPU the growth of glibc's heap in use
///                      (mallinfo2) across building the op; on CUDA the fall of cudaMemGetInfo's
///                      free bytes. It includes reserves, indexes and the decode query.
/// A case that cannot fit is an `oom` record (CPU: refused from an estimate before allocating;
/// CUDA: the allocation failure), and the sweep goes on. Runs exclusively: heap and device
/// counters are process-wide.
#include <algorithm>

#include "harness/error.hpp"
#include "suites/common/ops/cpu_ops.hpp"
#include "suites/common/ops/op_axes.hpp"
#include "suites/common/ops/op_math.hpp"
#include "suites/common/suite_helpers.hpp"
#include "suites/common/timing/op_clock.hpp"

namespace attnbench {

namespace {

constexpr const char* k_memory_suite = "memory";

/// The method with its budget set to `budget` tokens (harness with_budget), or the method itself
/// when it takes no budget (then the budget axis does not apply to it).
method_instance budgeted_method(const method_instance& method, std::int64_t budget, bool& applied) {
  std::optional<method_instance> budgeted = with_budget(method, budget);
  applied = budgeted.has_value();
  return budgeted ? *budgeted : method;
}

// Token budgets (`--budgets`); 0: each method runs with its own parameters, no budget axis value.
axis_def budget_axis() {
  return int64_axis("budget", {0}, {}, "--budgets; 0: each method's own parameters");
}

class memory_suite final : public suite {
 public:
  std::string name() const override { return k_memory_suite; }
  std::string description() const override {
    return "KV memory per length x budget x heads x head_dim x dtype: resident KV bytes (the "
           "method's accounting) and measured allocator bytes; a case that cannot fit is `oom`";
  }
  std::vector<axis_def> axes() const override {
    run_options cpu;
    cpu.shape = shape_preset("small");
    std::vector<axis_def> out = op_axis_defs(default_op_axes(cpu));
    std::erase_if(out, [](const axis_def& a) {
      return a.name == "phase" || a.name == "causal" || a.name == "page_size";
    });
    out.insert(out.begin() + 2, budget_axis());
    return out;
  }
  std::map<std::string, metric_info> metrics() const override {
    return {
        {"kv_resident_bytes",
         {"bytes", false, "KV bytes the method holds resident after the prompt, one layer"}},
        {"kv_resident_ratio", {"ratio", false, "kv_resident_bytes / dense KV bytes, same shape"}},
        {"kv_resident_tokens",
         {"tokens", false, "mean resident tokens per KV head and sequence (CPU)"}},
        {"measured_bytes",
         {"bytes", false,
          "allocator growth across building the op: glibc heap in use (CPU) or device memory "
          "taken per cudaMemGetInfo (CUDA)"}},
    };
  }
  std::vector<std::string> param_names() const override {
    return {"batch", "heads", "head_dim", "dtype"};
  }
  bool exclusive() const override { return true; }

  std::vector<suite_case> cases(const run_options& o) const override {
    const op_axes axes = parse_op_axes(o, k_memory_suite, default_op_axes(o));
    const std::vector<std::int64_t> budgets = int64_values(o, k_memory_suite, budget_axis());
    std::vector<suite_case> out;
    for (auto length : axes.lengths)
      for (auto budget : budgets)
        for (int batch : axes.batches)
          for (const auto& [q, kv] : axes.heads)
            for (int head_dim : axes.head_dims)
              for (const auto& dtype : axes.dtypes) {
                std::vector<std::pair<std::string, nlohmann::json>> named = {{"backend", o.backend},
                                                                             {"length", length}};
                if (budget > 0) named.emplace_back("budget", budget);
                named.insert(named.end(), {{"batch", batch},
                                           {"q_heads", q},
                                           {"kv_heads", kv},
                                           {"head_dim", head_dim},
                                           {"dtype", dtype}});
                out.push_back(make_case(k_memory_suite, named));
              }
    return out;
  }

  void run(const suite_case& c, const method_instance& method, const run_context& ctx,
           record& rec) const override {
    const run_options& o = *ctx.options;
    op_shape shape;
    shape.phase = "decode";
    shape.batch = c.axes.at("batch").get<int>();
    shape.length = c.axes.at("length").get<std::int64_t>();
    shape.q_heads = c.axes.at("q_heads").get<int>();
    shape.kv_heads = c.axes.at("kv_heads").get<int>();
    shape.head_dim = c.axes.at("head_dim").get<int>();
    shape.dtype = c.axes.at("dtype").get<std::string>();

    bool budget_applied = false;
    method_instance m = method;
    if (c.axes.contains("budget")) {
      m = budgeted_method(method, c.axes.at("budget").get<std::int64_t>(), budget_applied);
      rec.method_spec = m.canonical;
      if (budget_applied) rec.params["budget"] = c.axes.at("budget").get<std::int64_t>();
      rec.params.erase("keep");
    }
    rec.extra["budget_applied"] = budget_applied;

    const calibration_source* calibration = op_calibration(shape, ctx);
    // Dense bytes of the same tokens, in the dtype the backend stores (CPU adapters: fp32).
    op_shape dense = shape;
    if (o.backend != "cuda") dense.dtype = "fp32";
    const double dense_bytes = dense_kv_bytes(dense);

    if (o.backend == "cuda") {
      exec_context exec = ctx.exec;
      auto clock = make_cuda_clock(false);
      exec.stream = clock->stream();
      const device_memory before = query_device_memory();
      auto op = make_timed_op(m, shape, exec, calibration);
      const device_memory after = query_device_memory();
      rec.metrics["kv_resident_bytes"] = static_cast<double>(op->resident_bytes());
      rec.metrics["kv_resident_ratio"] = static_cast<double>(op->resident_bytes()) / dense_bytes;
      rec.metrics["measured_bytes"] =
          before.free_bytes > after.free_bytes
              ? static_cast<double>(before.free_bytes - after.free_bytes)
              : 0.0;
      rec.extra["device_total_bytes"] = after.total_bytes;
      rec.extra["measured_by"] = "cudaMemGetInfo";
      return;
    }

    const std::optional<std::uint64_t> heap_before = host_heap_bytes();
    auto op = make_timed_op(m, shape, ctx.exec, calibration);
    const std::optional<std::uint64_t> heap_after = host_heap_bytes();
    const auto* cpu_op = dynamic_cast<const cpu_method_op*>(op.get());
    ATTNBENCH_CHECK(cpu_op, internal, "the CPU memory suite expects a cpu_method_op");
    const cache_stats st = cpu_op->stats();
    double tokens = 0;
    for (auto t : st.resident_tokens) tokens += static_cast<double>(t);
    if (!st.resident_tokens.empty()) tokens /= static_cast<double>(st.resident_tokens.size());
    rec.metrics["kv_resident_bytes"] = static_cast<double>(op->resident_bytes());
    rec.metrics["kv_resident_ratio"] = static_cast<double>(op->resident_bytes()) / dense_bytes;
    rec.metrics["kv_resident_tokens"] = tokens;
    if (heap_before && heap_after) {
      rec.metrics["measured_bytes"] =
          *heap_after > *heap_before ? static_cast<double>(*heap_after - *heap_before) : 0.0;
      rec.extra["measured_by"] = "mallinfo2";
    } else {
      rec.extra["measured_by"] = "none: the allocator in use is not glibc's (sanitizer build)";
    }
    rec.params["budget_tokens"] = st.budget_tokens;
    rec.extra["simulated"] = st.simulated;
  }
};

ATTNBENCH_REGISTER_SUITE(memory_suite);

}  // namespace

}  // namespace attnbench
