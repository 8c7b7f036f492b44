#include "adapters/common/cuda/cache_method_cuda.hpp"

#include <algorithm>

#include "adapters/common/cuda/dispatch.cuh"
#include "adapters/common/cuda/gather.cuh"
#include "harness/error.hpp"

namespace attnbench::cuda {

std::optional<std::string> cuda_unsupported_reason(const attention_problem& problem) {
  const model_shape& s = problem.shape;
  std::string why = unsupported_shape("the CUDA kernels", s.head_dim, s.q_heads, s.kv_heads);
  if (why.empty()) return std::nullopt;
  return why;
}

std::optional<std::string> device_cache_method::unsupported_reason(
    const attention_problem& problem) const {
  return cuda_unsupported_reason(problem);
}

std::int64_t device_cache_method::held_rows(const attention_problem& problem) const {
  const std::int64_t total = std::max(problem.max_tokens, problem.context_tokens);
  if (m_budget < 0) return total;
  const std::int64_t decoded = std::max<std::int64_t>(0, total - problem.context_tokens);
  return std::min(total, std::min(m_budget, problem.context_tokens) + decoded);
}

void device_cache_method::prepare(const attention_problem& problem, const exec_context& ctx) {
  auto why = unsupported_reason(problem);
  ATTNBENCH_CHECK(!why, unsupported, *why);
  m_shape = problem.shape;
  m_scale = problem.softmax_scale();
  m_stream = static_cast<cudaStream_t>(ctx.stream);
  m_seed = ctx.seed;
  m_prompt_queries = 0;
  m_sms = multiprocessors();
  m_budget = plan(problem);
  // One page per head: the capacity rounds up to a power of two (the page size of the layout).
  const std::int64_t held = std::max<std::int64_t>(1, held_rows(problem));
  m_capacity = 1;
  while (m_capacity < held) m_capacity *= 2;
  const std::size_t rows = static_cast<std::size_t>(m_shape.kv_heads) * m_capacity;
  m_k.resize(rows * m_shape.head_dim);
  m_v.resize(rows * m_shape.head_dim);
  upload_ints({0}, m_block_table);
  m_positions.assign(static_cast<std::size_t>(m_shape.kv_heads), {});
  m_length = 0;
  m_keys_scored = m_kv_bytes_read = m_attend_calls = 0;
  m_prepared = true;
}

paged_kv<element> device_cache_method::cache_view() const {
  paged_kv<element> kv;
  kv.k = m_k.data();
  kv.v = m_v.data();
  kv.block_table = m_block_table.data();
  kv.max_pages = 1;
  kv.page_shift = log2_exact(m_capacity);
  kv.kv_heads = m_shape.kv_heads;
  kv.head_dim = m_shape.head_dim;
  return kv;
}

void device_cache_method::upload_ints(const std::vector<int>& host, device_buffer<int>& dev) {
  if (dev.size() < host.size()) dev.resize(host.size());
  if (host.empty()) return;
  ATTNBENCH_CUDA(cudaMemcpyAsync(dev.data(), host.data(), host.size() * sizeof(int),
                                 cudaMemcpyHostToDevice, m_stream));
  // The host vector may die before the copy runs: pageable copies are staged, but wait anyway.
  ATTNBENCH_CUDA(cudaStreamSynchronize(m_stream));
}

void upload_rows(tensor_view t, device_buffer<element>& dev, device_buffer<float>& staging,
                 cudaStream_t stream) {
  const std::size_t n = t.size();
  if (staging.size() < n) staging.resize(n);
  if (dev.size() < n) dev.resize(n);
  if (n == 0) return;
  ATTNBENCH_CUDA(
      cudaMemcpyAsync(staging.data(), t.data, n * sizeof(float), cudaMemcpyHostToDevice, stream));
  convert(staging.data(), dev.data(), n, stream);
}

void download_rows(const device_buffer<float>& dev, tensor_view out, cudaStream_t stream) {
  if (out.size() == 0) return;
  ATTNBENCH_CUDA(
      cudaMemcpyAsync(out.data, dev.data(), out.bytes(), cudaMemcpyDeviceToHost, stream));
  ATTNBENCH_CUDA(cudaStreamSynchronize(stream));
}

void check_prefill_inputs(bool prepared, std::int64_t length, const model_shape& shape,
                          tensor_view k, tensor_view v) {
  ATTNBENCH_CHECK(prepared && length == 0, internal,
                  "prefill must follow prepare and come before any append");
  ATTNBENCH_CHECK(k.heads == shape.kv_heads && k.head_dim == shape.head_dim && v.tokens == k.tokens,
                  internal, "prefill k/v shapes do not match the problem");
}

void device_cache_method::upload(tensor_view t, device_buffer<element>& dev) {
  upload_rows(t, dev, m_staging, m_stream);
}

void device_cache_method::download(const device_buffer<float>& dev, tensor_view out) {
  download_rows(dev, out, m_stream);
}

prefill_args prompt_prefill_args(const model_shape& shape, float scale, const element* q,
                                 const element* k, const element* v, element* out, int tokens,
                                 std::int64_t sinks, std::int64_t window) {
  prefill_args a = token_major_prefill(q, k, v, out, 1, tokens, tokens, shape.q_heads,
                                       shape.kv_heads, shape.head_dim, scale, true);
  a.sinks = sinks;
  a.window = window;
  return a;
}

void device_cache_method::prompt_outputs(const element* q, const element* k, const element* v,
                                         int tokens, element* out) {
  const sink_window_policy policy = prompt_policy();
  const bool masked = policy.evicts();
  flash_prefill<element>(prompt_prefill_args(m_shape, m_scale, q, k, v, out, tokens,
                                             masked ? policy.sinks : 0, masked ? policy.window : 0),
                         m_stream);
}

std::vector<std::vector<int>> device_cache_method::select_prompt(const element*, const element*,
                                                                 const element*, int tokens) {
  std::vector<int> all(static_cast<std::size_t>(tokens));
  for (int t = 0; t < tokens; ++t) all[static_cast<std::size_t>(t)] = t;
  return std::vector<std::vector<int>>(static_cast<std::size_t>(m_shape.kv_heads), all);
}

void device_cache_method::prefill(tensor_view q, tensor_view k, tensor_view v,
                                  tensor_view* maybe_out) {
  check_prefill_inputs(m_prepared, m_length, m_shape, k, v);
  const int tokens = k.tokens, d = m_shape.head_dim;
  upload(k, m_k_in);
  upload(v, m_v_in);
  if (q.data) upload(q, m_q_in);
  if (maybe_out) {
    ATTNBENCH_CHECK(q.tokens == tokens && maybe_out->tokens == tokens, internal,
                    "prefill q/out shapes do not match");
    const std::size_t n = maybe_out->size();
    if (m_out16.size() < n) m_out16.resize(n);
    if (m_out.size() < n) m_out.resize(n);
    prompt_outputs(m_q_in.data(), m_k_in.data(), m_v_in.data(), tokens, m_out16.data());
    convert(m_out16.data(), m_out.data(), n, m_stream);
    download(m_out, *maybe_out);
  }
  const auto kept =
      select_prompt(q.data ? m_q_in.data() : nullptr, m_k_in.data(), m_v_in.data(), tokens);
  ATTNBENCH_ASSERT(kept.size() == static_cast<std::size_t>(m_shape.kv_heads));
  std::size_t most = 0;
  for (const auto& rows : kept) most = std::max(most, rows.size());
  ATTNBENCH_CHECK(static_cast<std::int64_t>(most) <= m_capacity, internal,
                  "kept rows exceed the cache capacity");
  std::vector<int> flat(most * kept.size(), 0), counts;
  for (std::size_t h = 0; h < kept.size(); ++h) {
    std::copy(kept[h].begin(), kept[h].end(), flat.begin() + static_cast<std::ptrdiff_t>(h * most));
    counts.push_back(static_cast<int>(kept[h].size()));
    m_positions[h].assign(kept[h].begin(), kept[h].end());
  }
  upload_ints(flat, m_rows_dev);
  upload_ints(counts, m_count_dev);
  if (most > 0) {
    const dim3 grid(static_cast<unsigned>(ceil_div(static_cast<std::int64_t>(most), 8)),
                    static_cast<unsigned>(m_shape.kv_heads));
    gather_rows_kernel<element><<<grid, 256, 0, m_stream>>>(
        m_k_in.data(), m_shape.kv_heads, d, m_rows_dev.data(), static_cast<std::int64_t>(most),
        m_count_dev.data(), m_k.data(), m_capacity, 0);
    ATTNBENCH_CUDA_LAUNCHED();
    gather_rows_kernel<element><<<grid, 256, 0, m_stream>>>(
        m_v_in.data(), m_shape.kv_heads, d, m_rows_dev.data(), static_cast<std::int64_t>(most),
        m_count_dev.data(), m_v.data(), m_capacity, 0);
    ATTNBENCH_CUDA_LAUNCHED();
  }
  m_length = tokens;
  m_prompt_queries = q.data ? tokens : 0;
  extend_index();
  ATTNBENCH_CUDA(cudaStreamSynchronize(m_stream));
}

void device_cache_method::append(tensor_view k, tensor_view v) {
  ATTNBENCH_CHECK(m_prepared, internal, "prepare must be called first");
  const int n = k.tokens, d = m_shape.head_dim;
  ATTNBENCH_CHECK(k.heads == m_shape.kv_heads && k.head_dim == d && v.tokens == n, internal,
                  "append k/v shapes do not match the problem");
  upload(k, m_k_in);
  upload(v, m_v_in);
  const std::size_t row_bytes = static_cast<std::size_t>(d) * sizeof(element);
  for (int h = 0; h < m_shape.kv_heads; ++h) {
    auto& pos = m_positions[static_cast<std::size_t>(h)];
    ATTNBENCH_CHECK(static_cast<std::int64_t>(pos.size()) + n <= m_capacity, internal,
                    "append overflows the cache capacity");
    const std::size_t dst = (static_cast<std::size_t>(h) * m_capacity + pos.size()) * d;
    const std::size_t src = static_cast<std::size_t>(h) * d;
    const std::size_t pitch = static_cast<std::size_t>(m_shape.kv_heads) * row_bytes;
    ATTNBENCH_CUDA(cudaMemcpy2DAsync(m_k.data() + dst, row_bytes, m_k_in.data() + src, pitch,
                                     row_bytes, n, cudaMemcpyDeviceToDevice, m_stream));
    ATTNBENCH_CUDA(cudaMemcpy2DAsync(m_v.data() + dst, row_bytes, m_v_in.data() + src, pitch,
                                     row_bytes, n, cudaMemcpyDeviceToDevice, m_stream));
    for (int i = 0; i < n; ++i) pos.push_back(m_length + i);
  }
  m_length += n;
  after_append(n);
  extend_index();
  ATTNBENCH_CUDA(cudaStreamSynchronize(m_stream));
}

void device_cache_method::erase_rows(std::int64_t first, std::int64_t count) {
  if (count <= 0) return;
  const int d = m_shape.head_dim;
  const std::size_t row_bytes = static_cast<std::size_t>(d) * sizeof(element);
  const std::size_t pitch = static_cast<std::size_t>(m_capacity) * row_bytes;
  const auto rows = static_cast<std::int64_t>(m_positions[0].size());
  const std::int64_t tail = rows - first - count;
  if (tail > 0) {
    // The tail may overlap its destination: copy it out and back (cudaMemcpy forbids overlap).
    if (m_scratch.size() < static_cast<std::size_t>(m_shape.kv_heads * tail * d))
      m_scratch.resize(static_cast<std::size_t>(m_shape.kv_heads * tail * d));
    for (auto* buf : {&m_k, &m_v}) {
      ATTNBENCH_CUDA(cudaMemcpy2DAsync(m_scratch.data(), tail * row_bytes,
                                       buf->data() + (first + count) * d, pitch, tail * row_bytes,
                                       m_shape.kv_heads, cudaMemcpyDeviceToDevice, m_stream));
      ATTNBENCH_CUDA(cudaMemcpy2DAsync(buf->data() + first * d, pitch, m_scratch.data(),
                                       tail * row_bytes, tail * row_bytes, m_shape.kv_heads,
                                       cudaMemcpyDeviceToDevice, m_stream));
    }
  }
  for (auto& pos : m_positions) pos.erase(pos.begin() + first, pos.begin() + first + count);
}

int device_cache_method::rows_up_to(int head, std::int64_t position) const {
  const auto& pos = m_positions[static_cast<std::size_t>(head)];
  return static_cast<int>(std::upper_bound(pos.begin(), pos.end(), position) - pos.begin());
}

void device_cache_method::run_decode(const element* q, float* out, row_mode mode, const int* rows,
                                     std::int64_t rows_stride, const int* lengths,
                                     const int* limits, int max_rows, float* maybe_lse,
                                     int list_page_shift) {
  decode_args<element> a;
  a.kv = cache_view();
  a.q = q;
  a.q_batch_stride = static_cast<std::int64_t>(m_shape.q_heads) * m_shape.head_dim;
  a.batch = 1;
  a.q_heads = m_shape.q_heads;
  a.lengths = lengths;
  a.rows = rows;
  a.rows_stride = rows_stride;
  a.limits = limits;
  a.max_rows = max_rows;
  a.list_page_shift = list_page_shift;
  a.scale = m_scale;
  plan_decode(a, m_workspace, m_sms);
  decode<element, float>(a, mode, out, a.q_batch_stride, m_stream, maybe_lse);
}

std::pair<std::uint64_t, std::uint64_t> device_cache_method::decode_query(
    const element* q, float* out, const std::vector<int>& visible) {
  upload_ints(visible, m_lengths);
  const int most = *std::max_element(visible.begin(), visible.end());
  run_decode(q, out, row_mode::dense, nullptr, 0, m_lengths.data(), nullptr, most);
  std::uint64_t rows = 0;
  for (int r : visible) rows += static_cast<std::uint64_t>(r);
  return {rows * static_cast<std::uint64_t>(m_shape.group_size()), rows * token_bytes()};
}

void device_cache_method::attend(tensor_view q, tensor_view out) {
  ATTNBENCH_CHECK(m_prepared, internal, "prepare must be called first");
  const int n = q.tokens, hq = m_shape.q_heads, d = m_shape.head_dim;
  ATTNBENCH_CHECK(q.heads == hq && q.head_dim == d && out.tokens == n && n <= m_length, internal,
                  "attend q/out shapes do not match the problem");
  upload(q, m_q_in);
  const std::size_t size = out.size();
  if (m_out.size() < size) m_out.resize(size);
  std::vector<int> visible(static_cast<std::size_t>(m_shape.kv_heads));
  m_call_queries = n;
  for (int i = 0; i < n; ++i) {
    m_query = i;
    // Query i sits at position m_length - n + i and sees the cached rows up to it.
    for (int h = 0; h < m_shape.kv_heads; ++h)
      visible[static_cast<std::size_t>(h)] = rows_up_to(h, m_length - n + i);
    const std::size_t at = static_cast<std::size_t>(i) * hq * d;
    const auto [keys, bytes] = decode_query(m_q_in.data() + at, m_out.data() + at, visible);
    m_keys_scored += keys;
    m_kv_bytes_read += bytes;
  }
  m_attend_calls += static_cast<std::uint64_t>(n);
  download(m_out, out);
}

cache_stats device_cache_method::stats() const {
  cache_stats s;
  std::uint64_t rows = 0;
  for (const auto& pos : m_positions) {
    s.resident_tokens.push_back(static_cast<std::int64_t>(pos.size()));
    rows += pos.size();
  }
  s.resident_bytes = rows * token_bytes();
  s.keys_scored = m_keys_scored;
  s.kv_bytes_read = m_kv_bytes_read;
  s.attend_calls = m_attend_calls;
  s.budget_tokens = m_budget;
  s.simulated = false;
  return s;
}

}  // namespace attnbench::cuda
