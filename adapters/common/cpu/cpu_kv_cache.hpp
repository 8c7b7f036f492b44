/// The CPU KV cache shared by the CPU adapters: per KV head, contiguous K rows, V rows and the
/// token position of each row, kept sorted by position. Supports appending, erasing any range
/// of rows (eviction, physically compacted) and keeping an arbitrary sorted subset of rows.
/// Byte accounting counts the rows actually stored.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "adapters/common/cpu/cpu_attention.hpp"
#include "harness/tensor.hpp"

namespace attnbench::cpu {

class kv_cache {
 public:
  /// KV bytes one stored token costs per KV head: its K and V rows. Row positions are cache
  /// bookkeeping (a paged cache keeps a page table instead) and are not counted, so that ratios
  /// against dense compare K/V storage alone.
  static std::uint64_t token_bytes(int head_dim) {
    return 2 * static_cast<std::uint64_t>(head_dim) * sizeof(float);
  }

  /// Empties the cache and sizes it for `kv_heads` heads; `reserve_tokens` rows per head are
  /// allocated up front (so the timed calls do not grow it) and `slack_tokens` more let
  /// eviction from the front run in amortized O(1) per appended token.
  void reset(int kv_heads, int head_dim, std::int64_t reserve_tokens, std::int64_t slack_tokens);

  int kv_heads() const { return static_cast<int>(m_heads.size()); }
  int head_dim() const { return m_head_dim; }
  std::int64_t tokens(int head) const { return m_heads[static_cast<std::size_t>(head)].count; }

  /// The stored rows of one head, in position order.
  kv_rows rows(int head) const;
  const std::int64_t* positions(int head) const;
  /// The K rows of one head, for methods that rewrite stored keys in place (key_rerotation):
  /// [tokens(head), head_dim].
  float* keys(int head);
  /// Number of leading rows of `head` whose position is <= `position`.
  std::int64_t rows_up_to(int head, std::int64_t position) const;

  /// Appends tokens [begin, begin + count) of k, v ([tokens, kv_heads, head_dim]) to every head,
  /// at positions first_position, first_position + 1, ... (larger than any stored position).
  void append(tensor_view k, tensor_view v, int begin, int count, std::int64_t first_position);
  /// Appends to one head the rows `rows` (strictly increasing token indices) of k, v, at
  /// positions equal to those indices (larger than any stored position).
  void append_rows(int head, tensor_view k, tensor_view v, const std::vector<std::int64_t>& rows);
  /// Erases rows [begin, begin + count) of one head; the others keep their order.
  void erase(int head, std::int64_t begin, std::int64_t count);
  /// Keeps only the given rows (strictly increasing indices) of one head.
  void keep(int head, const std::vector<std::int64_t>& rows);

  /// Bytes of the rows stored now: sum over heads of tokens * token_bytes(head_dim).
  std::uint64_t resident_bytes() const;
  /// Bytes allocated, including reserve and slack (at most resident + the reserve/slack asked).
  std::uint64_t allocated_bytes() const;

 private:
  // Rows live at [start, start + count) of buffers of `capacity` rows.
  struct head_store {
    std::vector<float> k;                 // [capacity, head_dim]
    std::vector<float> v;                 // [capacity, head_dim]
    std::vector<std::int64_t> positions;  // [capacity]
    std::int64_t start = 0;
    std::int64_t count = 0;
    std::int64_t capacity = 0;
  };

  // Makes room for `extra` rows after the last one: compacts to the front, or grows.
  void make_room(head_store& h, std::int64_t extra);
  // Moves rows [from, from + n) to [to, to + n) within one head's buffers.
  void move_rows(head_store& h, std::int64_t from, std::int64_t to, std::int64_t n);

  int m_head_dim = 0;
  std::int64_t m_slack = 0;
  std::vector<head_store> m_heads;
};

}  // namespace attnbench::cpu
