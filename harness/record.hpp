/// One result row (DESIGN §1, §6) and the report document that holds them. Reporters see
/// records, never adapters.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace attnbench {

inline constexpr const char* k_schema_version = "1.1.0";

enum class record_status { ok, skipped, error, oom };
const char* status_name(record_status s);
record_status parse_status(const std::string& s);  // throws bad_input

struct record {
  std::string suite;      // "niah"
  std::string case_name;  // canonical: "niah(length=16384,depth=0.5,needle=number)"
  nlohmann::json axes = nlohmann::json::object();  // {"length":16384,"depth":0.5,...}
  std::string method;                              // "streaming_llm"
  std::string method_spec;                         // canonical: "streaming_llm:sinks=4,window=1024"
  nlohmann::json params = nlohmann::json::object();  // resolved parameters (budget_tokens too)
  std::string backend = "cpu";
  std::string mode = "query_aware";
  std::uint64_t seed = 0;
  // Identity for resume and merge (schema 1.1; empty in older reports): case_id hashes the
  // canonical spec (case_id_of), config_hash the run's result-changing configuration.
  std::string case_id;
  std::string config_hash;
  record_status status = record_status::ok;
  std::string reason;  // why skipped / error / oom
  std::map<std::string, double> metrics;
  nlohmann::json extra = nlohmann::json::object();  // stats and per-sample detail
};

/// Unit and direction of one metric, reported once per document.
struct metric_info {
  std::string unit;
  bool higher_is_better = true;
  std::string doc;
};

struct report {
  nlohmann::json meta = nlohmann::json::object();
  std::map<std::string, metric_info> metrics;
  std::vector<record> records;
};

/// 64-bit FNV-1a of `text` as 16 lowercase hex digits: stable across builds, machines and
/// versions, which is all the identities below need (they guard against mix-ups, not attacks).
std::string stable_hash_hex(std::string_view text);

/// The canonical spec of a record's case: suite, case name (its axes), method spec, mode,
/// backend, run seed and the workload (version and parameters), as JSON with sorted keys. It
/// never holds an index, a thread or shard count, so a case keeps its id however a sweep is cut.
nlohmann::json case_spec(const record& r, const nlohmann::json& workload);
/// stable_hash_hex of case_spec's compact text.
std::string case_id_of(const record& r, const nlohmann::json& workload);

nlohmann::json to_json(const record& r);
record record_from_json(const nlohmann::json& j);  // throws bad_input on malformed input
nlohmann::json to_json(const report& r);
report report_from_json(const nlohmann::json& j);  // throws bad_input on malformed input

}  // namespace attnbench
