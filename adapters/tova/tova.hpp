/// tova: token omission via attention, evicting what the current query attends least.
/// Configuration shared by backends. C++17-clean.
#pragma once

#include <vector>

#include "harness/params.hpp"

namespace attnbench::tova {

/// "Transformers are Multi-State RNNs" (Oren et al., 2024), the TOVA policy.
/// Rule: a KV head holds at most `budget` tokens; after each query attends, the tokens it puts
/// the least weight on (summed over the query heads of the group, i.e. the group average) are
/// dropped until the head is back within the budget. The prompt keeps the `budget` tokens the
/// last prompt query attends most.
/// Parameters:
///   budget  int >= 1, default 1024: tokens kept per KV head.
///   keep    real in (0, 1], no default: budget = ceil(keep * context tokens); overrides budget.
/// Simplifications: the paper averages the weights over all heads of a layer and keeps one token
/// set per layer; here each KV head keeps its own set, scored by its own query group, as every
/// method here selects per KV head (one set shared by all heads evicts BOS from the sink heads,
/// DESIGN §4). As in the paper a decode step attends budget + the appended tokens, then evicts;
/// tokens appended twice without a query in between evict the older surplus by the last query's
/// weights.
inline std::vector<param_def> schema() { return budget_params(1024); }

}  // namespace attnbench::tova
