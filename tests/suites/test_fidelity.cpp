#include <catch2/catch.hpp>

#include <cmath>
#include <filesystem>
#include <map>
#include <sstream>

#include "datasets/structured_random.hpp"
#include "harness/error.hpp"
#include "app/runner.hpp"
#include "suite_test_util.hpp"
#include "suites/common/qkv_sources.hpp"

using namespace attnbench;

namespace {

run_config fidelity_config(std::vector<std::string> methods, const std::string& out) {
  run_config cfg = test::suite_config("fidelity", std::move(methods), {512}, out);
  cfg.options.budgets = {32, 128, 384};
  cfg.options.samples = 1;
  cfg.options.seed = 5;
  return cfg;
}

// "budget" axis as text: a number or "full".
std::string budget_of(const record& r) {
  const auto& b = r.axes.at("budget");
  return b.is_string() ? b.get<std::string>() : std::to_string(b.get<std::int64_t>());
}

// Softmax weights of the last query of one head of a structured layer.
std::vector<double> last_query_weights(const structured_config& c, std::int64_t tokens,
                                       int head = 0) {
  model_shape shape = shape_preset("small");
  structured_qkv_source src(shape, c, tokens, 11);
  host_tensor q, k, v;
  src.layer(0, q, k, v);
  std::vector<double> w;
  exact_weights(q.view().at(static_cast<int>(tokens - 1), head), k.view(),
                head / shape.group_size(), tokens,
                1.0 / std::sqrt(static_cast<double>(shape.head_dim)), w);
  return w;
}

}  // namespace

TEST_CASE("fidelity: a budget covering the sequence reproduces dense", "[fidelity]") {
  std::ostringstream progress;
  const std::vector<std::string> methods = {
      "dense", "streaming_llm", "sliding_window", "snapkv",   "h2o",
      "tova",  "quest",         "topk_oracle",    "recycled", "hyperattention"};
  run_config cfg = fidelity_config(methods, "full");
  cfg.options.budgets = {128};
  report r = run_benchmark(cfg, progress);
  REQUIRE(r.records.size() == 2 * 2 * methods.size());  // (128, full) x 2 sources
  int full_checked = 0;
  for (const auto& rec : r.records) {
    INFO(rec.case_name << " " << rec.method_spec << " " << rec.reason);
    if (rec.method == "dense" && budget_of(rec) != "full") {
      CHECK(rec.status == record_status::skipped);  // no budget parameter: runs once
      continue;
    }
    REQUIRE(rec.status == record_status::ok);
    if (budget_of(rec) != "full") continue;
    // float32 attention against the float64 reference: a few ulps of relative error.
    CHECK(rec.metrics.at("rel_l2") < 1e-5);
    CHECK(rec.metrics.at("cosine") > 1 - 1e-9);
    CHECK(rec.metrics.at("mass_recall") == Approx(1.0).margin(1e-12));
    CHECK(rec.metrics.at("topk_recall") == 1.0);
    ++full_checked;
  }
  CHECK(full_checked == 2 * static_cast<int>(methods.size()));
  std::filesystem::remove_all(cfg.out_dir);
}

TEST_CASE("fidelity: error grows as the budget shrinks", "[fidelity]") {
  std::ostringstream progress;
  run_config cfg = fidelity_config({"streaming_llm:sinks=4", "snapkv", "quest:page=16"}, "curve");
  report r = run_benchmark(cfg, progress);
  // method -> source -> budget -> record
  std::map<std::string, std::map<std::string, std::map<std::string, const record*>>> by;
  for (const auto& rec : r.records) {
    INFO(rec.case_name << " " << rec.method_spec << " " << rec.reason);
    REQUIRE(rec.status == record_status::ok);
    by[rec.method][rec.axes.at("source").get<std::string>()][budget_of(rec)] = &rec;
  }
  for (const auto& [method, sources] : by)
    for (const auto& [source, budgets] : sources) {
      INFO(method << " on " << source);
      auto metric = [&](const std::string& b, const std::string& m) {
        return budgets.at(b)->metrics.at(m);
      };
      CHECK(metric("32", "rel_l2") > metric("384", "rel_l2"));
      CHECK(metric("384", "rel_l2") > metric("full", "rel_l2"));
      CHECK(metric("full", "rel_l2") < 1e-5);
      CHECK(metric("32", "mass_recall") < metric("384", "mass_recall"));
      CHECK(metric("32", "read_tokens") <= 32 + 8);  // budget, plus decoded tokens for snapkv
    }
  // StreamingLLM's keep sets are nested (sinks + a longer window): recall grows monotonically.
  for (const auto& [source, budgets] : by.at("streaming_llm")) {
    CHECK(budgets.at("32")->metrics.at("mass_recall") <=
          budgets.at("128")->metrics.at("mass_recall"));
    CHECK(budgets.at("128")->metrics.at("mass_recall") <=
          budgets.at("384")->metrics.at("mass_recall"));
    CHECK(budgets.at("32")->params.at("budget") == 32);
  }
  std::filesystem::remove_all(cfg.out_dir);
}

TEST_CASE("structured generator: logits are the sum of the knobs", "[fidelity][structured]") {
  // No content, locality or heavy hitters: the sink key scores `sink`, every other key 0.
  structured_config c;
  c.content_std = 0;
  c.locality = 0;
  c.heavy = 0;
  c.sink = 3;
  const std::int64_t n = 200;
  auto w = last_query_weights(c, n);
  const double e = std::exp(3.0);
  CHECK(w[0] == Approx(e / (e + (n - 1))).epsilon(1e-5));
  CHECK(w[100] == Approx(1.0 / (e + (n - 1))).epsilon(1e-5));

  // Heavy hitters alone: each takes e^heavy times a plain key's weight.
  c.sink = 0;
  c.heavy = 2;
  c.heavy_count = 4;
  w = last_query_weights(c, n);
  auto heavy = structured_heavy_positions(c, 0, 0, n, 11);
  REQUIRE(heavy.size() == 4);
  const double plain = 1.0 / (4 * std::exp(2.0) + (n - 4));
  for (auto t : heavy)
    CHECK(w[static_cast<std::size_t>(t)] == Approx(plain * std::exp(2.0)).epsilon(1e-5));
  CHECK(w[0] == Approx(plain).epsilon(1e-5));

  // Locality alone: the query's own position scores `locality` (every cosine is 1).
  c.heavy = 0;
  c.locality = 2;
  w = last_query_weights(c, n);
  double max_other = 0;
  for (std::int64_t t = 0; t + 1 < n; ++t)
    max_other = std::max(max_other, w[static_cast<std::size_t>(t)]);
  CHECK(w[n - 1] > max_other);
}

TEST_CASE("structured generator: each knob moves the mass it names", "[fidelity][structured]") {
  const std::int64_t n = 1024;
  auto mass = [&](const structured_config& c, auto&& pick) {
    auto w = last_query_weights(c, n);
    double m = 0;
    for (std::int64_t t = 0; t < n; ++t)
      if (pick(t)) m += w[static_cast<std::size_t>(t)];
    return m;
  };
  structured_config base;
  base.sink = base.locality = base.heavy = 0;
  auto first = [](std::int64_t t) { return t == 0; };
  auto recent = [&](std::int64_t t) { return t >= n - 16; };
  structured_config sink = base;
  sink.sink = 10;
  CHECK(mass(base, first) < 0.01);
  CHECK(mass(sink, first) > 0.5);
  structured_config local = base;
  local.locality = 12;
  CHECK(mass(base, recent) < 0.05);
  CHECK(mass(local, recent) > 0.3);
  structured_config heavy = base;
  heavy.heavy = 8;
  auto hp = structured_heavy_positions(heavy, 0, 0, n, 11);
  auto is_heavy = [&](std::int64_t t) { return std::binary_search(hp.begin(), hp.end(), t); };
  CHECK(mass(base, is_heavy) < 0.05);
  CHECK(mass(heavy, is_heavy) > 0.5);

  // Bad knob values are bad input naming the value.
  structured_config c;
  CHECK_THROWS_WITH(c.set("sink", "-1"), Catch::Contains("-1"));
  CHECK_THROWS_WITH(c.set("sinks", "1"), Catch::Contains("sinks"));
  CHECK_THROWS_WITH(c.set("heavy_count", "1.5"), Catch::Contains("1.5"));
}

TEST_CASE("read_positions reports what the last query read", "[fidelity][adapters]") {
  model_shape shape = shape_preset("small");
  structured_config c;
  structured_qkv_source src(shape, c, 100, 1);
  host_tensor q, k, v, out(1, shape.q_heads, shape.head_dim);
  src.layer(0, q, k, v);
  auto run = [&](const std::string& spec) {
    attention_problem p;
    p.shape = shape;
    p.context_tokens = 99;
    p.max_tokens = 100;
    auto m = resolve_method(spec, "cpu").create();
    m->prepare(p, exec_context{});
    CHECK(m->read_positions().empty());  // nothing attended yet
    m->prefill(q.view().rows(0, 99), k.view().rows(0, 99), v.view().rows(0, 99), nullptr);
    m->append(k.view().rows(99, 1), v.view().rows(99, 1));
    m->attend(q.view().rows(99, 1), out.view());
    return m->read_positions();
  };
  // Eviction: sinks 0-3 and the last 16 positions, in every KV head.
  auto streaming = run("streaming_llm:sinks=4,window=16");
  REQUIRE(streaming.size() == static_cast<std::size_t>(shape.kv_heads));
  std::vector<std::int64_t> expect = {0, 1, 2, 3};
  for (std::int64_t t = 84; t < 100; ++t) expect.push_back(t);
  for (const auto& rows : streaming) CHECK(rows == expect);
  // Sparse selection: exactly `budget` rows, the current one among them.
  auto topk = run("topk_oracle:budget=10");
  for (const auto& rows : topk) {
    CHECK(rows.size() == 10);
    CHECK(std::is_sorted(rows.begin(), rows.end()));
  }
  // Dense reads everything.
  for (const auto& rows : run("dense")) CHECK(rows.size() == 100);
}

TEST_CASE("fidelity runs on an imported trace", "[fidelity][trace]") {
  // The shipped tiny trace: the retrieval model, 2 layers, 4 / 2 heads, 96 tokens.
  std::ostringstream progress;
  run_config cfg = fidelity_config({"dense", "streaming_llm:sinks=4", "snapkv:window=8"}, "trace");
  cfg.options.trace = test::tiny_trace();
  cfg.options.budgets = {16, 48};
  report r = run_benchmark(cfg, progress);
  REQUIRE(r.records.size() == 3 * 3);  // budgets 16, 48, full x methods
  std::map<std::string, std::map<std::string, const record*>> by;
  for (const auto& rec : r.records) {
    INFO(rec.case_name << " " << rec.method_spec << " " << rec.reason);
    CHECK(rec.axes.at("source") == "trace");
    CHECK(rec.axes.at("length") == 96 - 8 + 1);  // the last fidelity.steps tokens are decoded
    if (rec.method == "dense" && budget_of(rec) != "full") continue;
    REQUIRE(rec.status == record_status::ok);
    by[rec.method][budget_of(rec)] = &rec;
  }
  for (const auto& [method, budgets] : by) {
    INFO(method);
    CHECK(budgets.at("full")->metrics.at("rel_l2") < 1e-5);
    if (method == "dense") continue;
    CHECK(budgets.at("16")->metrics.at("rel_l2") > budgets.at("full")->metrics.at("rel_l2"));
    CHECK(budgets.at("16")->metrics.at("mass_recall") < 1.0);
  }
  std::filesystem::remove_all(cfg.out_dir);
}
