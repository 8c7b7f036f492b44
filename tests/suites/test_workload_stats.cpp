#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

#include "datasets/rng.hpp"
#include "datasets/vocabulary.hpp"
#include "suites/common/qkv_sources.hpp"
#include "suites/stats/workload_stats.hpp"

using namespace attnbench;

namespace {

// A [tokens, 1, d] tensor whose row t is f(t, i).
template <class F>
host_tensor rows_of(int tokens, int d, F f) {
  host_tensor x(tokens, 1, d);
  for (int t = 0; t < tokens; ++t)
    for (int i = 0; i < d; ++i) x.view().at(t, 0)[i] = static_cast<float>(f(t, i));
  return x;
}

std::vector<float> gaussian_rows(int count, int d, std::uint64_t seed) {
  rng gen(seed);
  std::vector<float> out(static_cast<std::size_t>(count) * static_cast<std::size_t>(d));
  for (auto& x : out) x = static_cast<float>(gen.normal());
  return out;
}

}  // namespace

TEST_CASE("stats: median and Spearman", "[stats]") {
  CHECK(stats::median({3, 1, 2}) == 2);
  CHECK(stats::median({4, 1, 3, 2}) == 2.5);
  CHECK(std::isnan(stats::median({})));
  CHECK(stats::spearman({1, 2, 3, 4}, {10, 20, 30, 40}) == Approx(1));
  CHECK(stats::spearman({1, 2, 3, 4}, {4, 3, 2, 1}) == Approx(-1));
  // Monotone but not linear: ranks only.
  CHECK(stats::spearman({1, 2, 3, 4}, {1, 8, 27, 1000}) == Approx(1));
  // Ties share their average rank: x ranks (1.5, 1.5, 3), y ranks (1, 2, 3).
  CHECK(stats::spearman({5, 5, 7}, {1, 2, 3}) == Approx(0.8660254));
  CHECK(std::isnan(stats::spearman({1, 1, 1}, {1, 2, 3})));
}

TEST_CASE("stats T1/T3: BOS norm against the median other norm", "[stats]") {
  // BOS key of norm 0.2, every other key of norm 1: T1 = 0.2.
  host_tensor k =
      rows_of(32, 8, [](int t, int i) { return i == t % 8 ? (t == 0 ? 0.2 : 1.0) : 0; });
  CHECK(stats::bos_norm_ratio(stats::row_norms(k.view(), 0, 32)) == Approx(0.2));
  CHECK(std::isnan(stats::bos_norm_ratio({1.0})));
}

TEST_CASE("stats T4: BOS importance over a 64-token input", "[stats]") {
  const int d = 4;
  // Zero queries attend uniformly: the weight of token 0 for query t is 1 / (t + 1).
  host_tensor zero_q = rows_of(8, d, [](int, int) { return 0.0; });
  host_tensor k = rows_of(8, d, [](int t, int i) { return i == t % d ? 1.0 : 0.0; });
  CHECK(stats::bos_importance(zero_q.view(), 0, k.view(), 0, 4, 1.0) ==
        Approx((1 + 1 / 2.0 + 1 / 3.0 + 1 / 4.0) / 4));
  // A query aligned with a large BOS key: all mass on token 0.
  host_tensor sink_k = rows_of(
      80, d, [](int t, int i) { return t == 0 ? (i == 0 ? 50.0 : 0) : (i == 1 ? 1.0 : 0); });
  host_tensor sink_q = rows_of(80, d, [](int, int i) { return i == 0 ? 1.0 : 0.0; });
  CHECK(stats::bos_importance(sink_q.view(), 0, sink_k.view(), 0, 64, 1.0) > 0.999);
}

TEST_CASE("stats T2: a sink that wins by angle", "[stats]") {
  // k_0 along q (cos 1), the others orthogonal (cos 0): margin 1.
  const std::vector<double> dots = {2.0, 0, 0, 0, 0};
  const std::vector<double> norms = {2.0, 1, 1, 1, 1};
  CHECK(stats::sink_angle_margin(dots.data(), norms, 5, 1.0) == Approx(1.0));
  // A small BOS key still wins by angle: its norm does not enter the cosine.
  const std::vector<double> small = {0.1, 0.5, -0.5, 0.5, -0.5};
  const std::vector<double> small_norms = {0.1, 1, 1, 1, 1};
  CHECK(stats::sink_angle_margin(small.data(), small_norms, 5, 1.0) == Approx(1.0));
}

TEST_CASE("stats T6: chunk locality and the neighbour gap", "[stats]") {
  // Identical keys inside every 8-token chunk: min cos 1 for each chunk but the BOS chunk.
  host_tensor k = rows_of(64, 8, [](int t, int i) { return i == (t / 8) % 8 ? 1.0 : 0.1; });
  std::vector<double> chunks;
  stats::chunk_min_cos(k.view(), 0, 64, 8, chunks);
  REQUIRE(chunks.size() == 7);
  for (double c : chunks) CHECK(c == Approx(1.0));
  // Keys turning slowly in one plane: neighbours are alike (cos ~1), keys 1024 apart orthogonal.
  const double step = M_PI / 2 / 1024;
  host_tensor turn = rows_of(2048, 4, [&](int t, int i) {
    return i == 0 ? std::cos(t * step) : i == 1 ? std::sin(t * step) : 0.0;
  });
  CHECK(stats::neighbour_cos_gap(turn.view(), 0, 2048, 1024) == Approx(1.0).margin(1e-5));
  CHECK(std::isnan(stats::neighbour_cos_gap(turn.view(), 0, 1025, 1024)));
}

TEST_CASE("stats: top indices and recall inside a budget", "[stats]") {
  const std::vector<double> s = {0.5, 3, 1, 3, 2};
  CHECK(stats::top_indices(s.data(), 5, 3) == std::vector<std::int64_t>{1, 3, 4});
  // Ties: the lower index is kept first.
  CHECK(stats::recall_in_top(s, 1, {1}) == 1.0);
  CHECK(stats::recall_in_top(s, 1, {3}) == 0.0);
  CHECK(stats::recall_in_top(s, 3, {1, 2}) == 0.5);
  // Over a prefix: among positions [0, 3) the best two are 1 and 2.
  const stats::ranking r = stats::rank_scores(s);
  CHECK(stats::recall_in_top(r, 3, 2, {2}) == 1.0);
  CHECK(stats::recall_in_top(r, 3, 2, {0, 4}) == 0.0);
}

TEST_CASE("stats T7: Quest page bounds", "[stats]") {
  const int d = 4;
  // Pages of 4 identical keys: the bound of a page is the exact score of its keys. Page 2
  // (keys 8..11) holds the best key for q = e0.
  host_tensor k =
      rows_of(16, d, [](int t, int i) { return i == 0 ? (t / 4 == 2 ? 3.0 : 1.0) : 0.5; });
  const stats::page_bounds pages = stats::make_page_bounds(k.view(), 0, 16, 4);
  const float q[d] = {1, 0, 0, 0};
  const std::vector<double> scores = stats::quest_page_scores(q, pages, k.view(), 0, 16);
  REQUIRE(scores.size() == 4);
  CHECK(scores[2] == Approx(3.0));
  CHECK(scores[0] == Approx(1.0));
  CHECK(stats::quest_recall(scores, 4, {8, 9}, 4) == 1.0);
  CHECK(stats::quest_recall(scores, 4, {8, 1}, 4) == 0.5);
  // A query that sees keys [0, 10) rebuilds page 2 from keys 8 and 9 only.
  host_tensor mixed =
      rows_of(16, d, [](int t, int i) { return i == 0 ? (t == 11 ? 9.0 : 1.0) : 0.0; });
  const stats::page_bounds all = stats::make_page_bounds(mixed.view(), 0, 16, 4);
  const std::vector<double> partial = stats::quest_page_scores(q, all, mixed.view(), 0, 10);
  REQUIRE(partial.size() == 3);
  CHECK(partial[2] == Approx(1.0));
  // Negative query channels take the page minimum.
  const float neg[d] = {-1, 0, 0, 0};
  CHECK(stats::quest_page_scores(neg, pages, k.view(), 0, 16)[2] == Approx(-3.0));
}

TEST_CASE("stats T8: tokens holding a share of the mass", "[stats]") {
  // Weights that sum to 1 exactly in binary.
  CHECK(stats::mass_tokens({0.125, 0.5, 0.125, 0.25}, 0.95) == 4);
  CHECK(stats::mass_tokens({0.125, 0.5, 0.125, 0.25}, 0.8) == 3);
  CHECK(stats::mass_tokens({0.125, 0.5, 0.125, 0.25}, 0.75) == 2);
  CHECK(stats::mass_tokens({0.125, 0.5, 0.125, 0.25}, 0.5) == 1);
  CHECK(stats::mass_tokens(std::vector<double>(100, 0.01), 0.95) == Approx(95).margin(1));
  CHECK(stats::mass_tokens({1.0, 0, 0}, 0.95) == 1);
}

TEST_CASE("stats T9: a head attending only the needle's value scores 1", "[stats]") {
  // Sequence: filler, a 3-token value at [5, 8), filler, then the answer steps at 12, 13, 14
  // whose queries point at the value token they generate.
  const int d = 8;
  const std::vector<int> tokens = {0, 9, 9, 9, 9, 41, 42, 43, 9, 9, 9, 9, 41, 42, 43};
  host_tensor k =
      rows_of(15, d, [&](int t, int i) { return i == (t >= 5 && t < 8 ? t - 5 : 7) ? 1.0 : 0.0; });
  host_tensor q = rows_of(15, d, [&](int t, int i) { return t >= 12 && i == t - 12 ? 4.0 : 0.0; });
  std::vector<float> keys;
  stats::head_rows(k.view(), 0, 15, keys);
  int hits = 0, wrong_token = 0;
  for (int step = 0; step < 3; ++step) {
    const int p = 12 + step;
    std::vector<double> dots(static_cast<std::size_t>(p + 1));
    stats::dot_rows(q.view().at(p, 0), 1, keys.data(), p + 1, d, dots.data());
    const std::int64_t top1 = stats::top_indices(dots.data(), p + 1, 1).front();
    hits += stats::retrieval_hit(top1, 5, 8, tokens, tokens[static_cast<std::size_t>(5 + step)]);
    wrong_token += stats::retrieval_hit(top1, 5, 8, tokens, 99);
  }
  CHECK(hits / 3.0 == 1.0);
  CHECK(wrong_token == 0);
  // Outside the value span a matching token does not count.
  CHECK_FALSE(stats::retrieval_hit(12, 5, 8, tokens, 41));
}

TEST_CASE("stats: dot_rows matches a float64 dot product", "[stats]") {
  const int d = 24, nq = 6, n = 7;
  const std::vector<float> q = gaussian_rows(nq, d, 1), k = gaussian_rows(n, d, 2);
  std::vector<double> out(static_cast<std::size_t>(nq * n));
  stats::dot_rows(q.data(), nq, k.data(), n, d, out.data());
  for (int i = 0; i < nq; ++i)
    for (int t = 0; t < n; ++t) {
      double s = 0;
      for (int c = 0; c < d; ++c)
        s += static_cast<double>(q[static_cast<std::size_t>(i * d + c)]) *
             k[static_cast<std::size_t>(t * d + c)];
      CHECK(out[static_cast<std::size_t>(i * n + t)] == Approx(s).epsilon(1e-12));
    }
}

TEST_CASE("stats T10: eigenvalues, energy rank and channel outliers", "[stats]") {
  const std::vector<double> two = stats::symmetric_eigenvalues({2, 1, 1, 2}, 2);
  CHECK(two[0] == Approx(3));
  CHECK(two[1] == Approx(1));
  std::vector<double> diag(25, 0.0);
  for (int i = 0; i < 5; ++i) diag[static_cast<std::size_t>(i * 6)] = i - 1.5;
  const std::vector<double> eig = stats::symmetric_eigenvalues(diag, 5);
  for (int i = 0; i < 5; ++i) CHECK(eig[static_cast<std::size_t>(i)] == Approx(2.5 - i));
  // A random symmetric matrix keeps its trace and Frobenius norm.
  const int n = 40;
  const std::vector<float> g = gaussian_rows(n, n, 3);
  std::vector<double> a(static_cast<std::size_t>(n * n));
  double trace = 0, frob = 0;
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < n; ++j) {
      const double x =
          g[static_cast<std::size_t>(i * n + j)] + g[static_cast<std::size_t>(j * n + i)];
      a[static_cast<std::size_t>(i * n + j)] = x;
      trace += i == j ? x : 0;
      frob += x * x;
    }
  double sum = 0, squares = 0;
  for (double x : stats::symmetric_eigenvalues(a, n)) {
    sum += x;
    squares += x * x;
  }
  CHECK(sum == Approx(trace).margin(1e-9));
  CHECK(squares == Approx(frob).epsilon(1e-10));

  // Isotropic Gaussian rows: 90% of the energy needs most of the dimensions.
  const int d = 64;
  const std::vector<float> iso = gaussian_rows(4096, d, 4);
  CHECK(stats::energy_rank(iso, d, 0.9) > 0.75 * d);
  CHECK(stats::channel_rms_ratio(iso, d) < 1.2);
  // Rows in a 5-dim subspace: rank at most 5, whatever the mixing.
  const std::vector<float> basis = gaussian_rows(5, d, 5), coef = gaussian_rows(2048, 5, 6);
  std::vector<float> low(2048 * static_cast<std::size_t>(d), 0.0f);
  for (int t = 0; t < 2048; ++t)
    for (int b = 0; b < 5; ++b)
      for (int i = 0; i < d; ++i)
        low[static_cast<std::size_t>(t * d + i)] +=
            coef[static_cast<std::size_t>(t * 5 + b)] * basis[static_cast<std::size_t>(b * d + i)];
  CHECK(stats::energy_rank(low, d, 0.9) <= 5);
  // One channel 10x louder: RMS max / median about 10.
  std::vector<float> outlier = iso;
  for (int t = 0; t < 4096; ++t) outlier[static_cast<std::size_t>(t * d + 3)] *= 10;
  CHECK(stats::channel_rms_ratio(outlier, d) == Approx(10).epsilon(0.1));
}

TEST_CASE("stats: RoPE undo round-trips and pairs dims (i, i + rotary_dims / 2)", "[stats]") {
  rope_spec rope;
  rope.rotary_dims = 4;
  rope.inv_freq = {M_PI / 2, 0.25};
  float x[6] = {1, 2, 3, 4, 5, 6};
  stats::apply_rope(x, 1, rope);
  // Pair 0 = dims (0, 2) turned by 90 degrees; dims 4, 5 are not rotary.
  CHECK(x[0] == Approx(-3).margin(1e-6));
  CHECK(x[2] == Approx(1).margin(1e-6));
  CHECK(x[4] == 5);
  CHECK(x[5] == 6);
  stats::undo_rope(x, 1, rope);
  for (int i = 0; i < 6; ++i) CHECK(x[i] == Approx(i + 1).margin(1e-6));

  rope_spec big;
  big.rotary_dims = 64;
  for (int i = 0; i < 32; ++i) big.inv_freq.push_back(std::pow(500000.0, -2.0 * i / 64));
  big.positions = {0, 7, 131071};
  std::vector<float> v = gaussian_rows(1, 64, 7), w = v;
  stats::apply_rope(w.data(), 2, big);  // position 131071
  stats::undo_rope(w.data(), 2, big);
  for (int i = 0; i < 64; ++i)
    CHECK(w[static_cast<std::size_t>(i)] == Approx(v[static_cast<std::size_t>(i)]).margin(1e-5));
}

TEST_CASE("qkv sources: probe_layer is layer() sliced, and the workload names its RoPE",
          "[stats]") {
  const model_shape shape{"t", 2, 4, 2, 32};
  const retrieval_model model(shape, workload_config{});
  std::vector<int> tokens(40);
  for (int t = 0; t < 40; ++t) tokens[static_cast<std::size_t>(t)] = 100 + (t * 7) % 50;
  tokens[0] = vocabulary::instance().bos();
  const model_qkv_source src(model, tokens);
  for (int l = 0; l < 2; ++l) {
    host_tensor q, k, v, pq, pk, pv;
    src.layer(l, q, k, v);
    const std::vector<std::int64_t> rows = {0, 1, 2, 17, 33, 34, 39};
    src.probe_layer(l, rows, pq, pk, &pv);
    REQUIRE(pq.tokens() == 7);
    for (int i = 0; i < 7; ++i)
      for (int h = 0; h < 4; ++h)
        for (int c = 0; c < 32; ++c)
          CHECK(pq.view().at(i, h)[c] ==
                q.view().at(static_cast<int>(rows[static_cast<std::size_t>(i)]), h)[c]);
    REQUIRE(pk.size() == k.size());
    for (std::size_t i = 0; i < k.size(); ++i) {
      CHECK(pk.data()[i] == k.data()[i]);
      CHECK(pv.data()[i] == v.data()[i]);
    }
    // The base class's slicing gives the same rows.
    host_tensor bq, bk;
    src.qkv_source::probe_layer(l, rows, bq, bk, nullptr);
    for (std::size_t i = 0; i < pq.size(); ++i) CHECK(bq.data()[i] == pq.data()[i]);
  }
  const auto rope = src.rope();
  REQUIRE(rope);
  CHECK(rope->rotary_dims == static_cast<int>(rope->inv_freq.size()) * 2);
  CHECK(rope->rotary_dims <= 32);
}
