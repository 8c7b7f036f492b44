/// `attnbench plan` (DESIGN §8, docs/planning.md): capacity planning for a model preset on a GPU
/// preset, per method, from the methods' own KV accounting and a roofline measured on the device.
#pragma once

#include <string>
#include <vector>

namespace attnbench {

/// `attnbench plan --model M --gpu G [--method SPEC]... [options]`: 0 on success. `argv` is the
/// whole command line, for the report's meta.
int cmd_plan(const std::vector<std::string>& args, const std::vector<std::string>& argv);

}  // namespace attnbench
