#include "adapters/common/cpu/cpu_kv_cache.hpp"

#include <algorithm>
#include <cstring>

#include "harness/error.hpp"

namespace attnbench::cpu {

namespace {
std::size_t idx(std::int64_t row, int head_dim) {
  return static_cast<std::size_t>(row) * static_cast<std::size_t>(head_dim);
}
}  // namespace

void kv_cache::reset(int kv_heads, int head_dim, std::int64_t reserve_tokens,
                     std::int64_t slack_tokens) {
  ATTNBENCH_ASSERT(kv_heads >= 1 && head_dim >= 1 && reserve_tokens >= 0 && slack_tokens >= 0);
  m_head_dim = head_dim;
  m_slack = slack_tokens;
  m_heads.assign(static_cast<std::size_t>(kv_heads), head_store{});
  const std::int64_t capacity = reserve_tokens + slack_tokens;
  for (auto& h : m_heads) {
    h.capacity = capacity;
    h.k.resize(idx(capacity, head_dim));
    h.v.resize(idx(capacity, head_dim));
    h.positions.resize(static_cast<std::size_t>(capacity));
  }
}

kv_rows kv_cache::rows(int head) const {
  const auto& h = m_heads[static_cast<std::size_t>(head)];
  return kv_rows{h.k.data() + idx(h.start, m_head_dim), h.v.data() + idx(h.start, m_head_dim),
                 static_cast<std::size_t>(m_head_dim), h.count};
}

float* kv_cache::keys(int head) {
  auto& h = m_heads[static_cast<std::size_t>(head)];
  return h.k.data() + idx(h.start, m_head_dim);
}

const std::int64_t* kv_cache::positions(int head) const {
  const auto& h = m_heads[static_cast<std::size_t>(head)];
  return h.positions.data() + h.start;
}

std::int64_t kv_cache::rows_up_to(int head, std::int64_t position) const {
  const std::int64_t* first = positions(head);
  const std::int64_t* last = first + tokens(head);
  return std::upper_bound(first, last, position) - first;
}

void kv_cache::move_rows(head_store& h, std::int64_t from, std::int64_t to, std::int64_t n) {
  if (n <= 0 || from == to) return;
  const std::size_t bytes = idx(n, m_head_dim) * sizeof(float);
  std::memmove(h.k.data() + idx(to, m_head_dim), h.k.data() + idx(from, m_head_dim), bytes);
  std::memmove(h.v.data() + idx(to, m_head_dim), h.v.data() + idx(from, m_head_dim), bytes);
  std::memmove(h.positions.data() + to, h.positions.data() + from,
               static_cast<std::size_t>(n) * sizeof(std::int64_t));
}

void kv_cache::make_room(head_store& h, std::int64_t extra) {
  if (h.start + h.count + extra <= h.capacity) return;
  if (h.count + extra <= h.capacity) {
    move_rows(h, h.start, 0, h.count);
    h.start = 0;
    return;
  }
  // Grow geometrically (amortized O(1) appends when no reserve was planned), keeping the slack.
  const std::int64_t capacity = std::max(h.count + extra + m_slack, 2 * h.capacity);
  std::vector<float> k(idx(capacity, m_head_dim));
  std::vector<float> v(idx(capacity, m_head_dim));
  std::vector<std::int64_t> positions(static_cast<std::size_t>(capacity));
  std::copy_n(h.k.begin() + static_cast<std::ptrdiff_t>(idx(h.start, m_head_dim)),
              idx(h.count, m_head_dim), k.begin());
  std::copy_n(h.v.begin() + static_cast<std::ptrdiff_t>(idx(h.start, m_head_dim)),
              idx(h.count, m_head_dim), v.begin());
  std::copy_n(h.positions.begin() + h.start, h.count, positions.begin());
  h.k.swap(k);
  h.v.swap(v);
  h.positions.swap(positions);
  h.start = 0;
  h.capacity = capacity;
}

void kv_cache::append(tensor_view k, tensor_view v, int begin, int count,
                      std::int64_t first_position) {
  ATTNBENCH_ASSERT(k.heads == kv_heads() && v.heads == kv_heads());
  ATTNBENCH_ASSERT(k.head_dim == m_head_dim && v.head_dim == m_head_dim);
  ATTNBENCH_ASSERT(begin >= 0 && count >= 0 && begin + count <= k.tokens && k.tokens == v.tokens);
  if (count == 0) return;
  const std::size_t row_bytes = idx(1, m_head_dim) * sizeof(float);
  for (int head = 0; head < kv_heads(); ++head) {
    auto& h = m_heads[static_cast<std::size_t>(head)];
    ATTNBENCH_ASSERT(h.count == 0 ||
                     h.positions[static_cast<std::size_t>(h.start + h.count - 1)] < first_position);
    make_room(h, count);
    const std::int64_t end = h.start + h.count;
    for (int t = 0; t < count; ++t) {
      std::memcpy(h.k.data() + idx(end + t, m_head_dim), k.at(begin + t, head), row_bytes);
      std::memcpy(h.v.data() + idx(end + t, m_head_dim), v.at(begin + t, head), row_bytes);
      h.positions[static_cast<std::size_t>(end + t)] = first_position + t;
    }
    h.count += count;
  }
}

void kv_cache::append_rows(int head, tensor_view k, tensor_view v,
                           const std::vector<std::int64_t>& rows) {
  ATTNBENCH_ASSERT(head >= 0 && head < kv_heads() && k.heads == kv_heads() &&
                   v.heads == kv_heads() && k.head_dim == m_head_dim && v.head_dim == m_head_dim);
  auto& h = m_heads[static_cast<std::size_t>(head)];
  const auto count = static_cast<std::int64_t>(rows.size());
  make_room(h, count);
  const std::size_t row_bytes = idx(1, m_head_dim) * sizeof(float);
  std::int64_t last = h.count ? h.positions[static_cast<std::size_t>(h.start + h.count - 1)] : -1;
  for (std::int64_t i = 0; i < count; ++i) {
    const std::int64_t t = rows[static_cast<std::size_t>(i)];
    ATTNBENCH_ASSERT(t > last && t < k.tokens);
    const std::int64_t at = h.start + h.count + i;
    std::memcpy(h.k.data() + idx(at, m_head_dim), k.at(static_cast<int>(t), head), row_bytes);
    std::memcpy(h.v.data() + idx(at, m_head_dim), v.at(static_cast<int>(t), head), row_bytes);
    h.positions[static_cast<std::size_t>(at)] = t;
    last = t;
  }
  h.count += count;
}

void kv_cache::erase(int head, std::int64_t begin, std::int64_t count) {
  auto& h = m_heads[static_cast<std::size_t>(head)];
  ATTNBENCH_ASSERT(begin >= 0 && count >= 0 && begin + count <= h.count);
  if (count == 0) return;
  const std::int64_t before = begin;
  const std::int64_t after = h.count - begin - count;
  // Move whichever side is shorter: evicting just after a few sink rows shifts the sinks.
  if (before < after) {
    move_rows(h, h.start, h.start + count, before);
    h.start += count;
  } else {
    move_rows(h, h.start + begin + count, h.start + begin, after);
  }
  h.count -= count;
  if (h.count == 0) h.start = 0;
}

void kv_cache::keep(int head, const std::vector<std::int64_t>& rows) {
  auto& h = m_heads[static_cast<std::size_t>(head)];
  std::int64_t out = 0;
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const std::int64_t r = rows[i];
    ATTNBENCH_ASSERT(r >= 0 && r < h.count && (i == 0 || rows[i - 1] < r));
    move_rows(h, h.start + r, h.start + out, 1);
    ++out;
  }
  h.count = out;
  if (h.count == 0) h.start = 0;
}

std::uint64_t kv_cache::resident_bytes() const {
  std::uint64_t total = 0;
  for (const auto& h : m_heads)
    total += static_cast<std::uint64_t>(h.count) * token_bytes(m_head_dim);
  return total;
}

std::uint64_t kv_cache::allocated_bytes() const {
  std::uint64_t total = 0;
  for (const auto& h : m_heads)
    total += static_cast<std::uint64_t>(h.capacity) * token_bytes(m_head_dim);
  return total;
}

}  // namespace attnbench::cpu
