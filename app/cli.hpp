/// The `attnbench` command line (Boost.Program_options): `list`, `run`. Exit codes: 0 success,
/// 2 bad input (one line on stderr naming the bad value), 1 anything else.
#pragma once

#include <iosfwd>
#include <string>
#include <vector>

#include "app/runner.hpp"

namespace attnbench {

int cli_main(int argc, char** argv);

/// "4k,16k,128k" or "4096,16384" -> token counts (k = 1024, m = 1024^2).
/// --seed: decimal digits, 0 to 2^64 - 1 (no sign, so -1 never wraps); throws bad_input.
std::uint64_t parse_seed(const std::string& text);
std::vector<std::int64_t> parse_lengths(const std::string& text);
/// The same for any option of counts: "4k,128k" or "1,8,64" (k = 1024, m = 1024^2), each in
/// [lo, hi], repeats dropped; throws bad_input naming `option` and the value.
std::vector<std::int64_t> parse_counts(const std::string& text, const std::string& option,
                                       std::int64_t lo, std::int64_t hi);
/// "0,0.5,1" or "start:stop:count[:linear|:sigmoid]" -> depths in [0, 1].
std::vector<double> parse_depths(const std::string& text);

}  // namespace attnbench
