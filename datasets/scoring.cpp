#include "datasets/scoring.hpp"

#include <algorithm>
#include <cctype>

namespace attnbench {

namespace {

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

}  // namespace

double string_match_all(const std::string& prediction, const std::vector<std::string>& references) {
  if (references.empty()) return 0.0;
  const std::string p = lower(prediction);
  std::size_t hits = 0;
  for (const auto& r : references) hits += p.find(lower(r)) != std::string::npos ? 1 : 0;
  return static_cast<double>(hits) / static_cast<double>(references.size());
}

double string_match_part(const std::string& prediction,
                         const std::vector<std::string>& references) {
  const std::string p = lower(prediction);
  for (const auto& r : references)
    if (p.find(lower(r)) != std::string::npos) return 1.0;
  return 0.0;
}

}  // namespace attnbench
