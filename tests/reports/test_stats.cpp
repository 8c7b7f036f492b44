// The significance tests of `attnbench compare` against textbook worked examples.
#include <catch2/catch.hpp>

#include <cmath>

#include "reports/stats.hpp"

using namespace attnbench;
using Catch::Matchers::WithinAbs;
using Catch::Matchers::WithinRel;

namespace {

// Rosie Shier, "Statistics: 2.3 The Mann-Whitney U Test", Mathematics Learning Support Centre
// (2004), also the worked example of SciPy's mannwhitneyu documentation: ages at diagnosis of
// five males and four females. U_M = 17, U_F = 3; the exact two-sided p is 2 * 7 / C(9, 4) =
// 14 / 126 = 0.1111 (seven of the 126 rank arrangements give U <= 3); the normal approximation
// with continuity correction gives z = (|17 - 10| - 0.5) / sqrt(4 * 5 * 10 / 12) = 1.5922,
// p = 0.11135 (Shier's 0.09 omits the continuity correction).
const std::vector<double> k_males{19, 22, 16, 29, 24};
const std::vector<double> k_females{20, 11, 17, 12};

}  // namespace

TEST_CASE("Mann-Whitney U: Shier's worked example, exact", "[stats]") {
  const mann_whitney_result r = mann_whitney_u(k_males, k_females);
  CHECK(r.u_first == 17.0);
  CHECK(r.u_second == 3.0);
  CHECK(r.exact);
  CHECK_FALSE(r.ties);
  CHECK_THAT(r.p_value, WithinRel(14.0 / 126.0, 1e-12));
  // The test is symmetric in its arguments.
  CHECK_THAT(mann_whitney_u(k_females, k_males).p_value, WithinRel(14.0 / 126.0, 1e-12));
}

TEST_CASE("Mann-Whitney U: Shier's worked example, normal approximation", "[stats]") {
  const mann_whitney_result r = mann_whitney_u(k_males, k_females, mann_whitney_method::normal);
  CHECK_FALSE(r.exact);
  CHECK_THAT(r.z, WithinRel(6.5 / std::sqrt(200.0 / 12.0), 1e-12));
  CHECK_THAT(r.p_value, WithinRel(0.11134688653314041, 1e-9));
}

TEST_CASE("Mann-Whitney U: complete separation and identical samples", "[stats]") {
  // 5 vs 5 fully separated: U = 0, exact p = 2 / C(10, 5) = 2 / 252.
  const mann_whitney_result r = mann_whitney_u({1, 2, 3, 4, 5}, {6, 7, 8, 9, 10});
  CHECK(r.u_first == 0.0);
  CHECK_THAT(r.p_value, WithinRel(2.0 / 252.0, 1e-12));
  // Every value equal: no evidence of a difference at all.
  CHECK(mann_whitney_u({3, 3, 3}, {3, 3, 3}).p_value == 1.0);
  CHECK(mann_whitney_u({}, {1.0}).p_value == 1.0);
}

TEST_CASE("Mann-Whitney U: midranks and the tie correction, by hand", "[stats]") {
  // Pooled and sorted: 1a 2a 2a 2b 3a 3b 4b 5b. Ranks: 1; the three 2s share (2+3+4)/3 = 3;
  // the two 3s share (5+6)/2 = 5.5; 7; 8. R1 = 1 + 3 + 3 + 5.5 = 12.5, U1 = 12.5 - 10 = 2.5.
  // Tie groups of sizes 3 and 2: sum (t^3 - t) = 24 + 6 = 30, so
  // sigma^2 = 4 * 4 / 12 * (9 - 30 / 56) = 11.2857, z = (|2.5 - 8| - 0.5) / sigma = 1.48835,
  // p = erfc(z / sqrt 2) = 0.136658.
  const mann_whitney_result r = mann_whitney_u({1, 2, 2, 3}, {2, 3, 4, 5});
  CHECK(r.ties);
  CHECK_FALSE(r.exact);
  CHECK(r.u_first == 2.5);
  CHECK(r.u_second == 13.5);
  CHECK_THAT(r.z, WithinRel(5.0 / std::sqrt(16.0 / 12.0 * (9.0 - 30.0 / 56.0)), 1e-12));
  CHECK_THAT(r.p_value, WithinAbs(0.13665824773814753, 1e-12));
}

TEST_CASE("Mann-Whitney U: exact and normal agree for larger samples", "[stats]") {
  // 12 vs 12 interleaved with a shift: the normal approximation is accurate to ~0.01 here.
  std::vector<double> a, b;
  for (int i = 0; i < 12; ++i) {
    a.push_back(i);
    b.push_back(i + 3.5);
  }
  const double exact = mann_whitney_u(a, b, mann_whitney_method::exact).p_value;
  const double normal = mann_whitney_u(a, b, mann_whitney_method::normal).p_value;
  CHECK(exact < 0.05);
  CHECK_THAT(normal, WithinAbs(exact, 0.01));
}

TEST_CASE("two-proportion z test: worked example", "[stats]") {
  // 140 of 200 against 255 of 340 (a standard pooled-test exercise): pooled p = 395 / 540 =
  // 0.731481, se = sqrt(p (1 - p) (1/200 + 1/340)) = 0.0394940, z = (0.75 - 0.7) / se =
  // 1.26601, two-sided p = 0.205508.
  const proportion_test_result r = two_proportion_z(140, 200, 255, 340);
  CHECK_THAT(r.difference, WithinAbs(0.05, 1e-12));
  CHECK_THAT(r.z, WithinRel(1.266014826113381, 1e-9));
  CHECK_THAT(r.p_value, WithinAbs(0.20550777427449307, 1e-9));
  // Swapping the samples flips the sign, not the p-value.
  CHECK_THAT(two_proportion_z(255, 340, 140, 200).z, WithinRel(-1.266014826113381, 1e-9));
  // 20 / 20 against 8 / 20: pooled 0.7, se = sqrt(0.21 * 0.1), z = -0.6 / 0.144914 = -4.1404.
  CHECK(two_proportion_z(20, 20, 8, 20).p_value < 1e-4);
  // All successes on both sides: no spread, no evidence.
  CHECK(two_proportion_z(20, 20, 20, 20).p_value == 1.0);
}

TEST_CASE("quantiles interpolate between order statistics", "[stats]") {
  CHECK(sample_median({3, 1, 2}) == 2.0);
  CHECK(sample_median({4, 1, 3, 2}) == 2.5);
  CHECK(sample_quantile({1, 2, 3, 4, 5}, 0.1) == Approx(1.4));
  CHECK(std::isnan(sample_median({})));
}
