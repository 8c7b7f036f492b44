/// GPUs visible to this build, for report meta (DESIGN §6). Without the CUDA backend, or
/// without a device, the list is empty. C++17-clean: implemented in a .cu file.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace attnbench {

struct gpu_info {
  int index = 0;
  std::string name;
  std::uint64_t memory_bytes = 0;
  int multiprocessors = 0;
  int compute_major = 0, compute_minor = 0;
  std::uint64_t l2_bytes = 0;
};

struct cuda_info {
  bool built = false;       // the CUDA backend was compiled in
  int runtime_version = 0;  // e.g. 13000
  int driver_version = 0;   // 0 when no driver
  std::vector<gpu_info> gpus;
};

cuda_info query_cuda();

}  // namespace attnbench
