/// The CPU methods that have no CUDA adapter, each with the one line that says why: what
/// `attnbench list methods --backend cuda` prints under its methods and docs/gpu.md's table.
/// tests/adapters/test_cpu_only.cpp keeps it true: every name is a registered CPU method and, in a
/// build with the CUDA backend, every CPU method has a CUDA adapter or a line here, never both.
#pragma once

#include <string>
#include <vector>

namespace attnbench {

struct cpu_only_method {
  std::string name;
  std::string reason;
};

/// Sorted by name.
const std::vector<cpu_only_method>& cpu_only_methods();

}  // namespace attnbench
