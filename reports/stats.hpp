/// Significance tests behind `attnbench compare` (DESIGN §7): the two-sided Mann-Whitney U test
/// over raw latency samples (Mann and Whitney, "On a test of whether one of two random variables
/// is stochastically larger than the other", 1947) and the pooled two-proportion z test over
/// accuracies, plus the median / quantile helpers the comparison prints. Pure functions.
#pragma once

#include <cstddef>
#include <utility>
#include <vector>

namespace attnbench {

/// How mann_whitney_u computes its p-value.
enum class mann_whitney_method {
  automatic,  // exact when there are no ties and n1 * n2 <= k_mann_whitney_exact_pairs
  exact,      // the exact null distribution (ties are not corrected for)
  normal,     // normal approximation with tie and continuity corrections
};

/// Largest n1 * n2 for which `automatic` uses the exact distribution: 50 x 50 samples costs
/// about 6 M multiply-adds, far below the time it takes to read the report.
inline constexpr std::size_t k_mann_whitney_exact_pairs = 2500;

struct mann_whitney_result {
  double u_first = 0;   // U of the first sample: pairs (a_i, b_j) with a_i > b_j, ties 1/2
  double u_second = 0;  // n1 * n2 - u_first
  double z = 0;         // standardized statistic of the normal approximation (0 when exact)
  double p_value = 1;   // two-sided
  bool exact = false;   // p from the exact distribution
  bool ties = false;    // some value occurs more than once in the pooled sample
};

/// Two-sided Mann-Whitney U test of "a and b come from the same distribution".
///
/// Ranks: the pooled sample is ranked 1..n (n = n1 + n2), tied values take the mean of their
/// ranks (midranks); U1 = R1 - n1 (n1 + 1) / 2 where R1 sums the first sample's ranks.
/// Exact: P(U <= u) under H0 from the recurrence p(u; m, k) = m/(m+k) p(u - k; m - 1, k) +
/// k/(m+k) p(u; m, k - 1) (the largest value comes from the first sample with probability
/// m/(m+k) and then beats all k values of the second); p = min(1, 2 P(U <= min(U1, U2))).
/// Normal: mu = n1 n2 / 2, sigma^2 = n1 n2 / 12 * ((n + 1) - sum_t (t^3 - t) / (n (n - 1)))
/// over the sizes t of the groups of tied values, z = (|U1 - mu| - 1/2) / sigma (continuity
/// correction, never below 0), p = erfc(z / sqrt 2). sigma = 0 (every value equal) gives p = 1.
/// Empty inputs give p = 1.
mann_whitney_result mann_whitney_u(const std::vector<double>& a, const std::vector<double>& b,
                                   mann_whitney_method method = mann_whitney_method::automatic);

struct proportion_test_result {
  double difference = 0;  // p2 - p1
  double z = 0;           // difference / pooled standard error (0 when that is 0)
  double p_value = 1;     // two-sided
};

/// Pooled two-proportion z test of "p1 = p2" from x1 successes in n1 trials and x2 in n2:
/// p = (x1 + x2) / (n1 + n2), se = sqrt(p (1 - p) (1/n1 + 1/n2)), z = (x2/n2 - x1/n1) / se,
/// p-value = erfc(|z| / sqrt 2). Successes may be fractional (mean partial-match scores times
/// the sample count); the test then treats them as counts, an approximation. se = 0 (both
/// samples all successes or all failures) gives z = 0 and p = 1; n1 or n2 <= 0 gives p = 1.
proportion_test_result two_proportion_z(double x1, double n1, double x2, double n2);

/// The q-quantile (0 <= q <= 1) with linear interpolation between order statistics (the
/// "type 7" rule of R and NumPy's default). NaN for an empty input.
double sample_quantile(std::vector<double> values, double q);

inline double sample_median(std::vector<double> values) {
  return sample_quantile(std::move(values), 0.5);
}

}  // namespace attnbench
