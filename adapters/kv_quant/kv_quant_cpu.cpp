/// kv_quant on the CPU: a quantized KV store per head (packed codes plus float32 scales and
/// zeros, and a float32 tail) and decode attention that dequantizes 64-row blocks into scratch
/// rows and folds them into cpu::online_softmax.
#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "adapters/common/cpu/cache_method_cpu.hpp"
#include "adapters/common/cpu/cpu_attention.hpp"
#include "adapters/kv_quant/kv_quant.hpp"
#include "harness/error.hpp"

namespace attnbench::cpu {

namespace {

// Below this many multiply-adds a call runs on the calling thread (the threshold of
// cache_method: an OpenMP fork/join costs about what 2^16 multiply-adds take on one core).
constexpr std::uint64_t min_parallel_multiply_adds = std::uint64_t{1} << 16;

constexpr int block_rows = online_softmax::block_rows;

// Stores code c of element i of a row: one byte per element at 8 bits, two per byte at 4 bits
// (element 2j in the low nibble of byte j, element 2j + 1 in the high nibble).
inline void put_code(std::uint8_t* row, int i, std::uint8_t c, int bits) {
  if (bits == 8)
    row[i] = c;
  else
    row[i / 2] = static_cast<std::uint8_t>(row[i / 2] | (c << (4 * (i & 1))));
}

// Dequantizes key rows [first_row, first_row + rows): row r's codes are at codes + r * row_bytes
// and it uses the per-channel scales and zeros of its group (first_row + r) / group, stored at
// scales + group_index * d. out: [rows, d].
void dequantize_keys(const std::uint8_t* codes, std::int64_t row_bytes, std::int64_t first_row,
                     int rows, std::int64_t group, const float* scales, const float* zeros, int d,
                     int bits, float* out) {
  for (int r = 0; r < rows; ++r) {
    const std::int64_t row = first_row + r;
    const float* s = scales + (row / group) * d;
    const float* z = zeros + (row / group) * d;
    const std::uint8_t* c = codes + static_cast<std::size_t>(r * row_bytes);
    float* o = out + static_cast<std::size_t>(r) * static_cast<std::size_t>(d);
    if (bits == 8) {
#pragma omp simd
      for (int i = 0; i < d; ++i) o[i] = static_cast<float>(c[i]) * s[i] + z[i];
    } else {
      for (int j = 0; j < d / 2; ++j) {
        o[2 * j] = static_cast<float>(c[j] & 15) * s[2 * j] + z[2 * j];
        o[2 * j + 1] = static_cast<float>(c[j] >> 4) * s[2 * j + 1] + z[2 * j + 1];
      }
      if (d % 2) o[d - 1] = static_cast<float>(c[d / 2] & 15) * s[d - 1] + z[d - 1];
    }
  }
}

// Dequantizes `rows` value rows, row r with its own scale[r] and zero[r]. out: [rows, d].
void dequantize_values(const std::uint8_t* codes, std::int64_t row_bytes, int rows,
                       const float* scales, const float* zeros, int d, int bits, float* out) {
  for (int r = 0; r < rows; ++r) {
    const float s = scales[r], z = zeros[r];
    const std::uint8_t* c = codes + static_cast<std::size_t>(r * row_bytes);
    float* o = out + static_cast<std::size_t>(r) * static_cast<std::size_t>(d);
    if (bits == 8) {
#pragma omp simd
      for (int i = 0; i < d; ++i) o[i] = static_cast<float>(c[i]) * s + z;
    } else {
      for (int j = 0; j < d / 2; ++j) {
        o[2 * j] = static_cast<float>(c[j] & 15) * s + z;
        o[2 * j + 1] = static_cast<float>(c[j] >> 4) * s + z;
      }
      if (d % 2) o[d - 1] = static_cast<float>(c[d / 2] & 15) * s + z;
    }
  }
}

class kv_quant_method final : public kv_method {
 public:
  explicit kv_quant_method(kv_quant::config config) : m_config(config) {}

  std::optional<std::string> unsupported_reason(const attention_problem& problem) const override {
    return gqa_unsupported_reason(problem);
  }

  void prepare(const attention_problem& problem, const exec_context& ctx) override {
    auto why = unsupported_reason(problem);
    ATTNBENCH_CHECK(!why, unsupported, *why);
    m_shape = problem.shape;
    m_scale = problem.softmax_scale();
    m_threads = std::max(1, ctx.threads);
    m_row_bytes = kv_quant::code_bytes(m_shape.head_dim, m_config.bits);

    // Reserve what the whole sequence will hold, so the timed calls do not reallocate.
    const std::int64_t total = std::max(problem.max_tokens, problem.context_tokens);
    const std::int64_t quantized = kv_quant::quantized_tokens(total, m_config);
    const std::int64_t tail = std::min(total, m_config.residual + m_config.group);
    const auto d = static_cast<std::size_t>(m_shape.head_dim);
    m_heads.assign(static_cast<std::size_t>(m_shape.kv_heads), head_store{});
    for (auto& h : m_heads) {
      h.k_codes.reserve(static_cast<std::size_t>(quantized * m_row_bytes));
      h.v_codes.reserve(static_cast<std::size_t>(quantized * m_row_bytes));
      h.k_scale.reserve(static_cast<std::size_t>(quantized / m_config.group) * d);
      h.k_zero.reserve(static_cast<std::size_t>(quantized / m_config.group) * d);
      h.v_scale.reserve(static_cast<std::size_t>(quantized));
      h.v_zero.reserve(static_cast<std::size_t>(quantized));
      h.tail_k.reserve(static_cast<std::size_t>(tail) * d);
      h.tail_v.reserve(static_cast<std::size_t>(tail) * d);
    }

    m_scratch.clear();
    m_block_k.assign(static_cast<std::size_t>(m_threads), {});
    m_block_v.assign(static_cast<std::size_t>(m_threads), {});
    for (int t = 0; t < m_threads; ++t) {
      m_scratch.emplace_back(m_shape.group_size(), m_shape.head_dim);
      m_block_k[static_cast<std::size_t>(t)].resize(block_rows * d);
      m_block_v[static_cast<std::size_t>(t)].resize(block_rows * d);
    }
    m_length = m_quantized = 0;
    m_keys_scored = m_kv_bytes_read = m_attend_calls = 0;
    m_prepared = true;
  }

  void prefill(tensor_view q, tensor_view k, tensor_view v, tensor_view* maybe_out) override {
    check_kv(k, v);
    ATTNBENCH_CHECK(m_length == 0, internal, "prefill must be called once, before any append");
    if (maybe_out) prompt_outputs(q, k, v, *maybe_out);

    // The prompt's complete groups up to R tokens from the end are quantized, the rest is
    // copied in float32.
    const std::int64_t quantized = kv_quant::quantized_tokens(k.tokens, m_config);
    const int d = m_shape.head_dim, kv_heads = m_shape.kv_heads;
    const auto multiply_adds = static_cast<std::uint64_t>(k.tokens) *
                               static_cast<std::uint64_t>(kv_heads) * static_cast<std::uint64_t>(d);
#pragma omp parallel for schedule(static) \
    num_threads(m_threads) if (parallel_worth_it(multiply_adds))
    for (int h = 0; h < kv_heads; ++h) {
      head_store& s = m_heads[static_cast<std::size_t>(h)];
      const kv_rows all = head_rows(k, v, h);
      for (std::int64_t first = 0; first < quantized; first += m_config.group)
        quantize_group(s, all.slice(first, m_config.group));
      const kv_rows tail = all.slice(quantized, k.tokens - quantized);
      for (std::int64_t r = 0; r < tail.count; ++r) {
        const auto offset = static_cast<std::size_t>(r) * tail.row_stride;
        s.tail_k.insert(s.tail_k.end(), tail.k + offset, tail.k + offset + d);
        s.tail_v.insert(s.tail_v.end(), tail.v + offset, tail.v + offset + d);
      }
    }
    m_quantized = quantized;
    m_length = k.tokens;
  }

  // Token by token, so that a multi-token append quantizes exactly the groups that decoding
  // the same tokens one at a time would.
  void append(tensor_view k, tensor_view v) override {
    check_kv(k, v);
    const int d = m_shape.head_dim;
    for (int t = 0; t < k.tokens; ++t) {
      for (int h = 0; h < m_shape.kv_heads; ++h) {
        head_store& s = m_heads[static_cast<std::size_t>(h)];
        s.tail_k.insert(s.tail_k.end(), k.at(t, h), k.at(t, h) + d);
        s.tail_v.insert(s.tail_v.end(), v.at(t, h), v.at(t, h) + d);
      }
      ++m_length;
      // The tail reached R + G tokens: its oldest G become one quantized group.
      if (kv_quant::quantized_tokens(m_length, m_config) > m_quantized) {
        for (auto& s : m_heads) flush_group(s);
        m_quantized += m_config.group;
      }
    }
  }

  void attend(tensor_view q, tensor_view out) override {
    ATTNBENCH_CHECK(m_prepared, internal, "prepare must be called first");
    const int n = q.tokens, kv_heads = m_shape.kv_heads, group = m_shape.group_size();
    const int d = m_shape.head_dim;
    check_attend_shapes(q, out, m_shape, m_length);

    // Query i sits at position m_length - n + i and sees the tokens up to it: a prefix of the
    // quantized rows, then a prefix of the float32 tail. Bytes read: the codes of every
    // quantized row seen, its value scale and zero, the key scales and zeros of every group
    // it touches, and the float32 tail rows seen.
    std::uint64_t rows_total = 0;
    for (int i = 0; i < n; ++i) {
      const std::int64_t visible = m_length - n + i + 1;
      const std::int64_t quantized = std::min(visible, m_quantized);
      const std::int64_t groups = (quantized + m_config.group - 1) / m_config.group;
      const auto bytes =
          quantized * (2 * m_row_bytes + 8) + groups * d * 8 + (visible - quantized) * d * 8;
      rows_total += static_cast<std::uint64_t>(visible);
      m_kv_bytes_read += static_cast<std::uint64_t>(bytes) * static_cast<std::uint64_t>(kv_heads);
    }
    m_keys_scored += rows_total * static_cast<std::uint64_t>(kv_heads * group);
    m_attend_calls += static_cast<std::uint64_t>(n);

    const auto multiply_adds = rows_total * static_cast<std::uint64_t>(kv_heads * group * d);
#pragma omp parallel for schedule(static) \
    num_threads(m_threads) if (parallel_worth_it(multiply_adds))
    for (int h = 0; h < kv_heads; ++h) {
      const auto thread = static_cast<std::size_t>(omp_get_thread_num());
      online_softmax& sm = m_scratch[thread];
      float* block_k = m_block_k[thread].data();
      float* block_v = m_block_v[thread].data();
      const head_store& s = m_heads[static_cast<std::size_t>(h)];
      // Each query dequantizes its visible rows again: decode sends one query per call, so
      // there is nothing to share, and the scratch stays one block (in L1) whatever the length.
      for (int i = 0; i < n; ++i) {
        const std::int64_t visible = m_length - n + i + 1;
        const std::int64_t quantized = std::min(visible, m_quantized);
        sm.start(q.at(i, h * group), static_cast<std::size_t>(d), group, m_scale);
        for (std::int64_t first = 0; first < quantized; first += block_rows) {
          const int rows = static_cast<int>(std::min<std::int64_t>(block_rows, quantized - first));
          dequantize_keys(s.k_codes.data() + first * m_row_bytes, m_row_bytes, first, rows,
                          m_config.group, s.k_scale.data(), s.k_zero.data(), d, m_config.bits,
                          block_k);
          dequantize_values(s.v_codes.data() + first * m_row_bytes, m_row_bytes, rows,
                            s.v_scale.data() + first, s.v_zero.data() + first, d, m_config.bits,
                            block_v);
          sm.add(kv_rows{block_k, block_v, static_cast<std::size_t>(d), rows});
        }
        sm.add(kv_rows{s.tail_k.data(), s.tail_v.data(), static_cast<std::size_t>(d),
                       visible - quantized});
        sm.finish(out.at(i, h * group), static_cast<std::size_t>(d));
      }
    }
  }

  cache_stats stats() const override {
    cache_stats s;
    s.resident_tokens.assign(m_heads.size(), m_length);
    s.resident_bytes = static_cast<std::uint64_t>(m_heads.size()) *
                       kv_quant::head_bytes(m_length, m_shape.head_dim, m_config);
    s.keys_scored = m_keys_scored;
    s.kv_bytes_read = m_kv_bytes_read;
    s.attend_calls = m_attend_calls;
    s.budget_tokens = -1;
    s.simulated = false;
    return s;
  }

 private:
  // One KV head's store. Quantized rows are the sequence's first `m_quantized` tokens, the tail
  // the rest, in position order.
  struct head_store {
    std::vector<std::uint8_t> k_codes;   // [quantized, row_bytes]
    std::vector<float> k_scale, k_zero;  // [quantized / group, head_dim]: per channel per group
    std::vector<std::uint8_t> v_codes;   // [quantized, row_bytes]
    std::vector<float> v_scale, v_zero;  // [quantized]: per token
    std::vector<float> tail_k, tail_v;   // [tail tokens, head_dim], float32
  };

  bool parallel_worth_it(std::uint64_t multiply_adds) const {
    return m_threads > 1 && multiply_adds >= min_parallel_multiply_adds;
  }

  void check_kv(tensor_view k, tensor_view v) const {
    ATTNBENCH_CHECK(m_prepared, internal, "prepare must be called first");
    check_kv_shapes(k, v, m_shape);
  }

  // Appends one group of G rows to the quantized store: keys per channel over the group's
  // tokens, values per token over the row's channels.
  void quantize_group(head_store& s, const kv_rows& rows) const {
    const int d = m_shape.head_dim, bits = m_config.bits;
    const auto n = static_cast<std::size_t>(rows.count);
    const std::size_t first_code = s.k_codes.size();
    s.k_codes.resize(first_code + n * static_cast<std::size_t>(m_row_bytes), 0);
    s.v_codes.resize(first_code + n * static_cast<std::size_t>(m_row_bytes), 0);
    for (int c = 0; c < d; ++c) {
      float lo = rows.k[c], hi = rows.k[c];
      for (std::size_t r = 1; r < n; ++r) {
        lo = std::min(lo, rows.k[r * rows.row_stride + static_cast<std::size_t>(c)]);
        hi = std::max(hi, rows.k[r * rows.row_stride + static_cast<std::size_t>(c)]);
      }
      const kv_quant::quant_range range = kv_quant::fit_range(lo, hi, bits);
      s.k_scale.push_back(range.scale);
      s.k_zero.push_back(range.zero);
      for (std::size_t r = 0; r < n; ++r)
        put_code(s.k_codes.data() + first_code + r * static_cast<std::size_t>(m_row_bytes), c,
                 kv_quant::encode(rows.k[r * rows.row_stride + static_cast<std::size_t>(c)], range,
                                  bits),
                 bits);
    }
    for (std::size_t r = 0; r < n; ++r) {
      const float* row = rows.v + r * rows.row_stride;
      const auto [lo, hi] = std::minmax_element(row, row + d);
      const kv_quant::quant_range range = kv_quant::fit_range(*lo, *hi, bits);
      s.v_scale.push_back(range.scale);
      s.v_zero.push_back(range.zero);
      std::uint8_t* codes =
          s.v_codes.data() + first_code + r * static_cast<std::size_t>(m_row_bytes);
      for (int c = 0; c < d; ++c) put_code(codes, c, kv_quant::encode(row[c], range, bits), bits);
    }
  }

  // Quantizes the tail's oldest G rows and drops them from the tail.
  void flush_group(head_store& s) const {
    const auto d = static_cast<std::size_t>(m_shape.head_dim);
    const auto g = static_cast<std::size_t>(m_config.group);
    quantize_group(s, kv_rows{s.tail_k.data(), s.tail_v.data(), d, m_config.group});
    s.tail_k.erase(s.tail_k.begin(), s.tail_k.begin() + static_cast<std::ptrdiff_t>(g * d));
    s.tail_v.erase(s.tail_v.begin(), s.tail_v.begin() + static_cast<std::ptrdiff_t>(g * d));
  }

  // Exact causal attention of every prompt query over the float32 prompt rows.
  void prompt_outputs(tensor_view q, tensor_view k, tensor_view v, tensor_view out) {
    const int tokens = k.tokens, kv_heads = m_shape.kv_heads, group = m_shape.group_size();
    const int d = m_shape.head_dim;
    check_prefill_shapes(q, out, tokens, m_shape);
    const auto multiply_adds = static_cast<std::uint64_t>(tokens) *
                               static_cast<std::uint64_t>(tokens + 1) / 2 *
                               static_cast<std::uint64_t>(m_shape.q_heads * d);
#pragma omp parallel for collapse(2) schedule(dynamic, 8) \
    num_threads(m_threads) if (parallel_worth_it(multiply_adds))
    for (int i = 0; i < tokens; ++i) {
      for (int h = 0; h < kv_heads; ++h) {
        online_softmax& sm = m_scratch[static_cast<std::size_t>(omp_get_thread_num())];
        sm.start(q.at(i, h * group), static_cast<std::size_t>(d), group, m_scale);
        sm.add(head_rows(k, v, h).slice(0, i + 1));
        sm.finish(out.at(i, h * group), static_cast<std::size_t>(d));
      }
    }
  }

  kv_quant::config m_config;
  model_shape m_shape;
  float m_scale = 1.0f;
  int m_threads = 1;
  std::int64_t m_row_bytes = 0;  // bytes of one row of codes
  std::vector<head_store> m_heads;
  std::int64_t m_length = 0;     // tokens in the sequence
  std::int64_t m_quantized = 0;  // leading tokens held quantized, the same for every head
  bool m_prepared = false;
  std::vector<online_softmax> m_scratch;                 // one per thread
  std::vector<std::vector<float>> m_block_k, m_block_v;  // per thread: [block_rows, head_dim]
  std::uint64_t m_keys_scored = 0;
  std::uint64_t m_kv_bytes_read = 0;
  std::uint64_t m_attend_calls = 0;
};

}  // namespace

ATTNBENCH_REGISTER_METHOD(make_method_info(
    "cpu",
    {"kv_quant", "KIVI: A Tuning-Free Asymmetric 2bit Quantization for KV Cache",
     "int8/int4 KV cache: keys per channel over G-token groups, values per token, the last R "
     "tokens in float32",
     "one shared float32 tail for K and V; values quantized over the whole row; float32 scales and "
     "zeros; 8 and 4 bits only (no 2-bit)",
     kv_quant::schema()},
    [](const param_values& values) -> std::unique_ptr<kv_method> {
      return std::make_unique<kv_quant_method>(kv_quant::make_config(values));
    }));

}  // namespace attnbench::cpu
