#include "suites/stats/workload_stats.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "harness/error.hpp"

namespace attnbench::stats {

namespace {

constexpr double k_nan = std::numeric_limits<double>::quiet_NaN();

double dot(const float* a, const float* b, int d) {
  double s = 0;
#pragma omp simd reduction(+ : s)
  for (int i = 0; i < d; ++i) s += static_cast<double>(a[i]) * static_cast<double>(b[i]);
  return s;
}

double cosine(const float* a, const float* b, int d) {
  const double na = std::sqrt(dot(a, a, d)), nb = std::sqrt(dot(b, b, d));
  return na > 0 && nb > 0 ? dot(a, b, d) / (na * nb) : 0.0;
}

// Ranks 1..n of x, ties given their average rank.
std::vector<double> ranks(const std::vector<double>& x) {
  std::vector<std::size_t> order(x.size());
  std::iota(order.begin(), order.end(), std::size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](auto a, auto b) { return x[a] < x[b]; });
  std::vector<double> r(x.size());
  for (std::size_t i = 0; i < order.size();) {
    std::size_t j = i;
    while (j + 1 < order.size() && x[order[j + 1]] == x[order[i]]) ++j;
    const double rank = 0.5 * static_cast<double>(i + j) + 1.0;
    for (std::size_t t = i; t <= j; ++t) r[order[t]] = rank;
    i = j + 1;
  }
  return r;
}

}  // namespace

double median(std::vector<double> x) {
  if (x.empty()) return k_nan;
  const std::size_t mid = x.size() / 2;
  std::nth_element(x.begin(), x.begin() + static_cast<std::ptrdiff_t>(mid), x.end());
  const double upper = x[mid];
  if (x.size() % 2) return upper;
  const double lower = *std::max_element(x.begin(), x.begin() + static_cast<std::ptrdiff_t>(mid));
  return 0.5 * (lower + upper);
}

double spearman(const std::vector<double>& x, const std::vector<double>& y) {
  ATTNBENCH_ASSERT(x.size() == y.size());
  if (x.size() < 2) return k_nan;
  const std::vector<double> rx = ranks(x), ry = ranks(y);
  const double mean = 0.5 * static_cast<double>(x.size() + 1);
  double sxy = 0, sxx = 0, syy = 0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    sxy += (rx[i] - mean) * (ry[i] - mean);
    sxx += (rx[i] - mean) * (rx[i] - mean);
    syy += (ry[i] - mean) * (ry[i] - mean);
  }
  return sxx > 0 && syy > 0 ? sxy / std::sqrt(sxx * syy) : k_nan;
}

void head_rows(tensor_view x, int head, std::int64_t n, std::vector<float>& out) {
  const auto d = static_cast<std::size_t>(x.head_dim);
  out.resize(static_cast<std::size_t>(n) * d);
  for (std::int64_t t = 0; t < n; ++t)
    std::copy_n(x.at(static_cast<int>(t), head), d, out.data() + static_cast<std::size_t>(t) * d);
}

std::vector<double> row_norms(tensor_view x, int head, std::int64_t n) {
  std::vector<double> out(static_cast<std::size_t>(n));
  for (std::int64_t t = 0; t < n; ++t) {
    const float* r = x.at(static_cast<int>(t), head);
    out[static_cast<std::size_t>(t)] = std::sqrt(dot(r, r, x.head_dim));
  }
  return out;
}

void dot_rows(const float* q, int nq, const float* k, std::int64_t n, int d, double* out) {
  const auto stride = static_cast<std::size_t>(n);
  int i = 0;
  // Four queries per pass over the keys: each key row is loaded once for four dot products.
  for (; i + 4 <= nq; i += 4) {
    const float* q0 = q + static_cast<std::size_t>(i) * static_cast<std::size_t>(d);
    const float *q1 = q0 + d, *q2 = q1 + d, *q3 = q2 + d;
    for (std::int64_t t = 0; t < n; ++t) {
      const float* kr = k + static_cast<std::size_t>(t) * static_cast<std::size_t>(d);
      double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
#pragma omp simd reduction(+ : s0, s1, s2, s3)
      for (int c = 0; c < d; ++c) {
        const double x = kr[c];
        s0 += q0[c] * x;
        s1 += q1[c] * x;
        s2 += q2[c] * x;
        s3 += q3[c] * x;
      }
      const auto col = static_cast<std::size_t>(t);
      out[static_cast<std::size_t>(i) * stride + col] = s0;
      out[static_cast<std::size_t>(i + 1) * stride + col] = s1;
      out[static_cast<std::size_t>(i + 2) * stride + col] = s2;
      out[static_cast<std::size_t>(i + 3) * stride + col] = s3;
    }
  }
  for (; i < nq; ++i)
    for (std::int64_t t = 0; t < n; ++t)
      out[static_cast<std::size_t>(i) * stride + static_cast<std::size_t>(t)] =
          dot(q + static_cast<std::size_t>(i) * static_cast<std::size_t>(d),
              k + static_cast<std::size_t>(t) * static_cast<std::size_t>(d), d);
}

void softmax(const double* dots, std::int64_t n, double scale, double* w) {
  double mx = -INFINITY;
  for (std::int64_t t = 0; t < n; ++t) mx = std::max(mx, dots[t] * scale);
  double z = 0;
  for (std::int64_t t = 0; t < n; ++t) z += (w[t] = std::exp(dots[t] * scale - mx));
  for (std::int64_t t = 0; t < n; ++t) w[t] /= z;
}

double bos_norm_ratio(const std::vector<double>& norms) {
  if (norms.size() < 2) return k_nan;
  const double mid = median(std::vector<double>(norms.begin() + 1, norms.end()));
  return mid > 0 ? norms[0] / mid : k_nan;
}

double bos_importance(tensor_view q, int q_head, tensor_view k, int kv_head, std::int64_t m,
                      double scale) {
  const std::int64_t queries = std::min<std::int64_t>(m, std::min(q.tokens, k.tokens));
  if (queries < 1) return k_nan;
  std::vector<double> dots(static_cast<std::size_t>(queries)), w(dots.size());
  double sum = 0;
  for (std::int64_t t = 0; t < queries; ++t) {
    const float* qr = q.at(static_cast<int>(t), q_head);
    for (std::int64_t j = 0; j <= t; ++j)
      dots[static_cast<std::size_t>(j)] = dot(qr, k.at(static_cast<int>(j), kv_head), q.head_dim);
    softmax(dots.data(), t + 1, scale, w.data());
    sum += w[0];
  }
  return sum / static_cast<double>(queries);
}

double sink_angle_margin(const double* dots, const std::vector<double>& key_norms,
                         std::int64_t keys, double q_norm) {
  if (keys < 2 || q_norm <= 0) return k_nan;
  auto cos_at = [&](std::int64_t j) {
    const double n = key_norms[static_cast<std::size_t>(j)];
    return n > 0 ? dots[j] / (n * q_norm) : 0.0;
  };
  std::vector<double> others(static_cast<std::size_t>(keys - 1));
  for (std::int64_t j = 1; j < keys; ++j) others[static_cast<std::size_t>(j - 1)] = cos_at(j);
  return cos_at(0) - median(std::move(others));
}

void chunk_min_cos(tensor_view k, int kv_head, std::int64_t n, int chunk,
                   std::vector<double>& out) {
  const int d = k.head_dim;
  std::vector<float> mean(static_cast<std::size_t>(d));
  for (std::int64_t c = 1; (c + 1) * chunk <= n; ++c) {
    std::fill(mean.begin(), mean.end(), 0.0f);
    for (int t = 0; t < chunk; ++t) {
      const float* r = k.at(static_cast<int>(c * chunk + t), kv_head);
      for (int i = 0; i < d; ++i) mean[static_cast<std::size_t>(i)] += r[i] / chunk;
    }
    double lowest = 1.0;
    for (int t = 0; t < chunk; ++t)
      lowest =
          std::min(lowest, cosine(k.at(static_cast<int>(c * chunk + t), kv_head), mean.data(), d));
    out.push_back(lowest);
  }
}

double neighbour_cos_gap(tensor_view k, int kv_head, std::int64_t n, std::int64_t far) {
  if (n <= far + 1) return k_nan;
  const int d = k.head_dim;
  auto mean_cos = [&](std::int64_t gap) {
    double s = 0;
    for (std::int64_t t = 1; t + gap < n; ++t)
      s += cosine(k.at(static_cast<int>(t), kv_head), k.at(static_cast<int>(t + gap), kv_head), d);
    return s / static_cast<double>(n - 1 - gap);
  };
  return mean_cos(1) - mean_cos(far);
}

std::vector<std::int64_t> top_indices(const double* score, std::int64_t n, std::int64_t count) {
  count = std::clamp<std::int64_t>(count, 0, n);
  std::vector<std::int64_t> idx(static_cast<std::size_t>(n));
  std::iota(idx.begin(), idx.end(), std::int64_t{0});
  auto before = [&](std::int64_t a, std::int64_t b) {
    return score[a] != score[b] ? score[a] > score[b] : a < b;
  };
  std::partial_sort(idx.begin(), idx.begin() + count, idx.end(), before);
  idx.resize(static_cast<std::size_t>(count));
  return idx;
}

ranking rank_scores(const std::vector<double>& score) {
  ranking r;
  r.order.resize(score.size());
  std::iota(r.order.begin(), r.order.end(), std::int64_t{0});
  std::sort(r.order.begin(), r.order.end(), [&](std::int64_t a, std::int64_t b) {
    const double sa = score[static_cast<std::size_t>(a)], sb = score[static_cast<std::size_t>(b)];
    return sa != sb ? sa > sb : a < b;
  });
  r.place.resize(score.size());
  for (std::size_t i = 0; i < r.order.size(); ++i)
    r.place[static_cast<std::size_t>(r.order[i])] = static_cast<std::int64_t>(i);
  return r;
}

double recall_in_top(const ranking& r, std::int64_t keys, std::int64_t budget,
                     const std::vector<std::int64_t>& wanted) {
  if (wanted.empty()) return k_nan;
  // The place in `order` of the budget-th position below `keys`: kept = placed at or before it.
  std::int64_t cut = -1, taken = 0;
  for (std::size_t i = 0; i < r.order.size() && taken < budget; ++i)
    if (r.order[i] < keys) {
      ++taken;
      cut = static_cast<std::int64_t>(i);
    }
  int in = 0;
  for (auto t : wanted) in += t < keys && r.place[static_cast<std::size_t>(t)] <= cut ? 1 : 0;
  return static_cast<double>(in) / static_cast<double>(wanted.size());
}

double recall_in_top(const std::vector<double>& score, std::int64_t budget,
                     const std::vector<std::int64_t>& wanted) {
  return recall_in_top(rank_scores(score), static_cast<std::int64_t>(score.size()), budget, wanted);
}

page_bounds make_page_bounds(tensor_view k, int kv_head, std::int64_t keys, int page) {
  const int d = k.head_dim;
  page_bounds b;
  b.page = page;
  b.keys = keys;
  const std::int64_t pages = (keys + page - 1) / page;
  b.lo.assign(static_cast<std::size_t>(pages * d), INFINITY);
  b.hi.assign(static_cast<std::size_t>(pages * d), -INFINITY);
  for (std::int64_t t = 0; t < keys; ++t) {
    const float* r = k.at(static_cast<int>(t), kv_head);
    float* lo = b.lo.data() + static_cast<std::size_t>(t / page * d);
    float* hi = b.hi.data() + static_cast<std::size_t>(t / page * d);
    for (int i = 0; i < d; ++i) {
      lo[i] = std::min(lo[i], r[i]);
      hi[i] = std::max(hi[i], r[i]);
    }
  }
  return b;
}

std::vector<double> quest_page_scores(const float* q, const page_bounds& pages, tensor_view k,
                                      int kv_head, std::int64_t keys) {
  ATTNBENCH_ASSERT(keys <= pages.keys);
  const int d = k.head_dim;
  const int page = pages.page;
  const std::int64_t count = (keys + page - 1) / page;
  std::vector<double> out(static_cast<std::size_t>(count));
  std::vector<float> lo(static_cast<std::size_t>(d)), hi(static_cast<std::size_t>(d));
  for (std::int64_t p = 0; p < count; ++p) {
    const float* plo = pages.lo.data() + static_cast<std::size_t>(p * d);
    const float* phi = pages.hi.data() + static_cast<std::size_t>(p * d);
    const std::int64_t end = std::min((p + 1) * page, keys);
    if (end < std::min((p + 1) * page, pages.keys)) {
      // The query sees only part of this page: its bounds over those keys.
      std::fill(lo.begin(), lo.end(), INFINITY);
      std::fill(hi.begin(), hi.end(), -INFINITY);
      for (std::int64_t t = p * page; t < end; ++t) {
        const float* r = k.at(static_cast<int>(t), kv_head);
        for (int i = 0; i < d; ++i) {
          lo[static_cast<std::size_t>(i)] = std::min(lo[static_cast<std::size_t>(i)], r[i]);
          hi[static_cast<std::size_t>(i)] = std::max(hi[static_cast<std::size_t>(i)], r[i]);
        }
      }
      plo = lo.data();
      phi = hi.data();
    }
    double s = 0;
    for (int i = 0; i < d; ++i)
      s += std::max(static_cast<double>(q[i]) * plo[i], static_cast<double>(q[i]) * phi[i]);
    out[static_cast<std::size_t>(p)] = s;
  }
  return out;
}

double quest_recall(const std::vector<double>& page_scores, int page,
                    const std::vector<std::int64_t>& top, std::int64_t budget_tokens) {
  if (top.empty()) return k_nan;
  std::vector<std::int64_t> pages;
  for (auto t : top) pages.push_back(t / page);
  return recall_in_top(page_scores, std::max<std::int64_t>(1, budget_tokens / page), pages);
}

std::int64_t mass_tokens(std::vector<double> w, double mass) {
  double total = 0;
  for (double x : w) total += x;
  double need = mass * total;
  // Quickselect on mass: the largest weights first until `need` is covered. Expected O(n).
  std::int64_t taken = 0;
  auto begin = w.begin(), end = w.end();
  while (begin != end && need > 0) {
    const double pivot = *(begin + (end - begin) / 2);
    auto upper = std::partition(begin, end, [&](double x) { return x > pivot; });
    auto equal = std::partition(upper, end, [&](double x) { return x == pivot; });
    double upper_mass = 0;
    for (auto it = begin; it != upper; ++it) upper_mass += *it;
    if (upper_mass >= need) {
      end = upper;
      continue;
    }
    need -= upper_mass;
    taken += upper - begin;
    // The pivot's copies, one at a time, then the rest below them.
    for (auto it = upper; it != equal && need > 0; ++it) {
      need -= *it;
      ++taken;
    }
    begin = equal;
  }
  return taken;
}

bool retrieval_hit(std::int64_t top1, std::int64_t value_begin, std::int64_t value_end,
                   const std::vector<int>& token_ids, int generated) {
  return top1 >= value_begin && top1 < value_end && top1 >= 0 &&
         top1 < static_cast<std::int64_t>(token_ids.size()) &&
         token_ids[static_cast<std::size_t>(top1)] == generated;
}

namespace {

// Rotates the rotary pairs of x by +/- the angles of `position`.
void rotate(float* x, std::int64_t position, const rope_spec& rope, double sign) {
  const int half = rope.rotary_dims / 2;
  const std::int64_t pos =
      rope.positions.empty() ? position : rope.positions[static_cast<std::size_t>(position)];
  for (int i = 0; i < half; ++i) {
    const double angle =
        sign * static_cast<double>(pos) * rope.inv_freq[static_cast<std::size_t>(i)];
    const double c = std::cos(angle), s = std::sin(angle);
    const double a = x[i], b = x[i + half];
    x[i] = static_cast<float>(a * c - b * s);
    x[i + half] = static_cast<float>(a * s + b * c);
  }
}

}  // namespace

void apply_rope(float* x, std::int64_t position, const rope_spec& rope) {
  rotate(x, position, rope, 1.0);
}

void undo_rope(float* x, std::int64_t position, const rope_spec& rope) {
  rotate(x, position, rope, -1.0);
}

std::vector<double> symmetric_eigenvalues(std::vector<double> a, int n) {
  ATTNBENCH_ASSERT(static_cast<std::size_t>(n) * static_cast<std::size_t>(n) == a.size());
  auto at = [&](int r, int c) -> double& {
    return a[static_cast<std::size_t>(r) * static_cast<std::size_t>(n) +
             static_cast<std::size_t>(c)];
  };
  std::vector<double> diag(static_cast<std::size_t>(n)), off(static_cast<std::size_t>(n), 0.0);
  // Householder: for column c, reflect the entries below the subdiagonal to zero. The trailing
  // block B (rows and columns > c) becomes H B H = B - 2 (v w' + w v'), w = B v - (v' B v) v.
  std::vector<double> v(static_cast<std::size_t>(n)), p(static_cast<std::size_t>(n));
  for (int c = 0; c + 2 < n; ++c) {
    double norm = 0;
    for (int r = c + 1; r < n; ++r) norm += at(r, c) * at(r, c);
    norm = std::sqrt(norm);
    diag[static_cast<std::size_t>(c)] = at(c, c);
    if (norm == 0) {
      off[static_cast<std::size_t>(c)] = 0;
      continue;
    }
    const double alpha = at(c + 1, c) > 0 ? -norm : norm;
    off[static_cast<std::size_t>(c)] = alpha;
    double vnorm = 0;
    for (int r = c + 1; r < n; ++r) {
      v[static_cast<std::size_t>(r)] = at(r, c) - (r == c + 1 ? alpha : 0.0);
      vnorm += v[static_cast<std::size_t>(r)] * v[static_cast<std::size_t>(r)];
    }
    vnorm = std::sqrt(vnorm);
    for (int r = c + 1; r < n; ++r) v[static_cast<std::size_t>(r)] /= vnorm;
    double vpv = 0;
    for (int r = c + 1; r < n; ++r) {
      double s = 0;
      for (int j = c + 1; j < n; ++j) s += at(r, j) * v[static_cast<std::size_t>(j)];
      p[static_cast<std::size_t>(r)] = s;
      vpv += v[static_cast<std::size_t>(r)] * s;
    }
    for (int r = c + 1; r < n; ++r)
      p[static_cast<std::size_t>(r)] -= vpv * v[static_cast<std::size_t>(r)];
    for (int r = c + 1; r < n; ++r)
      for (int j = c + 1; j < n; ++j)
        at(r, j) -= 2 * (v[static_cast<std::size_t>(r)] * p[static_cast<std::size_t>(j)] +
                         p[static_cast<std::size_t>(r)] * v[static_cast<std::size_t>(j)]);
  }
  if (n >= 2) {
    diag[static_cast<std::size_t>(n - 2)] = at(n - 2, n - 2);
    off[static_cast<std::size_t>(n - 2)] = at(n - 1, n - 2);
  }
  if (n >= 1) diag[static_cast<std::size_t>(n - 1)] = at(n - 1, n - 1);

  // Implicit QL on the tridiagonal (diag, off[i] coupling i and i + 1): chase a Wilkinson-shifted
  // bulge up from the first negligible off-diagonal below l until off[l] vanishes.
  auto& d = diag;
  auto& e = off;
  for (int l = 0; l < n; ++l) {
    for (int iter = 0; iter < 64; ++iter) {
      int m = l;
      for (; m + 1 < n; ++m) {
        const double scale =
            std::abs(d[static_cast<std::size_t>(m)]) + std::abs(d[static_cast<std::size_t>(m + 1)]);
        if (std::abs(e[static_cast<std::size_t>(m)]) <=
            std::numeric_limits<double>::epsilon() * scale)
          break;
      }
      if (m == l) break;
      const auto L = static_cast<std::size_t>(l), M = static_cast<std::size_t>(m);
      double g = (d[L + 1] - d[L]) / (2 * e[L]);
      double r = std::hypot(g, 1.0);
      g = d[M] - d[L] + e[L] / (g + std::copysign(r, g));
      double s = 1, c = 1, shift = 0;
      bool deflated = false;
      for (int i = m - 1; i >= l; --i) {
        const auto I = static_cast<std::size_t>(i);
        const double f = s * e[I], b = c * e[I];
        r = std::hypot(f, g);
        e[I + 1] = r;
        if (r == 0) {
          d[I + 1] -= shift;
          e[M] = 0;
          deflated = true;
          break;
        }
        s = f / r;
        c = g / r;
        g = d[I + 1] - shift;
        r = (d[I] - g) * s + 2 * c * b;
        shift = s * r;
        d[I + 1] = g + shift;
        g = c * r - b;
      }
      if (deflated) continue;
      d[L] -= shift;
      e[L] = g;
      e[M] = 0;
    }
  }
  std::sort(d.begin(), d.end(), std::greater<>());
  return d;
}

int energy_rank(const std::vector<float>& rows, int d, double share) {
  const std::size_t count = rows.size() / static_cast<std::size_t>(d);
  // Gram matrix rows' rows (d x d, float64): its eigenvalues are the squared singular values.
  std::vector<double> gram(static_cast<std::size_t>(d) * static_cast<std::size_t>(d), 0.0);
  for (std::size_t t = 0; t < count; ++t) {
    const float* r = rows.data() + t * static_cast<std::size_t>(d);
    for (int i = 0; i < d; ++i) {
      const double ri = r[i];
      double* g = gram.data() + static_cast<std::size_t>(i) * static_cast<std::size_t>(d);
#pragma omp simd
      for (int j = i; j < d; ++j) g[j] += ri * r[j];
    }
  }
  for (int i = 0; i < d; ++i)
    for (int j = 0; j < i; ++j)
      gram[static_cast<std::size_t>(i * d + j)] = gram[static_cast<std::size_t>(j * d + i)];
  const std::vector<double> eig = symmetric_eigenvalues(std::move(gram), d);
  double total = 0;
  for (double x : eig) total += std::max(0.0, x);
  if (total <= 0) return 0;
  double acc = 0;
  for (int r = 0; r < d; ++r) {
    acc += std::max(0.0, eig[static_cast<std::size_t>(r)]);
    if (acc >= share * total * (1 - 1e-12)) return r + 1;
  }
  return d;
}

double channel_rms_ratio(const std::vector<float>& rows, int d) {
  const std::size_t count = rows.size() / static_cast<std::size_t>(d);
  if (count == 0) return k_nan;
  std::vector<double> rms(static_cast<std::size_t>(d), 0.0);
  for (std::size_t t = 0; t < count; ++t)
    for (int i = 0; i < d; ++i) {
      const double x = rows[t * static_cast<std::size_t>(d) + static_cast<std::size_t>(i)];
      rms[static_cast<std::size_t>(i)] += x * x;
    }
  for (auto& x : rms) x = std::sqrt(x / static_cast<double>(count));
  const double mid = median(rms);
  return mid > 0 ? *std::max_element(rms.begin(), rms.end()) / mid : k_nan;
}

}  // namespace attnbench::stats
