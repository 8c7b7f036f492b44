/// Explicit attention weights for the methods that score tokens by attention (H2O, TOVA,
/// SnapKV and their kin): softmax weights of a query group over key rows, the weighted sum of
/// value rows, observation-window votes over a prompt, and deterministic top-k selection.
/// Float32 with max-subtracted softmax, as the attention kernel itself.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "adapters/common/cpu/cpu_attention.hpp"
#include "harness/tensor.hpp"

namespace attnbench::cpu {

/// Softmax weights of `group` queries (row g at q + g * q_stride, head_dim = rows' width `d`)
/// over `rows`: weights[g * rows.count + r], each query's row summing to 1.
void softmax_weights(const float* q, std::size_t q_stride, int group, int d, const kv_rows& rows,
                     float scale, float* weights);

/// out[g] = sum_r weights[g * rows.count + r] * v_r, row g at out + g * out_stride.
void weighted_values(const float* weights, int group, int d, const kv_rows& rows, float* out,
                     std::size_t out_stride);

/// Observation-window votes: for every KV head, the softmax weights of prompt queries
/// [first_query, tokens) of the query heads of its group over the keys each may see (causal,
/// keys 0..i), summed over queries and heads. q: [tokens, q_heads, d]; k: [tokens, kv_heads, d].
/// Returns [kv_heads][tokens]. OpenMP over KV heads.
std::vector<std::vector<float>> window_votes(tensor_view q, tensor_view k, int first_query,
                                             float scale, int threads);

/// The `count` indices of the largest `scores[0, n)`, in increasing index order. Ties go to
/// the lower index, so the selection is deterministic. count >= n returns every index.
std::vector<std::int64_t> top_indices(const float* scores, std::int64_t n, std::int64_t count);

/// Indices [0, n) minus the strictly increasing `drop`, in order.
std::vector<std::int64_t> complement(std::int64_t n, const std::vector<std::int64_t>& drop);

}  // namespace attnbench::cpu
