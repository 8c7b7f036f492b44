/// qfilter on the CPU: the filters are computed from the calibration pass when the method is
/// prepared, then every key is scored by its projection on its head's filter, through the shared
/// prompt-compression method.
#include <algorithm>
#include <memory>
#include <vector>

#include "adapters/common/cpu/calibration_cpu.hpp"
#include "adapters/common/cpu/prompt_scores.hpp"
#include "adapters/qfilter/qfilter.hpp"
#include "harness/error.hpp"

namespace attnbench::cpu {

namespace {

// [kv_heads][head_dim]: the mean of the oriented principal query directions of each KV head's
// query heads, from the calibration layer of the problem.
std::vector<std::vector<float>> make_filters(const attention_problem& problem, int threads) {
  ATTNBENCH_CHECK(problem.calibration, unsupported,
                  *calibration_unsupported_reason(problem, "qfilter"));
  const model_shape& shape = problem.shape;
  const calibration_layer& c = problem.calibration->layer(problem.layer);
  check_calibration_layer(c, shape, problem.layer);
  const int d = shape.head_dim, group = shape.group_size();
  const auto stride = static_cast<std::size_t>(shape.q_heads) * static_cast<std::size_t>(d);
  std::vector<std::vector<double>> directions(static_cast<std::size_t>(shape.q_heads));
#pragma omp parallel for schedule(static) num_threads(std::max(1, threads)) if (threads > 1)
  for (int qh = 0; qh < shape.q_heads; ++qh)
    directions[static_cast<std::size_t>(qh)] =
        qfilter::principal_direction(calibration_query(c, 0, qh), stride, c.q.tokens(), d);
  std::vector<std::vector<float>> filters(static_cast<std::size_t>(shape.kv_heads),
                                          std::vector<float>(static_cast<std::size_t>(d)));
  for (int h = 0; h < shape.kv_heads; ++h)
    for (int i = 0; i < d; ++i) {
      double s = 0;
      for (int g = 0; g < group; ++g)
        s += directions[static_cast<std::size_t>(h * group + g)][static_cast<std::size_t>(i)];
      filters[static_cast<std::size_t>(h)][static_cast<std::size_t>(i)] =
          static_cast<float>(s / group);
    }
  return filters;
}

prompt_scorer make_qfilter_scorer(const param_values&) {
  prompt_scorer s;
  s.unsupported = [](const attention_problem& problem) {
    return calibration_unsupported_reason(problem, "qfilter");
  };
  s.bind = [](const attention_problem& problem, int threads) -> score_function {
    auto filters = std::make_shared<const std::vector<std::vector<float>>>(
        qfilter::layer_filters(problem, threads));
    return [filters](const score_request& r) {
      prompt_scores out;
      out.scores.assign(static_cast<std::size_t>(r.k.heads),
                        std::vector<float>(static_cast<std::size_t>(r.k.tokens)));
      for (int h = 0; h < r.k.heads; ++h) {
        const float* f = (*filters)[static_cast<std::size_t>(h)].data();
        auto& s = out.scores[static_cast<std::size_t>(h)];
        for (int t = 0; t < r.k.tokens; ++t) {
          const float* k = r.k.at(t, h);
          double p = 0;
          for (int i = 0; i < r.k.head_dim; ++i) p += static_cast<double>(k[i]) * f[i];
          s[static_cast<std::size_t>(t)] = static_cast<float>(p);
        }
      }
      return out;
    };
  };
  return s;
}

const scorer_registrar qfilter_scorer("qfilter", make_qfilter_scorer);

}  // namespace

}  // namespace attnbench::cpu

namespace attnbench::qfilter {

std::vector<std::vector<float>> layer_filters(const attention_problem& problem, int threads) {
  return cpu::make_filters(problem, threads);
}

std::optional<std::string> unsupported_reason(const attention_problem& problem) {
  return cpu::calibration_unsupported_reason(problem, "qfilter");
}

}  // namespace attnbench::qfilter

ATTNBENCH_REGISTER_METHOD(attnbench::cpu::prompt_score_cpu_info(
    {"qfilter", "Q-Filters: Leveraging QK Geometry for Efficient KV Cache Compression",
     "per KV head, keep the prompt tokens whose keys project most on the principal direction of "
     "the calibration queries (oriented along most queries, averaged over the group)",
     "filters from the runner's synthetic calibration prompt, not a text corpus; power iteration "
     "instead of a full SVD",
     attnbench::qfilter::schema()}));
