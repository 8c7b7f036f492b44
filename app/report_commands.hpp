/// The offline report commands of the command line (DESIGN §2, §6): `report` (leaderboard and
/// per-suite tables as Markdown, CSV or self-contained HTML), `compare` (the regression gate)
/// and `merge` (shard reports into one). They read report files and never run anything.
/// Each returns the process exit code; bad input throws bad_input (exit 2 in cli_main).
#pragma once

#include <string>
#include <vector>

namespace attnbench {

/// `attnbench report FILES... [--format md|csv|html] [-o PATH]`: 0 on success.
int cmd_report(const std::vector<std::string>& args);

/// `attnbench compare BASE NEW [--threshold 5%] [--accuracy-threshold 5] [--alpha 0.05]
/// [--fail-on-regression] [--format md|json] [-o PATH]`: 1 when --fail-on-regression is given
/// and a regression was found, 0 otherwise.
int cmd_compare(const std::vector<std::string>& args);

/// `attnbench merge FILES... -o OUT`: 0 on success.
int cmd_merge(const std::vector<std::string>& args);

}  // namespace attnbench
