// datasets/calibration: the passkey prompt, its answer queries and per-layer Q/K/V (built once,
// shared across threads), and that the calibrated methods read the retrieval model's head roles
// from it: duo picks exactly the retrieval heads, tca gives the diffuse heads the budget.
// On workload version 1, whose small shape has two retrieval KV heads and no partial ones, so the
// head counts below are exact.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cstdint>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "datasets/calibration.hpp"
#include "datasets/haystack.hpp"
#include "datasets/retrieval_model.hpp"
#include "harness/error.hpp"
#include "harness/method.hpp"

using namespace attnbench;

namespace {

// Resident tokens per KV head of every layer after `spec` prefills a 4K NIAH prompt of the
// model, calibrated on `calibration`: [layers][kv_heads].
std::vector<std::vector<std::int64_t>> resident_per_layer(const std::string& spec,
                                                          const retrieval_model& model,
                                                          const calibration_source& calibration) {
  const model_shape& shape = model.shape();
  const niah_sample s = make_niah(4096, 0.3, haystack_kind::essay, value_kind::number, 77);
  std::vector<int> tokens = s.context;
  tokens.insert(tokens.end(), s.question.begin(), s.question.end());
  const auto n = static_cast<int>(tokens.size());
  std::vector<std::vector<std::int64_t>> resident;
  for (int l = 0; l < shape.layers; ++l) {
    host_tensor q(n, shape.q_heads, shape.head_dim), k(n, shape.kv_heads, shape.head_dim),
        v(n, shape.kv_heads, shape.head_dim);
    model.project(l, tokens, 0, n, q.view(), k.view(), v.view());
    auto m = resolve_method(spec, "cpu").create();
    attention_problem problem;
    problem.shape = shape;
    problem.layer = l;
    problem.context_tokens = n;
    problem.max_tokens = n;
    problem.calibration = &calibration;
    m->prepare(problem, exec_context{});
    m->prefill(q.view(), k.view(), v.view(), nullptr);
    resident.push_back(m->stats().resident_tokens);
  }
  return resident;
}

}  // namespace

TEST_CASE("passkey calibration holds a passkey prompt and its teacher-forced answer",
          "[calibration]") {
  const model_shape shape = shape_preset("small");
  const retrieval_model model(shape, workload_config::for_version(1));
  const passkey_calibration calibration(model);
  CHECK(calibration.layers() == shape.layers);

  const niah_sample s = make_niah(passkey_calibration::default_tokens, 0.5, haystack_kind::essay,
                                  value_kind::number, passkey_calibration::default_seed);
  const std::vector<int>& tokens = calibration.tokens();
  REQUIRE(tokens.size() ==
          static_cast<std::size_t>(passkey_calibration::default_tokens + s.answer_tokens));
  // Prompt, then the needle's value tokens.
  CHECK(std::equal(s.context.begin(), s.context.end(), tokens.begin()));
  CHECK(std::equal(s.question.begin(), s.question.end(), tokens.begin() + s.context.size()));
  CHECK(std::equal(tokens.begin() + passkey_calibration::default_tokens, tokens.end(),
                   s.context.begin() + s.value_begin));

  for (int l = 0; l < shape.layers; ++l) {
    const calibration_layer& c = calibration.layer(l);
    CHECK(&c == &calibration.layer(l));  // built once
    CHECK(c.answer_begin == passkey_calibration::default_tokens - 1);
    CHECK(c.needle_begin == s.needle_begin);
    CHECK(c.needle_begin > 1000);  // far outside any streaming window at the end
    const auto n = static_cast<int>(tokens.size());
    REQUIRE(c.q.tokens() == n);
    REQUIRE(c.k.tokens() == n);
    REQUIRE(c.v.tokens() == n);
    CHECK(c.q.heads() == shape.q_heads);
    CHECK(c.k.heads() == shape.kv_heads);
    CHECK(c.k.head_dim() == shape.head_dim);
    host_tensor q(n, shape.q_heads, shape.head_dim), k(n, shape.kv_heads, shape.head_dim),
        v(n, shape.kv_heads, shape.head_dim);
    model.project(l, tokens, 0, n, q.view(), k.view(), v.view());
    CHECK(std::memcmp(q.data(), c.q.data(), q.size() * sizeof(float)) == 0);
    CHECK(std::memcmp(k.data(), c.k.data(), k.size() * sizeof(float)) == 0);
    CHECK(std::memcmp(v.data(), c.v.data(), v.size() * sizeof(float)) == 0);
  }

  for (int bad : {-1, shape.layers}) {
    try {
      calibration.layer(bad);
      FAIL("expected error(internal)");
    } catch (const error& e) {
      CHECK(e.id() == error_id::internal);
    }
  }

  const passkey_calibration other(model, 2048, 12345);
  CHECK(other.tokens().size() < tokens.size());
  CHECK(other.tokens() != std::vector<int>(tokens.begin(), tokens.begin() + other.tokens().size()));
}

TEST_CASE("passkey calibration builds each layer once across threads", "[calibration]") {
  const model_shape shape = shape_preset("small");
  const retrieval_model model(shape, workload_config::for_version(1));
  const passkey_calibration calibration(model, 1024);
  std::vector<const calibration_layer*> seen(8, nullptr);
  std::vector<std::thread> threads;
  for (std::size_t i = 0; i < seen.size(); ++i)
    threads.emplace_back([&, i] { seen[i] = &calibration.layer(static_cast<int>(i % 2)); });
  for (auto& t : threads) t.join();
  for (std::size_t i = 0; i < seen.size(); ++i) CHECK(seen[i] == seen[i % 2]);
  CHECK(seen[0] != seen[1]);
}

TEST_CASE("the calibration's answer queries retrieve the passkey in the retrieval heads",
          "[calibration]") {
  // What calibration protects: at answer query answer_begin + j, every retrieval head's
  // strongest key is value token j of the needle.
  const model_shape shape = shape_preset("small");
  const retrieval_model model(shape, workload_config::for_version(1));
  const passkey_calibration calibration(model);
  const niah_sample s = make_niah(passkey_calibration::default_tokens, 0.5, haystack_kind::essay,
                                  value_kind::number, passkey_calibration::default_seed);
  int checked = 0;
  for (int l = 0; l < shape.layers; ++l) {
    const calibration_layer& c = calibration.layer(l);
    for (int h = 0; h < shape.kv_heads; ++h) {
      if (model.role(l, h) != head_role::retrieval) continue;
      for (int j = 0; j < s.answer_tokens; ++j) {
        const std::int64_t p = c.answer_begin + j;
        const float* q = c.q.data() + (static_cast<std::size_t>(p) * shape.q_heads +
                                       static_cast<std::size_t>(h * shape.group_size())) *
                                          shape.head_dim;
        std::int64_t best = -1;
        float best_logit = 0;
        for (std::int64_t t = 0; t <= p; ++t) {
          const float* k =
              c.k.data() + (static_cast<std::size_t>(t) * shape.kv_heads + h) * shape.head_dim;
          float logit = 0;
          for (int i = 0; i < shape.head_dim; ++i) logit += q[i] * k[i];
          if (best < 0 || logit > best_logit) {
            best = t;
            best_logit = logit;
          }
        }
        CAPTURE(l, h, j);
        CHECK(best == s.value_begin + j);
        ++checked;
      }
    }
  }
  CHECK(checked == 2 * s.answer_tokens);  // the small shape has 2 retrieval KV heads
}

TEST_CASE("duo calibrated on the passkey prompt picks the retrieval model's retrieval heads",
          "[calibration][duo]") {
  const model_shape shape = shape_preset("small");
  const retrieval_model model(shape, workload_config::for_version(1));
  const passkey_calibration calibration(model);
  const std::int64_t full = 4096;
  // 0.25 of 8 KV heads: exactly the 2 retrieval heads; 0.5: they are among the 4 full heads.
  for (const std::string ratio : {"0.25", "0.5"}) {
    CAPTURE(ratio);
    const auto resident = resident_per_layer("duo:retrieval_ratio=" + ratio, model, calibration);
    int full_heads = 0;
    for (int l = 0; l < shape.layers; ++l)
      for (int h = 0; h < shape.kv_heads; ++h) {
        CAPTURE(l, h, name_of(model.role(l, h)));
        const std::int64_t r = resident[static_cast<std::size_t>(l)][static_cast<std::size_t>(h)];
        CHECK((r == full || r == 320));
        if (model.role(l, h) == head_role::retrieval) CHECK(r == full);
        if (ratio == "0.25" && model.role(l, h) != head_role::retrieval) CHECK(r == 320);
        full_heads += r == full;
      }
    CHECK(full_heads == (ratio == "0.25" ? 2 : 4));
  }
}

TEST_CASE("tca calibrated on the passkey prompt gives the diffuse heads the budget",
          "[calibration][tca]") {
  // Sink and retrieval heads concentrate their mass at the answer queries (BOS, the passkey), so
  // they get about the floor (ceil(0.2 * 256) = 52); local and noise heads spread it and share
  // the rest of each layer's 4 * 256 tokens.
  const model_shape shape = shape_preset("small");
  const retrieval_model model(shape, workload_config::for_version(1));
  const passkey_calibration calibration(model);
  const auto resident = resident_per_layer("tca:budget=256", model, calibration);
  std::int64_t concentrated_max = 0, diffuse_min = 4096;
  for (int l = 0; l < shape.layers; ++l) {
    std::int64_t sum = 0;
    for (int h = 0; h < shape.kv_heads; ++h) {
      const std::int64_t r = resident[static_cast<std::size_t>(l)][static_cast<std::size_t>(h)];
      CAPTURE(l, h, name_of(model.role(l, h)), r);
      sum += r;
      const head_role role = model.role(l, h);
      if (role == head_role::sink || role == head_role::retrieval) {
        CHECK(r >= 52);
        concentrated_max = std::max(concentrated_max, r);
      } else {
        diffuse_min = std::min(diffuse_min, r);
      }
    }
    CHECK(sum == 4 * 256);
  }
  CHECK(concentrated_max <= 60);
  CHECK(diffuse_min > 2 * concentrated_max);
}
