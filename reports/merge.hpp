/// `attnbench merge FILES... -o OUT` (DESIGN §6; docs/reports.md): combines the reports of one
/// sweep split over machines, shards or resumed runs into one report, and proves it complete.
/// Schema versions are checked when the files are read (read_report: a different MAJOR version
/// is bad input; JSONL streams are read too). Every missing, duplicate or config-mismatched case
/// is named, never only the first; a merge with any is not written.
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

struct merge_options {
  // Rendering several runs (`attnbench report`): every record is kept and nothing is checked.
  bool allow_duplicates = false;
  // Missing cases become warnings and the merged meta says so (partial, allow_partial,
  // missing_cases); duplicates and config mismatches still fail.
  bool allow_partial = false;
};

struct merge_result {
  report merged;
  std::vector<std::string> warnings;  // differing tool versions, mixed timing machines, ...
  // One line per missing, duplicate or config-mismatched case. Not empty: the merge failed.
  std::vector<std::string> problems;
  std::size_t missing = 0;
  std::size_t duplicates = 0;
  std::size_t mismatched = 0;
};

/// The identity that must be unique in a merged report: the case id when the record has one
/// (schema 1.1), else the join key of `compare` (suite, case, method, params, backend, mode)
/// plus the seed.
std::string record_merge_key(const record& r);

/// Merges `inputs`. Records follow the planned order of the inputs' meta.planned_cases (the
/// run's canonical order), then input order. A case counts as:
///  - duplicate when two records share a merge key (the first is kept), unless one of them is
///    an `error` record and the other not: the case was run again and the finished record
///    stands (a warning says which);
///  - config-mismatched when its config_hash differs from the first input's;
///  - missing when an input planned it (meta.planned_cases) and no input holds it, or when an
///    input is marked partial without listing its planned cases.
/// meta is the first input's with `merged_from` (name, git_sha, start_time, host, config hash,
/// partial and record count of each input), the union of planned cases and `partial`; timing
/// records (metrics in s, TFLOP/s or GB/s) measured on different hosts, CPUs or GPU types are
/// flagged in `mixed_timing_machines` and a warning. metric_info is the union; two inputs giving
/// one metric different units or directions throw bad_input.
merge_result merge_reports(const std::vector<merge_input>& inputs,
                           const merge_options& options = {});

}  // namespace attnbench
