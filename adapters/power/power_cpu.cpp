/// power on the CPU: a sparse cache_method whose rows are the static PowerAttention pattern.
#include "adapters/common/cpu/cache_method_cpu.hpp"
#include "adapters/power/power.hpp"

namespace attnbench::cpu {
namespace {

class power_method : public cache_method {
 public:
  explicit power_method(const param_values& values) : m_values(values) {}

 protected:
  bool sparse_attend() const override { return true; }

  std::int64_t plan(const attention_problem& problem) override {
    m_sinks = m_values.get_int("sinks");
    return resolve_budget(m_values, problem.context_tokens);
  }

  // Static pattern: no selection cost. Rows are positions (the cache never evicts).
  void select_rows(int, int, const float*, std::int64_t visible, row_selection& out) override {
    power::for_each_range(m_sinks, m_budget, visible - 1,
                          [&](std::int64_t begin, std::int64_t end) { out.add(begin, end); });
  }

 private:
  param_values m_values;
  std::int64_t m_sinks = 0;
};

}  // namespace
}  // namespace attnbench::cpu

ATTNBENCH_REGISTER_METHOD(attnbench::with_footprint(
    attnbench::make_method_info<attnbench::cpu::power_method>(
        "cpu",
        {"power",
         "PowerAttention: Exponentially Scaling of Receptive Fields for Effective Sparse Attention",
         "read the sinks, a local window and the tokens at power-of-two distances",
         "per token rather than per block; decode only (prompt outputs exact)",
         attnbench::power::schema()}),
    [](const attnbench::param_values& values, const attnbench::footprint_query& query) {
      // Every token kept; the last query reads its static pattern.
      return attnbench::cpu::static_pattern_footprint(
          values, query, [&values](std::int64_t budget, std::int64_t last, const auto& add) {
            attnbench::power::for_each_range(values.get_int("sinks"), budget, last, add);
          });
    }));
