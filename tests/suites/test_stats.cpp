#include <catch2/catch.hpp>

#include <cmath>
#include <filesystem>
#include <map>
#include <sstream>

#include "harness/error.hpp"
#include "app/runner.hpp"
#include "suite_test_util.hpp"

using namespace attnbench;

namespace {

// A tiny workload run: 4 layers (so layers >= 2 exist), small's heads, 1200 tokens (past the
// 1024-token distance of T6), a 2048-token long prompt and one T9 prompt.
run_config stats_config(std::vector<std::string> methods, const std::string& out) {
  run_config cfg = test::suite_config("stats", std::move(methods), {1200}, out);
  cfg.options.seed = 3;
  cfg.options.params = {{"stats.shape", "4x8x4x64"},
                        {"stats.long_length", "2048"},
                        {"stats.t9_samples", "1"},
                        {"stats.t10_rows", "256"}};
  return cfg;
}

const char* const k_ids[] = {"t1", "t2", "t3", "t4", "t5", "t6", "t7", "t8", "t9", "t10"};

}  // namespace

TEST_CASE("stats: every statistic on a tiny workload, the same for every method", "[stats]") {
  std::ostringstream progress;
  run_config cfg = stats_config({"dense", "sliding_window:window=64"}, "workload");
  report r = run_benchmark(cfg, progress);
  REQUIRE(r.records.size() == 2);
  for (const auto& rec : r.records) {
    INFO(rec.method_spec << " " << rec.reason);
    REQUIRE(rec.status == record_status::ok);
  }
  const record& rec = r.records[0];
  CHECK(rec.axes.at("source") == "workload");
  CHECK(rec.axes.at("shape") == "4x8x4x64");
  CHECK(rec.axes.at("length") == 1200);
  CHECK(rec.extra.at("shape").at("layers") == 4);
  CHECK(rec.metrics == r.records[1].metrics);
  // Every statistic is described; each one measured has a 0/1 in_range metric and its values.
  for (const char* id : k_ids) {
    INFO(id);
    const auto& info = rec.extra.at("statistics").at(id);
    CHECK_FALSE(info.at("range").get<std::string>().empty());
    CHECK_FALSE(info.at("source").get<std::string>().empty());
    if (info.contains("skipped")) continue;
    const double in_range = rec.metrics.at(std::string(id) + "_in_range");
    CHECK((in_range == 0.0 || in_range == 1.0));
  }
  // Statistics that every workload shape measures.
  for (const char* m :
       {"t3_small_bos_value_share", "t4_early_sink_share_max", "t4_late_sink_share_median",
        "t6_chunk_min_cos_median", "t6_neighbour_cos_gap", "t7_quest_recall_64",
        "t7_h2o_recall_1024", "t8_mass95_late_median", "t8_mass95_early_median", "t10_k_rank90",
        "t10_v_rank90", "t10_v_channel_rms_ratio", "t9_retrieval_max"}) {
    INFO(m);
    REQUIRE(rec.metrics.count(m));
    CHECK(std::isfinite(rec.metrics.at(m)));
  }
  for (const char* m : {"t7_quest_recall_64", "t7_quest_recall_1024", "t8_mass95_late_median",
                        "t10_k_rank90", "t9_retrieval_max"}) {
    CHECK(rec.metrics.at(m) >= 0.0);
    CHECK(rec.metrics.at(m) <= 1.0);
  }
  // Recall grows with the budget.
  CHECK(rec.metrics.at("t7_quest_recall_1024") >= rec.metrics.at("t7_quest_recall_64"));
  CHECK(rec.metrics.at("t7_h2o_recall_1024") >= rec.metrics.at("t7_h2o_recall_64"));
  // The report documents each metric's range and source.
  const std::string doc = r.metrics.at("t1_bos_key_norm_ratio").doc;
  CHECK(doc.find("0.1-0.5") != std::string::npos);
  CHECK(doc.find("When Attention Sink Emerges") != std::string::npos);
  std::filesystem::remove_all(cfg.out_dir);
}

TEST_CASE("stats on a trace without an answer skips T9 and says why", "[stats][trace]") {
  std::ostringstream progress;
  run_config cfg = stats_config({"dense"}, "trace");
  cfg.options.params.clear();
  cfg.options.trace = test::tiny_trace();
  report r = run_benchmark(cfg, progress);
  REQUIRE(r.records.size() == 1);
  const record& rec = r.records[0];
  INFO(rec.reason);
  REQUIRE(rec.status == record_status::ok);
  CHECK(rec.axes.at("source") == "trace");
  CHECK(rec.axes.at("length") == 96);
  CHECK(rec.metrics.count("t9_in_range") == 0);
  CHECK(rec.extra.at("statistics").at("t9").at("skipped").get<std::string>().find("answer_begin") !=
        std::string::npos);
  // The tiny trace's sidecar names its rope_base: T10 on pre-RoPE keys.
  CHECK(rec.extra.at("t10_keys").get<std::string>().find("pre-RoPE") != std::string::npos);
  CHECK(rec.metrics.count("t4_early_sink_share_max") == 1);
  std::filesystem::remove_all(cfg.out_dir);
}

TEST_CASE("stats: T7's sampled H2O scores agree with the accumulation over every prompt row",
          "[stats]") {
  // stats.h2o_rows at the prompt length counts every row before the probe queries once, the
  // exact accumulation H2O makes; the default samples one row per stratum at its stratum's
  // weight. An estimate that over-weights the question (a stride ending at its last row did)
  // moves the recalls by far more than the sampling noise allowed here.
  auto t7 = [](const std::string& rows, const std::string& out) {
    std::ostringstream progress;
    run_config cfg = stats_config({"dense"}, out);
    if (!rows.empty()) cfg.options.params["stats.h2o_rows"] = rows;
    report r = run_benchmark(cfg, progress);
    REQUIRE(r.records.size() == 1);
    REQUIRE(r.records[0].status == record_status::ok);
    std::filesystem::remove_all(cfg.out_dir);
    return r.records[0].metrics;
  };
  const auto sampled = t7("", "h2o_sampled");
  const auto exact = t7("1200", "h2o_exact");
  for (const char* m : {"t7_h2o_recall_64", "t7_h2o_recall_256", "t7_h2o_recall_1024"}) {
    INFO(m << " sampled " << sampled.at(m) << " exact " << exact.at(m));
    CHECK(std::abs(sampled.at(m) - exact.at(m)) <= 0.03);
  }
  // Quest's recall does not depend on H2O's rows.
  CHECK(sampled.at("t7_quest_recall_64") == exact.at("t7_quest_recall_64"));
}

TEST_CASE("stats: the quick preset's case and the default shape", "[stats]") {
  const suite* s = suite_registry::instance().find("stats");
  REQUIRE(s != nullptr);
  run_options o;
  o.quick = true;
  auto quick = s->cases(o);
  REQUIRE(quick.size() == 1);
  CHECK(quick[0].name == "stats(source=workload,shape=4x8x4x64,length=1024,long_length=2048)");
  o.quick = false;
  auto full = s->cases(o);
  REQUIRE(full.size() == 1);
  CHECK(full[0].name == "stats(source=workload,shape=llama3-8b,length=10240,long_length=32768)");
}

TEST_CASE("stats rejects bad parameters as bad input", "[stats]") {
  test::check_bad_params(stats_config({"dense"}, "bad"), {{"stats.shape", "7x3x2x64"},
                                                          {"stats.shape", "gpt5"},
                                                          {"stats.queries", "0"},
                                                          {"stats.long_length", "12"}});
}
