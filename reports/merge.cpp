#include "reports/merge.hpp"

#include <algorithm>
#include <map>
#include <set>

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

std::string label_of(const record& r) {
  return r.case_name + " | " + r.method_spec + " | " + r.mode + " | " + r.backend + " | seed " +
         std::to_string(r.seed) + (r.case_id.empty() ? "" : " (case " + r.case_id + ")");
}

// The config hash an input was run with: its meta's, else its first record's.
std::string config_hash_of(const report& rep) {
  if (const std::string h = rep.meta.value("config_hash", std::string()); !h.empty()) return h;
  for (const record& r : rep.records)
    if (!r.config_hash.empty()) return r.config_hash;
  return "";
}

// Units of measured time and rates: records holding them depend on the machine that ran them.
bool is_timing_record(const record& r, const std::map<std::string, metric_info>& info) {
  return std::any_of(r.metrics.begin(), r.metrics.end(), [&](const auto& m) {
    const auto it = info.find(m.first);
    return it != info.end() &&
           (it->second.unit == "s" || it->second.unit == "TFLOP/s" || it->second.unit == "GB/s");
  });
}

// What identifies the machine behind an input's timings: host name, CPU model and GPU types.
json machine_of(const report& rep) {
  const json host = rep.meta.value("host", json::object());
  json gpus = json::array();
  for (const json& g : rep.meta.value("gpus", json::array()))
    if (g.is_object()) gpus.push_back(g.value("name", std::string()));
  return {{"hostname", host.is_object() ? host.value("hostname", std::string()) : ""},
          {"cpu", host.is_object() ? host.value("cpu", std::string()) : ""},
          {"gpus", gpus}};
}

}  // namespace

std::string record_merge_key(const record& r) {
  if (!r.case_id.empty()) return r.case_id;
  return record_join_key(r) + '\x1f' + std::to_string(r.seed);
}

merge_result merge_reports(const std::vector<merge_input>& inputs, const merge_options& options) {
  if (inputs.empty()) ATTNBENCH_BAD_INPUT("merge: no input reports");
  const bool check = !options.allow_duplicates;
  merge_result out;
  report& merged = out.merged;
  merged.meta = inputs.front().rep.meta;
  // Facts of one input's run, not of the merged whole: they move to merged_from.
  for (const char* key : {"interrupted_by", "stream", "resume"}) merged.meta.erase(key);
  json sources = json::array();
  std::map<std::string, std::string> owner;  // merge key -> input that holds it
  std::vector<std::string> planned_order;    // case ids, first planning first
  std::map<std::string, std::pair<std::string, std::string>> planned;  // id -> label, planner
  const std::string reference_hash = config_hash_of(inputs.front().rep);
  std::map<std::string, std::vector<std::string>> timing_machines;  // machine -> inputs
  std::vector<record> records;
  std::map<std::string, std::size_t> position;  // merge key -> its record in `records`

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
    const json cases = rep.meta.value("planned_cases", json::array());
    for (const json& c : cases.is_array() ? cases : json::array()) {
      if (!c.is_object() || !c.contains("case_id") || !c["case_id"].is_string()) continue;
      const std::string id = c["case_id"];
      if (planned.emplace(id, std::pair{c.value("label", id), in.name}).second)
        planned_order.push_back(id);
    }
    const bool partial = rep.meta.value("partial", false);
    if (check && partial && (!cases.is_array() || cases.empty())) {
      out.problems.push_back("missing cases: " + in.name +
                             " is partial (meta.partial) and does not list its planned cases");
      ++out.missing;
    }
    const std::string hash = config_hash_of(rep);
    bool timed = false;
    for (const record& rec : rep.records) {
      timed = timed || is_timing_record(rec, rep.metrics);
      const std::string key = record_merge_key(rec);
      auto [it, fresh] = owner.emplace(key, in.name);
      // One case with an error record in one input and a finished one in another: the case was
      // run again after failing (a sweep resumed with another shard count reruns it in another
      // folder). The finished record stands, as it does within one stream.
      const bool superseding = !fresh && check && !rec.case_id.empty() &&
                               (records[position.at(key)].status == record_status::error) !=
                                   (rec.status == record_status::error);
      if (superseding) {
        const bool replaces = rec.status != record_status::error;
        out.warnings.push_back(
            "case " + label_of(rec) + ": the error record in " + (replaces ? it->second : in.name) +
            " is superseded by the finished one in " + (replaces ? in.name : it->second));
        if (!replaces) continue;
        it->second = in.name;
      } else if (!fresh && check) {
        out.problems.push_back("duplicate case " + label_of(rec) + " in " + it->second + " and " +
                               in.name);
        ++out.duplicates;
        continue;
      }
      const std::string& theirs = rec.config_hash.empty() ? hash : rec.config_hash;
      if (check && !theirs.empty() && !reference_hash.empty() && theirs != reference_hash) {
        out.problems.push_back("config mismatch: " + label_of(rec) + " in " + in.name +
                               " has config hash " + theirs + ", " + inputs.front().name + " has " +
                               reference_hash);
        ++out.mismatched;
      }
      if (superseding) {
        records[position.at(key)] = rec;
        continue;
      }
      position.emplace(key, records.size());
      records.push_back(rec);
    }
    const json machine = machine_of(rep);
    if (timed) timing_machines[machine.dump()].push_back(in.name);
    sources.push_back({{"name", in.name},
                       {"git_sha", meta_text(rep.meta, "git_sha")},
                       {"start_time", meta_text(rep.meta, "start_time")},
                       {"host", machine},
                       {"config_hash", hash},
                       {"partial", partial},
                       {"records", rep.records.size()}});
  }

  // Every planned case must be held by some input.
  json missing_cases = json::array();
  for (const std::string& id : planned_order) {
    if (owner.count(id)) continue;
    const auto& [label, planner] = planned.at(id);
    ++out.missing;
    missing_cases.push_back({{"case_id", id}, {"label", label}});
    const std::string line =
        "missing case " + label + " (case " + id + ", planned by " + planner + ")";
    if (!check) continue;
    (options.allow_partial ? out.warnings : out.problems).push_back(line);
  }
  if (options.allow_partial && out.missing) {
    merged.meta["allow_partial"] = true;
    merged.meta["missing_cases"] = std::move(missing_cases);
  }
  if (check) merged.meta["partial"] = out.missing > 0;
  if (!planned_order.empty()) {
    json all = json::array();
    for (const std::string& id : planned_order)
      all.push_back({{"case_id", id}, {"label", planned.at(id).first}});
    merged.meta["planned_cases"] = std::move(all);
  }
  // Merged shards are no shard; the case timings of every input stay, for `--shard-costs`.
  merged.meta.erase("shard");
  json seconds = json::object();
  for (const merge_input& in : inputs)
    if (const auto it = in.rep.meta.find("case_seconds");
        it != in.rep.meta.end() && it->is_object())
      seconds.update(*it);
  if (!seconds.empty()) merged.meta["case_seconds"] = std::move(seconds);

  // The planned (canonical) order, so merged shards read like the run that was never split.
  std::map<std::string, std::size_t> rank;
  for (std::size_t i = 0; i < planned_order.size(); ++i) rank.emplace(planned_order[i], i);
  std::stable_sort(records.begin(), records.end(), [&](const record& a, const record& b) {
    const auto ra = rank.find(a.case_id), rb = rank.find(b.case_id);
    return (ra == rank.end() ? rank.size() : ra->second) <
           (rb == rank.end() ? rank.size() : rb->second);
  });
  merged.records = std::move(records);

  if (timing_machines.size() > 1) {
    json mixed = json::array();
    std::string names;
    for (const auto& [machine, from] : timing_machines) {
      mixed.push_back({{"machine", json::parse(machine)}, {"inputs", from}});
      for (const auto& f : from) names += (names.empty() ? "" : ", ") + f;
    }
    merged.meta["mixed_timing_machines"] = std::move(mixed);
    out.warnings.push_back("timing records come from " + std::to_string(timing_machines.size()) +
                           " different machines (host, CPU or GPU type): " + names +
                           "; their latencies do not compare (meta.mixed_timing_machines)");
  }
  merged.meta["merged_from"] = std::move(sources);
  return out;
}

}  // namespace attnbench
