#include "reports/merge.hpp"

#include <map>

#include "harness/error.hpp"
#include "reports/compare.hpp"

namespace attnbench {

namespace {

using nlohmann::json;

std::string meta_text(const json& meta, const char* key) {
  auto it = meta.find(key);
  if (it == meta.end()) return "";
  return it->is_string() ? it->get<std::string>() : it->dump();
}

}  // namespace

std::string record_merge_key(const record& r) {
  return record_join_key(r) + '\x1f' + std::to_string(r.seed);
}

merge_result merge_reports(const std::vector<merge_input>& inputs, bool allow_duplicates) {
  if (inputs.empty()) ATTNBENCH_BAD_INPUT("merge: no input reports");
  merge_result out;
  report& merged = out.merged;
  merged.meta = inputs.front().rep.meta;
  json sources = json::array();
  std::map<std::string, std::string> owner;  // merge key -> input that holds it

  for (const merge_input& in : inputs) {
    const report& rep = in.rep;
    for (const auto& [name, info] : rep.metrics) {
      auto [it, fresh] = merged.metrics.emplace(name, info);
      if (!fresh &&
          (it->second.unit != info.unit || it->second.higher_is_better != info.higher_is_better))
        ATTNBENCH_BAD_INPUT("merge: metric '" << name << "' has unit '" << it->second.unit
                                              << "' in an earlier report but '" << info.unit
                                              << "' (or the other direction) in " << in.name);
    }
    for (const char* key : {"workload", "tool_version"})
      if (meta_text(rep.meta, key) != meta_text(merged.meta, key))
        out.warnings.push_back("meta." + std::string(key) + " of " + in.name +
                               " differs from that of " + inputs.front().name);
    for (const record& rec : rep.records) {
      auto [it, fresh] = owner.emplace(record_merge_key(rec), in.name);
      if (!fresh && !allow_duplicates)
        ATTNBENCH_BAD_INPUT("merge: duplicate record " << rec.case_name << " | " << rec.method_spec
                                                       << " | " << rec.mode << " | " << rec.backend
                                                       << " | seed " << rec.seed << " in "
                                                       << it->second << " and " << in.name);
      merged.records.push_back(rec);
    }
    sources.push_back({{"name", in.name},
                       {"git_sha", meta_text(rep.meta, "git_sha")},
                       {"start_time", meta_text(rep.meta, "start_time")},
                       {"records", rep.records.size()}});
  }
  merged.meta["merged_from"] = std::move(sources);
  return out;
}

}  // namespace attnbench
