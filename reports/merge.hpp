/// `attnbench merge FILES... -o OUT` (DESIGN §6): combines shard reports (the same sweep split
/// over machines or `--filter`s) into one report. Schema versions are checked when the files are
/// read (read_report: a different MAJOR version is bad input); records are refused when two
/// shards hold the same record, so a merged report never double-counts a case.
#pragma once

#include <string>
#include <vector>

#include "harness/record.hpp"

namespace attnbench {

/// One input: the name to cite in messages and `meta.merged_from`, and its report.
struct merge_input {
  std::string name;
  report rep;
};

struct merge_result {
  report merged;
  std::vector<std::string> warnings;  // differing workloads / tool versions, ...
};

/// The identity that must be unique in a merged report: the join key of `compare`
/// (suite, case, method, params, backend, mode) plus the seed.
std::string record_merge_key(const record& r);

/// Concatenates the records in input order. meta is the first input's meta plus
/// `merged_from` (name, git_sha, start_time, records of each input); metric_info is the union.
/// Throws bad_input naming both inputs when `allow_duplicates` is false and two records share a
/// merge key, or when two inputs give one metric different units or directions. Inputs whose
/// meta.workload or meta.tool_version differ from the first are merged with a warning.
merge_result merge_reports(const std::vector<merge_input>& inputs, bool allow_duplicates = false);

}  // namespace attnbench
