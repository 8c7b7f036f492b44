#include "harness/suite.hpp"

#include <algorithm>
#include <sstream>

#include "harness/error.hpp"

namespace attnbench {

const char* name_of(run_mode m) {
  return m == run_mode::query_aware ? "query_aware" : "query_agnostic";
}

run_mode parse_run_mode(const std::string& s) {
  if (s == "query_aware") return run_mode::query_aware;
  if (s == "query_agnostic") return run_mode::query_agnostic;
  ATTNBENCH_BAD_INPUT("unknown mode '" << s << "' (known: query_aware, query_agnostic)");
}

suite_registry& suite_registry::instance() {
  static suite_registry registry;
  return registry;
}

void suite_registry::add(std::unique_ptr<suite> s) {
  ATTNBENCH_ASSERT(find(s->name()) == nullptr);
  m_suites.push_back(std::move(s));
}

const suite* suite_registry::find(const std::string& name) const {
  for (const auto& s : m_suites)
    if (s->name() == name) return s.get();
  return nullptr;
}

std::vector<const suite*> suite_registry::all() const {
  std::vector<const suite*> out;
  for (const auto& s : m_suites) out.push_back(s.get());
  std::sort(out.begin(), out.end(),
            [](const suite* a, const suite* b) { return a->name() < b->name(); });
  return out;
}

std::string case_name(const std::string& suite,
                      const std::vector<std::pair<std::string, nlohmann::json>>& axes) {
  std::ostringstream os;
  os << suite << '(';
  bool first = true;
  for (const auto& [k, v] : axes) {
    os << (first ? "" : ",") << k << '=';
    if (v.is_string())
      os << v.get<std::string>();
    else if (v.is_number_float()) {
      std::ostringstream num;
      num.precision(6);
      num << v.get<double>();
      os << num.str();
    } else
      os << v.dump();
    first = false;
  }
  os << ')';
  return os.str();
}

}  // namespace attnbench
