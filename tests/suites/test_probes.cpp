#include <catch2/catch.hpp>

#include <filesystem>
#include <map>
#include <sstream>

#include "harness/error.hpp"
#include "app/runner.hpp"
#include "suite_test_util.hpp"

using namespace attnbench;

namespace {

run_config probes_config(std::vector<std::string> methods, const std::string& out) {
  run_config cfg = test::suite_config("probes", std::move(methods), {1024}, out);
  cfg.options.samples = 1;
  cfg.options.seed = 2;
  cfg.options.params["probes.rope_bases"] = "10000";
  return cfg;
}

}  // namespace

TEST_CASE("probes: sink heads put their mass on position 0", "[probes]") {
  std::ostringstream progress;
  run_config cfg = probes_config(
      {"dense", "streaming_llm:sinks=4,window=64", "sliding_window:window=64"}, "sink");
  report r = run_benchmark(cfg, progress);
  REQUIRE(r.records.size() == 3);
  std::map<std::string, const record*> by;
  for (const auto& rec : r.records) {
    INFO(rec.method_spec << " " << rec.reason);
    REQUIRE(rec.status == record_status::ok);
    by[rec.method] = &rec;
  }
  const record& dense = *by.at("dense");
  int sink_heads = 0, retrieval_heads = 0;
  for (const auto& h : dense.extra.at("heads")) {
    const std::string role = h.at("role");
    const double sink = h.at("sink_score");
    const double entropy = h.at("entropy");
    if (role == "sink") {
      // Workload v2: BOS beats the newest keys by sink_logit - local_temp (12 logits) and the
      // rest by about sink_logit (20): mass above 0.95 (version 1: 1 - 1000 e^-20).
      CHECK(sink > 0.95);
      CHECK(entropy < 0.25);
      ++sink_heads;
    } else if (role == "retrieval") {
      // Retrieval heads give BOS what their matches leave (workload v2: BOS scores 0.5 b
      // against the keys' -3 b), far below a sink head's share.
      CHECK(sink < 0.5);
      ++retrieval_heads;
    }
  }
  CHECK(sink_heads > 0);
  CHECK(retrieval_heads > 0);
  CHECK(dense.metrics.at("sink_score_max") > 0.95);
  CHECK(dense.metrics.at("entropy_ratio") > 0.0);
  CHECK(dense.metrics.at("entropy_ratio") < 1.0);
  // The probes describe the workload: identical for every method.
  for (const char* m : {"streaming_llm", "sliding_window"}) {
    CHECK(by.at(m)->metrics.at("sink_score") == dense.metrics.at("sink_score"));
    CHECK(by.at(m)->metrics.at("entropy") == dense.metrics.at("entropy"));
  }
  // What the methods read: dense and StreamingLLM keep the sink, a bare window does not.
  CHECK(dense.metrics.at("sink_kept") == 1.0);
  CHECK(by.at("streaming_llm")->metrics.at("sink_kept") == 1.0);
  CHECK(by.at("sliding_window")->metrics.at("sink_kept") == 0.0);
  if (dense.metrics.count("secondary_sinks_kept"))
    CHECK(dense.metrics.at("secondary_sinks_kept") == 1.0);
  std::filesystem::remove_all(cfg.out_dir);
}

TEST_CASE("probes: RoPE locality falls toward 0.5 with length", "[probes][rope]") {
  std::ostringstream progress;
  run_config cfg = probes_config({"dense"}, "rope");
  // The probe rotates the workload's rotary dims: version 1's full rotary at head_dim 64.
  cfg.workload = workload_config::for_version(1);
  cfg.options.lengths = {128, 65536};
  cfg.options.params["probes.rope_bases"] = "10000,500000";
  cfg.options.params["probes.queries"] = "1";
  report r = run_benchmark(cfg, progress);
  REQUIRE(r.records.size() == 4);
  std::map<std::pair<std::int64_t, double>, double> p;
  for (const auto& rec : r.records) {
    REQUIRE(rec.status == record_status::ok);
    p[{rec.axes.at("length").get<std::int64_t>(), rec.axes.at("rope_base").get<double>()}] =
        rec.metrics.at("rope_locality");
  }
  // A matching key nearby beats its far copy clearly at short range (about 0.74) ...
  CHECK(p.at({128, 10000.0}) > 0.7);
  CHECK(p.at({128, 500000.0}) > p.at({65536, 500000.0}));
  // ... not at all once the distances pass the slowest wavelength of base 10000 (2 pi 10000^(31/
  // 32), about 47K tokens at head_dim 64): 0.5 within 6 standard errors of 20000 pairs ...
  CHECK(p.at({65536, 10000.0}) == Approx(0.5).margin(0.02));
  // ... while base 500000 keeps a preference there (about 0.63).
  CHECK(p.at({65536, 500000.0}) > p.at({65536, 10000.0}) + 0.05);
  std::filesystem::remove_all(cfg.out_dir);
}

TEST_CASE("probes rejects bad parameters as bad input", "[probes]") {
  test::check_bad_params(
      probes_config({"dense"}, "bad"),
      {{"probes.rope_bases", "1"}, {"probes.sink_threshold", "2"}, {"probes.queries", "y"}});
}

TEST_CASE("probes run on an imported trace with its head roles", "[probes][trace]") {
  std::ostringstream progress;
  run_config cfg = probes_config({"dense", "sliding_window:window=16"}, "trace");
  cfg.options.params.clear();
  cfg.options.trace = test::tiny_trace();
  report r = run_benchmark(cfg, progress);
  REQUIRE(r.records.size() == 2);  // one case: the trace's length at its own RoPE base
  for (const auto& rec : r.records) {
    INFO(rec.method_spec << " " << rec.reason);
    REQUIRE(rec.status == record_status::ok);
    CHECK(rec.axes.at("length") == 96);
    CHECK(rec.axes.at("rope_base") == 10000.0);
    for (const auto& h : rec.extra.at("heads"))
      if (h.at("role") == "sink") CHECK(h.at("sink_score").get<double>() > 0.99);
  }
  CHECK(r.records[0].metrics.at("sink_kept") == 1.0);
  CHECK(r.records[1].metrics.at("sink_kept") == 0.0);
  std::filesystem::remove_all(cfg.out_dir);
}
