/// A structured-random Q/K/V generator for the `fidelity` suite: seeded Gaussian queries, keys
/// and values plus three tunable patterns that real attention shows and KV methods bet on:
/// - attention sinks: the first token takes a large logit from every query ("Efficient
///   Streaming Language Models with Attention Sinks");
/// - locality: a RoPE-rotated shared component makes nearby keys score higher, the long-term
///   decay of "RoFormer: Enhanced Transformer with Rotary Position Embedding";
/// - heavy hitters: a few keys with a large norm along a direction every query shares, so they
///   score high for all queries ("H2O: Heavy-Hitter Oracle for Efficient Generative Inference").
///
/// The logit of query p and key t (scale 1/sqrt(head_dim)) is exactly the sum of four parts,
/// each built in its own coordinates of the head so they never interfere:
///   z(p, t) = content(p, t) + sink * [t == 0] + heavy * [t is a heavy hitter]
///             + locality * mean_i cos((p - t) * theta_i)
/// with content ~ N(0, content_std^2) from Gaussian q/k over the remaining dimensions and
/// theta_i = rope_base^(-2i / r) the RoPE frequencies of the r rotary dims. Every head of every
/// layer draws its own content, values and heavy-hitter positions from (seed, layer, head).
/// Shapes: at least 8 dims per head (1 sink, 1 heavy, >= 2 rotary, >= 4 content).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "harness/method.hpp"
#include "harness/tensor.hpp"

namespace attnbench {

struct structured_config {
  // Defaults give the last query of a 1K-token sequence about 0.55 of its mass on the sink, 0.25
  // on the 8 heavy hitters together and 0.1 on the last 64 tokens (0.3 / 0.14 / 0.06 at 4K, the
  // rest diffuse): a sink-dominated, partly local profile like the mid layers that
  // "Efficient Streaming Language Models with Attention Sinks" and H2O plot. Any knob may be 0.
  double sink = 9.0;         // extra logit of position 0
  double locality = 5.0;     // logit of the RoPE component at distance 0 (mean of cosines)
  double heavy = 5.0;        // extra logit of each heavy-hitter key
  int heavy_count = 8;       // heavy hitters per KV head (positions > 0, seeded)
  double content_std = 1.0;  // standard deviation of the content logits
  double rope_base = 10000.0;

  nlohmann::json to_json() const;
  /// Sets one field from text ("sink=4"); throws bad_input naming the key or value.
  void set(const std::string& key, const std::string& value);
};

/// Q/K/V of positions [0, tokens) for one layer, deterministic in (seed, layer).
/// q: [tokens, q_heads, head_dim]; k, v: [tokens, kv_heads, head_dim] (the query heads of a
/// group share their KV head's patterns and draw their own content). Throws bad_input when
/// head_dim < 8.
void structured_qkv(const model_shape& shape, const structured_config& config, int layer,
                    std::int64_t tokens, std::uint64_t seed, tensor_view q, tensor_view k,
                    tensor_view v);

/// The heavy-hitter positions of one KV head for a sequence of `tokens`, sorted.
std::vector<std::int64_t> structured_heavy_positions(const structured_config& config, int layer,
                                                     int kv_head, std::int64_t tokens,
                                                     std::uint64_t seed);

}  // namespace attnbench
