/// kvzip: score every KV pair by the most attention it gets while the model repeats the context,
/// then share the layer's budget across its KV heads by those scores. Configuration and the
/// shape of the reconstruction pass, shared by backends. C++17-clean.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "harness/params.hpp"

namespace attnbench::kvzip {

/// "KVzip: Query-Agnostic KV Cache Compression with Context Reconstruction" (Kim et al., 2025).
/// Rule: after prefill, the model is asked to repeat the context, chunk by chunk, with the
/// context's KV cache in place; a KV pair's score is the largest softmax weight any
/// reconstruction query of its chunk (any query head of its group) gives it. The layer keeps
/// budget x kv_heads pairs with the best scores over all its heads together (head budgets follow
/// the scores, no safeguard); the first `sinks` tokens are always kept. The prompt is compressed
/// once, in prefill; decoding appends without eviction.
/// The reconstruction pass, driven through what the adapter sees: repeating the context
/// teacher-forced feeds its tokens again, and the query at the repeated copy of token i
/// carries the same content as the prompt's own query at i (in the workload exactly: a
/// retrieval query encodes the tokens up to i, and so predicts token i + 1 by matching the key
/// at i + 1). So the reconstruction queries of chunk [s, e) are the prompt's queries at
/// [s - 8, e) (KVzip re-feeds the previous chunk's last 8 tokens before each chunk). Each
/// attends, as in KVzip's scoring, to the sinks, to every key of the chunk (the context ahead of
/// the query included: the cache holds the whole context) and, causally, to the re-fed copies
/// up to itself, whose keys are the prompt's keys at the same tokens.
/// Parameters:
///   budget  int >= 1, default 1024: mean tokens per KV head; the layer keeps budget x kv_heads.
///   keep    real in (0, 1], no default: budget = ceil(keep * prompt tokens); overrides budget.
///   sinks   int >= 0, default 4: first tokens always kept.
///   chunk   int >= 1, default 2048: reconstruction chunk (tokens).
/// stats(): resident tokens differ per head; budget_tokens is the mean per-head budget.
/// Simplifications: the repeat instruction and chat-template tokens ("Repeat the previous
/// context exactly.") are not part of the workload, so their queries and keys are left out; the
/// re-fed copies keep the original tokens' positions (the adapter cannot re-rotate keys), which
/// matters only to position-driven heads. The budget is shared within a layer (KVzip and kvpress
/// by default also share it across layers, which one adapter per layer cannot express; kvpress's
/// layerwise=True is this).
inline std::vector<param_def> schema() {
  auto params = budget_params(1024);
  params.push_back(
      int_param("sinks", 4, 0, std::int64_t{1} << 40, "first prompt tokens always kept (tokens)"));
  params.push_back(
      int_param("chunk", 2048, 1, std::int64_t{1} << 40, "reconstruction chunk (tokens)"));
  return params;
}

/// Tokens of the previous chunk re-fed before each chunk (KVzip's prev_postfix_size).
constexpr std::int64_t refed_tokens = 8;

/// The first reconstruction query of chunk [begin, end): the re-fed tail of the previous chunk.
inline std::int64_t first_query(std::int64_t begin) {
  return std::max<std::int64_t>(0, begin - refed_tokens);
}

}  // namespace attnbench::kvzip
