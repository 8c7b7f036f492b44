// The CPU-only list (adapters/common/cpu_only.hpp) against the registry: every entry names a
// registered CPU method once, with a reason; in a build with the CUDA backend every CPU method
// has a CUDA adapter or an entry, never both. docs/gpu.md's CPU-only table holds every entry.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>
#include <string>

#include "adapters/common/cpu_only.hpp"
#include "harness/method.hpp"

using namespace attnbench;

TEST_CASE("the CPU-only list names registered CPU methods without a CUDA adapter",
          "[cuda_coverage]") {
  const auto& registry = method_registry::instance();
  std::set<std::string> listed;
  std::string previous;
  for (const cpu_only_method& c : cpu_only_methods()) {
    INFO(c.name);
    CHECK(registry.find(c.name, "cpu") != nullptr);
    CHECK(registry.find(c.name, "cuda") == nullptr);
    CHECK_FALSE(c.reason.empty());
    CHECK(listed.insert(c.name).second);
    CHECK(previous < c.name);  // sorted
    previous = c.name;
  }
  const auto all = registry.all();
  const bool have_cuda = std::any_of(all.begin(), all.end(),
                                     [](const method_info* m) { return m->backend == "cuda"; });
  if (!have_cuda) return;  // a CPU-only build cannot tell which methods lack an adapter
  for (const method_info* m : all) {
    if (m->backend != "cpu") continue;
    INFO(m->name);
    CHECK((registry.find(m->name, "cuda") != nullptr) != (listed.count(m->name) == 1));
  }
}

TEST_CASE("docs/gpu.md lists every CPU-only method with its reason", "[cuda_coverage]") {
  const char* root = std::getenv("ATTNBENCH_SOURCE_DIR");
  REQUIRE(root);
  std::ifstream in(std::string(root) + "/docs/gpu.md");
  REQUIRE(in);
  std::ostringstream text;
  text << in.rdbuf();
  for (const cpu_only_method& c : cpu_only_methods()) {
    INFO(c.name);
    CHECK(text.str().find("| `" + c.name + "` | " + c.reason + " |") != std::string::npos);
  }
}
