#include "suites/common/ops/cpu_ops.hpp"

#include <malloc.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "datasets/rng.hpp"
#include "harness/error.hpp"
#include "suites/common/ops/op_math.hpp"

namespace attnbench {

namespace {

// Uniform on [-sqrt(3), sqrt(3)): zero mean and unit variance like a standard normal, at a
// fraction of its cost (two values per 64-bit draw), which dominates building a small op.
void fill_unit_variance(host_tensor& t, std::uint64_t seed) {
  rng r(seed);
  constexpr float half_width = 1.7320508f;
  constexpr float scale = 2.0f * half_width / 4294967296.0f;
  float* data = t.data();
  for (std::size_t i = 0; i < t.size(); i += 2) {
    const std::uint64_t bits = r.next();
    data[i] = static_cast<float>(bits >> 32) * scale - half_width;
    if (i + 1 < t.size()) data[i + 1] = static_cast<float>(bits & 0xffffffffu) * scale - half_width;
  }
}

std::string gib(double bytes) {
  std::ostringstream os;
  os.precision(3);
  os << bytes / double(1ull << 30) << " GiB";
  return os.str();
}

}  // namespace

struct cpu_method_op::sequences {
  const method_instance* method = nullptr;
  op_shape shape;
  exec_context exec;
  attention_problem problem;
  std::vector<std::unique_ptr<kv_method>> adapters;  // one per sequence of the batch
  host_tensor q, k, v;                               // prompt (prefill) or one query (decode)
  host_tensor out;

  void prepare_all() {
    adapters.clear();
    for (int b = 0; b < shape.batch; ++b) {
      auto adapter = method->create();
      adapter->prepare(problem, exec);
      adapters.push_back(std::move(adapter));
    }
  }
};

cpu_method_op::cpu_method_op(const method_instance& method, const op_shape& shape,
                             const exec_context& exec, const calibration_source* maybe_calibration)
    : m_sequences(std::make_unique<sequences>()) {
  if (shape.dtype != "fp32")
    throw error(error_id::unsupported,
                "CPU adapters run fp32 only (dtype " + shape.dtype + " asked)");
  if (shape.phase == "prefill" && !shape.causal)
    throw error(error_id::unsupported, "CPU adapters compute causal prefill only");
  if (shape.page_size != 0)
    throw error(error_id::unsupported, "CPU adapters keep a contiguous cache (no page_size)");
  ATTNBENCH_CHECK(shape.batch >= 1 && shape.length >= 1 && shape.q_heads >= 1 &&
                      shape.kv_heads >= 1 && shape.head_dim >= 1,
                  internal, "invalid op shape");
  // Estimate first: a case too large for this machine is an `oom` record, never a crash.
  const double need = cpu_op_bytes(shape);
  const auto available = static_cast<double>(available_host_bytes());
  if (need > available)
    throw error(error_id::out_of_memory,
                "needs about " + gib(need) + " of host memory, " + gib(available) + " available");
  if (shape.length > INT_MAX)
    throw error(error_id::unsupported, "CPU tensors index tokens with int (length > 2^31 - 1)");

  auto& s = *m_sequences;
  s.method = &method;
  s.shape = shape;
  s.exec = exec;
  s.exec.backend = "cpu";
  s.problem.shape = model_shape{"latency", 1, shape.q_heads, shape.kv_heads, shape.head_dim};
  s.problem.layer = 0;
  s.problem.context_tokens = shape.length;
  s.problem.max_tokens = shape.length;
  s.problem.calibration = maybe_calibration;
  {
    auto probe = method.create();
    if (auto reason = probe->unsupported_reason(s.problem))
      throw error(error_id::unsupported, *reason);
  }

  const int tokens = static_cast<int>(shape.length);
  s.q = host_tensor(tokens, shape.q_heads, shape.head_dim);
  s.k = host_tensor(tokens, shape.kv_heads, shape.head_dim);
  s.v = host_tensor(tokens, shape.kv_heads, shape.head_dim);
  fill_unit_variance(s.q, hash_seed(exec.seed, "latency.q"));
  fill_unit_variance(s.k, hash_seed(exec.seed, "latency.k"));
  fill_unit_variance(s.v, hash_seed(exec.seed, "latency.v"));

  if (shape.phase == "prefill") {
    s.out = host_tensor(tokens, shape.q_heads, shape.head_dim);
    // One untimed call, so resident_bytes() and stats() describe a filled cache.
    reset();
    run(nullptr);
    m_flops = dense_attention_flops(shape);
    m_kv_bytes = dense_kv_bytes(shape);
    return;
  }
  s.prepare_all();
  for (auto& a : s.adapters) a->prefill(s.q.view(), s.k.view(), s.v.view(), nullptr);
  // The decode query: the last prompt token's, attending the whole cache again.
  host_tensor last(1, shape.q_heads, shape.head_dim);
  std::copy(s.q.view().at(tokens - 1, 0), s.q.view().at(tokens - 1, 0) + last.size(), last.data());
  s.q = std::move(last);
  s.k = host_tensor();
  s.v = host_tensor();
  s.out = host_tensor(1, shape.q_heads, shape.head_dim);
  // One untimed call measures what a call scores and reads (the counters are cumulative).
  std::uint64_t keys = 0, bytes = 0;
  for (const auto& a : s.adapters) {
    const cache_stats st = a->stats();
    keys -= st.keys_scored;
    bytes -= st.kv_bytes_read;
  }
  run(nullptr);
  for (const auto& a : s.adapters) {
    const cache_stats st = a->stats();
    keys += st.keys_scored;
    bytes += st.kv_bytes_read;
  }
  m_flops = 4.0 * shape.head_dim * static_cast<double>(keys);
  m_kv_bytes = static_cast<double>(bytes);
}

cpu_method_op::~cpu_method_op() = default;

void cpu_method_op::reset() {
  if (m_sequences->shape.phase == "prefill") m_sequences->prepare_all();
}

void cpu_method_op::run(void*) {
  auto& s = *m_sequences;
  if (s.shape.phase == "prefill") {
    tensor_view out = s.out.view();
    for (auto& a : s.adapters) a->prefill(s.q.view(), s.k.view(), s.v.view(), &out);
  } else {
    for (auto& a : s.adapters) a->attend(s.q.view(), s.out.view());
  }
}

std::uint64_t cpu_method_op::resident_bytes() const {
  std::uint64_t total = 0;
  for (const auto& a : m_sequences->adapters) total += a->stats().resident_bytes;
  return total;
}

cache_stats cpu_method_op::stats() const { return m_sequences->adapters.front()->stats(); }

double cpu_op_bytes(const op_shape& shape) {
  const double tokens = static_cast<double>(shape.length);
  const double row = static_cast<double>(shape.head_dim) * sizeof(float);
  const double prompt = tokens * (shape.q_heads + 2.0 * shape.kv_heads) * row;
  const double out = shape.phase == "prefill" ? tokens * shape.q_heads * row : 0.0;
  // The CPU cache reserves 1/8 slack rows for front eviction (cpu_kv_cache); adapters keep
  // per-row state (positions, scores) of up to a few floats per row: a 25% margin covers it.
  const double cache = shape.batch * tokens * shape.kv_heads * 2.0 * row * 9.0 / 8.0;
  return 1.25 * (prompt + out + cache);
}

std::uint64_t available_host_bytes() {
  std::ifstream in("/proc/meminfo");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("MemAvailable:", 0) == 0) return std::stoull(line.substr(13)) * 1024;  // kB
  const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
  return pages > 0 && page > 0 ? static_cast<std::uint64_t>(pages) * page : 0;
}

std::optional<std::uint64_t> host_heap_bytes() {
#if defined(__SANITIZE_ADDRESS__)
  // AddressSanitizer replaces malloc: glibc's mallinfo2 then sees none of the heap.
  return std::nullopt;
#else
  const struct mallinfo2 info = mallinfo2();
  return info.uordblks + info.hblkhd;
#endif
}

std::unique_ptr<timed_op> make_timed_op(const method_instance& method, const op_shape& shape,
                                        const exec_context& exec,
                                        const calibration_source* maybe_calibration) {
  if (const auto* factory = timed_op_registry::instance().find(method.info->name, exec.backend))
    return (*factory)(method, shape, exec);
  if (exec.backend == "cpu" && method.info->backend == "cpu")
    return std::make_unique<cpu_method_op>(method, shape, exec, maybe_calibration);
  throw error(error_id::unsupported,
              "no timed op for " + method.info->name + " on the " + exec.backend + " backend");
}

}  // namespace attnbench
