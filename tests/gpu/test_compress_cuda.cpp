// [gpu] The score-and-keep CUDA adapters (adapters/common/cuda/prompt_compress_cuda.hpp: knorm,
// random, snapkv, pyramidkv, adakv, tova, h2o, duo, keydiff, lagkv, chunkkv, qfilter, criticalkv,
// expected_attention) against the dense oracle and their CPU twins, through the helpers of
// cuda_twin.hpp.
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "harness/method.hpp"
#include "harness/timed_op.hpp"
#include "tests/adapters/calibration_fixture.hpp"
#include "tests/gpu/cuda_twin.hpp"

namespace attnbench::test {
namespace {

// Share of the positions `cpu` read, per head, that `gpu` read too (1 when both are equal).
double overlap(const std::vector<std::vector<std::int64_t>>& gpu,
               const std::vector<std::vector<std::int64_t>>& cpu) {
  REQUIRE(gpu.size() == cpu.size());
  std::size_t same = 0, total = 0;
  for (std::size_t h = 0; h < cpu.size(); ++h) {
    const std::set<std::int64_t> g(gpu[h].begin(), gpu[h].end());
    for (auto p : cpu[h]) same += g.count(p);
    total += cpu[h].size();
  }
  return total == 0 ? 1.0 : static_cast<double>(same) / static_cast<double>(total);
}

// The CUDA adapter and its CPU twin on the same bf16-exact inputs (so scores differ only in
// the order of float sums: no near ties among random normal Q/K), a 4-layer model at `layer`.
void check_twin(const std::string& spec, int tokens, int context, int step, bool exact_rows) {
  const model_shape shape{"test", 4, 8, 2, 128};
  qkv t = rounded(random_qkv(shape, tokens, 5));
  const auto cpu = run_backend(spec, "cpu", t, shape, context, step, 11, 1);
  const auto gpu = run_backend(spec, "cuda", t, shape, context, step, 11, 1);
  for (float x : gpu.values) REQUIRE(std::isfinite(x));
  const double e = rel_l2(gpu.values, cpu.values);
  const double same = overlap(gpu.read, cpu.read);
  INFO(spec << " step " << step << ": error vs the CPU twin " << e << ", rows shared " << same);
  CHECK(gpu.stats.resident_tokens == cpu.stats.resident_tokens);
  CHECK(gpu.stats.budget_tokens == cpu.stats.budget_tokens);
  // Same kept rows give outputs within bf16 error of the CPU's (the prompt outputs carry the
  // prefill kernel's bf16 P); a row kept by one side only shows as a large error.
  CHECK(e < 2e-2);
  REQUIRE_FALSE(gpu.read.empty());
  if (exact_rows)
    CHECK(gpu.read == cpu.read);
  else
    CHECK(same >= 0.97);
}

}  // namespace

TEST_CASE("cuda compression adapters equal the dense oracle when nothing is dropped", "[gpu]") {
  const auto spec =
      GENERATE(as<std::string>{}, "knorm:budget=4096", "random:budget=4096", "keydiff:budget=4096",
               "pyramidkv:budget=4096", "adakv:budget=4096", "adakv:budget=4096,scorer=knorm",
               "tova:budget=4096", "h2o:budget=4096", "h2o:budget=4096,protocol=kvpress",
               "lagkv:budget=4096", "chunkkv:budget=4096", "criticalkv:budget=4096",
               "expected_attention:budget=4096");
  const auto heads = GENERATE(std::make_tuple(4, 4), std::make_tuple(8, 2));
  const int head_dim = GENERATE(64, 128);
  const model_shape shape{"test", 1, std::get<0>(heads), std::get<1>(heads), head_dim};
  check_against(spec, "dense", shape, 300, 261, 1);
  check_against(spec, "dense", shape, 200, 130, 3);
}

TEST_CASE("cuda key and value scorers keep exactly the CPU's rows", "[gpu]") {
  const auto spec =
      GENERATE(as<std::string>{}, "knorm:budget=96", "random:budget=96", "random:keep=0.3",
               "keydiff:budget=96", "lagkv:budget=96,lag=16", "lagkv:budget=96,lag=256",
               "chunkkv:budget=96,scorer=knorm", "chunkkv:budget=96,scorer=random,chunk=7");
  const int step = GENERATE(1, 3);
  check_twin(spec, 420, 400, step, true);
}

TEST_CASE("cuda prompt scorers keep the CPU twin's rows", "[gpu]") {
  const auto spec = GENERATE(
      as<std::string>{}, "snapkv:budget=96,window=16", "snapkv:budget=96,window=16,pooling=avg",
      "pyramidkv:budget=96,window=16,beta=4", "adakv:budget=96,window=16",
      "adakv:budget=96,scorer=knorm", "adakv:budget=96,scorer=random,alpha=0.5",
      "adakv:budget=96,scorer=tova", "adakv:budget=96,scorer=pyramidkv,window=16,beta=4",
      "h2o:budget=96,protocol=kvpress", "chunkkv:budget=96,window=16",
      "criticalkv:budget=96,window=16", "criticalkv:budget=96,window=16,adaptive=true",
      "expected_attention:budget=96", "expected_attention:budget=96,window=64,covariance=false",
      "chunkkv:budget=96,scorer=pyramidkv,window=16,beta=4,chunk=16");
  check_twin(spec, 420, 400, 1, false);
}

TEST_CASE("cuda tova and h2o evict while decoding as the CPU twin does", "[gpu]") {
  const auto spec = GENERATE(as<std::string>{}, "tova:budget=64", "h2o:budget=64",
                             "h2o:budget=64,chunk=16,recent_ratio=0.25", "h2o:budget=64,chunk=1");
  const int step = GENERATE(1, 3);
  check_twin(spec, 360, 300, step, false);
  // The budget holds after every step (tova reads budget + the new token, then evicts).
  const model_shape shape{"test", 4, 8, 2, 128};
  qkv t = rounded(random_qkv(shape, 330, 9));
  const auto gpu = run_backend(spec, "cuda", t, shape, 300, step, 0, 1);
  CHECK(gpu.stats.resident_tokens == std::vector<std::int64_t>{64, 64});
}

TEST_CASE("cuda duo gives each head the CPU twin's role and rows", "[gpu]") {
  const model_shape shape{"test", 2, 8, 2, 64};
  const auto calibration = random_calibration(shape, 2, 200, 196, 5);
  const auto spec = GENERATE(as<std::string>{}, "duo:sinks=4,window=16,retrieval_ratio=0.5",
                             "duo:sinks=4,window=16,retrieval_ratio=0",
                             "duo:sinks=4,window=4096,retrieval_ratio=0");
  const int layer = GENERATE(0, 1);
  const int step = GENERATE(1, 3);
  qkv t = rounded(random_qkv(shape, 140, 4));
  const auto cpu = run_backend(spec, "cpu", t, shape, 120, step, 0, layer, &calibration);
  const auto gpu = run_backend(spec, "cuda", t, shape, 120, step, 0, layer, &calibration);
  const double e = rel_l2(gpu.values, cpu.values);
  INFO(spec << " layer " << layer << " step " << step << ": error vs the CPU twin " << e);
  CHECK(gpu.stats.resident_tokens == cpu.stats.resident_tokens);
  CHECK(gpu.stats.budget_tokens == cpu.stats.budget_tokens);
  CHECK(gpu.read == cpu.read);
  // The prompt outputs carry the prefill kernel's bf16 P.
  CHECK(e < 2e-2);
}

TEST_CASE("cuda qfilter keeps exactly the CPU's rows with the same filters", "[gpu]") {
  const model_shape shape{"test", 2, 8, 2, 128};
  const auto calibration = random_calibration(shape, 2, 200, 196, 6);
  const auto spec = GENERATE(as<std::string>{}, "qfilter:budget=96", "qfilter:budget=4096");
  const int layer = GENERATE(0, 1);
  qkv t = rounded(random_qkv(shape, 420, 4));
  const auto cpu = run_backend(spec, "cpu", t, shape, 400, 1, 0, layer, &calibration);
  const auto gpu = run_backend(spec, "cuda", t, shape, 400, 1, 0, layer, &calibration);
  const double e = rel_l2(gpu.values, cpu.values);
  INFO(spec << " layer " << layer << ": error vs the CPU twin " << e);
  CHECK(gpu.stats.resident_tokens == cpu.stats.resident_tokens);
  CHECK(gpu.read == cpu.read);
  CHECK(e < 2e-2);
  // Without calibration the method declines the problem, as on the CPU.
  auto m = resolve_method(spec, "cuda").create();
  CHECK(m->unsupported_reason(make_problem(shape, 400, 420)));
}

TEST_CASE("cuda expected_attention moves its query statistics by the RoPE as the CPU twin",
          "[gpu]") {
  const model_shape shape{"test", 4, 8, 2, 128};
  rotary_embedding rope;
  rope.rotary_dims = 96;  // partial rotary width: the last 32 dimensions are not rotated
  for (int i = 0; i < rope.rotary_dims / 2; ++i)
    rope.inv_freq.push_back(std::pow(10000.0, -2.0 * i / rope.rotary_dims));
  const auto spec = GENERATE(as<std::string>{}, "expected_attention:budget=96",
                             "expected_attention:budget=96,future=64,vnorm=false");
  qkv t = rounded(random_qkv(shape, 420, 8));
  const auto cpu = run_backend(spec, "cpu", t, shape, 400, 1, 0, 1, nullptr, rope);
  const auto gpu = run_backend(spec, "cuda", t, shape, 400, 1, 0, 1, nullptr, rope);
  const double e = rel_l2(gpu.values, cpu.values);
  const double same = overlap(gpu.read, cpu.read);
  INFO(spec << ": error vs the CPU twin " << e << ", rows shared " << same);
  CHECK(gpu.stats.resident_tokens == cpu.stats.resident_tokens);
  CHECK(e < 2e-2);
  CHECK(same >= 0.97);
}

TEST_CASE("cuda compression methods have a decode timed op over their kept rows", "[gpu]") {
  const auto name =
      GENERATE(as<std::string>{}, "knorm", "random", "snapkv", "pyramidkv", "adakv", "tova", "h2o",
               "keydiff", "lagkv", "chunkkv", "qfilter", "criticalkv", "expected_attention");
  op_shape s;
  s.phase = "decode";
  s.batch = 2;
  s.length = 4096;
  s.q_heads = 8;
  s.kv_heads = 2;
  s.head_dim = 128;
  s.dtype = "bf16";
  const timed_op_factory* factory = timed_op_registry::instance().find(name, "cuda");
  REQUIRE(factory);
  auto op = (*factory)(resolve_method(name + ":budget=512", "cuda"), s, exec_context{"cuda"});
  REQUIRE(op);
  // The dense decode over 512 kept rows per sequence and KV head.
  CHECK(op->kv_bytes() == 2.0 * 2 * 2 * 512 * 128 * 2);
}

}  // namespace attnbench::test
