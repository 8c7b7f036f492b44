/// ltri: KV spans found from local "triangles" of key affinity, kept in an index of span vectors;
/// per decode query the best-scoring spans are read with the sinks and a local window.
/// Configuration and the span rules, shared by backends. C++17-clean.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "harness/params.hpp"

namespace attnbench::ltri {

/// "Ltri-LLM: Streaming Long Context Inference for LLMs with Training-Free Dynamic Triangular
/// Attention Pattern" (Tang et al., 2024).
/// Rule: the paper sees attention maps made of local triangles (a run of tokens that attend to
/// each other), cuts the KV cache into such spans, stores index vectors per span (more vectors
/// for spans it is less sure of) and, per query, retrieves the spans whose index vectors score
/// highest, next to a local window. Here, per KV head:
/// - span discovery, streaming over the keys: token t's local affinity row is the softmax of
///   scale * k_t . k_j over the previous `span_max` keys and t itself (its own key is the yardstick
///   of "similar", so a short look-back does not make every span look coherent). A new span starts
///   at t when the open span holds `span_max` tokens, or holds at least `span_min` tokens and t
///   puts less than `mass` of its row on the open span (t does not belong to the triangle).
///   Incoherent keys (near-uniform rows) thus give spans of `span_min` tokens and a run of mutually
///   similar keys one span;
/// - span confidence = the mean in-span mass of the span's tokens; a span of confidence c gets
///   round(1 + (1 - c) (vectors - 1)) index vectors, at most one per `span_min` tokens: the mean
///   keys of that many equal sub-runs;
/// - per decode query: a span scores the largest group-summed logit of its index vectors; the
///   query reads the first `sinks` rows, the last `window` rows and whole spans in score order
///   until the budget is spent (a span that does not fit contributes its first rows).
/// Parameters:
///   budget    int >= 1, default 1024: rows read per query per KV head, sinks and window included.
///   keep      real in (0, 1], no default: budget = ceil(keep * prompt tokens); overrides budget.
///   sinks     int >= 0, default 4: first rows always read.
///   window    int >= 0, default 256: last rows always read.
///   span_min  int >= 1, default 4: shortest span (tokens).
///   span_max  int >= 1, default 64: longest span and the affinity look-back (tokens).
///   mass      real in [0, 1], default 0.5: in-span affinity mass below which a span ends.
///   vectors   int >= 1, default 4: most index vectors per span.
/// Cost: the index vectors of the visible spans are scored (one dot product per vector and query
/// head) and read (d floats each), then the chosen rows. Metadata: between T / span_max and
/// T / span_min index vectors per KV head (not in resident_bytes: K/V only, = dense).
/// Simplifications: the paper scores triangles on the local query-key attention map and filters
/// overlapping candidates with non-maximum suppression; queries are not kept in a KV cache, so
/// the affinity here is key-key (keys standing in for their tokens' queries), and spans are cut
/// greedily left to right, which makes them disjoint without NMS. The paper's persistent recall
/// (spans kept for later steps) and retrieval-head voting (heads agree on spans) are left out:
/// each decode query and KV head selects alone. The paper offloads spans to CPU memory; here
/// everything stays resident and only the reads are counted.
inline std::vector<param_def> schema() {
  constexpr std::int64_t max_tokens = std::int64_t{1} << 20;
  auto params = budget_params(1024);
  params.push_back(int_param("sinks", 4, 0, max_tokens, "first rows always read"));
  params.push_back(int_param("window", 256, 0, max_tokens, "last rows always read"));
  params.push_back(int_param("span_min", 4, 1, max_tokens, "shortest span (tokens)"));
  params.push_back(int_param("span_max", 64, 1, 4096, "longest span and affinity look-back"));
  params.push_back(
      real_param("mass", 0.5, 0.0, 1.0, "in-span affinity mass below which a span ends"));
  params.push_back(int_param("vectors", 4, 1, 4096, "most index vectors per span"));
  return params;
}

/// Index vectors of a span of `length` tokens and confidence `confidence` in [0, 1]: sub-runs of
/// at least `span_min` tokens, so that indexing never costs more than one vector per `span_min`
/// keys (at most T / span_min vectors per KV head).
inline int index_vectors(double confidence, int vectors, std::int64_t length,
                         std::int64_t span_min) {
  const double c = std::clamp(confidence, 0.0, 1.0);
  const auto n = static_cast<std::int64_t>(std::lround(1.0 + (1.0 - c) * (vectors - 1)));
  return static_cast<int>(
      std::clamp<std::int64_t>(n, 1, std::max<std::int64_t>(1, length / span_min)));
}

/// Whether token t starts a new span: the open span holds `open` tokens and t puts `in_mass` of
/// its affinity row inside it.
inline bool starts_span(std::int64_t open, double in_mass, std::int64_t span_min,
                        std::int64_t span_max, double mass) {
  if (open >= span_max) return true;
  return open >= span_min && in_mass < mass;
}

}  // namespace attnbench::ltri
