/// The calibration source of the retrieval model (harness/method.hpp, calibration_source): a
/// passkey prompt (an essay haystack with one number needle at mid depth, then the question and
/// the teacher-forced answer), projected to Q/K/V layer by layer on first use. DuoAttention
/// calibrates its head gates on exactly this kind of synthetic passkey data.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "datasets/retrieval_model.hpp"
#include "harness/method.hpp"

namespace attnbench {

class passkey_calibration : public calibration_source {
 public:
  /// Calibration prompt length in tokens (DuoAttention's passkey samples are long; 4K already
  /// puts the needle far outside a 1K streaming window) and its seed, disjoint from the seeds
  /// of evaluated samples, which hash the run seed with the case name.
  static constexpr std::int64_t default_tokens = 4096;
  static constexpr std::uint64_t default_seed = 0xca11b7a7e;

  /// `model` must outlive this object.
  explicit passkey_calibration(const retrieval_model& model, std::int64_t tokens = default_tokens,
                               std::uint64_t seed = default_seed);

  int layers() const override { return m_model.shape().layers; }
  const calibration_layer& layer(int layer) const override;

  /// The calibration sequence: prompt then answer tokens.
  const std::vector<int>& tokens() const { return m_tokens; }

 private:
  const retrieval_model& m_model;
  std::vector<int> m_tokens;
  std::int64_t m_answer_begin = 0;
  std::int64_t m_needle_begin = 0;
  mutable std::vector<std::once_flag> m_once;
  mutable std::vector<std::unique_ptr<calibration_layer>> m_layers;
};

}  // namespace attnbench
