#include <cuda_runtime.h>

#include "app/gpu_info.hpp"

namespace attnbench {

cuda_info query_cuda() {
  cuda_info info;
  info.built = true;
  cudaRuntimeGetVersion(&info.runtime_version);
  if (cudaDriverGetVersion(&info.driver_version) != cudaSuccess) info.driver_version = 0;
  int count = 0;
  // No driver or no device is not an error here: the report just lists no GPU.
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();
    return info;
  }
  for (int i = 0; i < count; ++i) {
    cudaDeviceProp p{};
    if (cudaGetDeviceProperties(&p, i) != cudaSuccess) continue;
    gpu_info g;
    g.index = i;
    g.name = p.name;
    g.memory_bytes = p.totalGlobalMem;
    g.multiprocessors = p.multiProcessorCount;
    g.compute_major = p.major;
    g.compute_minor = p.minor;
    g.l2_bytes = static_cast<std::uint64_t>(p.l2CacheSize);
    info.gpus.push_back(g);
  }
  return info;
}

}  // namespace attnbench
