/// RULER's scoring functions over decoded text (case-insensitive substring match).
#pragma once

#include <string>
#include <vector>

namespace attnbench {

/// Fraction of references found in the prediction (RULER `string_match_all`), in [0, 1].
double string_match_all(const std::string& prediction, const std::vector<std::string>& references);
/// 1 when any reference is found in the prediction (RULER `string_match_part`), else 0.
double string_match_part(const std::string& prediction, const std::vector<std::string>& references);

}  // namespace attnbench
