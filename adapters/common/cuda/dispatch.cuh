/// The one place that says which shapes and element types the CUDA kernels are compiled for, and
/// that turns a run-time head_dim, GQA group size or dtype into the compile-time one of a kernel
/// instantiation (FlashInfer's DISPATCH_HEAD_DIM / DISPATCH_GROUP_SIZE, written as templates that
/// call `f` with a std::integral_constant or a type_tag):
///   head_dim  64 and 128 (prefill tilings and the decode kernel's 16-byte lanes per row);
///   group     q_heads / kv_heads of 1, 2, 4 or 8 (the decode kernel keeps a group's queries in
///             registers; the prefill kernels take any group);
///   dtype     bf16 and fp16.
/// Every launcher, timed op and adapter check goes through these. Host-only, C++17.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <sstream>
#include <string>
#include <type_traits>

#include "harness/error.hpp"

namespace attnbench::cuda {

constexpr bool supported_head_dim(long long head_dim) { return head_dim == 64 || head_dim == 128; }
constexpr bool supported_group(long long group) {
  return group == 1 || group == 2 || group == 4 || group == 8;
}
inline bool supported_dtype(const std::string& dtype) { return dtype == "bf16" || dtype == "fp16"; }

/// Why `who` (e.g. "cuda decode") cannot run q_heads / kv_heads heads of head_dim, or "" when it
/// can. With any_group (the prefill kernels) the GQA group is not restricted.
inline std::string unsupported_shape(const char* who, long long head_dim, long long q_heads,
                                     long long kv_heads, bool any_group = false) {
  std::ostringstream why;
  if (q_heads < 1 || kv_heads < 1 || q_heads % kv_heads != 0)
    why << who << ": q_heads (" << q_heads << ") must be a positive multiple of kv_heads ("
        << kv_heads << ")";
  else if (!supported_head_dim(head_dim))
    why << who << " supports head_dim 64 and 128, not " << head_dim;
  else if (!any_group && !supported_group(q_heads / kv_heads))
    why << who << " supports GQA groups 1, 2, 4, 8, not " << q_heads / kv_heads;
  return why.str();
}

/// Throws unsupported (a `skipped` record) with unsupported_shape's reason.
inline void check_shape(const char* who, long long head_dim, long long q_heads, long long kv_heads,
                        bool any_group = false) {
  const std::string why = unsupported_shape(who, head_dim, q_heads, kv_heads, any_group);
  ATTNBENCH_CHECK(why.empty(), unsupported, why);
}

/// f(std::integral_constant<int, head_dim>{}) for a supported head_dim; throws unsupported else.
template <class F>
auto dispatch_head_dim(int head_dim, F&& f) {
  ATTNBENCH_CHECK(supported_head_dim(head_dim), unsupported,
                  "cuda kernels support head_dim 64 and 128, not " << head_dim);
  if (head_dim == 64) return f(std::integral_constant<int, 64>{});
  return f(std::integral_constant<int, 128>{});
}

/// f(std::integral_constant<int, group>{}) for a supported GQA group; throws unsupported else.
template <class F>
auto dispatch_group(int group, F&& f) {
  ATTNBENCH_CHECK(supported_group(group), unsupported,
                  "cuda decode supports GQA groups 1, 2, 4, 8, not " << group);
  switch (group) {
    case 1:
      return f(std::integral_constant<int, 1>{});
    case 2:
      return f(std::integral_constant<int, 2>{});
    case 4:
      return f(std::integral_constant<int, 4>{});
    default:
      return f(std::integral_constant<int, 8>{});
  }
}

/// An element type as a value: dispatch_dtype's argument to `f`.
template <class T>
struct type_tag {
  using type = T;
};

/// Throws unsupported for a dtype other than bf16 and fp16.
inline void check_dtype(const std::string& dtype) {
  ATTNBENCH_CHECK(supported_dtype(dtype), unsupported, "cuda ops run bf16 or fp16, not " << dtype);
}

/// f(type_tag<__nv_bfloat16>{}) for "bf16", f(type_tag<__half>{}) for "fp16"; throws unsupported
/// else.
template <class F>
auto dispatch_dtype(const std::string& dtype, F&& f) {
  check_dtype(dtype);
  if (dtype == "fp16") return f(type_tag<__half>{});
  return f(type_tag<__nv_bfloat16>{});
}

}  // namespace attnbench::cuda
