/// parallel_context: parallel context encoding (the prompt split into independently encoded
/// pieces behind a shared sink prefix), with decode queries reading the sinks, the pieces that
/// fit the budget (optionally the top ones by a query-piece score) and the tokens after the
/// prompt. Configuration and the piece layout, shared by backends. C++17-clean.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "harness/params.hpp"

namespace attnbench::parallel_context {

/// "Attention Entropy is a Key Factor: An Analysis of Parallel Context Encoding with
/// Full-attention-based Pre-trained Language Models" (Zhang et al., 2024).
/// Rule: after a shared prefix of S sink tokens the prompt is cut into pieces of P tokens,
/// encoded independently: prompt query i attends the sinks and its own piece up to i. A decode
/// query reads the sinks, the tokens after the prompt (question / generated tokens), the most
/// recent piece, then the other pieces in decreasing order of the score sum_g q_g . mean(K_piece)
/// (the paper's selective attention), at most `select` of them when select > 0, until the budget
/// is spent (the last piece read may be cut to its most recent rows).
/// Parameters:
///   sinks   int >= 0, default 4: S, the shared prefix in tokens.
///   piece   int >= 1, default 256: P, tokens per piece.
///   pieces  int >= 0, default 0: when > 0, the prompt after the sinks is cut into this many
///           pieces instead (P = ceil((context - S) / pieces)); overrides piece.
///   select  int >= 0, default 0: read at most this many pieces besides the most recent one;
///           0 reads as many as the budget allows.
///   budget  int >= 1, default 1024: cap on tokens read per decode query per KV head, every part
///           included. A budget covering the visible tokens reads them all (dense).
///   keep    real in (0, 1], no default: budget = ceil(keep * context tokens); overrides budget.
/// Metadata: one mean key per piece and KV head (context / P * head_dim floats per KV head), built
/// at prefill; scoring them costs (pieces - 1) * group dot products per query.
/// Simplifications: in this workload K/V come from full-sequence positions, so parallel encoding
/// can only change which rows queries see (the prompt outputs here), not the keys and values
/// themselves, which in the paper are computed per piece; the paper's attention-temperature fix
/// is not modelled. The question's tokens in a query-aware prompt sit in the most recent piece.
// Default piece of 256 tokens: at the default budget of 1024 a decode query reads the most recent
// piece and about two more, so the selection, not the window, decides; the paper splits contexts
// into a handful to a few dozen pieces.
inline std::vector<param_def> schema() {
  constexpr std::int64_t max_tokens = std::int64_t{1} << 40;
  auto params = budget_params(1024);
  params.insert(
      params.begin(),
      {int_param("sinks", 4, 0, max_tokens, "shared prefix every piece sees (tokens)"),
       int_param("piece", 256, 1, max_tokens, "tokens per piece"),
       int_param("pieces", 0, 0, max_tokens,
                 "number of pieces of the prompt after the sinks; 0 uses piece"),
       int_param("select", 0, 0, max_tokens,
                 "most pieces read besides the most recent one; 0: as the budget allows")});
  return params;
}

/// The piece layout of a prompt of `context` tokens: piece j covers prompt positions
/// [sinks + j * piece, min(context, sinks + (j + 1) * piece)).
struct layout {
  std::int64_t sinks = 0;
  std::int64_t piece = 1;
  std::int64_t context = 0;

  std::int64_t count() const { return context > sinks ? (context - sinks + piece - 1) / piece : 0; }
  std::int64_t begin(std::int64_t j) const { return sinks + j * piece; }
  std::int64_t end(std::int64_t j) const { return std::min(context, sinks + (j + 1) * piece); }
  /// The piece holding prompt position p >= sinks (the last one for positions after the prompt).
  std::int64_t index(std::int64_t p) const {
    return std::min(count() - 1, (std::min(p, context - 1) - sinks) / piece);
  }
};

inline layout make_layout(const param_values& values, std::int64_t context_tokens) {
  layout l;
  l.sinks = values.get_int("sinks");
  l.context = context_tokens;
  l.piece = values.get_int("piece");
  const std::int64_t pieces = values.get_int("pieces");
  if (pieces > 0)
    l.piece = std::max<std::int64_t>(
        1, (std::max<std::int64_t>(0, context_tokens - l.sinks) + pieces - 1) / pieces);
  return l;
}

}  // namespace attnbench::parallel_context
