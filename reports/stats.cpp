#include "reports/stats.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

namespace attnbench {

namespace {

// P(U <= u) for every u = 0..m k under H0 (no ties), by the recurrence in the header. Rows are
// kept for the second sample's size k - 1 and k only: memory O(m * m k), time O(m k * m k).
std::vector<double> exact_u_cdf(std::size_t m, std::size_t k) {
  // prev[i]: the distribution of U for sizes (i, j - 1); cur[i]: for (i, j).
  std::vector<std::vector<double>> prev(m + 1, std::vector<double>{1.0});
  for (std::size_t j = 1; j <= k; ++j) {
    std::vector<std::vector<double>> cur(m + 1);
    cur[0] = {1.0};
    for (std::size_t i = 1; i <= m; ++i) {
      const double from_first = static_cast<double>(i) / static_cast<double>(i + j);
      cur[i].assign(i * j + 1, 0.0);
      for (std::size_t u = 0; u <= i * j; ++u) {
        double p = 0;
        if (u >= j) p += from_first * cur[i - 1][u - j];
        if (u < prev[i].size()) p += (1.0 - from_first) * prev[i][u];
        cur[i][u] = p;
      }
    }
    prev = std::move(cur);
  }
  std::vector<double> cdf = prev[m];
  for (std::size_t u = 1; u < cdf.size(); ++u) cdf[u] += cdf[u - 1];
  return cdf;
}

}  // namespace

mann_whitney_result mann_whitney_u(const std::vector<double>& a, const std::vector<double>& b,
                                   mann_whitney_method method) {
  mann_whitney_result res;
  const std::size_t n1 = a.size(), n2 = b.size(), n = n1 + n2;
  if (n1 == 0 || n2 == 0) return res;

  // Pool with a sample tag, sort, and give each run of equal values its mean rank.
  std::vector<std::pair<double, bool>> pooled;  // (value, from the first sample)
  pooled.reserve(n);
  for (double v : a) pooled.emplace_back(v, true);
  for (double v : b) pooled.emplace_back(v, false);
  std::sort(pooled.begin(), pooled.end(),
            [](const auto& x, const auto& y) { return x.first < y.first; });
  double rank_sum_first = 0;
  double tie_term = 0;  // sum over tie groups of t^3 - t
  for (std::size_t i = 0; i < n;) {
    std::size_t j = i;
    while (j < n && pooled[j].first == pooled[i].first) ++j;
    const double t = static_cast<double>(j - i);
    const double mid_rank = (static_cast<double>(i + 1) + static_cast<double>(j)) / 2.0;
    for (std::size_t r = i; r < j; ++r)
      if (pooled[r].second) rank_sum_first += mid_rank;
    tie_term += t * t * t - t;
    i = j;
  }
  const double d1 = static_cast<double>(n1), d2 = static_cast<double>(n2);
  res.ties = tie_term > 0;
  res.u_first = rank_sum_first - d1 * (d1 + 1.0) / 2.0;
  res.u_second = d1 * d2 - res.u_first;

  const bool use_exact =
      method == mann_whitney_method::exact || (method == mann_whitney_method::automatic &&
                                               !res.ties && n1 * n2 <= k_mann_whitney_exact_pairs);
  if (use_exact) {
    // With ties U can be a half-integer; the exact table is over integers, so round down
    // (the conservative side for the smaller statistic).
    const std::vector<double> cdf = exact_u_cdf(n1, n2);
    const auto u_min = static_cast<std::size_t>(std::floor(std::min(res.u_first, res.u_second)));
    res.exact = true;
    res.p_value = std::min(1.0, 2.0 * cdf[std::min(u_min, cdf.size() - 1)]);
    return res;
  }

  const double dn = static_cast<double>(n);
  const double variance = d1 * d2 / 12.0 * ((dn + 1.0) - tie_term / (dn * (dn - 1.0)));
  if (!(variance > 0)) return res;
  const double distance = std::max(0.0, std::abs(res.u_first - d1 * d2 / 2.0) - 0.5);
  res.z = distance / std::sqrt(variance);
  res.p_value = std::erfc(res.z / std::sqrt(2.0));
  return res;
}

proportion_test_result two_proportion_z(double x1, double n1, double x2, double n2) {
  proportion_test_result res;
  if (!(n1 > 0) || !(n2 > 0)) return res;
  res.difference = x2 / n2 - x1 / n1;
  const double pooled = (x1 + x2) / (n1 + n2);
  const double se = std::sqrt(pooled * (1.0 - pooled) * (1.0 / n1 + 1.0 / n2));
  if (!(se > 0)) return res;
  res.z = res.difference / se;
  res.p_value = std::erfc(std::abs(res.z) / std::sqrt(2.0));
  return res;
}

double sample_quantile(std::vector<double> values, double q) {
  if (values.empty()) return std::numeric_limits<double>::quiet_NaN();
  std::sort(values.begin(), values.end());
  const double pos = std::clamp(q, 0.0, 1.0) * static_cast<double>(values.size() - 1);
  const auto lo = static_cast<std::size_t>(std::floor(pos));
  const std::size_t hi = std::min(lo + 1, values.size() - 1);
  return values[lo] + (pos - static_cast<double>(lo)) * (values[hi] - values[lo]);
}

}  // namespace attnbench
