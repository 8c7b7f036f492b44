/// The run's terminal summary (DESIGN §6): one compact leaderboard, at most a given width, with
/// each method's short name; the full specs and the per-suite tables stay in the reports
/// (`attnbench report`, report.html) and behind `attnbench run --verbose`.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "harness/record.hpp"

namespace attnbench {

/// Short names for method specs: the method name, plus the parameters whose values differ
/// between specs of that method in `specs` ("snapkv keep=0.25" beside "snapkv keep=0.5"; a
/// method with one spec is its bare name). Wrapper specs (`chunk(snapkv):chunk=64`) keep
/// their inner spec whole. Same order as `specs`.
std::vector<std::string> short_spec_names(const std::vector<std::string>& specs);

/// The leaderboard (build_leaderboard) as an aligned text table of at most `width` characters:
/// short method name (" agn" marks query-agnostic rows, the backend is named when the report
/// has several), NIAH %, RULER avg %, PosIR PSI, fidelity error, KV resident x dense, KV read
/// per decode step and decode speed vs dense; names longer than the table allows are cut with
/// "~". Empty when the report has no records.
std::string compact_leaderboard(const report& r, std::size_t width = 100);

}  // namespace attnbench
