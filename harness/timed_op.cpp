#include "harness/timed_op.hpp"

#include "harness/error.hpp"

namespace attnbench {

timed_op_registry& timed_op_registry::instance() {
  static timed_op_registry registry;
  return registry;
}

void timed_op_registry::add(const std::string& method, const std::string& backend,
                            timed_op_factory factory) {
  ATTNBENCH_CHECK(!find(method, backend), internal,
                  "timed op " << method << " [" << backend << "] registered twice");
  m_entries.push_back({method, backend, std::move(factory)});
}

const timed_op_factory* timed_op_registry::find(const std::string& method,
                                                const std::string& backend) const {
  for (const auto& e : m_entries)
    if (e.method == method && e.backend == backend) return &e.factory;
  return nullptr;
}

}  // namespace attnbench
