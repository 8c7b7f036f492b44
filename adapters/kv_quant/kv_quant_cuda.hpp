/// What the CUDA kv_quant adapter holds, read back to the host for the [gpu] tests: the codes,
/// scales and bf16 tails of each KV head, unpacked from the device layout
/// (adapters/kv_quant/kv_quant_kernels.cuh). Host-only, no CUDA types. C++17.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "harness/method.hpp"

namespace attnbench::cuda {

/// One KV head of a CUDA kv_quant store, in the CPU twin's terms (kv_quant_cpu.cpp).
struct kv_quant_head_dump {
  std::vector<std::uint8_t> k_codes;   // [quantized keys, head_dim], one code per element
  std::vector<std::uint8_t> v_codes;   // [quantized values, head_dim]
  std::vector<float> k_scale, k_zero;  // [quantized keys / group, head_dim]
  std::vector<float> v_scale, v_zero;  // [quantized values, value groups]
  float fp8_k = 1, fp8_v = 1;          // fp8: the per-head scales
  std::vector<float> k_tail, v_tail;   // [tail rows, head_dim]: the bf16 rows, as float
};

/// The store of `method` per KV head when it is the CUDA kv_quant adapter (after prefill and any
/// appends); nullopt for any other method.
std::optional<std::vector<kv_quant_head_dump>> dump_kv_quant(const kv_method& method);

}  // namespace attnbench::cuda
