/// The generation loop shared by retrieval suites (DESIGN §2): prompt -> Q/K/V per layer ->
/// adapters (prefill, then append / attend per decoded token) -> readout -> greedy tokens.
#pragma once

#include <cstdint>
#include <vector>

#include "datasets/retrieval_model.hpp"
#include "harness/method.hpp"
#include "harness/suite.hpp"

namespace attnbench {

struct retrieval_result {
  std::vector<int> generated;        // decoded tokens
  std::uint64_t resident_bytes = 0;  // summed over layers, after the last step
  double resident_tokens = 0;        // mean over layers and KV heads, after the last step
  std::uint64_t dense_bytes = 0;     // what dense would hold for the same tokens
  std::uint64_t keys_scored = 0;     // summed over layers and decode steps
  std::uint64_t kv_bytes_read = 0;   // summed over layers and decode steps
  std::uint64_t decode_steps = 0;    // attend calls per layer
  bool simulated = false;
  std::int64_t budget_tokens = -1;  // the method's resolved budget per KV head; -1: unbounded
  double needle_mass = -1;          // dense retrieval-head mass on `mass_position`, or -1
};

/// Runs one prompt through one method. Query-aware: prefill context + question, then decode.
/// Query-agnostic (kvpress's protocol): prefill the context (the method compresses it), feed
/// the question as decode tokens, then decode. `mass_position` >= 0 asks for the dense
/// attention mass of the retrieval heads on that key at the first answer step.
/// `maybe_calibration` is handed to every adapter's prepare. Throws error(unsupported) when the
/// method declines the problem.
retrieval_result run_retrieval(const retrieval_model& model, const method_instance& method,
                               const exec_context& exec,
                               const calibration_source* maybe_calibration, run_mode mode,
                               const std::vector<int>& context, const std::vector<int>& question,
                               int answer_tokens, std::int64_t mass_position);

/// Peak host bytes of run_retrieval for a prompt of `tokens`: the dense K/V of every layer plus
/// one layer's Q/K/V projection.
std::uint64_t retrieval_case_bytes(const model_shape& shape, std::int64_t tokens);

}  // namespace attnbench
