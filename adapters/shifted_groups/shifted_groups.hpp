/// shifted_groups: the shifted group attention of LongLoRA / SinkLoRA (S²-Attn with the sink
/// tokens of SF-Attn) as a static sparse read over a full cache. Configuration and the pattern,
/// shared by backends. C++17-clean.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "harness/params.hpp"

namespace attnbench::shifted_groups {

/// "SinkLoRA: Enhanced Efficiency and Chat Capabilities for Long-Context Large Language Models"
/// (Zhang, 2024), building on LongLoRA's S²-Attn.
/// Rule: the sequence is cut into groups of G tokens and a query attends only inside its own
/// group (causally); the second half of the query heads uses groups shifted by G / 2 (group
/// boundaries at G/2 + kG), so that information flows between neighbouring groups; the first
/// `sinks` tokens are global ("sink attention tokens") and every query reads them.
/// Parameters:
///   budget  int >= 1, default 1024: tokens read per query at most, sinks included:
///           G = max(1, budget - sinks). A budget covering every visible token reads them all.
///   keep    real in (0, 1], no default: budget = ceil(keep * prompt tokens); overrides budget.
///   sinks   int >= 0, default 4: first tokens every query reads (StreamingLLM's 4).
/// Simplifications: a static pattern for decode queries (prompt outputs are exact). S²-Attn and
/// SF-Attn are training-time patterns (models fine-tuned with them run full attention at
/// inference); SF-Attn's segmentation and reassembly is read here as "no cyclic wrap": the first
/// shifted group is [0, G/2) and never mixes the last tokens with the first, the exchange SinkLoRA
/// removes. Heads split by query head index (first half unshifted), as LongLoRA splits the heads.
inline std::vector<param_def> schema() {
  auto params = budget_params(1024);
  params.push_back(int_param("sinks", 4, 0, std::int64_t{1} << 40, "global first tokens"));
  return params;
}

/// The group size for a resolved budget.
inline std::int64_t group_size(std::int64_t budget, std::int64_t sinks) {
  return std::max<std::int64_t>(1, budget - sinks);
}

/// Whether query head `q_head` of `q_heads` uses the shifted groups (the second half).
inline bool shifted(int q_head, int q_heads) { return 2 * q_head >= q_heads && q_heads > 1; }

/// The first position of the group holding position p.
inline std::int64_t group_begin(std::int64_t p, std::int64_t group, bool is_shifted) {
  if (!is_shifted) return p - p % group;
  const std::int64_t offset = group / 2;
  if (p < offset) return 0;
  return p - (p - offset) % group;
}

/// What the `group` query heads of KV head `head` (of `q_heads`) cost one query at position p
/// (past the budget): the keys they score, each head its sinks below its group and its group up
/// to p, and the rows the KV head reads, the union: the sinks below the lowest group and every
/// row from it up to p.
struct group_reads {
  std::int64_t keys = 0;
  std::int64_t rows = 0;
};
inline group_reads group_reads_of(int head, int group, int q_heads, std::int64_t group_tokens,
                                  std::int64_t sinks, std::int64_t p) {
  group_reads r;
  std::int64_t lowest = p + 1;
  for (int g = 0; g < group; ++g) {
    const std::int64_t begin = group_begin(p, group_tokens, shifted(head * group + g, q_heads));
    r.keys += std::min(sinks, begin) + p + 1 - begin;
    lowest = std::min(lowest, begin);
  }
  r.rows = std::min(sinks, lowest) + p + 1 - lowest;
  return r;
}

}  // namespace attnbench::shifted_groups
