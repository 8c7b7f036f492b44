/// Decode-attention bandwidth on the CPU: a streaming read of a buffer far larger than the
/// last-level cache (this machine's attainable read bandwidth) next to one decode step of the
/// `dense` adapter at long context, both reported as bytes per second. Decode attention is
/// bandwidth-bound, so the ratio of the two is the figure of merit (target: >= 60%).
#include <benchmark/benchmark.h>
#include <omp.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "harness/method.hpp"
#include "harness/tensor.hpp"

namespace {

using namespace attnbench;

// 1 GiB: 32x a 32 MiB L3, so nearly every byte comes from DRAM.
constexpr std::size_t stream_floats = (std::size_t{1} << 30) / sizeof(float);

// Fills with a cheap deterministic pattern in [-1, 1): the values do not matter for speed, only
// that they are finite and pages are touched by the thread count that will read them.
void fill(float* data, std::size_t n, int threads, std::uint32_t seed) {
#pragma omp parallel for schedule(static) num_threads(threads)
  for (std::size_t i = 0; i < n; ++i) {
    std::uint32_t x = static_cast<std::uint32_t>(i) * 2654435761u + seed;
    x ^= x >> 15;
    data[i] = static_cast<float>(x & 0xffff) / 32768.0f - 1.0f;
  }
}

void stream_read(benchmark::State& state) {
  const int threads = static_cast<int>(state.range(0));
  std::vector<float> buffer(stream_floats);
  fill(buffer.data(), buffer.size(), threads, 1);
  const float* data = buffer.data();
  for (auto _ : state) {
    float total = 0.0f;
// simdlen(16): several vector accumulators, so the add latency never limits the read rate.
#pragma omp parallel for simd simdlen(16) schedule(static) num_threads(threads) reduction(+ : total)
    for (std::size_t i = 0; i < stream_floats; ++i) total += data[i];
    benchmark::DoNotOptimize(total);
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) *
                          static_cast<std::int64_t>(stream_floats * sizeof(float)));
  state.counters["threads"] = threads;
}

void dense_decode(benchmark::State& state) {
  const auto context = static_cast<int>(state.range(0));
  const int threads = static_cast<int>(state.range(1));
  attention_problem problem;
  problem.shape = shape_preset("llama3-8b");
  problem.context_tokens = context;
  problem.max_tokens = context;
  const int q_heads = problem.shape.q_heads;
  const int kv_heads = problem.shape.kv_heads;
  const int d = problem.shape.head_dim;

  auto method = resolve_method("dense", "cpu").create();
  exec_context ctx;
  ctx.threads = threads;
  method->prepare(problem, ctx);
  {
    host_tensor k(context, kv_heads, d);
    host_tensor v(context, kv_heads, d);
    fill(k.data(), k.size(), threads, 2);
    fill(v.data(), v.size(), threads, 3);
    method->prefill(tensor_view{}, k.view(), v.view(), nullptr);
  }
  host_tensor q(1, q_heads, d);
  host_tensor out(1, q_heads, d);
  fill(q.data(), q.size(), 1, 4);

  const std::uint64_t bytes_before = method->stats().kv_bytes_read;
  for (auto _ : state) {
    method->attend(q.view(), out.view());
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  const std::uint64_t bytes = method->stats().kv_bytes_read - bytes_before;
  state.SetBytesProcessed(static_cast<std::int64_t>(bytes));
  state.counters["threads"] = threads;
  state.counters["kv_MiB_per_step"] =
      static_cast<double>(bytes) / static_cast<double>(state.iterations()) / (1 << 20);
}

}  // namespace

BENCHMARK(stream_read)
    ->ArgName("threads")
    ->Arg(1)
    ->Arg(2)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK(dense_decode)
    ->ArgNames({"context", "threads"})
    ->ArgsProduct({{32 * 1024, 128 * 1024}, {1, 2}})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

BENCHMARK_MAIN();
