#include "adapters/common/cuda/prompt_compress_cuda.hpp"

#include <algorithm>
#include <cmath>
#include <map>
#include <utility>

#include "adapters/common/cuda/topk.cuh"
#include "adapters/snapkv/snapkv_kernels.cuh"
#include "harness/error.hpp"

namespace attnbench::cuda {

namespace {

std::map<std::string, device_scorer_factory>& device_scorers() {
  static std::map<std::string, device_scorer_factory> registry;
  return registry;
}

// Rows per CTA of the one-warp-per-row kernels (4 warps).
constexpr int warp_rows = 4;

}  // namespace

device_scorer_registrar::device_scorer_registrar(const std::string& name,
                                                 device_scorer_factory make) {
  ATTNBENCH_ASSERT(device_scorers().count(name) == 0);
  device_scorers()[name] = std::move(make);
}

std::unique_ptr<device_scorer> make_device_scorer(const std::string& name,
                                                  const param_values& values) {
  const auto it = device_scorers().find(name);
  ATTNBENCH_CHECK(it != device_scorers().end(), internal,
                  "no device scorer registered as '" << name << "'");
  return it->second(values);
}

void upload_host_ints(const std::vector<int>& host, device_buffer<int>& dev, cudaStream_t stream) {
  if (dev.size() < host.size()) dev.resize(host.size());
  if (host.empty()) return;
  ATTNBENCH_CUDA(cudaMemcpyAsync(dev.data(), host.data(), host.size() * sizeof(int),
                                 cudaMemcpyHostToDevice, stream));
  // The host vector may die before the copy runs.
  ATTNBENCH_CUDA(cudaStreamSynchronize(stream));
}

void prompt_lse(const score_args& a, int first, lse_scratch& scratch, float* lse) {
  ATTNBENCH_CHECK(a.q, internal, "scoring by attention needs the prompt's queries");
  const int hk = a.shape.kv_heads, hq = a.shape.q_heads, d = a.shape.head_dim;
  const int queries = a.tokens - first;
  std::vector<int> identity(static_cast<std::size_t>(a.tokens));
  for (int t = 0; t < a.tokens; ++t) identity[static_cast<std::size_t>(t)] = t;
  upload_host_ints(identity, scratch.table, a.stream);
  std::vector<int> lengths(static_cast<std::size_t>(queries) * hk);
  for (int i = 0; i < queries; ++i)
    for (int h = 0; h < hk; ++h) lengths[static_cast<std::size_t>(i) * hk + h] = first + i + 1;
  upload_host_ints(lengths, scratch.lengths, a.stream);
  decode_args<element> da;
  da.kv.k = const_cast<element*>(a.k);
  da.kv.v = const_cast<element*>(a.v);
  da.kv.block_table = scratch.table.data();
  da.kv.max_pages = 0;  // every query shares the identity table
  da.kv.page_shift = 0;
  da.kv.kv_heads = hk;
  da.kv.head_dim = d;
  da.q = a.q + static_cast<std::size_t>(first) * hq * d;
  da.q_batch_stride = static_cast<std::int64_t>(hq) * d;
  da.batch = queries;
  da.q_heads = hq;
  da.lengths = scratch.lengths.data();
  da.max_rows = a.tokens;
  da.scale = a.scale;
  plan_decode(da, scratch.workspace, a.sms);
  const std::size_t out = static_cast<std::size_t>(queries) * hq * d;
  if (scratch.out.size() < out) scratch.out.resize(out);
  decode<element, float>(da, row_mode::dense, scratch.out.data(), da.q_batch_stride, a.stream, lse);
}

void window_votes(const score_args& a, int first, int keys, const float* lse, float* votes) {
  const int hk = a.shape.kv_heads, hq = a.shape.q_heads, d = a.shape.head_dim;
  if (keys <= 0) return;
  const dim3 grid(static_cast<unsigned>(ceil_div(keys, 128)), static_cast<unsigned>(hk));
  snapkv_votes_kernel<element>
      <<<grid, 128, 0, a.stream>>>(a.q + static_cast<std::size_t>(first) * hq * d, a.k, lse,
                                   a.tokens - first, hq, hk, d, keys, a.scale, votes);
  ATTNBENCH_CUDA_LAUNCHED();
}

void query_weights(const key_rows<element>& keys, const element* q, std::int64_t q_stride,
                   const float* lse, int queries, const model_shape& shape, const int* before,
                   int most_rows, float scale, bool accumulate, float* weights,
                   std::int64_t weights_stride, cudaStream_t stream) {
  if (most_rows <= 0) return;
  ATTNBENCH_ASSERT(shape.head_dim % 32 == 0 && shape.head_dim <= 128);
  const dim3 grid(static_cast<unsigned>(ceil_div(most_rows, warp_rows)),
                  static_cast<unsigned>(shape.kv_heads));
  query_weights_kernel<element><<<grid, warp_rows * 32, 0, stream>>>(
      keys, q, q_stride, lse, queries, shape.q_heads, shape.kv_heads, shape.head_dim, before, scale,
      accumulate, weights, weights_stride);
  ATTNBENCH_CUDA_LAUNCHED();
}

std::optional<std::string> prompt_compress_method::unsupported_reason(
    const attention_problem& problem) const {
  if (auto why = device_cache_method::unsupported_reason(problem)) return why;
  if (m_scorer) return m_scorer->unsupported_reason(problem);
  return std::nullopt;
}

std::int64_t prompt_compress_method::plan(const attention_problem& problem) {
  m_layer = problem.layer;
  if (m_scorer) m_scorer->prepare(problem);
  const std::int64_t budget = resolve_budget(m_values, problem.context_tokens);
  const std::int64_t layer = m_scorer ? m_scorer->layer_budget(problem, budget) : budget;
  ATTNBENCH_ASSERT(layer >= 1);
  return layer;
}

score_args prompt_compress_method::prompt_args(const element* q, const element* k, const element* v,
                                               int tokens, int forced) const {
  score_args a;
  a.q = q;
  a.k = k;
  a.v = v;
  a.tokens = tokens;
  a.forced = forced;
  a.budget = m_budget;
  a.shape = m_shape;
  a.scale = m_scale;
  a.layer = m_layer;
  a.seed = m_seed;
  a.stream = m_stream;
  a.sms = m_sms;
  return a;
}

std::vector<std::vector<int>> prompt_compress_method::select_prompt(const element* q,
                                                                    const element* k,
                                                                    const element* v, int tokens) {
  const int hk = m_shape.kv_heads;
  m_read.clear();
  if (m_budget >= tokens) return device_cache_method::select_prompt(q, k, v, tokens);
  const int forced = std::clamp(m_scorer->forced_tail(tokens), 0, tokens);
  std::vector<std::vector<int>> kept(static_cast<std::size_t>(hk));
  if (m_budget <= forced) {
    for (auto& rows : kept)
      for (int t = tokens - static_cast<int>(m_budget); t < tokens; ++t) rows.push_back(t);
    return kept;
  }
  const int n = tokens - forced;
  if (m_scores.size() < static_cast<std::size_t>(hk) * n)
    m_scores.resize(static_cast<std::size_t>(hk) * n);
  m_scorer->score(prompt_args(q, k, v, tokens, forced), m_scores.data());
  const auto counts = head_counts(prompt_args(q, k, v, tokens, forced), m_scores.data(), n,
                                  static_cast<int>(m_budget) - forced);
  kept = top_rows(m_scores.data(), n, std::vector<int>(static_cast<std::size_t>(hk), n), counts);
  for (auto& rows : kept)
    for (int t = n; t < tokens; ++t) rows.push_back(t);
  return kept;
}

std::vector<int> prompt_compress_method::head_counts(const score_args&, float*, int, int per_head) {
  return std::vector<int>(static_cast<std::size_t>(m_shape.kv_heads), per_head);
}

std::int64_t prompt_compress_method::shared_budget_held_rows(
    const attention_problem& problem) const {
  const std::int64_t total = std::max(problem.max_tokens, problem.context_tokens);
  const std::int64_t decoded = std::max<std::int64_t>(0, total - problem.context_tokens);
  const std::int64_t prompt = std::min(problem.context_tokens, m_budget * m_shape.kv_heads);
  return std::min(total, prompt + decoded);
}

std::vector<int> prompt_compress_method::adaptive_counts(const float* scores, int n, int per_head,
                                                         double alpha) {
  const int hk = m_shape.kv_heads;
  std::vector<int> counts(static_cast<std::size_t>(hk), 0);
  const std::int64_t rows = static_cast<std::int64_t>(hk) * n;
  std::int64_t left = static_cast<std::int64_t>(std::max(0, per_head)) * hk;
  if (left >= rows) return std::vector<int>(static_cast<std::size_t>(hk), n);
  const int safe = std::min(n, static_cast<int>(std::floor(alpha * static_cast<double>(per_head))));
  m_masked.resize(static_cast<std::size_t>(rows));
  ATTNBENCH_CUDA(cudaMemcpyAsync(m_masked.data(), scores, m_masked.bytes(),
                                 cudaMemcpyDeviceToDevice, m_stream));
  if (safe > 0) {
    // Each head's safeguard rows, then out of the shared ranking.
    upload_ints(std::vector<int>(static_cast<std::size_t>(hk), n), m_n);
    upload_ints(std::vector<int>(static_cast<std::size_t>(hk), safe), m_count);
    m_safe.resize(static_cast<std::size_t>(hk) * safe);
    top_k(scores, n, m_n.data(), m_count.data(), hk, m_safe.data(), safe, m_stream);
    const dim3 grid(static_cast<unsigned>(ceil_div(safe, 128)), static_cast<unsigned>(hk));
    mask_rows_kernel<<<grid, 128, 0, m_stream>>>(m_masked.data(), n, m_safe.data(), safe);
    ATTNBENCH_CUDA_LAUNCHED();
    for (auto& c : counts) c = safe;
    left -= static_cast<std::int64_t>(safe) * hk;
  }
  if (left <= 0) return counts;
  // The rest to the best scores over all heads: one segment of kv_heads x n scores.
  const int take = static_cast<int>(left);
  upload_ints({static_cast<int>(rows)}, m_n);
  upload_ints({take}, m_count);
  m_picked.resize(static_cast<std::size_t>(take));
  top_k(m_masked.data(), rows, m_n.data(), m_count.data(), 1, m_picked.data(), take, m_stream);
  std::vector<int> picked(static_cast<std::size_t>(take));
  ATTNBENCH_CUDA(cudaMemcpyAsync(picked.data(), m_picked.data(), picked.size() * sizeof(int),
                                 cudaMemcpyDeviceToHost, m_stream));
  ATTNBENCH_CUDA(cudaStreamSynchronize(m_stream));
  for (int i : picked) ++counts[static_cast<std::size_t>(i / n)];
  return counts;
}

std::vector<std::vector<int>> prompt_compress_method::top_rows(const float* scores,
                                                               std::int64_t stride,
                                                               const std::vector<int>& n,
                                                               const std::vector<int>& counts) {
  const int hk = m_shape.kv_heads;
  ATTNBENCH_ASSERT(n.size() == static_cast<std::size_t>(hk) && counts.size() == n.size());
  std::vector<int> take(counts.size());
  int most = 0;
  for (std::size_t h = 0; h < counts.size(); ++h) {
    take[h] = std::clamp(counts[h], 0, n[h]);
    most = std::max(most, take[h]);
  }
  std::vector<std::vector<int>> rows(static_cast<std::size_t>(hk));
  if (most == 0) return rows;
  upload_ints(n, m_n);
  upload_ints(take, m_count);
  if (m_top.size() < static_cast<std::size_t>(hk) * most)
    m_top.resize(static_cast<std::size_t>(hk) * most);
  top_k(scores, stride, m_n.data(), m_count.data(), hk, m_top.data(), most, m_stream);
  std::vector<int> host(static_cast<std::size_t>(hk) * most);
  ATTNBENCH_CUDA(cudaMemcpyAsync(host.data(), m_top.data(), host.size() * sizeof(int),
                                 cudaMemcpyDeviceToHost, m_stream));
  ATTNBENCH_CUDA(cudaStreamSynchronize(m_stream));
  for (int h = 0; h < hk; ++h) {
    const auto at = host.begin() + static_cast<std::ptrdiff_t>(h) * most;
    rows[static_cast<std::size_t>(h)].assign(at, at + take[static_cast<std::size_t>(h)]);
  }
  return rows;
}

void prompt_compress_method::note_read(const std::vector<int>& visible) {
  if (m_query != m_call_queries - 1) return;
  m_read.assign(static_cast<std::size_t>(m_shape.kv_heads), {});
  for (std::size_t h = 0; h < m_read.size(); ++h) {
    const auto& pos = m_positions[h];
    m_read[h].assign(pos.begin(), pos.begin() + visible[h]);
  }
}

std::pair<std::uint64_t, std::uint64_t> prompt_compress_method::decode_query(
    const element* q, float* out, const std::vector<int>& visible) {
  note_read(visible);
  return device_cache_method::decode_query(q, out, visible);
}

key_rows<element> prompt_compress_method::cache_keys() const {
  key_rows<element> keys;
  keys.k = m_k.data();
  keys.head_stride = m_capacity * m_shape.head_dim;
  keys.row_stride = m_shape.head_dim;
  return keys;
}

void prompt_compress_method::cache_lse(const element* q, int queries,
                                       const std::vector<int>& before, float* lse) {
  const int hk = m_shape.kv_heads, hq = m_shape.q_heads, d = m_shape.head_dim;
  std::vector<int> lengths(static_cast<std::size_t>(queries) * hk);
  int most = 0;
  for (int i = 0; i < queries; ++i)
    for (int h = 0; h < hk; ++h) {
      const int rows = before[static_cast<std::size_t>(h)] + i + 1;
      lengths[static_cast<std::size_t>(i) * hk + h] = rows;
      most = std::max(most, rows);
    }
  upload_ints(lengths, m_decode_lengths);
  decode_args<element> a;
  a.kv = cache_view();
  a.kv.max_pages = 0;  // every query reads the one page of its head
  a.q = q;
  a.q_batch_stride = static_cast<std::int64_t>(hq) * d;
  a.batch = queries;
  a.q_heads = hq;
  a.lengths = m_decode_lengths.data();
  a.max_rows = most;
  a.scale = m_scale;
  plan_decode(a, m_workspace, m_sms);
  const std::size_t out = static_cast<std::size_t>(queries) * hq * d;
  if (m_q_out.size() < out) m_q_out.resize(out);
  decode<element, float>(a, row_mode::dense, m_q_out.data(), a.q_batch_stride, m_stream, lse);
}

void prompt_compress_method::cache_weights(const element* q, const float* lse, int queries,
                                           const std::vector<int>& before, bool accumulate,
                                           float* weights) {
  upload_ints(before, m_before);
  const int most = *std::max_element(before.begin(), before.end()) + queries;
  query_weights(cache_keys(), q, static_cast<std::int64_t>(m_shape.q_heads) * m_shape.head_dim, lse,
                queries, m_shape, m_before.data(), most, m_scale, accumulate, weights, m_capacity,
                m_stream);
}

void prompt_compress_method::keep_cache_rows(const std::vector<std::vector<int>>& rows,
                                             const std::vector<device_buffer<float>*>& states) {
  const int hk = m_shape.kv_heads, d = m_shape.head_dim;
  ATTNBENCH_ASSERT(rows.size() == static_cast<std::size_t>(hk));
  std::size_t most = 0;
  for (const auto& r : rows) most = std::max(most, r.size());
  std::vector<int> flat(std::max<std::size_t>(1, most * rows.size()), 0), counts;
  for (std::size_t h = 0; h < rows.size(); ++h) {
    std::copy(rows[h].begin(), rows[h].end(), flat.begin() + static_cast<std::ptrdiff_t>(h * most));
    counts.push_back(static_cast<int>(rows[h].size()));
    auto& pos = m_positions[h];
    std::vector<std::int64_t> kept;
    kept.reserve(rows[h].size());
    for (int r : rows[h]) {
      ATTNBENCH_ASSERT(r >= 0 && static_cast<std::size_t>(r) < pos.size());
      kept.push_back(pos[static_cast<std::size_t>(r)]);
    }
    pos = std::move(kept);
  }
  upload_ints(flat, m_rows_keep);
  upload_ints(counts, m_keep_count);
  if (most == 0) return;
  const std::size_t elems = static_cast<std::size_t>(hk) * m_capacity * d;
  const dim3 grid(static_cast<unsigned>(ceil_div(static_cast<std::int64_t>(most), warp_rows)),
                  static_cast<unsigned>(hk));
  // 16-byte items: head_dim bf16 values are head_dim / 8 of them.
  const int width = d * static_cast<int>(sizeof(element)) / 16;
  for (auto [buf, scratch] : {std::pair{&m_k, &m_scratch_k}, std::pair{&m_v, &m_scratch_v}}) {
    if (scratch->size() != elems) scratch->resize(elems);
    gather_head_rows_kernel<uint4><<<grid, warp_rows * 32, 0, m_stream>>>(
        reinterpret_cast<const uint4*>(buf->data()), m_capacity,
        reinterpret_cast<uint4*>(scratch->data()), m_capacity, width, m_rows_keep.data(),
        static_cast<std::int64_t>(most), m_keep_count.data());
    ATTNBENCH_CUDA_LAUNCHED();
    std::swap(*buf, *scratch);
  }
  for (device_buffer<float>* state : states) {
    if (m_scratch_state.size() != state->size()) m_scratch_state.resize(state->size());
    gather_head_rows_kernel<float><<<grid, warp_rows * 32, 0, m_stream>>>(
        state->data(), m_capacity, m_scratch_state.data(), m_capacity, 1, m_rows_keep.data(),
        static_cast<std::int64_t>(most), m_keep_count.data());
    ATTNBENCH_CUDA_LAUNCHED();
    std::swap(*state, m_scratch_state);
  }
}

std::vector<std::vector<int>> prompt_compress_method::newest_and_best(
    const float* state, const std::vector<int>& rows, const std::vector<int>& protect, int count) {
  const std::size_t hk = rows.size();
  std::vector<int> n(hk), take(hk);
  for (std::size_t h = 0; h < hk; ++h) {
    const bool shrinks = rows[h] > count;
    n[h] = shrinks ? rows[h] - protect[h] : rows[h];
    take[h] = shrinks ? count - protect[h] : rows[h];
  }
  auto kept = top_rows(state, m_capacity, n, take);
  for (std::size_t h = 0; h < hk; ++h)
    for (int r = n[h]; r < rows[h]; ++r) kept[h].push_back(r);
  return kept;
}

void prompt_compress_method::fill_state(float* state, const std::vector<int>& first, int count,
                                        float value) {
  if (count <= 0) return;
  upload_ints(first, m_before);
  const dim3 grid(static_cast<unsigned>(ceil_div(count, 128)),
                  static_cast<unsigned>(m_shape.kv_heads));
  fill_rows_kernel<<<grid, 128, 0, m_stream>>>(state, m_capacity, m_before.data(), count, value);
  ATTNBENCH_CUDA_LAUNCHED();
}

void prompt_compress_method::gather_state(const float* src, std::int64_t src_stride,
                                          const std::vector<std::vector<int>>& rows, float* dst) {
  std::size_t most = 0;
  for (const auto& r : rows) most = std::max(most, r.size());
  if (most == 0) return;
  std::vector<int> flat(most * rows.size(), 0), counts;
  for (std::size_t h = 0; h < rows.size(); ++h) {
    std::copy(rows[h].begin(), rows[h].end(), flat.begin() + static_cast<std::ptrdiff_t>(h * most));
    counts.push_back(static_cast<int>(rows[h].size()));
  }
  upload_ints(flat, m_rows_keep);
  upload_ints(counts, m_keep_count);
  const dim3 grid(static_cast<unsigned>(ceil_div(static_cast<std::int64_t>(most), warp_rows)),
                  static_cast<unsigned>(rows.size()));
  gather_head_rows_kernel<float><<<grid, warp_rows * 32, 0, m_stream>>>(
      src, src_stride, dst, m_capacity, 1, m_rows_keep.data(), static_cast<std::int64_t>(most),
      m_keep_count.data());
  ATTNBENCH_CUDA_LAUNCHED();
}

std::vector<int> prompt_compress_method::cached_rows() const {
  std::vector<int> rows;
  for (const auto& pos : m_positions) rows.push_back(static_cast<int>(pos.size()));
  return rows;
}

method_info prompt_compress_cuda_info(std::string name, std::string paper, std::string summary,
                                      std::vector<param_def> params) {
  method_info info;
  info.name = name;
  info.backend = "cuda";
  info.paper = std::move(paper);
  info.summary = std::move(summary);
  info.params = std::move(params);
  info.factory = [name](const param_values& values) -> std::unique_ptr<kv_method> {
    return std::make_unique<prompt_compress_method>(make_device_scorer(name, values), values);
  };
  return info;
}

}  // namespace attnbench::cuda
