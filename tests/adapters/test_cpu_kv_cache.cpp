// cpu::kv_cache: append with positions, erase from either side, keep a subset, growth past the
// reserve, compaction through the slack, and byte accounting.
#include <catch2/catch.hpp>
#include <cstdint>
#include <vector>

#include "adapters/common/cpu/cpu_kv_cache.hpp"

using namespace attnbench;

namespace {

// K row of token t, head h holds t * 10 + h in every element, V row its negation.
void make_tokens(host_tensor& k, host_tensor& v, int first_token) {
  for (int t = 0; t < k.tokens(); ++t)
    for (int h = 0; h < k.heads(); ++h)
      for (int i = 0; i < k.head_dim(); ++i) {
        k.view().at(t, h)[i] = static_cast<float>((first_token + t) * 10 + h);
        v.view().at(t, h)[i] = -static_cast<float>((first_token + t) * 10 + h);
      }
}

// Positions held by head h, checked against the K and V contents.
std::vector<std::int64_t> held(const cpu::kv_cache& c, int h) {
  std::vector<std::int64_t> out;
  const auto rows = c.rows(h);
  for (std::int64_t r = 0; r < rows.count; ++r) {
    const std::int64_t p = c.positions(h)[r];
    for (int i = 0; i < c.head_dim(); ++i) {
      REQUIRE(rows.k[static_cast<std::size_t>(r) * rows.row_stride + i] == float(p * 10 + h));
      REQUIRE(rows.v[static_cast<std::size_t>(r) * rows.row_stride + i] == -float(p * 10 + h));
    }
    out.push_back(p);
  }
  return out;
}

std::vector<std::int64_t> range(std::int64_t b, std::int64_t e) {
  std::vector<std::int64_t> r;
  for (auto i = b; i < e; ++i) r.push_back(i);
  return r;
}

}  // namespace

TEST_CASE("kv_cache appends, erases and keeps rows in position order", "[adapters][cpu]") {
  const int heads = 2, d = 3;
  cpu::kv_cache c;
  c.reset(heads, d, 8, 4);
  host_tensor k(10, heads, d), v(10, heads, d);
  make_tokens(k, v, 0);
  c.append(k.view(), v.view(), 0, 10, 0);  // past reserve + slack: grows
  for (int h = 0; h < heads; ++h) CHECK(held(c, h) == range(0, 10));
  CHECK(c.rows_up_to(0, 4) == 5);
  CHECK(c.rows_up_to(0, -1) == 0);
  CHECK(c.rows_up_to(0, 100) == 10);

  c.erase(0, 2, 3);  // front side shorter: the first two rows shift
  CHECK(held(c, 0) == std::vector<std::int64_t>{0, 1, 5, 6, 7, 8, 9});
  c.erase(0, 4, 2);  // back side shorter
  CHECK(held(c, 0) == std::vector<std::int64_t>{0, 1, 5, 6, 9});
  CHECK(held(c, 1) == range(0, 10));
  c.keep(1, {1, 3, 9});
  CHECK(held(c, 1) == std::vector<std::int64_t>{1, 3, 9});

  CHECK(c.tokens(0) == 5);
  CHECK(c.resident_bytes() == (5 + 3) * cpu::kv_cache::token_bytes(d));
  CHECK(cpu::kv_cache::token_bytes(d) == 2 * d * 4);
  CHECK(c.allocated_bytes() >= c.resident_bytes());
}

TEST_CASE("kv_cache evicting from the front compacts through its slack", "[adapters][cpu]") {
  // A window of 4 over 50 appends with 2 slack rows: every append evicts the oldest row, the
  // allocation never grows, and contents survive every compaction.
  const int heads = 1, d = 2;
  cpu::kv_cache c;
  c.reset(heads, d, 4, 2);
  const auto allocated = c.allocated_bytes();
  for (int t = 0; t < 50; ++t) {
    host_tensor k(1, heads, d), v(1, heads, d);
    make_tokens(k, v, t);
    c.append(k.view(), v.view(), 0, 1, t);
    if (c.tokens(0) > 4) c.erase(0, 0, 1);
    CHECK(held(c, 0) == range(std::max(0, t - 3), t + 1));
  }
  CHECK(c.allocated_bytes() == allocated);
}
