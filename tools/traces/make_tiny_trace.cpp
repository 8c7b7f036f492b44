// Writes the shipped tiny trace: attnbench_make_tiny_trace DIR (DIR/tiny.safetensors and
// DIR/tiny.json, F16). The repository's copy lives in datasets/traces.
#include <cstdio>
#include <exception>
#include <filesystem>

#include "tools/traces/tiny_trace.hpp"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: attnbench_make_tiny_trace DIR\n");
    return 2;
  }
  try {
    const std::filesystem::path dir = argv[1];
    std::filesystem::create_directories(dir);
    attnbench::write_trace_safetensors(attnbench::make_tiny_trace(), (dir / "tiny").string(),
                                       attnbench::trace_dtype::f16);
    std::printf("wrote %s\n", (dir / "tiny.safetensors").c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "attnbench_make_tiny_trace: %s\n", e.what());
    return 1;
  }
  return 0;
}
