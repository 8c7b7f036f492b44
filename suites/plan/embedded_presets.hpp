/// The preset files compiled into the binary (embed_presets.cmake generates their definitions):
/// one (file stem, JSON text) pair per datasets/models/*.json and datasets/gpus/*.json, sorted.
#pragma once

#include <vector>

namespace attnbench::plan::detail {

struct embedded_preset {
  const char* name;  // file stem: "llama-3.1-8b"
  const char* text;  // the file's JSON text
};

const std::vector<embedded_preset>& embedded_models();
const std::vector<embedded_preset>& embedded_gpus();
/// Latency reports measured on a preset's GPU (datasets/gpus/calibration/NAME.json), by preset.
const std::vector<embedded_preset>& embedded_calibrations();

}  // namespace attnbench::plan::detail
