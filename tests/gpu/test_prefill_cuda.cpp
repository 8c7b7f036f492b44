// [gpu] The CUDA prefill kernels (flash_prefill's dispatch, the warp-specialized Hopper kernel
// with two and three K/V buffers, the cp.async Hopper kernel and the mma.sync kernel) against an
// fp64 reference over the same bf16-rounded inputs: outputs and the rows' log-sum-exps, causal and
// not, GQA, two sequences, lengths that are not multiples of a tile, queries that see no key. Then
// the building block of ring attention (issue 21): a query chunk's attention over two key ranges
// computed apart, each with its log-sum-exp, merged by cp::merge_partials, equals its attention
// over all keys.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "adapters/common/context_parallel/context_parallel.hpp"
#include "tests/gpu/bf16.hpp"
#include "tests/gpu/prefill_probe.hpp"

namespace attnbench::test {
namespace {

struct reference {
  std::vector<double> out, lse;  // [batch, q_len, q_heads, d], [batch, q_heads, q_len]
};

// Exact attention of the probe's inputs (key j visible to query i when j <= i + kv_len - q_len
// under the causal mask).
reference attend(const prefill_probe& p) {
  const int d = p.head_dim, group = p.q_heads / p.kv_heads;
  const double scale = 1.0 / std::sqrt(static_cast<double>(d));
  reference r;
  r.out.assign(p.q.size(), 0.0);
  r.lse.assign(static_cast<std::size_t>(p.batch) * p.q_heads * p.q_len,
               -std::numeric_limits<double>::infinity());
  std::vector<double> w(static_cast<std::size_t>(p.kv_len));
  for (int b = 0; b < p.batch; ++b)
    for (int h = 0; h < p.q_heads; ++h)
      for (int i = 0; i < p.q_len; ++i) {
        const float* q = &p.q[((static_cast<std::size_t>(b) * p.q_len + i) * p.q_heads + h) * d];
        const int last = p.causal ? std::min(p.kv_len - 1, i + p.kv_len - p.q_len) : p.kv_len - 1;
        if (last < 0) continue;
        double mx = -std::numeric_limits<double>::infinity();
        for (int j = 0; j <= last; ++j) {
          const float* k =
              &p.k[((static_cast<std::size_t>(b) * p.kv_len + j) * p.kv_heads + h / group) * d];
          double dot = 0;
          for (int x = 0; x < d; ++x) dot += static_cast<double>(q[x]) * k[x];
          w[static_cast<std::size_t>(j)] = dot * scale;
          mx = std::max(mx, dot * scale);
        }
        double sum = 0;
        for (int j = 0; j <= last; ++j) sum += std::exp(w[static_cast<std::size_t>(j)] - mx);
        double* out = &r.out[((static_cast<std::size_t>(b) * p.q_len + i) * p.q_heads + h) * d];
        for (int j = 0; j <= last; ++j) {
          const double pj = std::exp(w[static_cast<std::size_t>(j)] - mx) / sum;
          const float* v =
              &p.v[((static_cast<std::size_t>(b) * p.kv_len + j) * p.kv_heads + h / group) * d];
          for (int x = 0; x < d; ++x) out[x] += pj * v[x];
        }
        r.lse[(static_cast<std::size_t>(b) * p.q_heads + h) * p.q_len + i] = mx + std::log(sum);
      }
  return r;
}

double rel_l2(const std::vector<float>& got, const std::vector<double>& want) {
  double num = 0, den = 0;
  for (std::size_t i = 0; i < got.size(); ++i) {
    num += (got[i] - want[i]) * (got[i] - want[i]);
    den += want[i] * want[i];
  }
  return std::sqrt(num / std::max(den, 1e-30));
}

prefill_probe make_probe(int batch, int q_len, int kv_len, bool causal, int head_dim,
                         std::uint64_t seed) {
  prefill_probe p;
  p.batch = batch;
  p.q_len = q_len;
  p.kv_len = kv_len;
  p.causal = causal;
  p.head_dim = head_dim;
  p.q = normal_bf16(static_cast<std::size_t>(batch) * q_len * p.q_heads * head_dim, seed);
  p.k = normal_bf16(static_cast<std::size_t>(batch) * kv_len * p.kv_heads * head_dim, seed + 1);
  p.v = normal_bf16(static_cast<std::size_t>(batch) * kv_len * p.kv_heads * head_dim, seed + 2);
  return p;
}

}  // namespace

TEST_CASE("cuda prefill kernels: outputs and log-sum-exps equal the fp64 reference", "[gpu]") {
  struct shape {
    int q_len, kv_len, head_dim;
  };
  const shape shapes[] = {{300, 300, 128}, {1000, 1000, 128}, {64, 700, 128},
                          {129, 129, 128}, {300, 200, 128},   {300, 300, 64}};
  for (const std::string kernel :
       {"default", "warp_specialized", "warp_specialized_3stage", "cp_async", "mma_sync"})
    for (const shape& sh : shapes)
      for (bool causal : {false, true}) {
        if (sh.head_dim != 128 && kernel != "default" && kernel != "mma_sync") continue;
        prefill_probe p = make_probe(2, sh.q_len, sh.kv_len, causal, sh.head_dim, 7);
        p.kernel = kernel;
        const prefill_probe_result got = run_prefill_probe(p);
        if (!got.ran) {
          WARN(kernel << " is not in this build or device");
          continue;
        }
        const reference want = attend(p);
        INFO(kernel << " q_len " << sh.q_len << " kv_len " << sh.kv_len << " d " << sh.head_dim
                    << " causal " << causal);
        CHECK(rel_l2(got.out, want.out) < 1e-2);
        int lse_bad = 0, empty_bad = 0;
        for (std::size_t i = 0; i < want.lse.size(); ++i) {
          if (std::isinf(want.lse[i])) {
            empty_bad += !(std::isinf(got.lse[i]) && got.lse[i] < 0);
            continue;
          }
          lse_bad += std::abs(got.lse[i] - want.lse[i]) > 2e-3 + 1e-3 * std::abs(want.lse[i]);
        }
        CHECK(lse_bad == 0);
        CHECK(empty_bad == 0);
        // Rows that see no key are written as zeros.
        if (causal && sh.q_len > sh.kv_len) {
          const std::size_t row = static_cast<std::size_t>(p.q_heads) * p.head_dim;
          CHECK(std::all_of(
              got.out.begin(),
              got.out.begin() + static_cast<std::ptrdiff_t>(row * (sh.q_len - sh.kv_len)),
              [](float x) { return x == 0.0f; }));
        }
      }
}

TEST_CASE("cuda prefill: partials over two key ranges merge into attention over all keys",
          "[gpu][context_parallel]") {
  // The last 256 of 768 tokens (one sequence): keys [0, 512) are all in their past (a `full`
  // ring block), keys [512, 768) are their own chunk (the `diagonal`, causal).
  const int n = 768, c = 256, d = 128;
  prefill_probe all = make_probe(1, n, n, true, d, 21);
  const std::size_t qrow = static_cast<std::size_t>(all.q_heads) * d;
  const std::size_t krow = static_cast<std::size_t>(all.kv_heads) * d;
  auto rows = [](const std::vector<float>& x, std::size_t row, int first, int count) {
    return std::vector<float>(x.begin() + static_cast<std::ptrdiff_t>(row * first),
                              x.begin() + static_cast<std::ptrdiff_t>(row * (first + count)));
  };
  prefill_probe past = all, diag = all;
  past.q = diag.q = rows(all.q, qrow, n - c, c);
  past.q_len = diag.q_len = c;
  past.k = rows(all.k, krow, 0, n - c);
  past.v = rows(all.v, krow, 0, n - c);
  past.kv_len = n - c;
  past.causal = false;
  diag.k = rows(all.k, krow, n - c, c);
  diag.v = rows(all.v, krow, n - c, c);
  diag.kv_len = c;
  const prefill_probe_result a = run_prefill_probe(past), b = run_prefill_probe(diag);
  // Log-sum-exps from [heads, rows] to the (token, head) row order of the outputs.
  auto by_token = [&](const std::vector<float>& lse) {
    std::vector<float> t(lse.size());
    for (int h = 0; h < all.q_heads; ++h)
      for (int i = 0; i < c; ++i)
        t[static_cast<std::size_t>(i) * all.q_heads + h] = lse[static_cast<std::size_t>(h) * c + i];
    return t;
  };
  const std::vector<float> la = by_token(a.lse), lb = by_token(b.lse);
  std::vector<float> out(a.out.size()), lse(la.size());
  cp::merge_partials({{a.out.data(), la.data()}, {b.out.data(), lb.data()}},
                     static_cast<std::int64_t>(la.size()), d, out.data(), lse.data());
  // The reference: the same 256 queries over all 768 keys.
  prefill_probe tail = all;
  tail.q = past.q;
  tail.q_len = c;
  const reference want = attend(tail);
  const prefill_probe_result whole = run_prefill_probe(tail);
  const double merged_err = rel_l2(out, want.out), whole_err = rel_l2(whole.out, want.out);
  INFO("merged rel_l2 " << merged_err << ", one kernel " << whole_err);
  // bf16 partial outputs add one rounding before the merge: at most twice the one-kernel error
  // (issue 21's error gate) plus a floor for the shared bf16 output rounding.
  CHECK(merged_err <= 2 * whole_err + 1e-3);
  const std::vector<float> want_lse = [&] {
    std::vector<double> l = want.lse;
    std::vector<float> t(l.begin(), l.end());
    return by_token(t);
  }();
  for (std::size_t i = 0; i < lse.size(); ++i) CHECK(std::abs(lse[i] - want_lse[i]) < 5e-3);
}

TEST_CASE("cuda ring attention over virtual ranks equals single-GPU attention",
          "[gpu][context_parallel]") {
  // Issue 21's error gate: every scheme's error against the fp64 reference at most twice the
  // single-GPU bf16 kernel's (plus a floor for the shared bf16 output rounding).
  for (bool causal : {true, false})
    for (int n : {1000, 2048}) {
      const prefill_probe p = make_probe(1, n, n, causal, 128, 31);
      const reference want = attend(p);
      const double single = rel_l2(run_prefill_probe(p).out, want.out);
      for (int ranks : {1, 2, 4})
        for (bool zigzag : {false, true}) {
          const double ring = rel_l2(run_ring_probe(p, ranks, zigzag), want.out);
          INFO("n " << n << " causal " << causal << " ranks " << ranks << " zigzag " << zigzag
                    << ": ring rel_l2 " << ring << ", single GPU " << single);
          CHECK(ring <= 2 * single + 1e-3);
        }
    }
}

}  // namespace attnbench::test
