/// RULER's task names in the order its paper and scripts list them, and its effective-length
/// threshold ("RULER: What's the Real Context Size of Your Long-Context Language Models?", Hsieh
/// et al., 2024). One list for the task generators (ruler_tasks), the `ruler` suite and the
/// report summary (reports/ruler_summary), which reads records and does not link the
/// generators: header-only, C++17.
#pragma once

#include <array>

namespace attnbench {

inline constexpr std::array<const char*, 13> k_ruler_task_order = {"niah_single_1",
                                                                   "niah_single_2",
                                                                   "niah_single_3",
                                                                   "niah_multikey_1",
                                                                   "niah_multikey_2",
                                                                   "niah_multikey_3",
                                                                   "niah_multivalue",
                                                                   "niah_multiquery",
                                                                   "vt",
                                                                   "cwe",
                                                                   "fwe",
                                                                   "qa_1",
                                                                   "qa_2"};

// RULER's default threshold for the effective length: the average score of Llama2-7B (base) at
// 4K over the 13 tasks.
inline constexpr double k_ruler_default_threshold = 85.6;

}  // namespace attnbench
