/// The operator axes shared by the `latency` and `memory` suites (DESIGN §5): phase, batch,
/// length, query/KV heads, head_dim, dtype, causal and page size, read from `--lengths` and
/// `--param SUITE.key=v1,v2,...`, and the canonical axes / op_shape of one case.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "harness/suite.hpp"
#include "harness/timed_op.hpp"

namespace attnbench {

/// Value lists of every operator axis; a case is one point of their product.
struct op_axes {
  std::vector<std::string> phases;         // "prefill", "decode"
  std::vector<int> batches;                // sequences per call
  std::vector<std::int64_t> lengths;       // prompt or cached tokens
  std::vector<std::pair<int, int>> heads;  // (query heads, KV heads)
  std::vector<int> head_dims;
  std::vector<std::string> dtypes;    // "bf16", "fp16", "fp32"
  std::vector<bool> causal;           // prefill only
  std::vector<int> page_sizes = {0};  // tokens per KV page; 0: contiguous
};

/// The axes both operator suites start from, per backend: one decode step of batch 1 at 1K
/// tokens, causal; on the CPU the --shape's heads in fp32 (what CPU adapters compute in), on CUDA
/// Llama 3 8B's attention (32 query / 8 KV heads, head_dim 128) in bf16.
op_axes default_op_axes(const run_options& options);

/// The comma-separated items of `--param SUITE.KEY`, or an empty list when it is not given.
std::vector<std::string> param_items(const run_options& options, const std::string& suite,
                                     const std::string& key);

/// Integer / real / boolean setting `SUITE.KEY` within [min, max], `fallback` when not given;
/// throws bad_input naming the key and value otherwise.
std::int64_t int_setting(const run_options& options, const std::string& suite,
                         const std::string& key, std::int64_t fallback, std::int64_t min,
                         std::int64_t max);
double real_setting(const run_options& options, const std::string& suite, const std::string& key,
                    double fallback, double min, double max);
bool bool_setting(const run_options& options, const std::string& suite, const std::string& key,
                  bool fallback);

/// Reads `SUITE.phase`, `.batch`, `.heads` (Q/KV, e.g. 32/8; a single number means Q = KV),
/// `.head_dim`, `.dtype`, `.causal` (1/0 or true/false) and `.page_size`; an axis not given
/// keeps its value in `defaults`. Lengths come from --lengths (defaults.lengths when empty or
/// in the quick preset).
/// Throws bad_input on unknown values, malformed numbers, and Q heads not a multiple of KV heads.
op_axes parse_op_axes(const run_options& options, const std::string& suite,
                      const op_axes& defaults);

/// The typed axes of an operator suite as `attnbench list suites` shows them: backend, phase,
/// batch, length, q_heads, kv_heads, head_dim, dtype, causal, page_size, with `defaults`'s values
/// (the backend's; `--axis SUITE.KEY=...` and `--param SUITE.KEY=...` set the same lists).
std::vector<axis_def> op_axis_defs(const op_axes& defaults);

/// The canonical axes of one case, in product order: backend, phase, batch, length, q_heads,
/// kv_heads, head_dim, dtype, then causal (prefill only) and page_size (when not 0).
std::vector<std::pair<std::string, nlohmann::json>> op_case_axes(const std::string& backend,
                                                                 const op_shape& shape);

/// Every op_shape of the product (phase outermost, then batch, length, heads, head_dim, dtype,
/// causal; decode points take no causal axis).
std::vector<op_shape> op_shapes(const op_axes& axes);

/// The op_shape a case's axes describe (inverse of op_case_axes).
op_shape op_shape_from_axes(const nlohmann::json& axes);

/// The run's calibration when the op has the run's geometry (query heads, KV heads, head_dim),
/// else null: calibration data is per head, so a calibrating method cannot use another shape's.
const calibration_source* op_calibration(const op_shape& shape, const run_context& ctx);

}  // namespace attnbench
