/// Metrics shared by the retrieval suites: accuracy with its binomial standard error, the
/// dense needle mass, and the cache accounting of DESIGN §3 (resident bytes, keys scored and
/// KV bytes read per decode step).
#pragma once

#include <map>
#include <string>

#include "harness/record.hpp"
#include "suites/common/retrieval_run.hpp"

namespace attnbench {

std::map<std::string, metric_info> retrieval_metric_info();

/// Averages per-sample scores and cache statistics into one record.
class retrieval_accumulator {
 public:
  void add(double score, const retrieval_result& r);
  void write(record& rec) const;

 private:
  int m_samples = 0;
  double m_score = 0;
  double m_mass = 0;
  int m_mass_samples = 0;
  double m_resident_bytes = 0, m_dense_bytes = 0, m_resident_tokens = 0;
  double m_keys_per_step = 0, m_bytes_per_step = 0;
  double m_host_bytes = 0, m_copied_per_step = 0;
  bool m_simulated = false;
  bool m_offloads = false;
  std::int64_t m_budget_tokens = -1;
};

}  // namespace attnbench
