#include "suites/common/suite_helpers.hpp"

#include <cmath>

#include "datasets/rng.hpp"
#include "harness/error.hpp"
#include "harness/params.hpp"

namespace attnbench {

suite_case make_case(const std::string& suite,
                     const std::vector<std::pair<std::string, nlohmann::json>>& axes) {
  suite_case c;
  c.name = case_name(suite, axes);
  for (const auto& [k, v] : axes) c.axes[k] = v;
  return c;
}

int sample_count(const run_options& o, int suite_default, int quick_default) {
  return o.samples > 0 ? o.samples : o.quick ? quick_default : suite_default;
}

std::uint64_t sample_seed(std::uint64_t run_seed, const suite_case& c, int sample) {
  return hash_seed(hash_seed(run_seed, c.name), static_cast<std::uint64_t>(sample));
}

double param_real(const run_options& o, const std::string& key, double def, double lo, double hi) {
  auto it = o.params.find(key);
  if (it == o.params.end()) return def;
  auto v = parse_real(it->second);
  if (!v || *v < lo || *v > hi)
    ATTNBENCH_BAD_INPUT("--param " << key << "='" << it->second << "' is not a number in [" << lo
                                   << ", " << hi << "]");
  return *v;
}

int param_int(const run_options& o, const std::string& key, int def, int lo, int hi) {
  auto it = o.params.find(key);
  if (it == o.params.end()) return def;
  auto v = parse_real(it->second);
  if (!v || *v != std::floor(*v) || *v < lo || *v > hi)
    ATTNBENCH_BAD_INPUT("--param " << key << "='" << it->second << "' is not an integer in [" << lo
                                   << ", " << hi << "]");
  return static_cast<int>(*v);
}

}  // namespace attnbench
