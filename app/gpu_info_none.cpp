#include "app/gpu_info.hpp"

namespace attnbench {

cuda_info query_cuda() { return {}; }

}  // namespace attnbench
