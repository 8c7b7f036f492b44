/// hip on the GPU (adapters/hip/hip.hpp for the rule and the search, hip_cpu.cpp for the CPU twin),
/// on the shared query-sparse path (query_sparse_cuda.hpp): one CTA per KV head runs the twin's
/// hierarchical search on the device. The branches stay sorted by their first row (a branch is
/// replaced in place by itself or its two halves), so the radix top-k, ties to the lower index,
/// keeps the k best by (score, earlier branch) as hip::keep_best does; a branch's score is the
/// group's summed logit with its centre key (one thread per branch). The leaves, the sinks and the
/// window become the index list the split-KV decode reads; the keys scored, which depend on which
/// branches survive, are read back for the accounting.
/// Differs from the CPU twin in bf16 keys and queries and fused multiply-adds in the scores
/// (near-tied branches may rank differently), and in counting a scored key as a bf16 row.
/// Also the latency suite's timed op (decode: search + sparse decode; prefill: dense).
#include <cub/block/block_scan.cuh>

#include <algorithm>

#include "adapters/common/cuda/query_sparse_cuda.hpp"
#include "adapters/common/cuda/query_sparse_op.cuh"
#include "adapters/common/cuda/sparse_select.cuh"
#include "adapters/hip/hip.hpp"

namespace attnbench::cuda {
namespace {

struct hip_geometry {
  int visible = 0;
  int sinks = 0;       // rows [0, sinks) always read
  int middle_end = 0;  // rows [middle_end, visible) always read (the window)
  int searched = 0;    // budget left to the search (0: no search)
  int leaf = 1;        // leaf size
  int k = 1;           // branches kept per round
};

/// Branches of one segment: [capacity] first rows, ends and scores.
struct branch_list {
  int* begin;
  int* end;
  float* score;
};

// This thread's chunk [lo, hi) of n items (contiguous chunks in thread order).
__device__ inline void chunk_of(int n, int& lo, int& hi) {
  const int per = (n + detail::select_threads - 1) / detail::select_threads;
  lo = min(n, static_cast<int>(threadIdx.x) * per);
  hi = min(n, lo + per);
}

// Exclusive prefix of `local` over the CTA's threads (thread order); total gets the sum.
__device__ inline int exclusive_prefix(int local, int& total) {
  using scan = cub::BlockScan<int, detail::select_threads>;
  __shared__ typename scan::TempStorage storage;
  int offset = 0;
  scan(storage).ExclusiveSum(local, offset, total);
  __syncthreads();
  return offset;
}

// 1024 threads per CTA (the radix top-k's shape): the register cap keeps the launch possible.
template <class T>
__global__ void __launch_bounds__(detail::select_threads)
    hip_select_kernel(paged_kv<T> kv, const T* q, std::int64_t q_batch_stride, int q_heads,
                      hip_geometry n, int* begins, int* ends, float* scores, int* order,
                      std::int64_t capacity, int* rows, std::int64_t rows_stride, int* counts,
                      int* scored_out) {
  const int s = blockIdx.x, b = s / kv.kv_heads, h = s % kv.kv_heads;
  const int group = q_heads / kv.kv_heads, d = kv.head_dim;
  int* out = rows + s * rows_stride;
  detail::write_range(0, n.sinks, out);
  int written = n.sinks, scored = 0;
  if (n.searched > 0) {
    const std::int64_t base = s * 2 * capacity;
    branch_list cur{begins + base, ends + base, scores + base};
    branch_list next{begins + base + capacity, ends + base + capacity, scores + base + capacity};
    int* idx = order + s * capacity;
    // The sum of the group's logits with the key at searched row `row` (rows start at the sinks).
    auto score = [&](int row) {
      const T* key = kv.k + kv.offset(b, h, n.sinks + row);
      float sum = 0.0f;
      for (int g = 0; g < group; ++g) {
        const T* qg = q + b * q_batch_stride + static_cast<std::int64_t>(h * group + g) * d;
        for (int i = 0; i < d; ++i) sum += to_float(qg[i]) * to_float(key[i]);
      }
      return sum;
    };
    auto put = [&](branch_list& l, int at, int first, int last) {
      l.begin[at] = first;
      l.end[at] = last;
      l.score[at] = score(first + (last - first - 1) / 2);  // hip::representative
    };
    // Keeps the k best of l's `count` branches (sorted by first row) in `into`, still sorted.
    auto keep = [&](branch_list& l, int count, branch_list& into) {
      detail::block_top_k(l.score, count, n.k, idx, 0);
      __syncthreads();
      for (int j = threadIdx.x; j < n.k; j += blockDim.x) {
        into.begin[j] = l.begin[idx[j]];
        into.end[j] = l.end[idx[j]];
        into.score[j] = l.score[idx[j]];
      }
      __syncthreads();
    };
    const std::int64_t tokens = n.middle_end - n.sinks;
    const std::int64_t leaves = (tokens + n.leaf - 1) / n.leaf;
    const int first = static_cast<int>(leaves < 2 * n.k ? leaves : 2 * n.k);
    for (int i = threadIdx.x; i < first; i += blockDim.x)
      put(cur, i, static_cast<int>(tokens * i / first), static_cast<int>(tokens * (i + 1) / first));
    __syncthreads();
    scored = first;
    int count = first;
    if (count > n.k) {
      keep(cur, count, next);
      branch_list t = cur;
      cur = next;
      next = t;
      count = n.k;
    }
    for (;;) {
      int lo, hi;
      chunk_of(count, lo, hi);
      int local = 0;
      for (int i = lo; i < hi; ++i) local += cur.end[i] - cur.begin[i] <= n.leaf ? 1 : 2;
      int total = 0;
      int at = exclusive_prefix(local, total);
      if (total == count) break;
      for (int i = lo; i < hi; ++i) {
        const int first_row = cur.begin[i], last_row = cur.end[i];
        if (last_row - first_row <= n.leaf) {
          next.begin[at] = first_row;
          next.end[at] = last_row;
          next.score[at] = cur.score[i];
          ++at;
          continue;
        }
        const int mid = first_row + (last_row - first_row + 1) / 2;
        put(next, at, first_row, mid);
        put(next, at + 1, mid, last_row);
        at += 2;
      }
      __syncthreads();
      scored += 2 * (total - count);
      count = total;
      if (count > n.k) {
        keep(next, count, cur);
        count = n.k;
      } else {
        branch_list t = cur;
        cur = next;
        next = t;
      }
    }
    // The leaves, sorted by first row, then their rows.
    int lo, hi;
    chunk_of(count, lo, hi);
    int local = 0;
    for (int i = lo; i < hi; ++i) local += cur.end[i] - cur.begin[i];
    int total = 0;
    int at = written + exclusive_prefix(local, total);
    for (int i = lo; i < hi; ++i)
      for (int r = cur.begin[i]; r < cur.end[i]; ++r) out[at++] = n.sinks + r;
    written += total;
  }
  detail::write_range(n.middle_end, n.visible, out + written);
  if (threadIdx.x == 0) {
    counts[s] = written + n.visible - n.middle_end;
    scored_out[s] = scored;
  }
}

struct hip_state : sparse_state_base {
  explicit hip_state(const param_values& values)
      : block(values.get_int("block")),
        sinks(values.get_int("sinks")),
        window(values.get_int("window")) {}

  void reset(const sparse_geometry& geometry) {
    g = geometry;
    const std::int64_t budget = std::min(g.budget, g.max_tokens);
    const std::int64_t s = std::min(sinks, budget), w = std::min(window, budget - s);
    const std::int64_t searched = budget - s - w;
    const std::int64_t leaf = std::max<std::int64_t>(1, std::min(block, searched));
    capacity = 2 * std::max<std::int64_t>(1, searched / leaf) + 2;
    const auto segments = static_cast<std::size_t>(g.segments);
    begins.resize(segments * 2 * capacity);
    ends.resize(segments * 2 * capacity);
    scores.resize(segments * 2 * capacity);
    order.resize(segments * capacity);
    rows.resize(segments * static_cast<std::size_t>(g.list_rows()));
    counts.resize(segments);
    scored.resize(segments);
  }
  template <class T>
  void extend(const paged_kv<T>&, int, int, cudaStream_t) {}

  template <class T>
  sparse_rows select(const paged_kv<T>& kv, const T* q, std::int64_t q_batch_stride, int visible,
                     cudaStream_t stream) {
    const int list = g.list_rows();
    hip_geometry n;
    n.visible = visible;
    const std::int64_t s = std::min(sinks, g.budget), w = std::min(window, g.budget - s);
    const std::int64_t searched = g.budget - s - w;
    n.sinks = static_cast<int>(s);
    n.middle_end = static_cast<int>(visible - w);
    n.searched = static_cast<int>(std::max<std::int64_t>(0, searched));
    n.leaf = static_cast<int>(std::max<std::int64_t>(1, std::min(block, searched)));
    n.k = static_cast<int>(std::max<std::int64_t>(1, searched / n.leaf));
    hip_select_kernel<T><<<g.segments, detail::select_threads, 0, stream>>>(
        kv, q, q_batch_stride, g.q_heads, n, begins.data(), ends.data(), scores.data(),
        order.data(), capacity, rows.data(), list, counts.data(), scored.data());
    ATTNBENCH_CUDA_LAUNCHED();
    // rows_read -1: leaves differ in size by a row.
    sparse_rows r = index_lists(rows.data(), counts.data(), list, list, -1);
    r.scored = scored.data();
    r.keys_per_item = static_cast<std::uint64_t>(g.group());
    r.bytes_per_item = static_cast<std::uint64_t>(g.head_dim) * sizeof(T);
    return r;
  }
  std::uint64_t bytes() const {
    return begins.bytes() + ends.bytes() + scores.bytes() + order.bytes() + rows.bytes() +
           counts.bytes() + scored.bytes();
  }

  std::int64_t block, sinks, window;
  std::int64_t capacity = 1;  // branches per list
  sparse_geometry g;
  device_buffer<int> begins, ends;  // [segments][2][capacity]: current and next branches
  device_buffer<float> scores;      // [segments][2][capacity]
  device_buffer<int> order;         // [segments][capacity] top-k scratch
  device_buffer<int> rows;          // [segments][list_rows]
  device_buffer<int> counts;        // [segments]
  device_buffer<int> scored;        // [segments] keys scored by the search
};

template <class T>
using hip_op = query_sparse_op<T, hip_state>;

}  // namespace
}  // namespace attnbench::cuda

ATTNBENCH_REGISTER_METHOD(attnbench::cuda::cuda_method_info<
                          attnbench::cuda::query_sparse_adapter<attnbench::cuda::hip_state>>(
    "hip", "HiP Attention: Sparse Sub-Quadratic Attention with Hierarchical Attention Pruning",
    "per decode query, read sinks, a window and the leaves of a hierarchical top-k search over "
    "halving key branches scored by their centre key (bf16 CUDA kernels)",
    attnbench::hip::schema()));

ATTNBENCH_REGISTER_TIMED_OP("hip", "cuda",
                            [](const attnbench::method_instance& method,
                               const attnbench::op_shape& shape, const attnbench::exec_context&) {
                              return attnbench::cuda::make_typed_op<attnbench::cuda::hip_op>(
                                  shape, method.params);
                            });
