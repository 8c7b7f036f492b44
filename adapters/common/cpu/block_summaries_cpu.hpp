/// Shared pieces of the query-aware sparse CPU methods that keep the whole cache and choose, per
/// decode query and KV head, which rows to read (topk_oracle, block_oracle, quest, landmark, and
/// rectified over any of them):
///   block_summaries       per-block key min/max, key sums and value sums, kept up to date as rows
///                         arrive (Quest's page bounds, landmark's mean keys, pooled rows)
///   row_selector          one selection rule, registered by name so that a wrapper (rectified)
///                         can run any of them
///   sparse_select_method  the cache_method that reads what a row_selector picks
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "adapters/common/cpu/cache_method_cpu.hpp"
#include "adapters/common/cpu/cpu_kv_cache.hpp"
#include "harness/method.hpp"

namespace attnbench::cpu {

/// Summaries of consecutive blocks of `block` rows of every KV head: block b covers rows
/// [b * block, (b + 1) * block). Rows are folded in as they reach the cache, so a block's summary
/// is final once the block is complete. Metadata per block: d floats per part asked for.
class block_summaries {
 public:
  struct parts {
    bool min_max = false;    // element-wise key min and max (2 d floats)
    bool key_sum = false;    // sum of the block's keys (d floats)
    bool value_sum = false;  // sum of the block's values (d floats)
  };

  /// Empties the summaries; room for `reserve_tokens` rows per head is allocated up front.
  void reset(int kv_heads, int head_dim, std::int64_t block, parts what,
             std::int64_t reserve_tokens);
  /// Folds the rows of `head` that reached the cache since the last call. Per-head state only:
  /// calls for different heads may run concurrently.
  void update(int head, const kv_cache& cache);

  std::int64_t block() const { return m_block; }
  const float* key_min(int head, std::int64_t b) const { return at(head, m_min, b); }
  const float* key_max(int head, std::int64_t b) const { return at(head, m_max, b); }
  const float* key_sum(int head, std::int64_t b) const { return at(head, m_key_sum, b); }
  const float* value_sum(int head, std::int64_t b) const { return at(head, m_value_sum, b); }

 private:
  using store = std::vector<std::vector<float>>;  // [kv_heads][blocks * head_dim]
  const float* at(int head, const store& s, std::int64_t b) const {
    return s[static_cast<std::size_t>(head)].data() +
           static_cast<std::size_t>(b) * static_cast<std::size_t>(m_head_dim);
  }

  int m_head_dim = 0;
  std::int64_t m_block = 1;
  parts m_parts;
  store m_min, m_max, m_key_sum, m_value_sum;
  std::vector<std::int64_t> m_covered;  // [kv_heads]: rows folded in so far
};

/// Dot product of two rows of d floats.
float dot(const float* a, const float* b, int d);

/// GQA combination of per-query-head scores: out[j] = max_g (logits[g, j] - logsumexp_g), the
/// largest log-probability any query head of the group gives item j under a softmax over the
/// items. Normalizing per head keeps a head with large logits everywhere (a sink head) from
/// outvoting the others, and the max keeps every head's favourite items. logits: [group, n].
void group_log_softmax_max(const float* logits, int group, std::int64_t n, float* out);

/// The `count` largest items of scores[0, n) (ties to the lower index), in increasing order.
/// `order` is scratch.
void top_items(const float* scores, std::int64_t n, std::int64_t count,
               std::vector<std::int64_t>& order);

/// One query-aware selection rule.
class row_selector {
 public:
  virtual ~row_selector() = default;
  /// Sizes per-head state for `shape` and up to `max_tokens` rows per head (untimed).
  virtual void reset(const model_shape& shape, float scale, std::int64_t max_tokens) = 0;
  /// Folds the rows of `head` that reached the cache since the last call into the metadata.
  virtual void update(int head, const kv_cache& cache) {}
  /// Adds at most `budget` rows among the first `visible` rows of `head` (budget < visible) to
  /// `out`, with the selection's cost. q: [group, head_dim]. Per-head state only.
  virtual void select(int head, const float* q, std::int64_t visible, std::int64_t budget,
                      const kv_cache& cache, row_selection& out) = 0;
};

using selector_factory = std::function<std::unique_ptr<row_selector>(const param_values&)>;

/// Registers a selection rule under the method name that uses it (next to that method).
struct selector_registrar {
  selector_registrar(const std::string& name, selector_factory make);
};

/// The selector registered as `name`, from `values` (holding every parameter it reads). An
/// unknown name is a programmer error: the caller's schema lists the names.
std::unique_ptr<row_selector> make_row_selector(const std::string& name,
                                                const param_values& values);

/// A sparse method that reads the rows a row_selector picks, within a per-query budget of
/// `budget` / `keep` tokens per KV head. A budget that covers the visible rows reads them all
/// with no selection (exactly dense).
class sparse_select_method : public cache_method {
 public:
  sparse_select_method(const param_values& values, std::unique_ptr<row_selector> selector);

 protected:
  std::int64_t plan(const attention_problem& problem) override;
  bool sparse_attend() const override { return true; }
  void select_rows(int query, int head, const float* q, std::int64_t visible,
                   row_selection& out) override;

  param_values m_values;
  std::unique_ptr<row_selector> m_selector;
};

/// What a selector's rule costs one decode query of one KV head, in closed form: rows read,
/// and the dot products and bytes spent choosing them (row_selection's counters); and the
/// summaries the head keeps for it (kv_footprint::metadata_bytes).
struct selection_cost {
  double rows = 0;
  double selection_keys = 0;
  double selection_bytes = 0;
  double metadata_bytes = 0;
};

/// The cost of routing by float32 summaries of `unit` rows each (bilevel's regions, longheads'
/// chunks): `rows` read, `scored` summaries scored (a dot product per query head of the group
/// and a summary read each), and every complete unit's summary held as metadata.
inline selection_cost summary_routing_cost(const footprint_query& q, std::int64_t rows,
                                           std::int64_t scored, std::int64_t visible,
                                           std::int64_t unit) {
  return {static_cast<double>(rows), static_cast<double>(scored * (q.q_heads / q.kv_heads)),
          static_cast<double>(scored * q.head_dim * 4),
          static_cast<double>(visible / unit * q.head_dim * 4)};
}

/// A selector's cost for a query seeing `visible` rows under `budget`, or null for a rule whose
/// reads depend on the data. Only metadata_bytes is used when the budget covers the rows.
using selection_cost_fn = std::function<selection_cost(const param_values&, const footprint_query&,
                                                       std::int64_t visible, std::int64_t budget)>;

/// The method_info of a method made of a registered selector (the one named doc.name) and
/// sparse_select_method; with `cost`, its footprint (sparse_select_footprint).
method_info sparse_select_info(method_doc doc, selection_cost_fn cost = {});

/// The closed-form accounting of a sparse_select_method: every row held; the last query reads
/// all of them when the budget covers them, else what `cost` says, on every KV head.
kv_footprint sparse_select_footprint(const param_values& values, const footprint_query& query,
                                     const selection_cost_fn& cost);

}  // namespace attnbench::cpu
