/// quest on the GPU (adapters/quest/quest.hpp for the rule): per-page key min/max kept on the
/// device, then per decode query three kernels: the page bounds of every query head (one warp per
/// page), the group's log-softmax max over pages with a radix top-k (one CTA per KV head), and the
/// split-KV decode over the resulting block table (the chosen pages, then the current page).
/// Differences from the CPU adapter: bf16 keys and queries (bounds of bf16 keys, so near-tied
/// pages may rank differently); the page size must be a power of two and the budget at least one
/// page (else the case is skipped). Also the latency suite's timed op: prefill is dense (Quest
/// leaves prefill dense), decode is selection + sparse decode over a paged cache of Quest's pages.
/// The CUDA-only parameter `select=0` (latency suite only; the kv_method skips it) times the
/// shared sparse decode kernel alone: the page lists are Quest's, chosen once before timing.
#include <cmath>
#include <memory>

#include "adapters/common/cuda/cache_method_cuda.hpp"
#include "adapters/common/cuda/timed_ops_cuda.cuh"
#include "adapters/quest/quest.hpp"
#include "adapters/quest/quest_kernels.cuh"

namespace attnbench::cuda {
namespace {

// Warps (pages) per CTA of the bounds kernel.
constexpr int bounds_threads = 256;

/// The device state of Quest for `segments` (sequence, KV head) pairs: summaries, bounds, scores,
/// page lists. Shared by the adapter and the timed op.
struct quest_state {
  int page = 16, page_shift = 4, max_pages = 0, group = 1, head_dim = 128;
  device_buffer<float> meta, bounds, scores;
  device_buffer<int> pages, rows, candidates, tokens;

  void reset(int segments, int group_size, int d, int page_rows, std::int64_t max_tokens) {
    page = page_rows;
    page_shift = log2_exact(page_rows);
    max_pages = ceil_div(max_tokens, page_rows) + 1;
    group = group_size;
    head_dim = d;
    const std::size_t slots = static_cast<std::size_t>(segments) * max_pages;
    meta.resize(slots * 2 * d);
    bounds.resize(slots * group);
    scores.resize(slots);
    pages.resize(slots);
    rows.resize(static_cast<std::size_t>(segments));
  }

  template <class T>
  void summarize(const paged_kv<T>& kv, int segments, int first_page, int last_page,
                 cudaStream_t stream) {
    if (last_page < first_page) return;
    const dim3 grid(static_cast<unsigned>(last_page - first_page + 1),
                    static_cast<unsigned>(segments));
    quest_summaries_kernel<T><<<grid, head_dim, 0, stream>>>(kv, page, tokens.data(), first_page,
                                                             meta.data(), max_pages);
    ATTNBENCH_CUDA_LAUNCHED();
  }

  /// Bounds, scores and page lists of one query per segment; `most` bounds the candidates.
  template <class T>
  void select(const T* q, std::int64_t q_batch_stride, int q_heads, int kv_heads, int segments,
              int most_candidates, float scale, int budget, cudaStream_t stream) {
    if (most_candidates > 0) {
      const dim3 grid(static_cast<unsigned>(ceil_div(most_candidates, bounds_threads / 32)),
                      static_cast<unsigned>(segments));
      quest_bounds_kernel<T><<<grid, bounds_threads, 0, stream>>>(
          q, q_batch_stride, q_heads, kv_heads, head_dim, meta.data(), max_pages, candidates.data(),
          scale, bounds.data());
      ATTNBENCH_CUDA_LAUNCHED();
    }
    quest_select_kernel<<<segments, detail::select_threads, 0, stream>>>(
        bounds.data(), group, max_pages, candidates.data(), tokens.data(), page, budget,
        scores.data(), pages.data(), rows.data());
    ATTNBENCH_CUDA_LAUNCHED();
  }
};

class quest_method final : public device_cache_method {
 public:
  explicit quest_method(const param_values& values)
      : m_values(values), m_page(values.get_int("page")) {}

  std::optional<std::string> unsupported_reason(const attention_problem& problem) const override {
    if (auto why = cuda_unsupported_reason(problem)) return why;
    if (m_values.has("select") && m_values.get_int("select") == 0)
      return "quest select=0 only switches the latency suite's timed op (no selection timed)";
    if (log2_exact(m_page) < 0)
      return "cuda quest needs a power-of-two page, not " + std::to_string(m_page);
    if (resolve_budget(m_values, problem.context_tokens) < m_page)
      return "cuda quest needs a budget of at least one page (" + std::to_string(m_page) + ")";
    return std::nullopt;
  }

 protected:
  std::int64_t plan(const attention_problem& problem) override {
    const std::int64_t total = std::max(problem.max_tokens, problem.context_tokens);
    m_state.reset(m_shape.kv_heads, m_shape.group_size(), m_shape.head_dim,
                  static_cast<int>(m_page), total);
    m_summarized = 0;
    return resolve_budget(m_values, problem.context_tokens);
  }
  std::int64_t held_rows(const attention_problem& problem) const override {
    return std::max(problem.max_tokens, problem.context_tokens);  // keeps every row
  }
  void extend_index() override {
    // Rows are never evicted, so every head holds rows 0 .. m_length - 1; pages from the one
    // holding the first unsummarized row to the last are (re)computed.
    const int rows = static_cast<int>(m_positions[0].size());
    upload_ints(std::vector<int>(static_cast<std::size_t>(m_shape.kv_heads), rows), m_state.tokens);
    m_state.summarize(cache_view(), m_shape.kv_heads, static_cast<int>(m_summarized / m_page),
                      (rows - 1) / static_cast<int>(m_page), m_stream);
    m_summarized = rows;
  }
  std::pair<std::uint64_t, std::uint64_t> decode_query(const element* q, float* out,
                                                       const std::vector<int>& visible) override {
    const int v = visible[0], page = static_cast<int>(m_page), group = m_shape.group_size();
    if (v <= m_budget) return device_cache_method::decode_query(q, out, visible);
    const int current = (v - 1) / page;
    const int count =
        std::min(current, std::max(0, static_cast<int>(m_budget) - (v - current * page)) / page);
    const int hk = m_shape.kv_heads;
    upload_ints(std::vector<int>(static_cast<std::size_t>(hk), current), m_state.candidates);
    upload_ints(visible, m_state.tokens);
    m_state.select(q, 0, m_shape.q_heads, hk, hk, current, m_scale, static_cast<int>(m_budget),
                   m_stream);
    run_decode(q, out, row_mode::page_list, m_state.pages.data(), m_state.max_pages,
               m_state.rows.data(), m_state.tokens.data(), (count + 1) * page, nullptr,
               m_state.page_shift);
    const std::uint64_t read = static_cast<std::uint64_t>(count) * page + (v - current * page);
    const std::uint64_t keys = (read + 2 * static_cast<std::uint64_t>(current)) * group * hk;
    const std::uint64_t bytes =
        (read * token_bytes() + static_cast<std::uint64_t>(current) * 2 * m_shape.head_dim * 4) *
        hk;
    return {keys, bytes};
  }

 private:
  param_values m_values;
  std::int64_t m_page;
  std::int64_t m_summarized = 0;
  quest_state m_state;
};

/// Decode: page selection + sparse decode for a batch; prefill: the dense flash kernel.
/// With select=0 the decode call is the sparse decode kernel alone (decode.cuh, row_mode
/// page_list): one split-KV decode step of the batch over the block tables of Quest's pages
/// (current page included, budget = keep or budget of the params), which the bounds and top-k
/// kernels chose once for this query when the op was built; the summaries, bounds and selection
/// are neither timed nor counted in kv_bytes.
template <class T>
class quest_op final : public timed_op {
 public:
  quest_op(const op_shape& s, const param_values& values)
      : m_shape(s), m_select(!values.has("select") || values.get_int("select") != 0) {
    if (s.phase == "prefill") {
      m_dense = std::make_unique<dense_cuda_op<T>>(s);
      return;
    }
    const std::int64_t page = values.get_int("page");
    ATTNBENCH_CHECK(s.page_size == 0 || s.page_size == page, unsupported,
                    "cuda quest reads whole cache pages: page_size "
                        << s.page_size << " must equal page " << page);
    ATTNBENCH_CHECK(log2_exact(page) >= 0, unsupported, "cuda quest needs a power-of-two page");
    m_budget = static_cast<int>(resolve_budget(values, s.length));
    ATTNBENCH_CHECK(m_budget >= page, unsupported, "cuda quest needs a budget of >= one page");
    m_inputs = std::make_unique<decode_inputs<T>>(s);
    const int segments = s.batch * s.kv_heads, n = static_cast<int>(s.length);
    m_state.reset(segments, s.q_heads / s.kv_heads, s.head_dim, static_cast<int>(page), n);
    m_current = (n - 1) / static_cast<int>(page);
    const int count =
        std::min(m_current, std::max(0, m_budget - (n - m_current * static_cast<int>(page))) /
                                static_cast<int>(page));
    m_read_rows = static_cast<std::int64_t>(count) * page + (n - m_current * page);
    std::vector<int> cand(static_cast<std::size_t>(segments), m_current);
    m_state.candidates.resize(cand.size());
    m_state.tokens.resize(cand.size());
    ATTNBENCH_CUDA(cudaMemcpy(m_state.candidates.data(), cand.data(), cand.size() * sizeof(int),
                              cudaMemcpyHostToDevice));
    ATTNBENCH_CUDA(cudaMemcpy(m_state.tokens.data(), m_inputs->lengths.data(),
                              cand.size() * sizeof(int), cudaMemcpyDeviceToDevice));
    m_state.summarize(m_inputs->kv, segments, 0, m_current, nullptr);
    m_args = m_inputs->args(s, (count + 1) * static_cast<int>(page));
    m_args.rows = m_state.pages.data();
    m_args.rows_stride = m_state.max_pages;
    m_args.lengths = m_state.rows.data();
    m_args.limits = m_state.tokens.data();
    m_args.list_page_shift = m_state.page_shift;
    plan_decode(m_args, m_workspace, multiprocessors());
    if (!m_select) select(nullptr);
    ATTNBENCH_CUDA(cudaDeviceSynchronize());
  }
  void run(void* stream) override {
    auto st = static_cast<cudaStream_t>(stream);
    if (m_dense) return m_dense->run(stream);
    if (m_select) select(st);
    decode<T, T>(m_args, row_mode::page_list, m_inputs->out.data(), m_args.q_batch_stride, st);
  }
  double flops() const override {
    if (m_dense) return m_dense->flops();
    return 4.0 * m_shape.batch * m_shape.q_heads * static_cast<double>(m_read_rows) *
           m_shape.head_dim;
  }
  double kv_bytes() const override {
    if (m_dense) return m_dense->kv_bytes();
    // The chosen rows plus, when selecting, the float min/max of every candidate page.
    const double pairs = static_cast<double>(m_shape.batch) * m_shape.kv_heads;
    const double meta = m_select ? 2.0 * m_current * m_shape.head_dim * sizeof(float) : 0.0;
    return pairs * (2.0 * m_read_rows * m_shape.head_dim * sizeof(T) + meta);
  }
  std::uint64_t resident_bytes() const override {
    if (m_dense) return m_dense->resident_bytes();
    return m_inputs->bytes() + m_state.meta.bytes() + m_state.bounds.bytes() +
           m_workspace.part_out.bytes();
  }

 private:
  void select(cudaStream_t stream) {
    m_state.select(m_inputs->q.data(), m_args.q_batch_stride, m_shape.q_heads, m_shape.kv_heads,
                   m_shape.batch * m_shape.kv_heads, m_current, m_args.scale, m_budget, stream);
  }

  op_shape m_shape;
  bool m_select = true;
  std::unique_ptr<dense_cuda_op<T>> m_dense;
  std::unique_ptr<decode_inputs<T>> m_inputs;
  quest_state m_state;
  decode_args<T> m_args;
  decode_workspace m_workspace;
  int m_budget = 0, m_current = 0;
  std::int64_t m_read_rows = 0;
};

}  // namespace
}  // namespace attnbench::cuda

ATTNBENCH_REGISTER_METHOD(attnbench::cuda::cuda_method_info<attnbench::cuda::quest_method>(
    "quest", "Quest: Query-Aware Sparsity for Efficient Long-Context LLM Inference",
    "per query and KV head, read the current page and the pages of highest key min/max upper "
    "bound (bf16 CUDA kernels)",
    [] {
      auto params = attnbench::quest::schema();
      params.push_back(attnbench::int_param(
          "select", std::nullopt, 0, 1,
          "latency timed op only: 0 times the sparse decode over page lists chosen once, "
          "untimed; 1 (unset) times selection + decode"));
      return params;
    }()));

ATTNBENCH_REGISTER_TIMED_OP("quest", "cuda",
                            [](const attnbench::method_instance& method,
                               const attnbench::op_shape& shape, const attnbench::exec_context&) {
                              return attnbench::cuda::make_typed_op<attnbench::cuda::quest_op>(
                                  shape, method.params);
                            });
