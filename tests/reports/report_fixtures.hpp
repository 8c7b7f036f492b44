/// Shared fixtures for the reporter tests: a unique temp folder, a small but complete report
/// (niah grid, a NaN metric, every status) and a NaN-aware record comparison.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "harness/error.hpp"
#include "harness/record.hpp"

namespace attnbench::test {

/// A fresh folder under the system temp dir, removed with everything in it at scope exit.
class temp_dir {
 public:
  temp_dir() {
    std::string pattern =
        (std::filesystem::temp_directory_path() / "attnbench-reports-XXXXXX").string();
    REQUIRE(::mkdtemp(pattern.data()) != nullptr);
    m_path = pattern;
  }
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;
  ~temp_dir() {
    std::error_code ec;
    std::filesystem::remove_all(m_path, ec);
  }
  const std::filesystem::path& path() const { return m_path; }
  std::filesystem::path operator/(const std::string& name) const { return m_path / name; }

  /// Names of the entries directly inside `folder` (default: this temp dir), sorted.
  std::vector<std::string> entries(const std::filesystem::path& folder = {}) const {
    std::vector<std::string> names;
    for (const auto& e : std::filesystem::directory_iterator(folder.empty() ? m_path : folder))
      names.push_back(e.path().filename().string());
    std::sort(names.begin(), names.end());
    return names;
  }

 private:
  std::filesystem::path m_path;
};

inline std::string slurp(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

inline void spit(const std::filesystem::path& p, const std::string& text) {
  std::ofstream(p, std::ios::binary) << text;
}

inline void append_text(const std::filesystem::path& p, const std::string& text) {
  std::ofstream(p, std::ios::binary | std::ios::app) << text;
}

/// Deterministic accuracy for the niah grid: falls with length and is worst mid-context, so
/// every cell differs and a transposed or shifted heatmap is caught.
inline double grid_accuracy(std::int64_t length, double depth, int method_index) {
  const double by_length = 1.0 - 0.1 * std::log2(static_cast<double>(length) / 4096.0);
  const double by_depth = 1.0 - 0.4 * (1.0 - std::abs(2.0 * depth - 1.0));
  return std::clamp(by_length * by_depth - 0.05 * method_index, 0.0, 1.0);
}

inline record niah_record(const std::string& spec, const std::string& mode, std::int64_t length,
                          double depth, const std::string& needle, double accuracy) {
  record r;
  r.suite = "niah";
  r.method = spec.substr(0, spec.find(':'));
  r.method_spec = spec;
  r.mode = mode;
  r.axes = {{"length", length}, {"depth", depth}, {"needle", needle}};
  r.case_name = "niah(length=" + std::to_string(length) + ",depth=" + std::to_string(depth) +
                ",needle=" + needle + ")";
  r.params = {{"budget_tokens", 1024}};
  r.seed = 7;
  r.metrics = {{"accuracy", accuracy}, {"needle_mass", accuracy * 0.9}};
  r.extra = {{"resident_bytes", 1 << 20}, {"simulated", false}};
  return r;
}

inline const std::vector<std::int64_t> k_lengths{4096, 16384, 131072};
inline const std::vector<double> k_depths{0.0, 0.25, 0.5, 0.75, 1.0};

/// Two methods over the full niah grid (one needle kind), a fidelity record with a NaN metric,
/// and one record of each status other than ok.
inline report sample_report() {
  report rep;
  rep.meta = {{"tool_version", "0.1.0"},
              {"git_sha", "a59f5f9"},
              {"argv", {"attnbench", "run", "--suite", "niah"}},
              {"start_time", "2024-05-01T12:00:00Z"},
              {"host", {{"cpu", "test cpu"}, {"cores", 2}}},
              {"workload", {{"temperature", 13.0}}},
              {"build_type", "Release"}};
  rep.metrics["accuracy"] = {"fraction", true, "RULER string_match_all"};
  rep.metrics["needle_mass"] = {"fraction", true, "attention mass on the needle"};
  rep.metrics["rel_l2_error"] = {"ratio", false, "relative L2 error vs dense"};

  const std::vector<std::string> specs{"dense", "snapkv:budget=1024,window=32"};
  for (std::size_t m = 0; m < specs.size(); ++m)
    for (std::int64_t length : k_lengths)
      for (double depth : k_depths)
        rep.records.push_back(niah_record(specs[m], "query_aware", length, depth, "number",
                                          grid_accuracy(length, depth, static_cast<int>(m))));

  record fid;
  fid.suite = "fidelity";
  fid.case_name = "fidelity(length=4096)";
  fid.axes = {{"length", 4096}};
  fid.method = "h2o";
  fid.method_spec = "h2o:budget=256";
  fid.seed = 3;
  fid.metrics = {{"rel_l2_error", std::numeric_limits<double>::quiet_NaN()},
                 {"topk_recall", std::numeric_limits<double>::infinity()}};
  rep.records.push_back(fid);

  record failed = fid;
  failed.status = record_status::error;
  failed.reason = "adapter threw: bad \"quote\" | pipe";
  failed.metrics.clear();
  rep.records.push_back(failed);
  record oom = failed;
  oom.status = record_status::oom;
  oom.reason = "cudaMalloc: out of memory";
  rep.records.push_back(oom);
  record skipped = failed;
  skipped.status = record_status::skipped;
  skipped.reason = "unsupported head_dim";
  rep.records.push_back(skipped);
  return rep;
}

/// Field-by-field equality where NaN equals NaN and any non-finite metric written out
/// (JSON null) comes back as NaN.
inline void require_same_record(const record& got, const record& want) {
  CHECK(got.suite == want.suite);
  CHECK(got.case_name == want.case_name);
  CHECK(got.axes == want.axes);
  CHECK(got.method == want.method);
  CHECK(got.method_spec == want.method_spec);
  CHECK(got.params == want.params);
  CHECK(got.backend == want.backend);
  CHECK(got.mode == want.mode);
  CHECK(got.seed == want.seed);
  CHECK(got.status == want.status);
  CHECK(got.reason == want.reason);
  CHECK(got.extra == want.extra);
  REQUIRE(got.metrics.size() == want.metrics.size());
  for (const auto& [name, value] : want.metrics) {
    INFO("metric " << name);
    REQUIRE(got.metrics.count(name) == 1);
    if (std::isfinite(value))
      CHECK(got.metrics.at(name) == value);
    else
      CHECK(std::isnan(got.metrics.at(name)));
  }
}

inline void require_same_report(const report& got, const report& want) {
  CHECK(got.meta == want.meta);
  REQUIRE(got.metrics.size() == want.metrics.size());
  for (const auto& [name, info] : want.metrics) {
    REQUIRE(got.metrics.count(name) == 1);
    CHECK(got.metrics.at(name).unit == info.unit);
    CHECK(got.metrics.at(name).higher_is_better == info.higher_is_better);
    CHECK(got.metrics.at(name).doc == info.doc);
  }
  REQUIRE(got.records.size() == want.records.size());
  for (std::size_t i = 0; i < want.records.size(); ++i) {
    INFO("record " << i);
    require_same_record(got.records[i], want.records[i]);
  }
}

/// Runs `fn`, requires it to throw attnbench::error with `id`, and returns the message.
template <class Fn>
std::string error_message(Fn&& fn, error_id id) {
  try {
    fn();
  } catch (const error& e) {
    CHECK(e.id() == id);
    return e.what();
  }
  FAIL("expected attnbench::error(" << error_id_name(id) << ")");
  return {};
}

}  // namespace attnbench::test
