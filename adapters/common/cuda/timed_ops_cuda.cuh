/// Device inputs of the CUDA timed ops (harness/timed_op.hpp), built once per op_shape and never
/// timed: hashed (non-zero, non-constant) bf16 / fp16 Q, K, V, the paged decode cache with a block
/// table that interleaves the sequences' pages (so a paged run really gathers), and the dense
/// prefill and decode ops, which the dense, sparse and cuBLAS ops build on. C++17.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "adapters/common/cuda/cuda_common.cuh"
#include "adapters/common/cuda/dispatch.cuh"
#include "adapters/common/cuda/kernels.hpp"
#include "harness/timed_op.hpp"

namespace attnbench::cuda {

/// Checks of every CUDA timed op; throws unsupported (record "skipped") with the reason.
inline void check_op_shape(const op_shape& s) {
  check_dtype(s.dtype);
  check_shape("cuda ops", s.head_dim, s.q_heads, s.kv_heads);
  ATTNBENCH_CHECK(s.page_size == 0 || log2_exact(s.page_size) >= 3, unsupported,
                  "cuda page_size must be a power of two >= 8, not " << s.page_size);
  ATTNBENCH_CHECK(s.batch >= 1 && s.length >= 1 && s.length < (std::int64_t{1} << 31), unsupported,
                  "cuda ops need batch >= 1 and 1 <= length < 2^31");
}

/// Prefill inputs: q, o [batch, length, q_heads, d]; k, v [batch, length, kv_heads, d].
template <class T>
struct prefill_inputs {
  device_buffer<T> q, k, v, o;
  prefill_args args;

  explicit prefill_inputs(const op_shape& s) {
    const std::size_t tokens = static_cast<std::size_t>(s.batch) * s.length;
    q.resize(tokens * s.q_heads * s.head_dim);
    o.resize(q.size());
    k.resize(tokens * s.kv_heads * s.head_dim);
    v.resize(k.size());
    fill_hash(q.data(), q.size(), 1u, 1.0f, nullptr);
    fill_hash(k.data(), k.size(), 2u, 1.0f, nullptr);
    fill_hash(v.data(), v.size(), 3u, 1.0f, nullptr);
    ATTNBENCH_CUDA(cudaDeviceSynchronize());
    const int n = static_cast<int>(s.length);
    args = token_major_prefill(q.data(), k.data(), v.data(), o.data(), s.batch, n, n, s.q_heads,
                               s.kv_heads, s.head_dim,
                               1.0f / std::sqrt(static_cast<float>(s.head_dim)), s.causal);
  }
  std::uint64_t bytes() const { return q.bytes() + k.bytes() + v.bytes() + o.bytes(); }
};

/// Decode inputs: one query token per sequence (q, out [batch, q_heads, d]) and `length` cached
/// tokens per sequence in a paged cache. page_size 0 means contiguous: one page per sequence.
template <class T>
struct decode_inputs {
  device_buffer<T> q, out, k, v;
  device_buffer<int> block_table, lengths;
  paged_kv<T> kv;
  int page_size = 0;
  int pages_per_seq = 0;

  explicit decode_inputs(const op_shape& s) {
    page_size = s.page_size > 0 ? s.page_size : 1;
    if (s.page_size == 0)
      while (page_size < s.length) page_size *= 2;
    pages_per_seq = ceil_div(s.length, page_size);
    const std::size_t pages = static_cast<std::size_t>(s.batch) * pages_per_seq;
    const std::size_t elems = pages * s.kv_heads * page_size * s.head_dim;
    k.resize(elems);
    v.resize(elems);
    q.resize(static_cast<std::size_t>(s.batch) * s.q_heads * s.head_dim);
    out.resize(q.size());
    fill_hash(k.data(), elems, 4u, 1.0f, nullptr);
    fill_hash(v.data(), elems, 5u, 1.0f, nullptr);
    fill_hash(q.data(), q.size(), 6u, 1.0f, nullptr);
    // Logical page i of sequence b lives at physical page i * batch + b: consecutive pages of
    // a sequence are never adjacent when batch > 1.
    std::vector<int> table(pages),
        len(static_cast<std::size_t>(s.batch) * s.kv_heads, static_cast<int>(s.length));
    for (int b = 0; b < s.batch; ++b)
      for (int i = 0; i < pages_per_seq; ++i)
        table[static_cast<std::size_t>(b) * pages_per_seq + i] = i * s.batch + b;
    block_table.resize(table.size());
    lengths.resize(len.size());
    ATTNBENCH_CUDA(cudaMemcpy(block_table.data(), table.data(), table.size() * sizeof(int),
                              cudaMemcpyHostToDevice));
    ATTNBENCH_CUDA(
        cudaMemcpy(lengths.data(), len.data(), len.size() * sizeof(int), cudaMemcpyHostToDevice));
    ATTNBENCH_CUDA(cudaDeviceSynchronize());
    kv.k = k.data();
    kv.v = v.data();
    kv.block_table = block_table.data();
    kv.max_pages = pages_per_seq;
    kv.page_shift = log2_exact(page_size);
    kv.kv_heads = s.kv_heads;
    kv.head_dim = s.head_dim;
  }

  /// Decode arguments over `max_rows` rows per (sequence, KV head).
  decode_args<T> args(const op_shape& s, int max_rows) const {
    decode_args<T> a;
    a.kv = kv;
    a.q = q.data();
    a.q_batch_stride = static_cast<std::int64_t>(s.q_heads) * s.head_dim;
    a.batch = s.batch;
    a.q_heads = s.q_heads;
    a.lengths = lengths.data();
    a.max_rows = max_rows;
    a.scale = 1.0f / std::sqrt(static_cast<float>(s.head_dim));
    return a;
  }
  std::uint64_t bytes() const {
    return k.bytes() + v.bytes() + q.bytes() + out.bytes() + block_table.bytes() + lengths.bytes();
  }
};

/// Dense prefill (flash kernel) or dense decode (split-KV over the paged cache).
template <class T>
class dense_cuda_op final : public timed_op {
 public:
  explicit dense_cuda_op(const op_shape& s) : m_shape(s) {
    check_op_shape(s);
    if (s.phase == "prefill") {
      m_prefill = std::make_unique<prefill_inputs<T>>(s);
    } else {
      m_decode = std::make_unique<decode_inputs<T>>(s);
      m_args = m_decode->args(s, static_cast<int>(s.length));
      plan_decode(m_args, m_workspace, multiprocessors());
    }
  }
  void run(void* stream) override {
    auto st = static_cast<cudaStream_t>(stream);
    if (m_prefill)
      flash_prefill<T>(m_prefill->args, st);
    else
      decode<T, T>(m_args, row_mode::dense, m_decode->out.data(), m_args.q_batch_stride, st);
  }
  double flops() const override {
    const double b = m_shape.batch, h = m_shape.q_heads, n = static_cast<double>(m_shape.length),
                 d = m_shape.head_dim;
    if (m_prefill) return 4 * b * h * n * n * d * (m_shape.causal ? 0.5 : 1.0);
    return 4 * b * h * n * d;
  }
  double kv_bytes() const override {
    return 2.0 * m_shape.batch * m_shape.kv_heads * static_cast<double>(m_shape.length) *
           m_shape.head_dim * sizeof(T);
  }
  std::uint64_t resident_bytes() const override {
    return (m_prefill ? m_prefill->bytes() : m_decode->bytes()) + m_workspace.part_out.bytes() +
           m_workspace.part_lse.bytes();
  }

 private:
  op_shape m_shape;
  std::unique_ptr<prefill_inputs<T>> m_prefill;
  std::unique_ptr<decode_inputs<T>> m_decode;
  decode_args<T> m_args;
  decode_workspace m_workspace;
};

/// Instantiates Op<bf16> or Op<fp16> for the shape's dtype.
template <template <class> class Op, class... Args>
std::unique_ptr<timed_op> make_typed_op(const op_shape& s, Args&&... args) {
  check_op_shape(s);
  return dispatch_dtype(s.dtype, [&](auto tag) -> std::unique_ptr<timed_op> {
    return std::make_unique<Op<typename decltype(tag)::type>>(s, std::forward<Args>(args)...);
  });
}

/// The decode op of a method that compresses its cache once and then reads all of it (snapkv's
/// compacted cache, a sink/window cache): the dense split-KV decode over the `kept` rows each
/// sequence holds. Its prefill (scoring, compaction) is not timed here: unsupported.
inline std::unique_ptr<timed_op> make_compacted_decode_op(const op_shape& s, std::int64_t kept,
                                                          const std::string& method) {
  ATTNBENCH_CHECK(s.phase == "decode", unsupported,
                  "cuda " << method << " times decode only (a dense decode over its kept rows)");
  op_shape kept_shape = s;
  kept_shape.length = std::max<std::int64_t>(1, std::min(kept, s.length));
  return make_typed_op<dense_cuda_op>(kept_shape);
}

}  // namespace attnbench::cuda
