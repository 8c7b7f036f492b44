// `attnbench compare` on fixture reports: an injected 20% latency regression and an accuracy
// drop are caught, run-to-run noise within the threshold is not, added and removed records are
// listed, and the exit codes follow the contract (1 only with --fail-on-regression, 2 on bad
// input).
#include <catch2/catch.hpp>

#include <algorithm>

#include "report_fixtures.hpp"
#include "reports/compare.hpp"
#include "reports/json_layout.hpp"
#include "tool_fixtures.hpp"

using namespace attnbench;
using namespace attnbench::test;

namespace {

// Multiplies the raw latency samples (and the timing metrics) of one method's records.
void slow_down(report& r, const std::string& method, double factor) {
  for (record& rec : r.records) {
    if (rec.method != method || !rec.extra.contains("samples_s")) continue;
    for (auto& v : rec.extra["samples_s"]) v = v.get<double>() * factor;
    for (auto& [name, value] : rec.metrics) value *= factor;
  }
}

std::vector<const metric_change*> with(const comparison& c, verdict v) {
  std::vector<const metric_change*> out;
  for (const metric_change& m : c.changes)
    if (m.result == v) out.push_back(&m);
  return out;
}

}  // namespace

TEST_CASE("compare: a rerun with noise within the threshold is not a regression", "[compare]") {
  const report base = fixture("compare_base.json"), now = fixture("compare_new.json");
  const comparison c = compare_reports(base, now, {});
  CHECK(c.matched_records == base.records.size());
  CHECK(c.added.empty());
  CHECK(c.removed.empty());
  CHECK_FALSE(c.has_regression());
  CHECK(c.count(verdict::improvement) == 0);
  // Every latency record was tested with its 12 + 12 raw samples.
  std::size_t latency = 0;
  for (const metric_change& m : c.changes)
    if (m.metric == "median_s") {
      ++latency;
      CHECK(m.n_base == 12);
      CHECK(m.n_new == 12);
      CHECK(std::abs(m.change) < 0.05);
      CHECK(m.test.rfind("mann-whitney", 0) == 0);
    }
  CHECK(latency == 6);
  CHECK(comparison_markdown(c).find("No regression") != std::string::npos);
}

TEST_CASE("compare: an injected 20% slowdown of one method is caught", "[compare]") {
  const report base = fixture("compare_base.json");
  report now = fixture("compare_new.json");
  slow_down(now, "snapkv", 1.2);
  const comparison c = compare_reports(base, now, {});
  const auto regressions = with(c, verdict::regression);
  REQUIRE(regressions.size() == 2);  // snapkv at 4k and 16k
  for (const metric_change* m : regressions) {
    CHECK(m->method_spec == "snapkv:budget=1024,window=32");
    CHECK(m->metric == "median_s");
    CHECK(m->change == Approx(0.2).margin(0.03));
    // 12 vs 12 fully separated samples: exact p = 2 / C(24, 12).
    CHECK(m->p_value < 1e-5);
  }
  const std::string md = comparison_markdown(c);
  CHECK(md.find("2 regressions") != std::string::npos);
  CHECK(md.find("snapkv:budget=1024,window=32") != std::string::npos);

  // The same slowdown under a 25% threshold is significant but not beyond the threshold.
  compare_options loose;
  loose.threshold = 0.25;
  CHECK_FALSE(compare_reports(base, now, loose).has_regression());
}

namespace {

// CPU latency records of `methods` methods as the latency suite writes them with its yardstick:
// 12 samples per record, each with the yardstick seconds timed beside it. `machine` scales
// samples and references alike (a slower host); `slowed` scales one method's samples only.
report yardstick_report(int methods, double machine, const std::string& slowed, double factor,
                        unsigned seed) {
  report r;
  r.metrics["median_s"] = {"s", false, ""};
  std::uint64_t state = seed;
  auto noise = [&] {  // +-2% uniform, deterministic
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    return 1.0 + 0.04 * (static_cast<double>(state >> 11) / 9007199254740992.0 - 0.5);
  };
  for (int m = 0; m < methods; ++m) {
    record rec;
    rec.suite = "latency";
    rec.case_name = "latency(backend=cpu,phase=decode,length=1024)";
    rec.method = "m" + std::to_string(m);
    rec.method_spec = rec.method;
    const double op_s = 1e-4 * (1 + m % 3) * (rec.method == slowed ? factor : 1.0);
    nlohmann::json samples = nlohmann::json::array(), refs = nlohmann::json::array();
    for (int i = 0; i < 12; ++i) {
      const double host = machine * noise();  // what the machine does to both, sample by sample
      samples.push_back(op_s * host * noise());
      refs.push_back(2e-4 * host * noise());
    }
    rec.extra["samples_s"] = samples;
    rec.extra["reference_s"] = refs;
    rec.metrics["median_s"] = op_s * machine;
    r.records.push_back(rec);
  }
  return r;
}

}  // namespace

TEST_CASE("compare: yardstick-normalized latency ignores a machine shift, not a regression",
          "[compare]") {
  const report base = yardstick_report(10, 1.0, "", 1.0, 1);
  // The whole machine runs 50% slower: raw seconds regress everywhere, normalized ones do not.
  const report slower = yardstick_report(10, 1.5, "", 1.0, 2);
  const comparison normalized = compare_reports(base, slower, {});
  CHECK_FALSE(normalized.has_regression());
  REQUIRE(normalized.notes.size() == 1);
  CHECK(normalized.notes[0].find("10 records compared as op / yardstick") != std::string::npos);
  CHECK(normalized.warnings.empty());  // the normalized times did not move together
  for (const metric_change& m : normalized.changes)
    CHECK(m.test.find("(normalized)") != std::string::npos);
  compare_options raw;
  raw.normalize_latency = false;
  CHECK(with(compare_reports(base, slower, raw), verdict::regression).size() == 10);

  // On the slower machine one method is also 20% slower: caught, and only that one.
  const report slowed = yardstick_report(10, 1.5, "m4", 1.2, 2);
  // The comparison must outlive the pointers `with` returns into it.
  const comparison slowed_cmp = compare_reports(base, slowed, {});
  const auto regressions = with(slowed_cmp, verdict::regression);
  REQUIRE(regressions.size() == 1);
  CHECK(regressions[0]->method_spec == "m4");
  CHECK(regressions[0]->change == Approx(0.2).margin(0.04));

  // Every method 20% slower against the yardstick is a machine factor: warned, not gated.
  report all_slowed = yardstick_report(10, 1.0, "", 1.0, 2);
  for (record& rec : all_slowed.records)
    for (auto& v : rec.extra["samples_s"]) v = v.get<double>() * 1.2;
  const comparison shifted = compare_reports(base, all_slowed, {});
  CHECK_FALSE(shifted.has_regression());
  REQUIRE(shifted.warnings.size() == 1);
  CHECK(shifted.warnings[0].find("every cpu latency record moved by +") != std::string::npos);
  CHECK(shifted.notes[0].find("normalized times are +") != std::string::npos);

  // Below min_factor_records no factor is applied: the same shift is then a regression.
  const comparison few = compare_reports(yardstick_report(4, 1.0, "", 1.0, 1),
                                         [&] {
                                           report r = yardstick_report(4, 1.0, "", 1.0, 2);
                                           for (record& rec : r.records)
                                             for (auto& v : rec.extra["samples_s"])
                                               v = v.get<double>() * 1.2;
                                           return r;
                                         }(),
                                         {});
  CHECK(with(few, verdict::regression).size() == 4);
}

TEST_CASE("compare: a speedup is an improvement, not a regression", "[compare]") {
  const report base = fixture("compare_base.json");
  report now = fixture("compare_new.json");
  slow_down(now, "dense", 0.7);
  const comparison c = compare_reports(base, now, {});
  CHECK_FALSE(c.has_regression());
  CHECK(with(c, verdict::improvement).size() == 2);
}

TEST_CASE("compare: an accuracy drop beyond the threshold is caught", "[compare]") {
  const report base = fixture("compare_base.json");
  report now = fixture("compare_new.json");
  // dense at 16k, depth 0.5: 100% -> 60% over 20 samples each. Pooled p = 0.8,
  // se = sqrt(0.8 * 0.2 * 0.1) = 0.1265, z = -3.16, p = 0.0016.
  for (record& rec : now.records)
    if (rec.suite == "niah" && rec.method == "dense" && rec.axes["length"] == 16384 &&
        rec.axes["depth"] == 0.5)
      rec.metrics["accuracy"] = 60.0;
  const comparison c = compare_reports(base, now, {});
  const auto regressions = with(c, verdict::regression);
  REQUIRE(regressions.size() == 1);
  CHECK(regressions[0]->metric == "accuracy");
  CHECK(regressions[0]->change == Approx(-40.0));
  CHECK(regressions[0]->test == "two-proportion z");
  CHECK(regressions[0]->p_value == Approx(0.0016).margin(0.0002));

  // A 3-point drop stays within the 5-point threshold.
  for (record& rec : now.records)
    if (rec.suite == "niah" && rec.method == "dense") rec.metrics["accuracy"] = 97.0;
  CHECK_FALSE(compare_reports(base, now, {}).has_regression());
}

TEST_CASE("compare: status changes, added and removed records", "[compare]") {
  const report base = fixture("compare_base.json");
  report now = fixture("compare_new.json");
  // One case now fails, one was dropped, one is new.
  now.records[0].status = record_status::error;
  now.records[0].reason = "adapter threw";
  now.records[0].metrics.clear();
  const record dropped = now.records[1];
  now.records.erase(now.records.begin() + 1);
  record extra = now.records.back();
  extra.method = "quest";
  extra.method_spec = "quest:page=16";
  extra.params = {{"page", 16}};
  now.records.push_back(extra);

  const comparison c = compare_reports(base, now, {});
  const auto regressions = with(c, verdict::regression);
  REQUIRE(regressions.size() == 1);
  CHECK(regressions[0]->metric == "status");
  CHECK(regressions[0]->note == "ok -> error: adapter threw");
  REQUIRE(c.removed.size() == 1);
  CHECK(c.removed[0].find(dropped.case_name) != std::string::npos);
  REQUIRE(c.added.size() == 1);
  CHECK(c.added[0].find("quest:page=16") != std::string::npos);
  const std::string md = comparison_markdown(c);
  CHECK(md.find("### Added records (1)") != std::string::npos);
  CHECK(md.find("### Removed records (1)") != std::string::npos);
  const nlohmann::json j = comparison_json(c);
  CHECK(j["result"] == "regression");
  CHECK(j["counts"]["added"] == 1);
  CHECK(j["counts"]["removed"] == 1);
}

TEST_CASE("compare: few raw samples give a warning", "[compare]") {
  report base = fixture("compare_base.json");
  for (record& rec : base.records)
    if (rec.extra.contains("samples_s")) {
      auto& s = rec.extra["samples_s"];
      s.erase(s.begin() + 4, s.end());
    }
  const comparison c = compare_reports(base, fixture("compare_new.json"), {});
  REQUIRE(c.warnings.size() == 1);
  CHECK(c.warnings[0].find("fewer than 9") != std::string::npos);
}

TEST_CASE("compare command: exit codes", "[compare][cli]") {
  temp_dir dir;
  const std::string base = fixture_path("compare_base.json").string();
  const std::string same = fixture_path("compare_new.json").string();
  report slow = fixture("compare_new.json");
  slow_down(slow, "snapkv", 1.2);
  const std::string slow_path = (dir / "slow.json").string();
  spit(slow_path, report_text(slow));
  const std::string out = (dir / "out.md").string();

  CHECK(attnbench_cli({"compare", base, same, "--fail-on-regression", "-o", out}) == 0);
  CHECK(slurp(out).find("No regression") != std::string::npos);
  CHECK(attnbench_cli({"compare", base, slow_path, "--fail-on-regression", "-o", out}) == 1);
  CHECK(slurp(out).find("snapkv:budget=1024,window=32") != std::string::npos);
  // Without --fail-on-regression the gate only reports.
  CHECK(attnbench_cli({"compare", base, slow_path, "-o", out}) == 0);
  // A threshold above the change lets it through.
  CHECK(attnbench_cli({"compare", base, slow_path, "--threshold", "25%", "--fail-on-regression",
                       "-o", out}) == 0);
  // --filter limits the gate to matching case names: the NIAH records alone hold no regression.
  CHECK(attnbench_cli({"compare", base, slow_path, "--filter", "^niah", "--fail-on-regression",
                       "-o", out}) == 0);
  CHECK(slurp(out).find("over 18 matched records") != std::string::npos);
  CHECK(attnbench_cli({"compare", base, slow_path, "--filter", "(", "-o", out}) == 2);
  const std::string json_out = (dir / "out.json").string();
  CHECK(attnbench_cli({"compare", base, slow_path, "--format", "json", "-o", json_out}) == 0);
  CHECK(nlohmann::json::parse(slurp(json_out))["counts"]["regressions"] == 2);

  // Bad input: a missing file, a newer schema major version, bad options.
  CHECK(attnbench_cli({"compare", base, (dir / "missing.json").string()}) == 2);
  nlohmann::json doc = nlohmann::json::parse(slurp(same));
  doc["schema_version"] = "2.0.0";
  const std::string v2 = (dir / "v2.json").string();
  spit(v2, doc.dump());
  CHECK(attnbench_cli({"compare", base, v2, "--fail-on-regression"}) == 2);
  CHECK(attnbench_cli({"compare", base}) == 2);
  CHECK(attnbench_cli({"compare", base, same, "--alpha", "1.5"}) == 2);
  CHECK(attnbench_cli({"compare", base, same, "--threshold", "fast"}) == 2);
  CHECK(attnbench_cli({"compare", base, same, "--format", "xml"}) == 2);
}
