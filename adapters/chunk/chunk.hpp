/// chunk: a wrapper that compresses the prompt chunk by chunk with the wrapped method's scorer,
/// as kvpress's ChunkPress. Configuration and the per-chunk budget split, shared by backends.
/// C++17-clean.
#pragma once

#include <cstdint>
#include <vector>

#include "harness/params.hpp"

namespace attnbench::chunk {

/// "FINCH: Prompt-guided Key-Value Cache Compression for Large Language Models" (Corallo and
/// Papotti, 2024), in the form of kvpress's ChunkPress.
/// Rule: `chunk(METHOD):chunk=C` cuts the prompt into chunks of C tokens and scores each chunk
/// on its own with METHOD's scorer (its queries, keys and values only); every chunk keeps its
/// share of METHOD's budget, so the kept tokens spread evenly over the context instead of
/// gathering where the scores are highest.
/// Parameters:
///   chunk  int >= 1, default 1024: C, tokens per chunk (kvpress's chunk_length).
/// The budget is METHOD's own (`budget` / `keep`, and its layer schedule for pyramidkv). Chunk
/// [s, e) of a T-token prompt keeps floor(B e / T) - floor(B s / T) tokens, so the chunks' shares
/// add up to B exactly (kvpress keeps max(1, int(n (1 - ratio))) per chunk, which can differ from
/// B by a token per chunk). METHOD must compress the prompt by scores (snapkv, pyramidkv, knorm,
/// random, adakv (its per-head allocation within each chunk), tova as kvpress's TOVAPress), as
/// ChunkPress takes a ScorerPress, or wrap one (per_layer, key_rerotation).
inline std::vector<param_def> schema() {
  return {int_param("chunk", 1024, 1, std::int64_t{1} << 40, "prompt tokens per chunk")};
}

/// Tokens chunk [begin, end) of a `tokens`-token prompt keeps out of `budget`.
inline std::int64_t chunk_share(std::int64_t begin, std::int64_t end, std::int64_t tokens,
                                std::int64_t budget) {
  // budget * t can pass 2^63 near the 2^40-token cap of the parameters: 128-bit products.
  const auto upto = [&](std::int64_t t) {
    return static_cast<std::int64_t>(static_cast<__int128>(budget) * t / tokens);
  };
  return upto(end) - upto(begin);
}

}  // namespace attnbench::chunk
