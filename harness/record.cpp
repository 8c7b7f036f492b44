#include "harness/record.hpp"

#include <cmath>
#include <limits>

#include "harness/error.hpp"

namespace attnbench {

const char* status_name(record_status s) {
  switch (s) {
    case record_status::ok:
      return "ok";
    case record_status::skipped:
      return "skipped";
    case record_status::error:
      return "error";
    case record_status::oom:
      return "oom";
  }
  return "error";
}

record_status parse_status(const std::string& s) {
  if (s == "ok") return record_status::ok;
  if (s == "skipped") return record_status::skipped;
  if (s == "error") return record_status::error;
  if (s == "oom") return record_status::oom;
  ATTNBENCH_BAD_INPUT("unknown record status '" << s << "' (known: ok, skipped, error, oom)");
}

namespace {

using nlohmann::json;

const char* type_name(const json& j) { return j.type_name(); }

// Every reader below takes `where`, the prefix of its error messages ("record",
// "report: record 3"), so a bad field is named together with the place it sits in.
const json& require(const json& j, const char* key, const std::string& where) {
  auto it = j.find(key);
  if (it == j.end()) ATTNBENCH_BAD_INPUT(where << ": missing field '" << key << "'");
  return *it;
}

std::string read_string(const json& j, const char* key, const std::string& where) {
  const json& v = require(j, key, where);
  if (!v.is_string())
    ATTNBENCH_BAD_INPUT(where << ": field '" << key << "' must be a string, got " << type_name(v));
  return v.get<std::string>();
}

const json& read_object(const json& j, const char* key, const std::string& where) {
  const json& v = require(j, key, where);
  if (!v.is_object())
    ATTNBENCH_BAD_INPUT(where << ": field '" << key << "' must be an object, got " << type_name(v));
  return v;
}

// Metric values that are not finite are written as null (JSON has no NaN) and read back as NaN.
json metric_value_to_json(double v) { return std::isfinite(v) ? json(v) : json(nullptr); }

// The inverse of to_json(record). Required: every field to_json writes except reason and
// extra, which default to empty; unknown fields are ignored so newer minor versions still read.
record parse_record(const json& j, const std::string& where) {
  if (!j.is_object()) ATTNBENCH_BAD_INPUT(where << ": must be an object, got " << type_name(j));
  record r;
  r.suite = read_string(j, "suite", where);
  r.case_name = read_string(j, "case", where);
  r.axes = read_object(j, "axes", where);
  r.method = read_string(j, "method", where);
  r.method_spec = read_string(j, "method_spec", where);
  r.params = read_object(j, "params", where);
  r.backend = read_string(j, "backend", where);
  r.mode = read_string(j, "mode", where);

  const json& seed = require(j, "seed", where);
  if (!seed.is_number_unsigned() && !(seed.is_number_integer() && seed.get<std::int64_t>() >= 0))
    ATTNBENCH_BAD_INPUT(where << ": field 'seed' must be a non-negative integer, got "
                              << seed.dump());
  r.seed = seed.get<std::uint64_t>();

  // parse_status's message names the known statuses; prefix it with where the record sits.
  const std::string status = read_string(j, "status", where);
  try {
    r.status = parse_status(status);
  } catch (const error& e) {
    ATTNBENCH_BAD_INPUT(where << ": " << e.what());
  }
  if (auto it = j.find("reason"); it != j.end()) {
    if (!it->is_string())
      ATTNBENCH_BAD_INPUT(where << ": field 'reason' must be a string, got " << type_name(*it));
    r.reason = it->get<std::string>();
  }

  for (const auto& [name, value] : read_object(j, "metrics", where).items()) {
    if (value.is_null()) {
      r.metrics[name] = std::numeric_limits<double>::quiet_NaN();
    } else if (value.is_number()) {
      r.metrics[name] = value.get<double>();
    } else {
      ATTNBENCH_BAD_INPUT(where << ": metric '" << name << "' must be a number or null, got "
                                << type_name(value));
    }
  }
  if (j.contains("extra")) r.extra = read_object(j, "extra", where);
  for (auto [key, field] : {std::pair{"case_id", &r.case_id}, {"config_hash", &r.config_hash}})
    if (j.contains(key)) *field = read_string(j, key, where);
  return r;
}

// "1.4.2" -> 1; throws on anything that is not MAJOR.MINOR.PATCH (digits only).
int semver_major(const std::string& v, const std::string& where) {
  int parts = 1;
  bool digit_seen = false;
  bool well_formed = !v.empty();
  for (char c : v) {
    if (c == '.') {
      well_formed = well_formed && digit_seen;
      digit_seen = false;
      ++parts;
    } else if (c >= '0' && c <= '9') {
      digit_seen = true;
    } else {
      well_formed = false;
    }
  }
  if (!well_formed || !digit_seen || parts != 3 || v.find('.') > 9)
    ATTNBENCH_BAD_INPUT(where << ": schema_version '" << v << "' is not MAJOR.MINOR.PATCH");
  return std::stoi(v.substr(0, v.find('.')));
}

}  // namespace

std::string stable_hash_hex(std::string_view text) {
  // FNV-1a, 64-bit: offset basis and prime from the FNV reference
  // (http://www.isthe.com/chongo/tech/comp/fnv/).
  std::uint64_t h = 14695981039346656037ull;
  for (unsigned char c : text) {
    h ^= c;
    h *= 1099511628211ull;
  }
  static const char* digits = "0123456789abcdef";
  std::string out(16, '0');
  for (int i = 15; i >= 0; --i, h >>= 4) out[static_cast<std::size_t>(i)] = digits[h & 15];
  return out;
}

nlohmann::json case_spec(const record& r, const nlohmann::json& workload) {
  return {{"suite", r.suite},    {"case", r.case_name},  {"method_spec", r.method_spec},
          {"mode", r.mode},      {"backend", r.backend}, {"seed", r.seed},
          {"workload", workload}};
}

std::string case_id_of(const record& r, const nlohmann::json& workload) {
  return stable_hash_hex(case_spec(r, workload).dump());
}

// Field names follow DESIGN §6; `case` is the JSON name of case_name (a C++ keyword).
nlohmann::json to_json(const record& r) {
  json j = {
      {"suite", r.suite},
      {"case", r.case_name},
      {"axes", r.axes},
      {"method", r.method},
      {"method_spec", r.method_spec},
      {"params", r.params},
      {"backend", r.backend},
      {"mode", r.mode},
      {"seed", r.seed},
      {"status", status_name(r.status)},
  };
  if (!r.case_id.empty()) j["case_id"] = r.case_id;
  if (!r.config_hash.empty()) j["config_hash"] = r.config_hash;
  // An ok record has no reason; the field is left out rather than written empty.
  if (!r.reason.empty()) j["reason"] = r.reason;
  json metrics = json::object();
  for (const auto& [name, value] : r.metrics) metrics[name] = metric_value_to_json(value);
  j["metrics"] = std::move(metrics);
  j["extra"] = r.extra;
  return j;
}

record record_from_json(const nlohmann::json& j) { return parse_record(j, "record"); }

nlohmann::json to_json(const report& r) {
  json info = json::object();
  for (const auto& [name, m] : r.metrics)
    info[name] = {{"unit", m.unit}, {"higher_is_better", m.higher_is_better}, {"doc", m.doc}};
  json records = json::array();
  for (const record& rec : r.records) records.push_back(to_json(rec));
  return {{"schema_version", k_schema_version},
          {"meta", r.meta},
          {"metric_info", std::move(info)},
          {"records", std::move(records)}};
}

report report_from_json(const nlohmann::json& j) {
  const std::string where = "report";
  if (!j.is_object()) ATTNBENCH_BAD_INPUT(where << ": must be an object, got " << type_name(j));

  // The major version gates compatibility: minor versions only add optional fields.
  const std::string version = read_string(j, "schema_version", where);
  const int ours = semver_major(k_schema_version, "attnbench");
  if (semver_major(version, where) != ours)
    ATTNBENCH_BAD_INPUT("report schema_version " << version << " is not compatible with " << ours
                                                 << ".x");

  // meta is free-form here: its required content is the schema's business (report.schema.json).
  report r;
  r.meta = read_object(j, "meta", where);
  for (const auto& [name, value] : read_object(j, "metric_info", where).items()) {
    const std::string at = where + ": metric_info '" + name + "'";
    if (!value.is_object()) ATTNBENCH_BAD_INPUT(at << ": must be an object");
    metric_info m;
    m.unit = read_string(value, "unit", at);
    const json& hib = require(value, "higher_is_better", at);
    if (!hib.is_boolean())
      ATTNBENCH_BAD_INPUT(at << ": field 'higher_is_better' must be a boolean, got "
                             << type_name(hib));
    m.higher_is_better = hib.get<bool>();
    if (value.contains("doc")) m.doc = read_string(value, "doc", at);
    r.metrics.emplace(name, std::move(m));
  }

  const json& records = require(j, "records", where);
  if (!records.is_array())
    ATTNBENCH_BAD_INPUT(where << ": field 'records' must be an array, got " << type_name(records));
  r.records.reserve(records.size());
  for (std::size_t i = 0; i < records.size(); ++i)
    r.records.push_back(parse_record(records[i], where + ": record " + std::to_string(i)));
  return r;
}

}  // namespace attnbench
