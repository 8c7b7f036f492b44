#include <catch2/catch.hpp>

#include <filesystem>
#include <sstream>

#include "harness/error.hpp"
#include "app/runner.hpp"
#include "suite_test_util.hpp"

using namespace attnbench;

namespace {

// A method that fails in prefill, and one that declines every problem: the runner must turn
// them into `error` and `skipped` records and go on.
class failing_method final : public kv_method {
 public:
  void prepare(const attention_problem&, const exec_context&) override {}
  void prefill(tensor_view, tensor_view, tensor_view, tensor_view*) override {
    ATTNBENCH_CHECK(false, internal, "deliberate failure");
  }
  void append(tensor_view, tensor_view) override {}
  void attend(tensor_view, tensor_view) override {}
  cache_stats stats() const override { return {}; }
};

class declining_method final : public kv_method {
 public:
  std::optional<std::string> unsupported_reason(const attention_problem&) const override {
    return "never";
  }
  void prepare(const attention_problem&, const exec_context&) override {}
  void prefill(tensor_view, tensor_view, tensor_view, tensor_view*) override {}
  void append(tensor_view, tensor_view) override {}
  void attend(tensor_view, tensor_view) override {}
  cache_stats stats() const override { return {}; }
};

ATTNBENCH_REGISTER_METHOD(method_info{
    "test_failing", "cpu", "", "always throws", {}, [](const param_values&) {
      return std::make_unique<failing_method>();
    }});
ATTNBENCH_REGISTER_METHOD(method_info{
    "test_declining", "cpu", "", "always unsupported", {}, [](const param_values&) {
      return std::make_unique<declining_method>();
    }});

run_config niah_config(std::vector<std::string> methods, const std::string& out) {
  run_config cfg = test::suite_config("niah", std::move(methods), {2048, 4096}, out);
  cfg.options.depths = {0.0, 0.25, 0.5, 0.75, 1.0};
  cfg.options.samples = 2;
  cfg.options.seed = 1;
  return cfg;
}

}  // namespace

TEST_CASE("dense scores 100% on every NIAH cell; StreamingLLM only inside its window", "[niah]") {
  std::ostringstream progress;
  run_config cfg = niah_config({"dense", "streaming_llm:sinks=4,window=512"}, "niah");
  report r = run_benchmark(cfg, progress);
  REQUIRE(r.records.size() == 2 * 2 * 5);
  for (const auto& rec : r.records) {
    INFO(rec.case_name << " " << rec.method_spec);
    REQUIRE(rec.status == record_status::ok);
    double depth = rec.axes.at("depth");
    auto length = rec.axes.at("length").get<std::int64_t>();
    if (rec.method == "dense") {
      CHECK(rec.metrics.at("accuracy") == 100.0);
      CHECK(rec.metrics.at("resident_kv_ratio") == Approx(1.0).epsilon(0.02));
    } else {
      // The needle sentence sits at depth * length; the 512-token window covers only the end.
      bool inside = (1.0 - depth) * static_cast<double>(length) < 512 - 64;
      CHECK(rec.metrics.at("accuracy") == (inside ? 100.0 : 0.0));
      CHECK(rec.metrics.at("resident_tokens") == Approx(4 + 512));
      CHECK(rec.params.at("window") == 512);
      CHECK(rec.params.at("budget_tokens") == 516);
    }
    CHECK(rec.metrics.at("needle_mass") > 0.5);
  }
  CHECK(std::filesystem::exists(cfg.out_dir / "report.json"));
  CHECK(std::filesystem::exists(cfg.out_dir / "report.jsonl"));
  std::filesystem::remove_all(cfg.out_dir);
}

TEST_CASE("StreamingLLM answers a needle that lies inside its sinks", "[niah]") {
  std::ostringstream progress;
  run_config cfg = niah_config({"streaming_llm:sinks=32,window=256"}, "sinks");
  cfg.options.lengths = {2048};
  cfg.options.depths = {0.0, 0.5};
  report r = run_benchmark(cfg, progress);
  REQUIRE(r.records.size() == 2);
  // At depth 0 the needle sentence starts right after BOS: all of it is within 32 sinks.
  CHECK(r.records[0].metrics.at("accuracy") == 100.0);
  CHECK(r.records[1].metrics.at("accuracy") == 0.0);
  std::filesystem::remove_all(cfg.out_dir);
}

TEST_CASE("metrics are identical at any thread count", "[niah][determinism]") {
  std::ostringstream progress;
  run_config one = niah_config({"dense", "sliding_window:window=256"}, "t1");
  one.options.lengths = {1024};
  one.options.depths = {0.2, 0.9};
  one.threads = 1;
  run_config two = one;
  two.threads = 2;
  two.out_dir = test::temp_out("niah", "t2");
  report a = run_benchmark(one, progress);
  report b = run_benchmark(two, progress);
  REQUIRE(a.records.size() == b.records.size());
  for (std::size_t i = 0; i < a.records.size(); ++i) {
    CHECK(a.records[i].case_name == b.records[i].case_name);
    CHECK(a.records[i].metrics == b.records[i].metrics);
    CHECK(a.records[i].extra.at("samples") == b.records[i].extra.at("samples"));
  }
  std::filesystem::remove_all(one.out_dir);
  std::filesystem::remove_all(two.out_dir);
}

TEST_CASE("a failing case becomes an error record and the sweep goes on", "[niah][runner]") {
  std::ostringstream progress;
  run_config cfg = niah_config({"test_failing", "test_declining", "dense"}, "fail");
  cfg.options.lengths = {512};
  cfg.options.depths = {0.5};
  report r = run_benchmark(cfg, progress);
  REQUIRE(r.records.size() == 3);
  CHECK(r.records[0].status == record_status::error);
  CHECK(r.records[0].reason.find("deliberate failure") != std::string::npos);
  CHECK(r.records[0].metrics.empty());
  CHECK(r.records[1].status == record_status::skipped);
  CHECK(r.records[1].reason == "never");
  CHECK(r.records[2].status == record_status::ok);
  CHECK(r.records[2].metrics.at("accuracy") == 100.0);
  std::filesystem::remove_all(cfg.out_dir);
}

TEST_CASE("bad run configurations are rejected before anything is written", "[runner]") {
  std::ostringstream progress;
  auto expect_bad = [&](run_config cfg, const std::string& needle) {
    try {
      run_benchmark(cfg, progress);
      FAIL("accepted");
    } catch (const error& e) {
      CHECK(e.id() == error_id::bad_input);
      CHECK(std::string(e.what()).find(needle) != std::string::npos);
    }
    CHECK_FALSE(std::filesystem::exists(cfg.out_dir));
  };
  expect_bad(niah_config({"nosuch"}, "bad1"), "nosuch");
  expect_bad(niah_config({"dense:budget=3"}, "bad2"), "budget");
  auto cfg = niah_config({"dense"}, "bad3");
  cfg.suites = {"nosuite"};
  expect_bad(cfg, "nosuite");
  cfg = niah_config({"dense"}, "bad4");
  cfg.filter = "(";
  expect_bad(cfg, "(");
  cfg = niah_config({"dense"}, "bad5");
  cfg.options.lengths = {std::int64_t{1} << 24};
  cfg.options.shape = shape_preset("llama3-8b");
  expect_bad(cfg, "MiB");
}

TEST_CASE("the question reaches prompt-guided methods in query-aware mode only", "[niah][runner]") {
  // finch compresses with attention_problem::question_tokens and declines a prompt without one.
  std::ostringstream progress;
  run_config cfg = niah_config({"finch:keep=0.5"}, "question");
  cfg.options.lengths = {1024};
  cfg.options.depths = {0.5};
  report aware = run_benchmark(cfg, progress);
  REQUIRE(aware.records.size() == 1);
  CHECK(aware.records[0].status == record_status::ok);
  CHECK(aware.records[0].metrics.at("accuracy") == 100.0);
  cfg.options.mode = run_mode::query_agnostic;
  cfg.overwrite = true;  // the same folder as the query-aware run
  report agnostic = run_benchmark(cfg, progress);
  REQUIRE(agnostic.records.size() == 1);
  CHECK(agnostic.records[0].status == record_status::skipped);
  CHECK(agnostic.records[0].reason.find("question") != std::string::npos);
  std::filesystem::remove_all(cfg.out_dir);
}
