/// The docs' methods table (docs/methods.md) generated from the method registry, the one place a
/// method's name, paper, rule, parameters and simplifications are written (STYLE.md: one fact,
/// one place). `attnbench list methods --format md` prints it; a CTest keeps the committed page
/// equal to it (tests/cli/check_docs_page.cmake).
#pragma once

#include <string>
#include <vector>

#include "harness/method.hpp"

namespace attnbench {

/// The Markdown page: a title, how to regenerate it, and one table row per method of `methods`
/// (in the given order): name, paper, parameters with defaults, rule, what it simplifies.
std::string methods_markdown(const std::vector<const method_info*>& methods);

}  // namespace attnbench
