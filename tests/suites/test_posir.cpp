#include <catch2/catch.hpp>

#include <cmath>
#include <filesystem>
#include <sstream>

#include "app/runner.hpp"
#include "datasets/haystack.hpp"
#include "datasets/retrieval_model.hpp"
#include "harness/error.hpp"
#include "reports/posir_summary.hpp"
#include "suite_test_util.hpp"
#include "suites/common/retrieval_run.hpp"

using namespace attnbench;

namespace {

// A posir record of `bins` bins with the given accuracy (percent).
record bin_record(const std::string& spec, std::int64_t length, int bin, int bins,
                  double accuracy) {
  record r;
  r.suite = "posir";
  r.method = spec;
  r.method_spec = spec;
  r.axes = {{"length", length}, {"bin", bin}};
  r.extra = {{"bins", bins}, {"position", (bin + 0.5) / bins}};
  r.metrics["accuracy"] = accuracy;
  r.metrics["needle_mass"] = 0.5;
  return r;
}

report profile(const std::vector<double>& accuracy, const std::string& spec = "m") {
  report r;
  for (std::size_t b = 0; b < accuracy.size(); ++b)
    r.records.push_back(bin_record(spec, 1024, static_cast<int>(b),
                                   static_cast<int>(accuracy.size()), accuracy[b]));
  return r;
}

}  // namespace

TEST_CASE("posir summary: PSI, slope and middle dip by hand", "[posir][summary]") {
  SECTION("a rising profile is recency-biased") {
    // Positions .125 .375 .625 .875, mean .5; Sxx = 2 (.375^2 + .125^2) = .3125, Sxy = 37.5:
    // slope 120; residuals -5, 15, -15, 5: stderr sqrt(500 / 2 / .3125) = sqrt(800).
    auto s = posir_summary(profile({0, 50, 50, 100}));
    REQUIRE(s.size() == 1);
    CHECK(s[0].psi == Approx(1.0));
    CHECK(s[0].slope == Approx(120.0));
    CHECK(s[0].slope_stderr == Approx(std::sqrt(800.0)));
    CHECK(s[0].bias == "recency");
    CHECK(s[0].middle_dip == Approx(-50.0));  // min(0, 100) - 50
    CHECK(s[0].mean_accuracy == Approx(50.0));
  }
  SECTION("a falling profile is primacy-biased") {
    auto s = posir_summary(profile({100, 50, 50, 0}));
    CHECK(s[0].slope == Approx(-120.0));
    CHECK(s[0].bias == "primacy");
  }
  SECTION("a U shape is flat with a middle dip") {
    auto s = posir_summary(profile({100, 0, 0, 100}));
    CHECK(s[0].psi == Approx(1.0));
    CHECK(s[0].slope == Approx(0.0).margin(1e-9));
    CHECK(s[0].bias == "flat");
    CHECK(s[0].middle_dip == Approx(100.0));
  }
  SECTION("a uniform profile has PSI 0; when every bin fails PSI is undefined") {
    auto full = posir_summary(profile({100, 100, 100, 100}));
    CHECK(full[0].psi == 0.0);
    CHECK(full[0].bias == "flat");
    CHECK(full[0].middle_dip == 0.0);
    auto none = posir_summary(profile({0, 0, 0, 0}));
    CHECK(std::isnan(none[0].psi));
    CHECK(none[0].mean_accuracy == 0.0);
  }
  SECTION("a small slope within the dead band is flat") {
    // Mean 87.5; Sxy = -.375 * 12.5 - .125 * -27.5 + .125 * 12.5 + .375 * 2.5 = 1.25: slope 4,
    // inside the 5-point floor of the dead band.
    auto s = posir_summary(profile({100, 60, 100, 90}));
    CHECK(s[0].slope == Approx(4.0));
    CHECK(s[0].bias == "flat");
  }
  SECTION("with sample counts, the stderr is binomial: a sharp step is still recency") {
    // A window method: only the last bin answers. All bins are 0 or 100 (no sampling noise),
    // so the dead band is the 5-point floor; the residuals alone would call it flat.
    report r = profile({0, 0, 0, 0, 0, 0, 0, 100});
    for (auto& rec : r.records) rec.extra["samples_run"] = 2;
    auto s = posir_summary(r);
    CHECK(s[0].slope_stderr == 0.0);
    CHECK(s[0].slope > 5.0);
    CHECK(s[0].bias == "recency");
    // Bins at 50% carry binomial noise: var = 50 * 50 / 2 per bin.
    report half = profile({50, 50, 50, 50});
    for (auto& rec : half.records) rec.extra["samples_run"] = 2;
    auto h = posir_summary(half);
    CHECK(h[0].slope_stderr == Approx(std::sqrt(0.3125 * 1250.0) / 0.3125));
  }
  SECTION("failed bins are left out and counted") {
    report r = profile({0, 50, 50, 100});
    r.records[1].status = record_status::error;
    r.records[1].metrics.clear();
    auto s = posir_summary(r);
    CHECK(s[0].failed_bins == 1);
    CHECK(s[0].accuracy.size() == 3);
    CHECK(s[0].psi == Approx(1.0));
  }
  SECTION("groups are split by method and length, and the table names them") {
    report r = profile({0, 0, 100, 100}, "a");
    for (auto& rec : profile({100, 100, 100, 100}, "b").records) r.records.push_back(rec);
    auto s = posir_summary(r);
    REQUIRE(s.size() == 2);
    CHECK(s[0].method_spec == "a");
    CHECK(s[1].method_spec == "b");
    std::string table = posir_table(r);
    CHECK(table.find("recency") != std::string::npos);
    CHECK(table.find("| b ") != std::string::npos);
    CHECK(posir_table(report{}).empty());
  }
}

TEST_CASE("posir: StreamingLLM is recency-biased, dense is position-insensitive", "[posir]") {
  std::ostringstream progress;
  run_config cfg =
      test::suite_config("posir", {"dense", "streaming_llm:sinks=4,window=512"}, {2048}, "run");
  cfg.options.samples = 2;
  cfg.options.seed = 3;
  cfg.options.params["posir.bins"] = "10";
  report r = run_benchmark(cfg, progress);
  REQUIRE(r.records.size() == 2 * 10);
  for (const auto& rec : r.records) {
    INFO(rec.case_name << " " << rec.method_spec << " " << rec.reason);
    REQUIRE(rec.status == record_status::ok);
    CHECK(rec.metrics.at("needle_mass") > 0.5);
  }
  auto s = posir_summary(r);
  REQUIRE(s.size() == 2);
  const auto& dense = s[0].method_spec == "dense" ? s[0] : s[1];
  const auto& streaming = s[0].method_spec == "dense" ? s[1] : s[0];
  CHECK(dense.psi == 0.0);
  CHECK(dense.mean_accuracy == 100.0);
  CHECK(dense.bias == "flat");
  // The 512-token window covers the last quarter of the prompt: later bins answer, early fail.
  CHECK(streaming.psi == Approx(1.0));
  CHECK(streaming.slope > 50.0);
  CHECK(streaming.bias == "recency");
  CHECK(streaming.accuracy.front() == 0.0);
  CHECK(streaming.accuracy.back() == 100.0);
  std::filesystem::remove_all(cfg.out_dir);
}

TEST_CASE("posir rejects bad parameters as bad input", "[posir]") {
  test::check_bad_params(test::suite_config("posir", {"dense"}, {512}, "bad"),
                         {{"posir.bins", "1"},
                          {"posir.bins", "x"},
                          {"posir.placement", "left"},
                          {"posir.reorder", "shuffle"},
                          {"posir.documents", "1"},
                          {"posir.sort_iterations", "0"},
                          {"posir.buckets", "all"},
                          {"posir.bucket_bases", "10000"}});  // without posir.buckets
  run_config cfg = test::suite_config("posir", {"dense"}, {512}, "bad_bases");
  for (const std::string bases : {"x", "50", "10000,,20000", "10000,2e9",
                                  "1e4,1e4,1e4,1e4,1e4,1e4,1e4,1e4,1e4,1e4,1e4,1e4,1e4,1e4,1e4,"
                                  "1e4,1e4"}) {
    std::ostringstream progress;
    cfg.options.params = {{"posir.buckets", "attention_buckets"}, {"posir.bucket_bases", bases}};
    try {
      run_benchmark(cfg, progress);
      FAIL("accepted posir.bucket_bases=" << bases);
    } catch (const error& e) {
      CHECK(e.id() == error_id::bad_input);
      CHECK(std::string(e.what()).find(bases) != std::string::npos);
      CHECK(std::string(e.what()).find('\n') == std::string::npos);
    }
  }
  CHECK_FALSE(std::filesystem::exists(cfg.out_dir));
}

TEST_CASE("posir: reordering mitigations move the evidence into StreamingLLM's window",
          "[posir][reorder]") {
  // Without reordering the 512-token window answers only the last bins (the case above). Both
  // reorderings bring the evidence's document to the end of the context: attention sorting
  // because the retrieval heads attend it most, AttnRank because the retriever ranks it first
  // and the workload's last slot draws the most attention (its local heads). Every bin answers.
  for (const std::string reorder : {"attention_sorting", "attnrank"}) {
    DYNAMIC_SECTION(reorder) {
      std::ostringstream progress;
      run_config cfg =
          test::suite_config("posir", {"streaming_llm:sinks=4,window=512"}, {2048}, reorder);
      cfg.options.samples = 2;
      cfg.options.seed = 3;
      cfg.options.params["posir.bins"] = "5";
      cfg.options.params["posir.reorder"] = reorder;
      cfg.options.params["posir.documents"] = "8";
      report r = run_benchmark(cfg, progress);
      REQUIRE(r.records.size() == 5);
      for (const auto& rec : r.records) {
        INFO(rec.case_name << " " << rec.reason);
        REQUIRE(rec.status == record_status::ok);
        CHECK(rec.extra.at("reorder").at("kind") == reorder);
        for (const auto& sample : rec.extra.at("samples"))
          CHECK(sample.at("actual_depth").get<double>() > 0.8);
      }
      auto s = posir_summary(r);
      REQUIRE(s.size() == 1);
      CHECK(s[0].psi == 0.0);
      CHECK(s[0].mean_accuracy == 100.0);
      std::filesystem::remove_all(cfg.out_dir);
    }
  }
}

TEST_CASE("posir's mass probe runs on a trace with evidence spans", "[posir][trace]") {
  std::ostringstream progress;
  // No lengths: the trace is the one prompt.
  run_config cfg =
      test::suite_config("posir", {"dense", "streaming_llm:sinks=4,window=16"}, {}, "trace");
  cfg.options.trace = test::tiny_trace();
  report r = run_benchmark(cfg, progress);
  REQUIRE(r.records.size() == 2);
  for (const auto& rec : r.records) {
    INFO(rec.method_spec << " " << rec.reason);
    REQUIRE(rec.status == record_status::ok);
    // Evidence [27, 41) of 96 tokens: relative position 0.28, bin 5 of 20.
    CHECK(rec.axes.at("bin") == 5);
    CHECK(rec.metrics.at("needle_mass") > 0.3);
    CHECK(rec.metrics.count("accuracy") == 0);
  }
  CHECK(r.records[0].metrics.at("evidence_read") == 1.0);  // dense reads everything
  CHECK(r.records[1].metrics.at("evidence_read") == 0.0);  // the evidence left the window
  CHECK(posir_summary(r).empty());                         // no accuracy to summarize
  std::filesystem::remove_all(cfg.out_dir);
}

TEST_CASE("attention buckets: the merge weighs each pass by the softmax of its top logit",
          "[posir][buckets]") {
  // Tops 2 and 3: w = (1, e) / (1 + e); merged = w0 (0, 2, 1) + w1 (3, 0, 0).
  const double e = std::exp(1.0);
  auto m = merge_bucket_logits({{0.0f, 2.0f, 1.0f}, {3.0f, 0.0f, 0.0f}});
  REQUIRE(m.size() == 3);
  CHECK(m[0] == Approx(3 * e / (1 + e)));
  CHECK(m[1] == Approx(2 / (1 + e)));
  CHECK(m[2] == Approx(1 / (1 + e)));
  // Equally confident passes average; a single pass comes back unchanged, bit for bit.
  auto avg = merge_bucket_logits({{4.0f, 1.0f}, {0.0f, 4.0f}});
  CHECK(avg[0] == Approx(2.0));
  CHECK(avg[1] == Approx(2.5));
  const std::vector<float> one{0.1f, -3.7f, 2.25f};
  CHECK(merge_bucket_logits({one}) == one);
  // The more confident pass decides where a plain mean would not: tops 2 and 4, w = (e^2, e^4)
  // / z = (.119, .881); the mean (1, -.5) picks token 0, the merge (.24, 2.93) token 1.
  auto c = merge_bucket_logits({{2.0f, -5.0f}, {0.0f, 4.0f}});
  const double w0 = 1 / (1 + std::exp(2.0));
  CHECK(c[0] == Approx(2 * w0));
  CHECK(c[1] == Approx(-5 * w0 + 4 * (1 - w0)));
  CHECK(c[1] > c[0]);
  CHECK_THROWS_AS(merge_bucket_logits({}), error);
  CHECK_THROWS_AS(merge_bucket_logits({{1.0f}, {1.0f, 2.0f}}), error);
}

TEST_CASE("attention buckets: one pass at the workload's base is the plain run, bit for bit",
          "[posir][buckets]") {
  const model_shape shape = shape_preset("small");
  const workload_config config;
  const retrieval_model model(shape, config);
  const retrieval_model copy(shape, config);  // built apart, as posir builds its passes
  const niah_sample s = make_niah(2048, 0.3, haystack_kind::essay, value_kind::number, 11);
  for (const std::string spec : {"dense", "streaming_llm:sinks=4,window=256", "snapkv:keep=0.25"})
    for (run_mode mode : {run_mode::query_aware, run_mode::query_agnostic}) {
      INFO(spec << " " << static_cast<int>(mode));
      const method_instance m = resolve_method(spec, "cpu");
      const auto plain = run_retrieval(model, m, exec_context{}, nullptr, mode, s.context,
                                       s.question, s.answer_tokens, s.value_begin);
      const auto bucket = run_bucket_retrieval({&copy}, m, exec_context{}, nullptr, mode, s.context,
                                               s.question, s.answer_tokens, s.value_begin);
      CHECK(bucket.generated == plain.generated);
      CHECK(bucket.needle_mass == plain.needle_mass);
      CHECK(bucket.resident_bytes == plain.resident_bytes);
      CHECK(bucket.resident_tokens == plain.resident_tokens);
      CHECK(bucket.keys_scored == plain.keys_scored);
      CHECK(bucket.dense_bytes == plain.dense_bytes);
      // Two passes hold two caches.
      const auto two = run_bucket_retrieval({&model, &copy}, m, exec_context{}, nullptr, mode,
                                            s.context, s.question, s.answer_tokens, s.value_begin);
      CHECK(two.generated == plain.generated);  // identical passes: identical merge
      CHECK(two.resident_bytes == 2 * plain.resident_bytes);
      CHECK(two.dense_bytes == 2 * plain.dense_bytes);
    }
}

TEST_CASE("posir.buckets: the suite runs the paper's bases scaled to the workload's",
          "[posir][buckets]") {
  std::ostringstream progress;
  run_config plain = test::suite_config("posir", {"dense", "streaming_llm:sinks=4,window=512"},
                                        {2048}, "buckets_plain");
  plain.options.samples = 2;
  plain.options.seed = 3;
  plain.options.params["posir.bins"] = "4";
  run_config one = plain;
  one.out_dir = test::temp_out("posir", "buckets_one");
  one.options.params["posir.buckets"] = "attention_buckets";
  one.options.params["posir.bucket_bases"] = "10000";  // the workload's own base only
  run_config paper = plain;
  paper.out_dir = test::temp_out("posir", "buckets_paper");
  paper.options.params["posir.buckets"] = "attention_buckets";
  const report a = run_benchmark(plain, progress);
  const report b = run_benchmark(one, progress);
  const report c = run_benchmark(paper, progress);
  REQUIRE(a.records.size() == 8);
  REQUIRE(b.records.size() == 8);
  REQUIRE(c.records.size() == 8);
  for (std::size_t i = 0; i < a.records.size(); ++i) {
    INFO(a.records[i].case_name << " " << a.records[i].method_spec);
    REQUIRE(b.records[i].status == record_status::ok);
    REQUIRE(c.records[i].status == record_status::ok);
    CHECK_FALSE(a.records[i].extra.contains("buckets"));
    CHECK(b.records[i].extra.at("samples") == a.records[i].extra.at("samples"));
    CHECK(b.records[i].metrics.at("accuracy") == a.records[i].metrics.at("accuracy"));
    const auto& x = c.records[i].extra.at("buckets");
    CHECK(x.at("kind") == "attention_buckets");
    CHECK(x.at("passes") == 6);
    CHECK(x.at("rope_bases") ==
          nlohmann::json::array({500000.0, 875000.0, 900000.0, 950000.0, 1e6, 1.25e6}));
    // The first pass is the workload's own: the needle mass is the plain run's.
    for (std::size_t k = 0; k < a.records[i].extra.at("samples").size(); ++k)
      CHECK(c.records[i].extra.at("samples")[k].at("needle_mass") ==
            a.records[i].extra.at("samples")[k].at("needle_mass"));
  }
  for (const auto& cfg : {plain, one, paper}) std::filesystem::remove_all(cfg.out_dir);
}
