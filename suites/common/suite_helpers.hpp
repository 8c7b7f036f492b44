/// Small pieces every suite repeats (DESIGN §5): a case from its axis list, the seed of one
/// sample of a case, and the numeric `--param suite.key=value` settings a suite declares in
/// param_names(). One definition keeps case names, seeds and bad-input messages alike across
/// suites.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "harness/suite.hpp"

namespace attnbench {

/// Query rows of the attention probes (`probes`, `stats`) by default: the last 16 prompt tokens,
/// the question of a NIAH prompt.
inline constexpr int k_probe_queries = 16;

/// The case with canonical name case_name(suite, axes) and those axes, in that order.
suite_case make_case(const std::string& suite,
                     const std::vector<std::pair<std::string, nlohmann::json>>& axes);

/// The seed of sample `sample` of case `c` in a run seeded with `run_seed`: it depends on the
/// case and the sample only, so every method sees the same prompts at any --threads.
std::uint64_t sample_seed(std::uint64_t run_seed, const suite_case& c, int sample);

/// Samples per case: `--samples` when given, else `quick_default` in the quick preset and
/// `suite_default` otherwise.
int sample_count(const run_options& o, int suite_default, int quick_default);

/// The real value of `--param key` (the full "suite.key"), or `def` when not given. Throws
/// bad_input naming the value when it is not a number in [lo, hi].
double param_real(const run_options& o, const std::string& key, double def, double lo, double hi);

/// The integer value of `--param key`, or `def` when not given. Throws bad_input naming the
/// value when it is not an integer in [lo, hi].
int param_int(const run_options& o, const std::string& key, int def, int lo, int hi);

}  // namespace attnbench
