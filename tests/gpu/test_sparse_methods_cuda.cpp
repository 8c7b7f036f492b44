// [gpu] The query-aware sparse CUDA adapters (the shared path of query_sparse_cuda.hpp) against
// the CPU: with a budget covering the sequence each equals the dense oracle (tolerance relative to
// a same-precision reference, as test_adapters_cuda); under a small budget each makes its CPU
// twin's selection. The twin runs on the bf16-rounded inputs the kernels see, so the two differ
// only in float32 summation order: the same rows read (keys scored equal) give decode outputs
// within one bf16 rounding of the twin's, and a different selection shows as a far larger error.
#include <catch2/catch.hpp>
#include <cmath>
#include <string>
#include <vector>

#include "harness/method.hpp"
#include "tests/adapters/calibration_fixture.hpp"
#include "tests/adapters/reference.hpp"
#include "tests/gpu/cuda_twin_sparse.hpp"

namespace attnbench::test {
namespace {

bool calibrated(const std::string& spec) { return spec.rfind("loki", 0) == 0; }

// The CUDA adapter `spec` against CPU dense on the float inputs (nothing dropped).
void check_dense(const std::string& spec, const model_shape& shape, int tokens, int context,
                 int step) {
  qkv t = random_qkv(shape, tokens, 7);
  qkv t16 = rounded(t);
  const auto calibration = random_calibration(shape, 1, 96, 90, 3);
  const auto* cal = calibrated(spec) ? &calibration : nullptr;
  const auto exact = run_twin("dense", "cpu", t, shape, context, step);
  auto same = run_twin("dense", "cpu", t16, shape, context, step);
  const auto gpu = run_twin(spec, "cuda", t, shape, context, step, cal);
  auto all = [](const twin_run& r) {
    std::vector<float> v(r.prompt);
    v.insert(v.end(), r.decode.begin(), r.decode.end());
    return v;
  };
  std::vector<float> same_all = all(same);
  for (auto& x : same_all) x = round_bf16(x);
  const double e16 = rel_l2(same_all, all(exact));
  const double e = rel_l2(all(gpu), all(exact));
  INFO(spec << " vs cpu dense: error " << e << ", bf16 reference " << e16);
  CHECK(e <= 2 * e16 + 1e-4);
  CHECK(gpu.stats.resident_tokens == exact.stats.resident_tokens);
  CHECK(gpu.stats.keys_scored == exact.stats.keys_scored);
}

// The CUDA adapter against its CPU twin (same spec) on the same bf16 inputs.
void check_twin(const std::string& spec, const model_shape& shape, int tokens, int context,
                int step) {
  qkv t = random_qkv(shape, tokens, 11);
  qkv t16 = rounded(t);
  const auto calibration = random_calibration(shape, 1, 96, 90, 5);
  const auto* cal = calibrated(spec) ? &calibration : nullptr;
  const auto cpu = run_twin(spec, "cpu", t16, shape, context, step, cal);
  const auto gpu = run_twin(spec, "cuda", t, shape, context, step, cal);
  const double e = rel_l2(gpu.decode, cpu.decode);
  const double tolerance = bf16_rounding_error(cpu.decode);
  INFO(spec << " vs its cpu twin: decode error " << e << ", one bf16 rounding " << tolerance
            << "; keys scored " << gpu.stats.keys_scored << " vs " << cpu.stats.keys_scored);
  CHECK(gpu.stats.keys_scored == cpu.stats.keys_scored);
  CHECK(gpu.stats.resident_tokens == cpu.stats.resident_tokens);
  CHECK(gpu.stats.attend_calls == cpu.stats.attend_calls);
  CHECK(e <= tolerance);
}

const char* const covering_specs[] = {
    "topk_oracle:budget=4096", "block_oracle:budget=4096", "loki:budget=4096",
    "landmark:budget=4096",    "bilevel:budget=4096",      "longheads:budget=4096",
    "nsa:budget=4096",         "neighborhood:budget=4096", "power:budget=4096",
    "recycled:budget=4096",    "hip:budget=4096"};

// Budgets well below the 300..330 visible rows; block sizes that leave partial blocks.
const char* const twin_specs[] = {"topk_oracle:budget=64",
                                  "block_oracle:budget=100,block=16",
                                  "loki:budget=64,rank=16",
                                  "landmark:budget=128,block=16,window=40",
                                  "bilevel:budget=128,region=16",
                                  "longheads:budget=128,chunk=16",
                                  "nsa:budget=160,window=32,block=16,compress=16,stride=8",
                                  "neighborhood:budget=50,dilation=3",
                                  "power:budget=40,sinks=4",
                                  "recycled:budget=64,stride=3,window=8",
                                  "recycled:budget=64,stride=4,window=8,switch_threshold=0",
                                  "hip:budget=96,block=8,sinks=4,window=16"};

}  // namespace

TEST_CASE("cuda query-sparse methods equal the dense oracle when nothing is dropped", "[gpu]") {
  const std::string spec =
      GENERATE(from_range(std::begin(covering_specs), std::end(covering_specs)));
  const auto heads = GENERATE(std::make_tuple(4, 4), std::make_tuple(8, 2));
  const int head_dim = GENERATE(64, 128);
  const model_shape shape{"test", 1, std::get<0>(heads), std::get<1>(heads), head_dim};
  check_dense(spec, shape, 300, 261, 1);
  check_dense(spec, shape, 200, 130, 3);
}

TEST_CASE("cuda query-sparse methods make their CPU twin's selection", "[gpu]") {
  const std::string spec = GENERATE(from_range(std::begin(twin_specs), std::end(twin_specs)));
  const auto heads = GENERATE(std::make_tuple(8, 2), std::make_tuple(4, 4));
  const int head_dim = GENERATE(64, 128);
  const model_shape shape{"test", 1, std::get<0>(heads), std::get<1>(heads), head_dim};
  check_twin(spec, shape, 330, 300, 1);
  check_twin(spec, shape, 330, 300, 4);
}

TEST_CASE("cuda topk_oracle reads the planted keys", "[gpu]") {
  // Four keys per KV head along the direction u_h every decode query of the group points at:
  // their logits (8) dwarf the others' (~N(0, 0.3)), so budget=4 reads exactly them and the
  // decode outputs are attention over those four rows alone (a dense read would put ~2% of the
  // weight elsewhere).
  const model_shape shape{"test", 1, 4, 2, 64};
  const int context = 256, tokens = 261;
  qkv t = random_qkv(shape, tokens, 13);
  for (std::size_t i = 0; i < t.k.size(); ++i) t.k.data()[i] *= 0.3f;
  const std::vector<std::vector<std::int64_t>> planted = {{10, 77, 150, 200}, {11, 90, 153, 230}};
  for (int h = 0; h < shape.kv_heads; ++h) {
    for (auto p : planted[static_cast<std::size_t>(h)]) {
      float* k = row_of(t.k, p, h);
      for (int i = 0; i < shape.head_dim; ++i) k[i] = i == h ? 8.0f : 0.0f;
    }
    for (int token = context; token < tokens; ++token)
      for (int g = 0; g < shape.group_size(); ++g) {
        float* q = row_of(t.q, token, h * shape.group_size() + g);
        for (int i = 0; i < shape.head_dim; ++i) q[i] = i == h ? 8.0f : 0.0f;
      }
  }
  qkv t16 = rounded(t);
  const auto gpu = run_twin("topk_oracle:budget=4", "cuda", t, shape, context, 1);
  std::vector<float> expected;
  for (int token = context; token < tokens; ++token)
    for (int head = 0; head < shape.q_heads; ++head) {
      const auto r = reference_attention(row(t16.q, token, head), head, t16, shape,
                                         1.0 / std::sqrt(shape.head_dim),
                                         planted[static_cast<std::size_t>(head / 2)]);
      for (double x : r.out) expected.push_back(static_cast<float>(x));
    }
  const double e = rel_l2(gpu.decode, expected);
  INFO("decode error against attention over the planted rows: " << e);
  CHECK(e <= bf16_rounding_error(expected));
  // Five queries x two KV heads: 4 rows x group 2 read, every visible key x 2 scored to choose.
  std::uint64_t keys = 0;
  for (int visible = context + 1; visible <= tokens; ++visible)
    keys += 2 * (4 * 2 + static_cast<std::uint64_t>(visible) * 2);
  CHECK(gpu.stats.keys_scored == keys);
}

}  // namespace attnbench::test
