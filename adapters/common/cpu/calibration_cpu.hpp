/// Reading the offline calibration data (harness/method.hpp, calibration_source) on the CPU, for
/// the adapters that fix head roles or budgets offline (duo, tca): the reason to decline a
/// problem without usable calibration, a shape check, and row access into a calibration layer.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "adapters/common/cpu/cpu_attention.hpp"
#include "harness/method.hpp"

namespace attnbench::cpu {

/// Why `method` cannot run `problem`: no calibration source (the suite has no model), or none
/// for the problem's layer. Nothing when calibration is available.
std::optional<std::string> calibration_unsupported_reason(const attention_problem& problem,
                                                          const std::string& method);

/// Throws error(unsupported) naming the mismatch when calibration layer `layer` does not have the
/// model's heads and head_dim, or its answer queries are out of range.
void check_calibration_layer(const calibration_layer& c, const model_shape& shape, int layer);

/// Key/value rows of KV head `head` of a calibration layer.
kv_rows calibration_rows(const calibration_layer& c, int head);

/// Query row of (token, query head) of a calibration layer: head_dim floats.
const float* calibration_query(const calibration_layer& c, std::int64_t token, int q_head);

}  // namespace attnbench::cpu
