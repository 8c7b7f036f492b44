/// neighborhood on the CPU: a sparse cache_method whose rows are the causal neighborhood.
#include "adapters/common/cpu/cache_method_cpu.hpp"
#include "adapters/neighborhood/neighborhood.hpp"

namespace attnbench::cpu {
namespace {

class neighborhood_method : public cache_method {
 public:
  explicit neighborhood_method(const param_values& values) : m_values(values) {}

 protected:
  bool sparse_attend() const override { return true; }

  std::int64_t plan(const attention_problem& problem) override {
    m_dilation = m_values.get_int("dilation");
    return resolve_budget(m_values, problem.context_tokens);
  }

  // Static pattern: no selection cost. Rows are positions (the cache never evicts).
  void select_rows(int, int, const float*, std::int64_t visible, row_selection& out) override {
    neighborhood::for_each_range(
        m_budget, m_dilation, visible - 1,
        [&](std::int64_t begin, std::int64_t end) { out.add(begin, end); });
  }

 private:
  param_values m_values;
  std::int64_t m_dilation = 1;
};

}  // namespace
}  // namespace attnbench::cpu

ATTNBENCH_REGISTER_METHOD(attnbench::with_footprint(
    attnbench::make_method_info<attnbench::cpu::neighborhood_method>(
        "cpu", {"neighborhood",
                "Faster Neighborhood Attention: Reducing the O(n^2) Cost of Self Attention at the "
                "Threadblock "
                "Level",
                "read the query's causal neighborhood of `budget` tokens with `dilation`",
                "1-D causal rule only, per token, decode only, no fused kernel",
                attnbench::neighborhood::schema()}),
    [](const attnbench::param_values& values, const attnbench::footprint_query& query) {
      // Every token kept; the last query reads its static pattern.
      return attnbench::cpu::static_pattern_footprint(
          values, query, [&values](std::int64_t budget, std::int64_t last, const auto& add) {
            attnbench::neighborhood::for_each_range(budget, values.get_int("dilation"), last, add);
          });
    }));
