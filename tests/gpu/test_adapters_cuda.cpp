// [gpu] The CUDA adapters against the CPU dense oracle, through the helpers of cuda_twin.hpp
// (tolerances explained there).
#include <catch2/catch.hpp>
#include <cmath>
#include <string>
#include <vector>

#include "harness/method.hpp"
#include "tests/gpu/cuda_twin.hpp"

namespace attnbench::test {

TEST_CASE("cuda adapters equal the dense oracle when nothing is dropped", "[gpu]") {
  const auto spec =
      GENERATE(as<std::string>{}, "dense", "cublas_dense", "sliding_window:window=4096",
               "streaming_llm:sinks=4,window=4096", "quest:budget=4096", "snapkv:budget=4096");
  const auto heads = GENERATE(std::make_tuple(4, 4), std::make_tuple(8, 2));
  const int head_dim = GENERATE(64, 128);
  const model_shape shape{"test", 1, std::get<0>(heads), std::get<1>(heads), head_dim};
  check_against(spec, "dense", shape, 300, 261, 1);
  check_against(spec, "dense", shape, 200, 130, 3);
}

TEST_CASE("cuda sink/window adapters equal their CPU rule", "[gpu]") {
  const auto spec = GENERATE(as<std::string>{}, "sliding_window:window=40",
                             "streaming_llm:sinks=4,window=70", "sliding_window:window=200");
  const model_shape shape{"test", 1, 8, 2, 128};
  check_against(spec, spec, shape, 330, 300, 1);
  check_against(spec, spec, shape, 330, 300, 4);
}

TEST_CASE("cuda quest reads only its budget", "[gpu]") {
  const model_shape shape{"test", 1, 8, 2, 64};
  qkv t = random_qkv(shape, 600, 3);
  const auto gpu = run_backend("quest:budget=128,page=16", "cuda", t, shape, 590, 1);
  const auto cpu = run_backend("quest:budget=128,page=16", "cpu", t, shape, 590, 1);
  // Same selection arithmetic: rows read equal the CPU adapter's (selection metadata differs only
  // in its element size: bf16 K rows vs float32 ones).
  CHECK(gpu.stats.keys_scored == cpu.stats.keys_scored);
  CHECK(gpu.stats.attend_calls == 10);
  for (float x : gpu.values) REQUIRE(std::isfinite(x));
}

TEST_CASE("cuda snapkv keeps its budget and matches the CPU rule", "[gpu]") {
  const model_shape shape{"test", 1, 8, 2, 128};
  qkv t = random_qkv(shape, 420, 5);
  const auto gpu = run_backend("snapkv:budget=96,window=16", "cuda", t, shape, 400, 1);
  const auto cpu = run_backend("snapkv:budget=96,window=16", "cpu", t, shape, 400, 1);
  CHECK(gpu.stats.resident_tokens == std::vector<std::int64_t>{116, 116});
  CHECK(gpu.stats.resident_tokens == cpu.stats.resident_tokens);
  for (float x : gpu.values) REQUIRE(std::isfinite(x));
  // Same kept rows give outputs within bf16 error of the CPU adapter's; a near-tied vote that
  // bf16 ranks differently shows as a large error here.
  CHECK(rel_l2(gpu.values, cpu.values) < 2e-2);
}

TEST_CASE("cuda adapters reject shapes the kernels do not cover", "[gpu]") {
  auto m = resolve_method("dense", "cuda").create();
  CHECK(m->unsupported_reason(make_problem(model_shape{"t", 1, 4, 4, 96}, 10, 10)));
  CHECK(m->unsupported_reason(make_problem(model_shape{"t", 1, 12, 4, 64}, 10, 10)));
  CHECK_FALSE(m->unsupported_reason(make_problem(model_shape{"t", 1, 8, 2, 128}, 10, 10)));
}

}  // namespace attnbench::test
