/// The docs' suites reference (docs/suites-reference.md) generated from the suite registry: each
/// suite's description, typed axes (defaults, quick-preset values), `--param` keys and metrics
/// (unit, direction, meaning). `attnbench list suites --format md` prints it; a CTest keeps the
/// committed page equal to it (tests/cli/check_docs_page.cmake).
#pragma once

#include <string>
#include <vector>

#include "harness/suite.hpp"

namespace attnbench {

std::string suites_markdown(const std::vector<const suite*>& suites);

}  // namespace attnbench
