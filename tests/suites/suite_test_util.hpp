/// Helpers the suite tests share: a fresh output folder per test, the path of the tiny trace
/// shipped in datasets/traces, and the check that bad `--param` values are bad input before any
/// case runs. Header-only: every suite test is its own executable.
#pragma once

#include <unistd.h>
#include <catch2/catch.hpp>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "harness/error.hpp"
#include "app/runner.hpp"

namespace attnbench::test {

/// An empty temporary folder path for one test of `suite`, unique per process.
inline std::filesystem::path temp_out(const std::string& suite, const std::string& name) {
  auto dir = std::filesystem::temp_directory_path() /
             ("attnbench-test-" + suite + "-" + name + "-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  return dir;
}

/// A run of `suite` with `methods` at `lengths` on the small shape with 2 threads, writing to
/// temp_out(suite, out); tests add their samples, seed and parameters.
inline run_config suite_config(const std::string& suite, std::vector<std::string> methods,
                               std::vector<std::int64_t> lengths, const std::string& out) {
  run_config cfg;
  cfg.suites = {suite};
  cfg.methods = std::move(methods);
  cfg.options.lengths = std::move(lengths);
  cfg.options.shape = shape_preset("small");
  cfg.threads = 2;
  cfg.out_dir = temp_out(suite, out);
  return cfg;
}

/// datasets/traces/tiny.safetensors under ATTNBENCH_SOURCE_DIR (CTest sets it), or relative to
/// the working folder.
inline std::string tiny_trace() {
  const char* root = std::getenv("ATTNBENCH_SOURCE_DIR");
  return std::string(root ? root : ".") + "/datasets/traces/tiny.safetensors";
}

/// Runs `cfg` once per (key, value), each as the only --param: every run must stop with a
/// bad_input error whose message names the value, and no output folder may be written.
inline void check_bad_params(run_config cfg,
                             const std::vector<std::pair<std::string, std::string>>& bad) {
  std::ostringstream progress;
  for (const auto& [key, value] : bad) {
    cfg.options.params = {{key, value}};
    try {
      run_benchmark(cfg, progress);
      FAIL("accepted " << key << "=" << value);
    } catch (const error& e) {
      CHECK(e.id() == error_id::bad_input);
      CHECK(std::string(e.what()).find(value) != std::string::npos);
    }
  }
  CHECK_FALSE(std::filesystem::exists(cfg.out_dir));
}

}  // namespace attnbench::test
