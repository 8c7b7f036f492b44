// Timing driver of the CUDA kernels (not a test): device copy bandwidth, then the registered
// timed ops (dense, quest, cublas_dense) and a sparse decode over per-head index lists, each timed
// with CUDA events after an L2 flush (2x the L2 size), median of `reps` calls. Prints one line per
// shape: time, TFLOP/s, KV GB/s.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "adapters/common/cuda/timed_ops_cuda.cuh"
#include "harness/method.hpp"
#include "harness/timed_op.hpp"

using namespace attnbench;

namespace {

struct flusher {
  void* buf = nullptr;
  std::size_t bytes = 0;
  flusher() {
    int l2 = 0;
    cudaDeviceGetAttribute(&l2, cudaDevAttrL2CacheSize, 0);
    bytes = 2 * static_cast<std::size_t>(l2);
    ATTNBENCH_CUDA(cudaMalloc(&buf, bytes));
  }
  void flush(cudaStream_t s) { ATTNBENCH_CUDA(cudaMemsetAsync(buf, 1, bytes, s)); }
};

template <class F>
double median_ms(F&& call, cudaStream_t s, flusher& fl, int reps) {
  cudaEvent_t a, b;
  cudaEventCreate(&a);
  cudaEventCreate(&b);
  for (int i = 0; i < 3; ++i) call();
  std::vector<float> t;
  for (int i = 0; i < reps; ++i) {
    fl.flush(s);
    cudaEventRecord(a, s);
    call();
    cudaEventRecord(b, s);
    ATTNBENCH_CUDA(cudaEventSynchronize(b));
    float ms = 0;
    cudaEventElapsedTime(&ms, a, b);
    t.push_back(ms);
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

void time_op(const std::string& spec, const op_shape& s, cudaStream_t st, flusher& fl) {
  const method_instance m = resolve_method(spec, "cuda");
  try {
    auto op = (*timed_op_registry::instance().find(m.info->name, "cuda"))(m, s, exec_context{});
    const double ms = median_ms([&] { op->run(st); }, st, fl, 15);
    std::printf("%-28s %-7s b=%d n=%-6lld causal=%d page=%-3d %9.3f ms %7.1f TFLOP/s %7.1f GB/s\n",
                spec.c_str(), s.phase.c_str(), s.batch, static_cast<long long>(s.length), s.causal,
                s.page_size, ms, op->flops() / ms / 1e9, op->kv_bytes() / ms / 1e6);
  } catch (const std::exception& e) {
    std::printf("%-28s %-7s n=%lld: %s\n", spec.c_str(), s.phase.c_str(),
                static_cast<long long>(s.length), e.what());
  }
  std::fflush(stdout);
}

// Sparse decode over a random sorted index list of keep * length tokens per (sequence, KV head).
void time_index_decode(const op_shape& s, double keep, cudaStream_t st, flusher& fl) {
  using T = __nv_bfloat16;
  cuda::decode_inputs<T> in(s);
  const int n = static_cast<int>(s.length), k = static_cast<int>(keep * n);
  const int segs = s.batch * s.kv_heads;
  std::vector<int> idx(static_cast<std::size_t>(segs) * k), len(segs, k);
  std::mt19937 rng(1);
  std::vector<int> all(n);
  for (int i = 0; i < n; ++i) all[i] = i;
  for (int g = 0; g < segs; ++g) {
    std::shuffle(all.begin(), all.end(), rng);
    std::sort(all.begin(), all.begin() + k);
    std::copy(all.begin(), all.begin() + k, idx.begin() + static_cast<std::ptrdiff_t>(g) * k);
  }
  cuda::device_buffer<int> d_idx(idx.size()), d_len(len.size());
  cudaMemcpy(d_idx.data(), idx.data(), idx.size() * 4, cudaMemcpyHostToDevice);
  cudaMemcpy(d_len.data(), len.data(), len.size() * 4, cudaMemcpyHostToDevice);
  auto a = in.args(s, k);
  a.rows = d_idx.data();
  a.rows_stride = k;
  a.lengths = d_len.data();
  cuda::decode_workspace ws;
  cuda::plan_decode(a, ws, cuda::multiprocessors());
  const double ms = median_ms(
      [&] { cuda::decode<T, T>(a, cuda::row_mode::indices, in.out.data(), a.q_batch_stride, st); },
      st, fl, 15);
  const double bytes = 2.0 * segs * k * s.head_dim * 2;
  std::printf("%-28s decode  b=%d n=%-6lld keep=%.3f page=%-3d %9.3f ms %7.1f GB/s\n",
              "sparse_index_decode", s.batch, static_cast<long long>(s.length), keep, s.page_size,
              ms, bytes / ms / 1e6);
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  const std::string what = argc > 1 ? argv[1] : "all";
  cudaStream_t st;
  cudaStreamCreate(&st);
  flusher fl;
  {
    const std::size_t bytes = std::size_t{4} << 30;
    cuda::device_buffer<char> a(bytes), b(bytes);
    cudaMemset(a.data(), 1, bytes);
    const double ms =
        median_ms([&] { cudaMemcpyAsync(b.data(), a.data(), bytes, cudaMemcpyDeviceToDevice, st); },
                  st, fl, 10);
    std::printf("device copy 4 GiB: %.3f ms, %.1f GB/s (read + write)\n", ms,
                2.0 * bytes / ms / 1e6);
  }
  op_shape s;
  s.q_heads = 32;
  s.kv_heads = 8;
  s.head_dim = 128;
  if (what == "all" || what == "prefill") {
    s.phase = "prefill";
    s.batch = 1;
    for (int causal : {0, 1})
      for (std::int64_t n : {4096, 8192, 16384}) {
        s.causal = causal;
        s.length = n;
        time_op("dense", s, st, fl);
        if (n <= 8192) time_op("cublas_dense", s, st, fl);
      }
    s.head_dim = 64;
    s.length = 8192;
    s.causal = true;
    time_op("dense", s, st, fl);
    s.head_dim = 128;
  }
  if (what == "all" || what == "decode") {
    s.phase = "decode";
    s.batch = 8;
    for (std::int64_t n : {32768, 65536, 131072}) {
      s.length = n;
      s.page_size = 0;
      time_op("dense", s, st, fl);
      if (n == 32768) time_op("cublas_dense", s, st, fl);
      time_index_decode(s, 0.125, st, fl);
      s.page_size = 16;
      time_op("dense", s, st, fl);
      time_op("quest:keep=0.125,page=16", s, st, fl);
      time_index_decode(s, 0.125, st, fl);
    }
  }
  return 0;
}
