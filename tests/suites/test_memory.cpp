#include <catch2/catch.hpp>

#include <unistd.h>

#include <filesystem>
#include <sstream>

#include "datasets/rng.hpp"
#include "harness/error.hpp"
#include "app/runner.hpp"
#include "suite_test_util.hpp"

using namespace attnbench;

namespace {

run_config memory_config(std::vector<std::string> methods, const std::string& out) {
  return test::suite_config("memory", std::move(methods), {1024}, out);
}

// The stats of a method fed a 1024-token prompt of the small shape directly, without the suite.
cache_stats direct_stats(const std::string& spec) {
  const method_instance m = resolve_method(spec, "cpu");
  attention_problem p;
  p.shape = model_shape{"t", 1, 8, 4, 64};
  p.context_tokens = p.max_tokens = 1024;
  auto a = m.create();
  a->prepare(p, exec_context{});
  host_tensor q(1024, 8, 64), k(1024, 4, 64), v(1024, 4, 64);
  rng r(7);
  for (auto* t : {&q, &k, &v})
    for (std::size_t i = 0; i < t->size(); ++i) t->data()[i] = static_cast<float>(r.normal());
  a->prefill(q.view(), k.view(), v.view(), nullptr);
  return a->stats();
}

}  // namespace

TEST_CASE("memory records the resident bytes of cache_stats", "[memory]") {
  std::ostringstream progress;
  run_config cfg = memory_config({"dense", "streaming_llm:sinks=4,window=252"}, "resident");
  report r = run_benchmark(cfg, progress);
  REQUIRE(r.records.size() == 2);
  const auto& dense = r.records[0];
  const auto& streaming = r.records[1];
  REQUIRE(dense.status == record_status::ok);
  REQUIRE(streaming.status == record_status::ok);
  CHECK(dense.case_name ==
        "memory(backend=cpu,length=1024,batch=1,q_heads=8,kv_heads=4,head_dim=64,dtype=fp32)");
  // 1024 tokens x 4 KV heads x (K + V) x 64 floats.
  CHECK(dense.metrics.at("kv_resident_bytes") == 1024.0 * 4 * 2 * 64 * 4);
  CHECK(dense.metrics.at("kv_resident_ratio") == 1.0);
  CHECK(dense.metrics.at("kv_resident_tokens") == 1024);
  CHECK(dense.metrics.at("kv_resident_bytes") ==
        static_cast<double>(direct_stats("dense").resident_bytes));
  CHECK(streaming.metrics.at("kv_resident_bytes") ==
        static_cast<double>(direct_stats("streaming_llm:sinks=4,window=252").resident_bytes));
  CHECK(streaming.metrics.at("kv_resident_tokens") == 256);
  CHECK(streaming.metrics.at("kv_resident_ratio") == Approx(0.25));
  // The heap grew by at least the cache the method keeps (where glibc's heap can be measured:
  // not in a sanitizer build, whose records say so).
  for (const auto& rec : r.records) {
    if (rec.metrics.count("measured_bytes"))
      CHECK(rec.metrics.at("measured_bytes") >= rec.metrics.at("kv_resident_bytes"));
    else
      CHECK_THAT(rec.extra.at("measured_by").get<std::string>(), Catch::Contains("sanitizer"));
  }
  std::filesystem::remove_all(cfg.out_dir);
}

TEST_CASE("memory's --budgets sets each method's budget, others run as given", "[memory]") {
  std::ostringstream progress;
  run_config cfg = memory_config({"streaming_llm:sinks=4,keep=0.5", "dense"}, "budgets");
  cfg.options.budgets = {128, 512};
  report r = run_benchmark(cfg, progress);
  REQUIRE(r.records.size() == 4);  // case (budget) outer, method inner
  CHECK(r.records[0].axes.at("budget") == 128);
  CHECK(r.records[0].metrics.at("kv_resident_tokens") == 128);
  CHECK(r.records[0].params.at("budget") == 128);
  CHECK_FALSE(r.records[0].params.contains("keep"));
  CHECK_THAT(r.records[0].method_spec, Catch::Contains("budget=128"));
  CHECK(r.records[0].extra.at("budget_applied") == true);
  CHECK(r.records[1].extra.at("budget_applied") == false);
  CHECK(r.records[1].metrics.at("kv_resident_tokens") == 1024);
  CHECK(r.records[2].metrics.at("kv_resident_tokens") == 512);
  std::filesystem::remove_all(cfg.out_dir);
}

TEST_CASE("an absurd length becomes an oom record and the sweep goes on", "[memory]") {
  std::ostringstream progress;
  run_config cfg = memory_config({"dense"}, "oom");
  cfg.options.lengths = {std::int64_t{1} << 42, 512};
  report r = run_benchmark(cfg, progress);
  REQUIRE(r.records.size() == 2);
  CHECK(r.records[0].status == record_status::oom);
  CHECK_THAT(r.records[0].reason, Catch::Contains("host memory"));
  CHECK(r.records[0].metrics.empty());
  CHECK(r.records[1].status == record_status::ok);
  std::filesystem::remove_all(cfg.out_dir);
}
