/// decoding: a wrapper that compresses the cache every N decode steps with the wrapped method's
/// scorer, as kvpress's DecodingPress. Configuration, shared by backends. C++17-clean.
#pragma once

#include <cstdint>
#include <vector>

#include "harness/params.hpp"

namespace attnbench::decoding {

/// Decoding-time compression in the form of kvpress's DecodingPress (no paper of its own).
/// Rule: `decoding(METHOD):interval=N,budget=B` leaves the prompt whole; after every N decode
/// queries the whole cache is scored by METHOD's scorer, with the last `buffer` queries as the
/// scorer's queries, and cut to B tokens per KV head. The cache so holds at most B + N tokens
/// after the first compression.
/// Parameters:
///   interval  int >= 1, default 512: N, decode steps between compressions (kvpress's
///             compression_interval).
///   budget    int >= 1, default 2048: B, tokens kept per KV head at each compression (kvpress's
///             target_size); `keep` gives it as a share of the prompt.
///   buffer    int >= 1, default 256: recent queries kept for the scorer (kvpress's
///             hidden_states_buffer_size).
/// Simplifications: the compression after the N-th step runs when the next token arrives (the
/// same cache for every query as compressing right after the step); the query buffer is not
/// emptied at a compression and starts with the prompt's last queries, so an observation window
/// (snapkv) always has its queries; the buffered queries stand at the last rows of the cache.
/// METHOD's own budget is replaced; it must be a prompt scorer with one budget for every KV head
/// (snapkv, pyramidkv, knorm, random, tova), as DecodingPress takes a ScorerPress, and no
/// wrapper.
inline std::vector<param_def> schema() {
  std::vector<param_def> params = {
      int_param("interval", 512, 1, std::int64_t{1} << 40, "decode steps between compressions")};
  for (auto& p : budget_params(2048)) params.push_back(p);
  params.push_back(int_param("buffer", 256, 1, std::int64_t{1} << 20,
                             "recent queries the scorer sees (tokens)"));
  return params;
}

}  // namespace attnbench::decoding
