#include "suites/common/retrieval_metrics.hpp"

#include <algorithm>
#include <cmath>

namespace attnbench {

std::map<std::string, metric_info> retrieval_metric_info() {
  return {
      {"accuracy", {"%", true, "mean string-match score over samples"}},
      {"accuracy_stderr", {"%", false, "binomial standard error of accuracy: sqrt(p(1-p)/n)"}},
      {"resident_kv_bytes",
       {"bytes", false, "KV bytes physically resident after decoding, all layers"}},
      {"resident_kv_ratio",
       {"ratio", false, "resident KV bytes / dense KV bytes for the same tokens"}},
      {"resident_tokens", {"tokens", false, "mean resident tokens per KV head after decoding"}},
      {"keys_scored_per_step",
       {"keys", false, "query-key dot products per decoded token, all layers"}},
      {"kv_bytes_read_per_step", {"bytes", false, "KV bytes read per decoded token, all layers"}},
      {"offloaded_kv_bytes",
       {"bytes", false,
        "KV bytes held in host memory after decoding, all layers (offloading methods)"}},
      {"kv_bytes_copied_per_step",
       {"bytes", false,
        "KV bytes copied host to device per decoded token, all layers (offloading methods)"}},
  };
}

void retrieval_accumulator::add(double score, const retrieval_result& r) {
  ++m_samples;
  m_score += score;
  if (r.needle_mass >= 0) {
    m_mass += r.needle_mass;
    ++m_mass_samples;
  }
  m_resident_bytes += static_cast<double>(r.resident_bytes);
  m_dense_bytes += static_cast<double>(r.dense_bytes);
  m_resident_tokens += r.resident_tokens;
  double steps = r.decode_steps ? static_cast<double>(r.decode_steps) : 1.0;
  m_keys_per_step += static_cast<double>(r.keys_scored) / steps;
  m_bytes_per_step += static_cast<double>(r.kv_bytes_read) / steps;
  m_simulated = m_simulated || r.simulated;
  m_offloads = m_offloads || r.offloads;
  m_host_bytes += static_cast<double>(r.host_bytes);
  m_copied_per_step += static_cast<double>(r.host_to_device_bytes) / steps;
  m_budget_tokens = std::max(m_budget_tokens, r.budget_tokens);
}

void retrieval_accumulator::write(record& rec) const {
  const double n = m_samples > 0 ? m_samples : 1;
  const double p = m_score / n;
  rec.metrics["accuracy"] = 100.0 * p;
  rec.metrics["accuracy_stderr"] = 100.0 * std::sqrt(p * (1.0 - p) / n);
  if (m_mass_samples) rec.metrics["needle_mass"] = m_mass / m_mass_samples;
  rec.metrics["resident_kv_bytes"] = m_resident_bytes / n;
  rec.metrics["resident_kv_ratio"] = m_dense_bytes > 0 ? m_resident_bytes / m_dense_bytes : 0.0;
  rec.metrics["resident_tokens"] = m_resident_tokens / n;
  rec.metrics["keys_scored_per_step"] = m_keys_per_step / n;
  rec.metrics["kv_bytes_read_per_step"] = m_bytes_per_step / n;
  if (m_offloads) {
    rec.metrics["offloaded_kv_bytes"] = m_host_bytes / n;
    rec.metrics["kv_bytes_copied_per_step"] = m_copied_per_step / n;
  }
  rec.extra["simulated"] = m_simulated;
  // The resolved budget (from budget= or keep=) is a parameter of the record (DESIGN §3).
  if (m_budget_tokens >= 0) rec.params["budget_tokens"] = m_budget_tokens;
  rec.extra["samples_run"] = m_samples;
}

}  // namespace attnbench
