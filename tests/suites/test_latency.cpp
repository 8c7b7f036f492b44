#include <catch2/catch.hpp>

#include <unistd.h>

#include <filesystem>
#include <sstream>

#include "harness/error.hpp"
#include "app/runner.hpp"
#include "suite_test_util.hpp"
#include "suites/common/ops/op_axes.hpp"
#include "suites/common/ops/op_math.hpp"

using namespace attnbench;

namespace {

run_config latency_config(std::vector<std::string> methods, const std::string& out) {
  return test::suite_config("latency", std::move(methods), {512}, out);
}

std::vector<suite_case> latency_cases(const run_options& o) {
  return suite_registry::instance().find("latency")->cases(o);
}

}  // namespace

TEST_CASE("quantiles are type-7 interpolations of the raw samples", "[latency]") {
  // Sorted: 1..10. h = 9p: p10 -> 1 + 0.9 * 1, median -> 5.5, p90 -> 9 + 0.1 * 1.
  const std::vector<double> samples = {7, 3, 10, 1, 9, 2, 8, 4, 6, 5};
  const sample_summary s = summarize(samples);
  CHECK(s.median == Approx(5.5));
  CHECK(s.p10 == Approx(1.9));
  CHECK(s.p90 == Approx(9.1));
  CHECK(s.mean == Approx(5.5));
  CHECK(s.min == 1);
  CHECK(s.max == 10);
  CHECK(quantile({4.0}, 0.9) == 4.0);
  CHECK(quantile({1, 3}, 0.25) == Approx(1.5));
  CHECK_THROWS_AS(quantile({}, 0.5), error);
}

TEST_CASE("FLOPs are 4*b*h*s^2*d for a prefill, halved when causal, 4*b*h*n*d to decode",
          "[latency]") {
  op_shape s;
  s.batch = 2;
  s.q_heads = 4;
  s.kv_heads = 2;
  s.length = 8;
  s.head_dim = 16;
  s.dtype = "bf16";
  s.phase = "prefill";
  s.causal = false;
  CHECK(dense_attention_flops(s) == 4.0 * 2 * 4 * 64 * 16);  // 32768
  s.causal = true;
  CHECK(dense_attention_flops(s) == 16384.0);
  s.phase = "decode";
  CHECK(dense_attention_flops(s) == 4.0 * 2 * 4 * 8 * 16);
  // K and V of 2 sequences x 8 tokens x 2 KV heads x 16 dims x 2 bytes.
  CHECK(dense_kv_bytes(s) == 2.0 * 8 * 2 * 16 * 2 * 2);
  s.dtype = "fp32";
  CHECK(dense_kv_bytes(s) == 2.0 * 8 * 2 * 16 * 2 * 4);
  CHECK(dtype_bytes("fp16") == 2);
}

TEST_CASE("latency axes: product order, canonical names, defaults per backend", "[latency]") {
  run_options o;
  o.shape = shape_preset("small");
  o.lengths = {1024};
  SECTION("the CPU default is one small decode case in the --shape's geometry") {
    auto cases = latency_cases(o);
    REQUIRE(cases.size() == 1);
    CHECK(cases[0].name ==
          "latency(backend=cpu,phase=decode,batch=1,length=1024,q_heads=8,kv_heads=4,"
          "head_dim=64,dtype=fp32)");
  }
  SECTION("--param lists form the product; only prefill takes the causal axis") {
    o.params = {{"latency.phase", "prefill,decode"}, {"latency.batch", "1,8"},
                {"latency.heads", "32/8"},           {"latency.head_dim", "128"},
                {"latency.dtype", "bf16"},           {"latency.causal", "1,0"}};
    auto cases = latency_cases(o);
    REQUIRE(cases.size() == 2 * 2 + 2);
    CHECK(cases[0].name ==
          "latency(backend=cpu,phase=prefill,batch=1,length=1024,q_heads=32,kv_heads=8,"
          "head_dim=128,dtype=bf16,causal=true)");
    CHECK(cases[1].axes.at("causal") == false);
    CHECK(cases[2].axes.at("batch") == 8);
    CHECK(cases[4].axes.at("phase") == "decode");
    CHECK_FALSE(cases[4].axes.contains("causal"));
    const op_shape s = op_shape_from_axes(cases[1].axes);
    CHECK(s.phase == "prefill");
    CHECK_FALSE(s.causal);
    CHECK(s.q_heads == 32);
    CHECK(s.kv_heads == 8);
    CHECK(s.head_dim == 128);
  }
  SECTION("the quick preset keeps the suite's own length, --lengths otherwise") {
    o.lengths = {2048, 4096};
    CHECK(latency_cases(o).size() == 2);
    o.quick = true;
    auto cases = latency_cases(o);
    REQUIRE(cases.size() == 1);
    CHECK(cases[0].axes.at("length") == 1024);
  }
  SECTION("page_size takes a list like the other axes; 0 (contiguous) names no page_size") {
    o.params = {{"latency.page_size", "0,16,64"}};
    auto cases = latency_cases(o);
    REQUIRE(cases.size() == 3);
    CHECK_FALSE(cases[0].axes.contains("page_size"));
    CHECK(cases[1].axes.at("page_size") == 16);
    CHECK(cases[2].axes.at("page_size") == 64);
    CHECK(op_shape_from_axes(cases[2].axes).page_size == 64);
  }
  SECTION("a single head count means as many KV heads") {
    o.params = {{"latency.heads", "16"}};
    auto cases = latency_cases(o);
    CHECK(cases[0].axes.at("kv_heads") == 16);
  }
}

TEST_CASE("bad latency settings are bad input naming the value", "[latency]") {
  run_options o;
  o.shape = shape_preset("small");
  o.lengths = {1024};
  auto rejects = [&](const std::string& key, const std::string& value, const std::string& part) {
    o.params = {{key, value}};
    try {
      latency_cases(o);
      FAIL("accepted " << key << "=" << value);
    } catch (const error& e) {
      CHECK(e.id() == error_id::bad_input);
      CHECK_THAT(e.what(), Catch::Contains(part));
    }
  };
  rejects("latency.heads", "32/5", "32/5");
  rejects("latency.heads", "a/8", "'a'");
  rejects("latency.phase", "train", "'train'");
  rejects("latency.dtype", "fp8", "'fp8'");
  rejects("latency.batch", "0", "'0'");
  rejects("latency.causal", "maybe", "'maybe'");
  rejects("latency.repetitions", "5", "latency.repetitions");
  rejects("latency.min_time", "-1", "latency.min_time");
  rejects("latency.batch", "1,,2", "empty item");
  rejects("latency.page_size", "16,5000", "'5000'");

  // Keys the suite does not declare are refused by the runner before anything runs.
  run_config cfg = latency_config({"dense"}, "badkey");
  cfg.options.params = {{"latency.repeats", "10"}};
  std::ostringstream progress;
  CHECK_THROWS_WITH(run_benchmark(cfg, progress), Catch::Contains("latency.repeats"));
  CHECK_FALSE(std::filesystem::exists(cfg.out_dir / "report.json"));
}

TEST_CASE("latency records keep >= 10 raw samples and summarize them", "[latency]") {
  std::ostringstream progress;
  run_config cfg = latency_config({"dense", "streaming_llm:sinks=4,window=128"}, "records");
  cfg.options.params = {{"latency.repetitions", "12"}};
  report r = run_benchmark(cfg, progress);
  REQUIRE(r.records.size() == 2);
  op_shape shape;
  shape.phase = "decode";
  shape.length = 512;
  shape.q_heads = 8;
  shape.kv_heads = 4;
  shape.head_dim = 64;
  shape.dtype = "fp32";
  for (const auto& rec : r.records) {
    INFO(rec.method_spec << ": " << rec.reason);
    REQUIRE(rec.status == record_status::ok);
    const auto samples = rec.extra.at("samples_s").get<std::vector<double>>();
    REQUIRE(samples.size() == 12);
    for (double s : samples) CHECK(s > 0);
    CHECK(rec.metrics.at("median_s") == quantile(samples, 0.5));
    CHECK(rec.metrics.at("p10_s") == quantile(samples, 0.1));
    CHECK(rec.metrics.at("p90_s") == quantile(samples, 0.9));
    CHECK(rec.metrics.at("p10_s") <= rec.metrics.at("median_s"));
    CHECK(rec.metrics.at("median_s") <= rec.metrics.at("p90_s"));
    const double flops = rec.extra.at("flops_per_call");
    const double bytes = rec.extra.at("kv_bytes_per_call");
    CHECK(rec.metrics.at("tflops") == Approx(flops / rec.metrics.at("median_s") / 1e12));
    CHECK(rec.metrics.at("kv_gbps") == Approx(bytes / rec.metrics.at("median_s") / 1e9));
    CHECK(rec.extra.at("threads") == 2);
    CHECK(rec.extra.at("clock") == "steady_clock");
    CHECK_FALSE(rec.metrics.count("peak_fraction"));
    // CPU decode: one yardstick time per sample, timed beside it (compare divides them out).
    const auto refs = rec.extra.at("reference_s").get<std::vector<double>>();
    REQUIRE(refs.size() == samples.size());
    for (double x : refs) CHECK(x > 0);
    if (rec.method == "dense") {
      CHECK(flops == dense_attention_flops(shape));
      CHECK(bytes == dense_kv_bytes(shape));
    } else {
      // Sinks + window rows read instead of all 512, for every KV head.
      CHECK(bytes == Approx(dense_kv_bytes(shape) * (4 + 128) / 512.0));
    }
  }
  std::filesystem::remove_all(cfg.out_dir);
}

TEST_CASE("one call per sample takes a warm-up too", "[latency]") {
  // Google Benchmark refuses MinWarmUpTime beside a fixed iteration count; the suite then warms
  // up by itself instead of aborting the process.
  std::ostringstream progress;
  run_config cfg = latency_config({"dense"}, "one_call");
  cfg.options.params = {{"latency.min_time", "0"}, {"latency.warmup", "0.005"}};
  report r = run_benchmark(cfg, progress);
  REQUIRE(r.records.size() == 1);
  REQUIRE(r.records[0].status == record_status::ok);
  CHECK(r.records[0].extra.at("calls_per_sample") == 1);
  CHECK(r.records[0].extra.at("samples_s").size() == 10);
  std::filesystem::remove_all(cfg.out_dir);
}

TEST_CASE("CPU prefill is timed over fresh caches, unsupported shapes are skipped", "[latency]") {
  std::ostringstream progress;
  run_config cfg = latency_config({"dense"}, "prefill");
  cfg.options.lengths = {256};
  cfg.options.params = {
      {"latency.phase", "prefill"}, {"latency.causal", "1,0"}, {"latency.dtype", "fp32,bf16"}};
  report r = run_benchmark(cfg, progress);
  REQUIRE(r.records.size() == 4);  // dtype outer, causal inner
  const auto& causal = r.records[0];
  REQUIRE(causal.status == record_status::ok);
  CHECK(causal.extra.at("samples_s").size() == 10);
  op_shape s = op_shape_from_axes(causal.axes);
  CHECK(causal.extra.at("flops_per_call").get<double>() == dense_attention_flops(s));
  // The cache after one prefill holds every prompt token: 256 x 4 heads x (K + V) x 64 fp32.
  CHECK(causal.extra.at("resident_bytes") == 256 * 4 * 2 * 64 * 4);
  CHECK(r.records[1].status == record_status::skipped);
  CHECK_THAT(r.records[1].reason, Catch::Contains("causal"));
  CHECK(r.records[2].status == record_status::skipped);
  CHECK_THAT(r.records[2].reason, Catch::Contains("fp32"));
  std::filesystem::remove_all(cfg.out_dir);
}

TEST_CASE("a latency case too large for the host is an oom record", "[latency]") {
  std::ostringstream progress;
  run_config cfg = latency_config({"dense"}, "oom");
  cfg.options.lengths = {std::int64_t{1} << 40, 256};
  report r = run_benchmark(cfg, progress);
  REQUIRE(r.records.size() == 2);
  CHECK(r.records[0].status == record_status::oom);
  CHECK_THAT(r.records[0].reason, Catch::Contains("host memory"));
  CHECK(r.records[1].status == record_status::ok);
  std::filesystem::remove_all(cfg.out_dir);
}
