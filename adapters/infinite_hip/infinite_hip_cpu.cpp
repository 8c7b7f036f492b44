/// infinite_hip on the CPU: three cached pruning stages per KV head choose the rows a decode
/// query reads; an LRU model of the device cache per KV head counts what stays on the device and
/// what is copied from host memory. The rows themselves live in one host-side cache_method cache.
#include <array>
#include <cstdint>
#include <set>
#include <utility>
#include <vector>

#include "adapters/common/cpu/cache_method_cpu.hpp"
#include "adapters/infinite_hip/infinite_hip.hpp"

namespace attnbench::cpu {
namespace {

/// The rows of one KV head on the device: least recently used first.
class device_cache {
 public:
  device_cache() = default;
  explicit device_cache(std::int64_t capacity) : m_capacity(capacity) {}

  /// Uses `row` (a row index of the cache): moves it to the most recent place, copying it from
  /// the host (and evicting the least recently used row) when it is not on the device.
  void use(std::int64_t row) {
    if (static_cast<std::size_t>(row) >= m_stamp.size())
      m_stamp.resize(static_cast<std::size_t>(row) + 1, 0);
    std::uint64_t& stamp = m_stamp[static_cast<std::size_t>(row)];
    if (stamp != 0) {
      m_order.erase({stamp, row});
    } else {
      if (static_cast<std::int64_t>(m_order.size()) >= m_capacity) {
        const auto oldest = *m_order.begin();
        m_order.erase(m_order.begin());
        m_stamp[static_cast<std::size_t>(oldest.second)] = 0;
      }
      ++m_misses;
    }
    stamp = ++m_clock;
    m_order.insert({stamp, row});
  }
  /// A row written on the device (a new token): placed like a use, but not a copy.
  void write(std::int64_t row) {
    use(row);
    --m_misses;
  }
  std::int64_t rows() const { return static_cast<std::int64_t>(m_order.size()); }
  std::uint64_t copies() const { return m_misses; }

 private:
  std::int64_t m_capacity = 1;
  std::vector<std::uint64_t> m_stamp;  // [row] last use, 0 when only on the host
  std::set<std::pair<std::uint64_t, std::int64_t>> m_order;
  std::uint64_t m_clock = 0;
  std::uint64_t m_misses = 0;
};

struct infinite_hip_head_state {
  std::array<std::vector<infinite_hip::chunk>, infinite_hip::stages> stage_out;
  std::vector<infinite_hip::chunk> input;  // scratch: the first stage's candidates
  std::int64_t steps = 0;                  // selections made (decode steps past the budget)
  device_cache device;
  std::int64_t written = 0;          // rows already placed on the device by extend_index
  std::vector<std::int64_t> scored;  // scratch: rows the stages scored this step
};

class infinite_hip_method final : public cache_method {
 public:
  explicit infinite_hip_method(const param_values& values)
      : m_values(values),
        m_sinks(values.get_int("sinks")),
        m_window(values.get_int("window")),
        m_chunk(values.get_int("chunk")),
        m_refresh(values.get_int("refresh")),
        m_device(values.get_int("device")) {}

  cache_stats stats() const override {
    cache_stats s = cache_method::stats();
    const std::uint64_t token_bytes = kv_cache::token_bytes(m_shape.head_dim);
    s.offloads = true;
    s.resident_bytes = 0;
    for (std::size_t h = 0; h < m_heads.size(); ++h) {
      const std::int64_t on_device = m_heads[h].device.rows();
      s.host_bytes += static_cast<std::uint64_t>(s.resident_tokens[h]) * token_bytes;
      s.resident_tokens[h] = on_device;
      s.resident_bytes += static_cast<std::uint64_t>(on_device) * token_bytes;
      s.host_to_device_bytes += m_heads[h].device.copies() * token_bytes;
    }
    return s;
  }

 protected:
  std::int64_t plan(const attention_problem& problem) override {
    m_heads.assign(static_cast<std::size_t>(problem.shape.kv_heads), infinite_hip_head_state{});
    for (auto& st : m_heads) st.device = device_cache(m_device);
    return resolve_budget(m_values, problem.context_tokens);
  }

  bool sparse_attend() const override { return true; }

  // New rows are produced on the device: the prompt in order (leaving its last `device` rows),
  // then each decoded token.
  void extend_index(int head, const kv_rows& rows) override {
    infinite_hip_head_state& st = m_heads[static_cast<std::size_t>(head)];
    for (; st.written < rows.count; ++st.written) st.device.write(st.written);
  }

  // The read (default attend_head: everything within the budget, else select_rows), then the
  // device cache sees the scored keys and the rows read, in that order.
  void attend_head(int query, int head, const float* q, std::int64_t visible, float* out,
                   sparse_work& work) override {
    infinite_hip_head_state& st = m_heads[static_cast<std::size_t>(head)];
    st.scored.clear();
    cache_method::attend_head(query, head, q, visible, out, work);
    for (auto row : st.scored) st.device.use(row);
    for (const auto& [begin, end] : work.selection.ranges)
      for (std::int64_t row = begin; row < end; ++row) st.device.use(row);
  }

  void select_rows(int, int head, const float* q, std::int64_t visible,
                   row_selection& out) override {
    infinite_hip_head_state& st = m_heads[static_cast<std::size_t>(head)];
    const int group = m_shape.group_size(), d = m_shape.head_dim;
    const kv_rows rows = m_cache.rows(head);
    const std::int64_t sinks = std::min(m_sinks, m_budget);
    const std::int64_t window = std::min(m_window, m_budget - sinks);
    const std::int64_t searched = m_budget - sinks - window;
    const std::int64_t middle_end = visible - window;
    out.add(0, sinks);
    if (searched > 0) {
      std::uint64_t scored = 0;
      // Sum of the group's logits (up to the common scale) with the key at `row`.
      auto score = [&](std::int64_t row) {
        const float* key = rows.k + static_cast<std::size_t>(row) * rows.row_stride;
        float s = 0;
        for (int g = 0; g < group; ++g)
          for (int i = 0; i < d; ++i) s += q[static_cast<std::size_t>(g * d + i)] * key[i];
        ++scored;
        return s;
      };
      auto touch = [&](std::int64_t row) { st.scored.push_back(row); };
      const auto stages = infinite_hip::geometry(searched, m_chunk, m_refresh);
      const std::int64_t step = st.steps++;
      bool redo = false;
      for (int l = 0; l < infinite_hip::stages; ++l) {
        const auto& cfg = stages[static_cast<std::size_t>(l)];
        redo = redo || step % cfg.refresh == 0;
        if (!redo) continue;
        if (l == 0) st.input.assign(1, {sinks, middle_end, 0.0f});
        infinite_hip::prune(l == 0 ? st.input : st.stage_out[static_cast<std::size_t>(l - 1)], cfg,
                            score, touch, st.stage_out[static_cast<std::size_t>(l)]);
      }
      // A cached mask may reach into the window that slid over it since: the window reads it.
      for (const auto& c : st.stage_out[infinite_hip::stages - 1])
        out.add(c.begin, std::min(c.end, middle_end));
      out.selection_keys += scored * static_cast<std::uint64_t>(group);
      out.selection_bytes += scored * static_cast<std::uint64_t>(d) * sizeof(float);
    }
    out.add(middle_end, visible);
  }

 private:
  param_values m_values;
  std::int64_t m_sinks, m_window, m_chunk, m_refresh, m_device;
  std::vector<infinite_hip_head_state> m_heads;  // per KV head (heads run on different threads)
};

}  // namespace
}  // namespace attnbench::cpu

ATTNBENCH_REGISTER_METHOD(attnbench::make_method_info<attnbench::cpu::infinite_hip_method>(
    "cpu",
    {"infinite_hip",
     "InfiniteHiP: Extending Language Model Context Up to 3 Million Tokens on a Single GPU",
     "per decode query, read sinks, a window and the chunks kept by three cached pruning stages "
     "(chunks scored by a top-1 bisection representative); the cache lives in host memory behind "
     "an LRU device cache of `device` tokens per KV head",
     "no RoPE adjustment; decode only; a scored key fetches its whole K/V row; stage geometry "
     "scaled from the released decode defaults",
     attnbench::infinite_hip::schema()}));
