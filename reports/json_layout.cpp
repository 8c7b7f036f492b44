#include "reports/json_layout.hpp"

#include <initializer_list>

namespace attnbench {

namespace {

using nlohmann::json;
using nlohmann::ordered_json;

// Keys of `j` in the order given, then any others in their stored (sorted) order.
ordered_json in_order(const json& j, std::initializer_list<const char*> order) {
  ordered_json out = ordered_json::object();
  for (const char* key : order)
    if (auto it = j.find(key); it != j.end()) out[key] = ordered_json(*it);
  for (const auto& [key, value] : j.items())
    if (!out.contains(key)) out[key] = ordered_json(value);
  return out;
}

ordered_json ordered_record(const json& j) {
  return in_order(j,
                  {"suite", "case", "method", "method_spec", "backend", "mode", "seed", "case_id",
                   "config_hash", "status", "reason", "axes", "params", "metrics", "extra"});
}

// Invalid UTF-8 (say, in an error message captured from a failing case) is replaced rather
// than failing the write of a whole run's results.
constexpr auto k_on_bad_utf8 = json::error_handler_t::replace;

}  // namespace

std::string report_text(const report& r) {
  const json j = to_json(r);
  ordered_json doc = in_order(j, {"schema_version", "meta", "metric_info"});
  ordered_json records = ordered_json::array();
  for (const json& rec : j.at("records")) records.push_back(ordered_record(rec));
  doc["records"] = std::move(records);
  return doc.dump(2, ' ', false, k_on_bad_utf8) + '\n';
}

std::string record_line(const record& r) {
  return ordered_record(to_json(r)).dump(-1, ' ', false, k_on_bad_utf8);
}

}  // namespace attnbench
