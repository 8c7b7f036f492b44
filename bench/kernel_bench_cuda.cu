// Timing driver of the CUDA kernels (not a test): device copy bandwidth, then the registered
// timed ops (dense, quest, cublas_dense) and a sparse decode over per-head index lists, each timed
// with CUDA events after an L2 flush (2x the L2 size), median of `reps` calls. Prints one line per
// shape: time, TFLOP/s, KV GB/s. Argument: all (default), prefill, decode; tilings (the prefill
// kernel versions side by side, bf16, head_dim 128, with their largest difference to the first);
// check (the Hopper kernels against the mma.sync one on 1-8 key tiles, bf16 and fp16).
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "adapters/common/cuda/flash_prefill.cuh"
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

// Largest |a - b| over two bf16 device buffers of n elements (a tiling against the reference one).
double max_abs_diff(const __nv_bfloat16* a, const __nv_bfloat16* b, std::size_t n) {
  std::vector<__nv_bfloat16> x(n), y(n);
  ATTNBENCH_CUDA(cudaMemcpy(x.data(), a, n * 2, cudaMemcpyDeviceToHost));
  ATTNBENCH_CUDA(cudaMemcpy(y.data(), b, n * 2, cudaMemcpyDeviceToHost));
  double worst = 0;
  for (std::size_t i = 0; i < n; ++i)
    worst = std::max(
        worst, static_cast<double>(std::abs(__bfloat162float(x[i]) - __bfloat162float(y[i]))));
  return worst;
}

// One prefill tiling C on shape s: time, TFLOP/s and its largest difference to the output in ref.
template <class C>
void time_tiling(const char* name, const op_shape& s, cuda::prefill_inputs<__nv_bfloat16>& in,
                 const cuda::device_buffer<__nv_bfloat16>& ref, cudaStream_t st, flusher& fl) {
  using T = __nv_bfloat16;
  ATTNBENCH_CUDA(cudaMemsetAsync(in.o.data(), 0xff, in.o.bytes(), st));  // NaN poison
  const double ms =
      median_ms([&] { cuda::detail::launch_flash_prefill<T, 128, C>(in.args, st); }, st, fl, 15);
  const double flops = 4.0 * s.q_heads * s.length * s.length * 128 * (s.causal ? 0.5 : 1.0);
  const double diff = max_abs_diff(in.o.data(), ref.data(), in.o.size());
  std::printf("tiling %-22s n=%-6lld causal=%d %9.3f ms %7.1f TFLOP/s  max|diff| %.3g\n", name,
              static_cast<long long>(s.length), s.causal, ms, flops / ms / 1e9, diff);
  std::fflush(stdout);
}

// A Hopper kernel (kernels_prefill_hopper.cu) on shape s, like time_tiling.
void time_hopper(const char* name, cuda::detail::hopper_prefill kernel, const op_shape& s,
                 cuda::prefill_inputs<__nv_bfloat16>& in,
                 const cuda::device_buffer<__nv_bfloat16>& ref, cudaStream_t st, flusher& fl) {
  using T = __nv_bfloat16;
  ATTNBENCH_CUDA(cudaMemsetAsync(in.o.data(), 0xff, in.o.bytes(), st));
  if (!cuda::detail::flash_prefill_hopper<T>(in.args, st, kernel)) {
    std::printf("tiling %-22s not run (no sm_90a code or device)\n", name);
    return;
  }
  const double ms = median_ms(
      [&] { cuda::detail::flash_prefill_hopper<T>(in.args, st, kernel); }, st, fl, 15);
  const double flops = 4.0 * s.q_heads * s.length * s.length * 128 * (s.causal ? 0.5 : 1.0);
  const double diff = max_abs_diff(in.o.data(), ref.data(), in.o.size());
  std::printf("tiling %-22s n=%-6lld causal=%d %9.3f ms %7.1f TFLOP/s  max|diff| %.3g\n", name,
              static_cast<long long>(s.length), s.causal, ms, flops / ms / 1e9, diff);
  std::fflush(stdout);
}

float host_float(__nv_bfloat16 x) { return __bfloat162float(x); }
float host_float(__half x) { return __half2float(x); }

// Small-shape check of the Hopper kernels against the mma.sync one (1 to 3 key tiles, GQA group
// 2, one and two sequences): relative L2 difference of the outputs, in T = bf16 or fp16.
template <class T>
void check_hopper(const char* type, cudaStream_t st) {
  using cuda::detail::hopper_prefill;
  for (int batch : {1, 2})
    for (int causal : {0, 1})
      for (std::int64_t n : {64, 128, 256, 300, 1000}) {
        op_shape s;
        s.phase = "prefill";
        s.batch = batch;
        s.q_heads = 2;
        s.kv_heads = 1;
        s.head_dim = 128;
        s.causal = causal;
        s.length = n;
        cuda::prefill_inputs<T> in(s);
        cuda::device_buffer<T> ref(in.o.size());
        cuda::detail::launch_flash_prefill<T, 128, cuda::detail::prefill_tiling<8, 1, 64, 1>>(
            in.args, st);
        ATTNBENCH_CUDA(
            cudaMemcpyAsync(ref.data(), in.o.data(), in.o.bytes(), cudaMemcpyDeviceToDevice, st));
        for (auto [kernel, name] :
             {std::pair{hopper_prefill::cp_async, "cp_async"},
              std::pair{hopper_prefill::warp_specialized, "ws_2st"},
              std::pair{hopper_prefill::warp_specialized_3stage, "ws_3st"}}) {
          ATTNBENCH_CUDA(cudaMemsetAsync(in.o.data(), 0xff, in.o.bytes(), st));
          if (!cuda::detail::flash_prefill_hopper<T>(in.args, st, kernel)) return;
          ATTNBENCH_CUDA(cudaStreamSynchronize(st));
          std::vector<T> x(in.o.size()), y(in.o.size());
          ATTNBENCH_CUDA(cudaMemcpy(x.data(), in.o.data(), in.o.bytes(), cudaMemcpyDeviceToHost));
          ATTNBENCH_CUDA(cudaMemcpy(y.data(), ref.data(), ref.bytes(), cudaMemcpyDeviceToHost));
          double num = 0, den = 0;
          for (std::size_t i = 0; i < x.size(); ++i) {
            const double a = host_float(x[i]), b = host_float(y[i]);
            num += (a - b) * (a - b);
            den += b * b;
          }
          std::printf("check %s %-9s vs mma.sync b=%d n=%lld causal=%d rel_l2 %.3g\n", type, name,
                      batch, static_cast<long long>(n), causal, std::sqrt(num / den));
        }
      }
}

// The prefill tilings side by side (bf16, head_dim 128), checked against the default one.
void compare_tilings(op_shape s, cudaStream_t st, flusher& fl) {
  using namespace cuda::detail;
  s.phase = "prefill";
  s.batch = 1;
  for (int causal : {0, 1})
    for (std::int64_t n : {4096, 8192, 16384, 32768}) {
      s.causal = causal;
      s.length = n;
      cuda::prefill_inputs<__nv_bfloat16> in(s);
      cuda::device_buffer<__nv_bfloat16> ref(in.o.size());
      launch_flash_prefill<__nv_bfloat16, 128, prefill_tiling<8, 1, 64, 1>>(in.args, st);
      ATTNBENCH_CUDA(
          cudaMemcpyAsync(ref.data(), in.o.data(), in.o.bytes(), cudaMemcpyDeviceToDevice, st));
      ATTNBENCH_CUDA(cudaStreamSynchronize(st));
      // The kernel before the tiling work (8 warps x 16 rows), the mma.sync fallback, wgmma.
      time_tiling<prefill_tiling<8, 1, 64, 1>>("8w x16 k64 1cta", s, in, ref, st, fl);
      time_tiling<prefill_tiling<8, 2, 32, 1>>("8w x32 k32 1cta", s, in, ref, st, fl);
      time_hopper("wgmma cp.async 3st", cuda::detail::hopper_prefill::cp_async, s, in, ref, st,
                  fl);
      time_hopper("wgmma warp-spec 2st", cuda::detail::hopper_prefill::warp_specialized, s, in,
                  ref, st, fl);
      time_hopper("wgmma warp-spec 3st", cuda::detail::hopper_prefill::warp_specialized_3stage, s,
                  in, ref, st, fl);
    }
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
  if (what == "check") {
    check_hopper<__nv_bfloat16>("bf16", st);
    check_hopper<__half>("fp16", st);
  }
  if (what == "tilings") compare_tilings(s, st, fl);
  if (what == "profile") {  // one launch of each Hopper kernel at 16K causal, for ncu
    s.phase = "prefill";
    s.batch = 1;
    s.causal = true;
    s.length = 16384;
    cuda::prefill_inputs<__nv_bfloat16> in(s);
    for (auto kernel : {cuda::detail::hopper_prefill::cp_async,
                        cuda::detail::hopper_prefill::warp_specialized,
                        cuda::detail::hopper_prefill::warp_specialized_3stage})
      if (!cuda::detail::flash_prefill_hopper<__nv_bfloat16>(in.args, st, kernel))
        std::printf("profile: no sm_90a code or device\n");
    ATTNBENCH_CUDA(cudaStreamSynchronize(st));
  }
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
