/// A non-owning view of a contiguous float32 tensor [tokens, heads, head_dim] and a small
/// owning buffer. C++17-clean: included by .cu files.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace attnbench {

/// Row-major [tokens, heads, head_dim] view. `data` points to host memory for CPU adapters
/// and to device memory for CUDA adapters (the runner decides; adapters never mix).
struct tensor_view {
  float* data = nullptr;
  int tokens = 0;
  int heads = 0;
  int head_dim = 0;

  std::size_t size() const {
    return static_cast<std::size_t>(tokens) * static_cast<std::size_t>(heads) *
           static_cast<std::size_t>(head_dim);
  }
  std::size_t bytes() const { return size() * sizeof(float); }
  float* at(int token, int head) const {
    return data + (static_cast<std::size_t>(token) * static_cast<std::size_t>(heads) +
                   static_cast<std::size_t>(head)) *
                      static_cast<std::size_t>(head_dim);
  }
  /// Rows [begin, begin + count) as a view.
  tensor_view rows(int begin, int count) const {
    return tensor_view{at(begin, 0), count, heads, head_dim};
  }
};

/// Owning host tensor with the same layout.
class host_tensor {
 public:
  host_tensor() = default;
  host_tensor(int tokens, int heads, int head_dim)
      : m_data(static_cast<std::size_t>(tokens) * static_cast<std::size_t>(heads) *
                   static_cast<std::size_t>(head_dim),
               0.0f),
        m_tokens(tokens),
        m_heads(heads),
        m_head_dim(head_dim) {}

  tensor_view view() { return tensor_view{m_data.data(), m_tokens, m_heads, m_head_dim}; }
  float* data() { return m_data.data(); }
  const float* data() const { return m_data.data(); }
  int tokens() const { return m_tokens; }
  int heads() const { return m_heads; }
  int head_dim() const { return m_head_dim; }
  std::size_t size() const { return m_data.size(); }

 private:
  std::vector<float> m_data;
  int m_tokens = 0;
  int m_heads = 0;
  int m_head_dim = 0;
};

}  // namespace attnbench
