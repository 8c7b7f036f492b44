/// finch: prompt-guided compression of the context chunk by chunk, by the question's attention.
/// Configuration and the score normalization, shared by backends. C++17-clean.
#pragma once

#include <cstdint>
#include <vector>

#include "harness/params.hpp"

namespace attnbench::finch {

/// "FINCH: Prompt-guided Key-Value Cache Compression for Large Language Models" (Corallo and
/// Papotti, TACL 2024).
/// Rule: the context (the prompt before the question) is read in chunks of `chunk` tokens; after
/// each chunk, every question token's query attends (causally, with the question's own earlier
/// tokens) to the rows kept so far plus the chunk, and each KV head keeps the (budget - question)
/// of those rows with the highest attention, averaged over the question's queries and the query
/// group after normalizing each query's weights by the number of keys it sees (kvpress's
/// normalize_scores). The question's rows are always kept. The prompt is compressed in prefill;
/// decoding appends without eviction.
/// Query-aware only: it needs the question inside the prompt (attention_problem::question_tokens).
/// In query-agnostic mode the question arrives after compression, so the problem is declined
/// ("skipped"), as kvpress's FinchPress refuses a prompt without its question delimiter.
/// Parameters:
///   budget  int >= 1, default 1024: tokens kept per KV head, the question included.
///   keep    real in (0, 1], no default: budget = ceil(keep * prompt tokens); overrides budget.
///   chunk   int >= 0, default 3072: context tokens read per step (the room a 4096-token window,
///           the paper's Llama-2 setting, leaves beside a 1024-token cache); 0 reads the whole
///           context at once (kvpress's default, one SnapKV-like step with the question as window).
/// A budget covering the prompt keeps everything; a budget <= question keeps the last budget
/// tokens.
/// Simplifications: the question's queries are those at its place at the end of the prompt (the
/// workload projects Q/K/V once, at true positions), not the question re-encoded after each chunk
/// as in the paper; the prompt's own outputs, when asked for, are exact attention (later chunks
/// are not re-encoded over the compressed cache, which the workload's fixed Q/K/V cannot show);
/// no key re-rotation (keys keep their original positions).
inline std::vector<param_def> schema() {
  auto params = budget_params(1024);
  params.push_back(int_param("chunk", 3072, 0, std::int64_t{1} << 40,
                             "context tokens read per compression step; 0: all at once (tokens)"));
  return params;
}

}  // namespace attnbench::finch
