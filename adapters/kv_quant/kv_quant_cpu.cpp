/// kv_quant on the CPU: a quantized KV store per head (packed codes plus fp16 or float32 scales
/// and zeros, and float32 key and value tails) and decode attention that dequantizes 64-row
/// blocks into scratch rows and folds them into cpu::online_softmax.
#include <omp.h>

#include <algorithm>
#include <cmath>
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

// Stores code c of element i of a row: 8 / bits codes per byte, element i in byte
// i / (8 / bits) at bit offset bits * (i mod (8 / bits)) (low bits first).
inline void put_code(std::uint8_t* row, int i, std::uint8_t c, int bits) {
  if (bits == 8) {
    row[i] = c;
    return;
  }
  const int per_byte = 8 / bits;
  row[i / per_byte] = static_cast<std::uint8_t>(row[i / per_byte] | (c << (bits * (i % per_byte))));
}

// Code of element i of a 2-bit row.
inline std::uint8_t code2(const std::uint8_t* row, int i) {
  return static_cast<std::uint8_t>((row[i / 4] >> (2 * (i % 4))) & 3);
}

// Dequantizes key rows [first_row, first_row + rows): row r's codes are at codes + r * row_bytes
// and it uses the per-channel scales and zeros of its group (first_row + r) / group, stored at
// scales + (group_index - first_row / group) * d. out: [rows, d].
void dequantize_keys(const std::uint8_t* codes, std::int64_t row_bytes, std::int64_t first_row,
                     int rows, std::int64_t group, const float* scales, const float* zeros, int d,
                     int bits, float* out) {
  const std::int64_t first_group = first_row / group;
  for (int r = 0; r < rows; ++r) {
    const std::int64_t row = first_row + r;
    const float* s = scales + (row / group - first_group) * d;
    const float* z = zeros + (row / group - first_group) * d;
    const std::uint8_t* c = codes + static_cast<std::size_t>(r * row_bytes);
    float* o = out + static_cast<std::size_t>(r) * static_cast<std::size_t>(d);
    if (bits == 8) {
#pragma omp simd
      for (int i = 0; i < d; ++i) o[i] = static_cast<float>(c[i]) * s[i] + z[i];
    } else if (bits == 2) {
      for (int i = 0; i < d; ++i) o[i] = static_cast<float>(code2(c, i)) * s[i] + z[i];
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
    } else if (bits == 2) {
      for (int i = 0; i < d; ++i) o[i] = static_cast<float>(code2(c, i)) * s + z;
    } else {
      for (int j = 0; j < d / 2; ++j) {
        o[2 * j] = static_cast<float>(c[j] & 15) * s + z;
        o[2 * j + 1] = static_cast<float>(c[j] >> 4) * s + z;
      }
      if (d % 2) o[d - 1] = static_cast<float>(c[d / 2] & 15) * s + z;
    }
  }
}

// Dequantizes `rows` fp8 e4m3 rows of one per-head scale. out: [rows, d].
void dequantize_fp8(const std::uint8_t* codes, std::int64_t row_bytes, int rows, float scale, int d,
                    float* out) {
  for (int r = 0; r < rows; ++r) {
    const std::uint8_t* c = codes + static_cast<std::size_t>(r * row_bytes);
    float* o = out + static_cast<std::size_t>(r) * static_cast<std::size_t>(d);
    for (int i = 0; i < d; ++i) o[i] = kv_quant::from_e4m3(c[i]) * scale;
  }
}

// Code of element i of a packed row of `bits`-bit codes.
inline std::uint8_t code_at(const std::uint8_t* row, int i, int bits) {
  if (bits == 8) return row[i];
  if (bits == 2) return code2(row, i);
  return static_cast<std::uint8_t>((row[i / 2] >> (4 * (i & 1))) & 15);
}

// Dequantizes `rows` value rows quantized in `groups` channel groups of `channels` channels:
// element i of row r uses scale[r * groups + i / channels]. out: [rows, d].
void dequantize_value_groups(const std::uint8_t* codes, std::int64_t row_bytes, int rows,
                             const float* scales, const float* zeros, int d, int bits, int channels,
                             int groups, float* out) {
  for (int r = 0; r < rows; ++r) {
    const std::uint8_t* c = codes + static_cast<std::size_t>(r * row_bytes);
    const float* s = scales + static_cast<std::size_t>(r) * static_cast<std::size_t>(groups);
    const float* z = zeros + static_cast<std::size_t>(r) * static_cast<std::size_t>(groups);
    float* o = out + static_cast<std::size_t>(r) * static_cast<std::size_t>(d);
    for (int i = 0; i < d; ++i)
      o[i] = static_cast<float>(code_at(c, i, bits)) * s[i / channels] + z[i / channels];
  }
}

// Scales or zero points of a store: fp16 bits or float32, as the config says.
class scale_column {
 public:
  void configure(bool fp16) {
    m_fp16 = fp16;
    m_half.clear();
    m_full.clear();
  }
  void reserve(std::size_t n) { m_fp16 ? m_half.reserve(n) : m_full.reserve(n); }
  // x is already what the store holds (rounded to fp16 when fp16).
  void push(float x) {
    if (m_fp16)
      m_half.push_back(kv_quant::to_fp16_bits(x));
    else
      m_full.push_back(x);
  }
  // Entries [first, first + n) as float32: in place for float32, else converted into scratch.
  const float* read(std::size_t first, std::size_t n, float* scratch) const {
    if (!m_fp16) return m_full.data() + first;
    for (std::size_t i = 0; i < n; ++i) scratch[i] = kv_quant::from_fp16_bits(m_half[first + i]);
    return scratch;
  }

 private:
  bool m_fp16 = false;
  std::vector<std::uint16_t> m_half;
  std::vector<float> m_full;
};

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
    m_value_channels = kv_quant::value_group_channels(m_shape.head_dim, m_config);
    m_value_groups = kv_quant::value_groups(m_shape.head_dim, m_config);

    // Reserve what the whole sequence will hold, so the timed calls do not reallocate.
    const std::int64_t total = std::max(problem.max_tokens, problem.context_tokens);
    const std::int64_t qk = kv_quant::quantized_keys(total, m_config);
    const std::int64_t qv = kv_quant::quantized_values(total, m_config);
    const std::int64_t key_window =
        m_config.key_residual > 0 ? m_config.key_residual : m_config.residual + m_config.group;
    const std::int64_t value_window =
        m_config.value_residual >= 0 ? m_config.value_residual + 1 : key_window;
    const auto d = static_cast<std::size_t>(m_shape.head_dim);
    m_heads.assign(static_cast<std::size_t>(m_shape.kv_heads), head_store{});
    for (auto& h : m_heads) {
      for (scale_column* c : {&h.k_scale, &h.k_zero, &h.v_scale, &h.v_zero})
        c->configure(m_config.fp16_scales);
      h.k_codes.reserve(static_cast<std::size_t>(qk * m_row_bytes));
      h.v_codes.reserve(static_cast<std::size_t>(qv * m_row_bytes));
      h.k_scale.reserve(static_cast<std::size_t>(qk / m_config.group) * d);
      h.k_zero.reserve(static_cast<std::size_t>(qk / m_config.group) * d);
      h.v_scale.reserve(static_cast<std::size_t>(qv * m_value_groups));
      h.v_zero.reserve(static_cast<std::size_t>(qv * m_value_groups));
      h.tail_k.reserve(static_cast<std::size_t>(std::min(total, key_window)) * d);
      h.tail_v.reserve(static_cast<std::size_t>(std::min(total, value_window)) * d);
    }

    m_scratch.clear();
    m_threads_scratch.assign(static_cast<std::size_t>(m_threads), {});
    for (int t = 0; t < m_threads; ++t) {
      m_scratch.emplace_back(m_shape.group_size(), m_shape.head_dim);
      thread_scratch& ts = m_threads_scratch[static_cast<std::size_t>(t)];
      ts.block_k.resize(block_rows * d);
      ts.block_v.resize(block_rows * d);
      // A block of block_rows rows touches at most block_rows key groups.
      ts.k_scale.resize(block_rows * d);
      ts.k_zero.resize(block_rows * d);
      ts.v_scale.resize(static_cast<std::size_t>(block_rows * m_value_groups));
      ts.v_zero.resize(static_cast<std::size_t>(block_rows * m_value_groups));
    }
    m_length = m_quantized_k = m_quantized_v = 0;
    m_keys_scored = m_kv_bytes_read = m_attend_calls = 0;
    m_prepared = true;
  }

  void prefill(tensor_view q, tensor_view k, tensor_view v, tensor_view* maybe_out) override {
    check_kv(k, v);
    ATTNBENCH_CHECK(m_length == 0, internal, "prefill must be called once, before any append");
    if (maybe_out) prompt_outputs(q, k, v, *maybe_out);

    // The prompt's quantized prefixes (whole key groups; values per token) are quantized, the
    // rest is copied in float32.
    const std::int64_t qk = kv_quant::quantized_keys(k.tokens, m_config);
    const std::int64_t qv = kv_quant::quantized_values(k.tokens, m_config);
    const int d = m_shape.head_dim, kv_heads = m_shape.kv_heads;
    const auto multiply_adds = static_cast<std::uint64_t>(k.tokens) *
                               static_cast<std::uint64_t>(kv_heads) * static_cast<std::uint64_t>(d);
#pragma omp parallel for schedule(static) \
    num_threads(m_threads) if (parallel_worth_it(multiply_adds))
    for (int h = 0; h < kv_heads; ++h) {
      head_store& s = m_heads[static_cast<std::size_t>(h)];
      const kv_rows all = head_rows(k, v, h);
      if (m_config.fp8) {
        // The per-head scales of fp8: the prompt's largest |x| of keys and of values.
        float amax_k = 0, amax_v = 0;
        for (std::int64_t r = 0; r < k.tokens; ++r)
          for (int i = 0; i < d; ++i) {
            const auto at =
                static_cast<std::size_t>(r) * all.row_stride + static_cast<std::size_t>(i);
            amax_k = std::max(amax_k, std::fabs(all.k[at]));
            amax_v = std::max(amax_v, std::fabs(all.v[at]));
          }
        s.fp8_k = kv_quant::fp8_scale(amax_k, m_config);
        s.fp8_v = kv_quant::fp8_scale(amax_v, m_config);
      }
      // In the shared-tail case keys and values are quantized group by group together, as
      // before K and V had their own windows (the same floats, the same order).
      for (std::int64_t first = 0; first < qk; first += m_config.group)
        quantize_keys(s, all.k, all.row_stride, m_config.group, first);
      quantize_values(s, all.v, all.row_stride, qv);
      for (std::int64_t r = qk; r < k.tokens; ++r) {
        const auto offset = static_cast<std::size_t>(r) * all.row_stride;
        s.tail_k.insert(s.tail_k.end(), all.k + offset, all.k + offset + d);
      }
      for (std::int64_t r = qv; r < k.tokens; ++r) {
        const auto offset = static_cast<std::size_t>(r) * all.row_stride;
        s.tail_v.insert(s.tail_v.end(), all.v + offset, all.v + offset + d);
      }
    }
    m_quantized_k = qk;
    m_quantized_v = qv;
    m_length = k.tokens;
  }

  // Token by token, so that a multi-token append quantizes exactly the rows that decoding the
  // same tokens one at a time would.
  void append(tensor_view k, tensor_view v) override {
    check_kv(k, v);
    const int d = m_shape.head_dim;
    const auto du = static_cast<std::size_t>(d);
    for (int t = 0; t < k.tokens; ++t) {
      for (int h = 0; h < m_shape.kv_heads; ++h) {
        head_store& s = m_heads[static_cast<std::size_t>(h)];
        s.tail_k.insert(s.tail_k.end(), k.at(t, h), k.at(t, h) + d);
        s.tail_v.insert(s.tail_v.end(), v.at(t, h), v.at(t, h) + d);
      }
      ++m_length;
      // The oldest full-precision keys (a group, or KIVI's R_k at once) and values (one token,
      // or the keys' group) leave their windows: quantize them and drop them from the tails.
      const std::int64_t qk = kv_quant::quantized_keys(m_length, m_config);
      const std::int64_t qv = kv_quant::quantized_values(m_length, m_config);
      for (auto& s : m_heads) {
        if (qk > m_quantized_k) {
          for (std::int64_t first = 0; first < qk - m_quantized_k; first += m_config.group)
            quantize_keys(s, s.tail_k.data(), du, m_config.group, first);
          s.tail_k.erase(s.tail_k.begin(),
                         s.tail_k.begin() + static_cast<std::ptrdiff_t>(
                                                static_cast<std::size_t>(qk - m_quantized_k) * du));
        }
        if (qv > m_quantized_v) {
          quantize_values(s, s.tail_v.data(), du, qv - m_quantized_v);
          s.tail_v.erase(s.tail_v.begin(),
                         s.tail_v.begin() + static_cast<std::ptrdiff_t>(
                                                static_cast<std::size_t>(qv - m_quantized_v) * du));
        }
      }
      m_quantized_k = qk;
      m_quantized_v = qv;
    }
  }

  void attend(tensor_view q, tensor_view out) override {
    ATTNBENCH_CHECK(m_prepared, internal, "prepare must be called first");
    const int n = q.tokens, kv_heads = m_shape.kv_heads, group = m_shape.group_size();
    const int d = m_shape.head_dim;
    check_attend_shapes(q, out, m_shape, m_length);

    // Query i sits at position m_length - n + i and sees the tokens up to it: a prefix of the
    // quantized keys and values, then prefixes of the float32 tails. Bytes read: the codes of
    // every quantized row seen, its value scale and zero, the key scales and zeros of every
    // group it touches, and the float32 tail rows seen.
    std::uint64_t rows_total = 0;
    for (int i = 0; i < n; ++i) {
      const std::int64_t visible = m_length - n + i + 1;
      rows_total += static_cast<std::uint64_t>(visible);
      m_kv_bytes_read +=
          kv_quant::query_read_bytes(visible, m_quantized_k, m_quantized_v, d, m_config) *
          static_cast<std::uint64_t>(kv_heads);
    }
    m_keys_scored += rows_total * static_cast<std::uint64_t>(kv_heads * group);
    m_attend_calls += static_cast<std::uint64_t>(n);

    const auto multiply_adds = rows_total * static_cast<std::uint64_t>(kv_heads * group * d);
#pragma omp parallel for schedule(static) \
    num_threads(m_threads) if (parallel_worth_it(multiply_adds))
    for (int h = 0; h < kv_heads; ++h) {
      const auto thread = static_cast<std::size_t>(omp_get_thread_num());
      online_softmax& sm = m_scratch[thread];
      thread_scratch& ts = m_threads_scratch[thread];
      const head_store& s = m_heads[static_cast<std::size_t>(h)];
      // Each query dequantizes its visible rows again: decode sends one query per call, so
      // there is nothing to share, and the scratch stays one block (in L1) whatever the length.
      for (int i = 0; i < n; ++i) {
        const std::int64_t visible = m_length - n + i + 1;
        const std::int64_t qk = std::min(visible, m_quantized_k);
        const std::int64_t qv = std::min(visible, m_quantized_v);
        const std::int64_t both_tails = std::max(qk, qv);
        sm.start(q.at(i, h * group), static_cast<std::size_t>(d), group, m_scale);
        // Rows where both, then one of key and value are quantized, a block at a time; the
        // other one of a row past its prefix is read in place from its float32 tail.
        const std::int64_t bounds[] = {0, std::min(qk, qv), both_tails};
        for (int part = 0; part < 2; ++part)
          for (std::int64_t first = bounds[part]; first < bounds[part + 1]; first += block_rows) {
            const int rows =
                static_cast<int>(std::min<std::int64_t>(block_rows, bounds[part + 1] - first));
            sm.add(kv_rows{key_block(s, ts, first, rows, qk), value_block(s, ts, first, rows, qv),
                           static_cast<std::size_t>(d), rows});
          }
        if (visible > both_tails)
          sm.add(kv_rows{s.tail_k.data() + (both_tails - m_quantized_k) * d,
                         s.tail_v.data() + (both_tails - m_quantized_v) * d,
                         static_cast<std::size_t>(d), visible - both_tails});
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
  // One KV head's store. Quantized keys are the sequence's first m_quantized_k tokens and the
  // key tail the rest; the same for values with m_quantized_v; all in position order.
  struct head_store {
    std::vector<std::uint8_t> k_codes;  // [quantized keys, row_bytes]
    scale_column k_scale, k_zero;       // [quantized keys / group, head_dim]: per channel per group
    std::vector<std::uint8_t> v_codes;  // [quantized values, row_bytes]
    scale_column v_scale, v_zero;       // [quantized values, value groups]: per token and group
    std::vector<float> tail_k;          // [key tail tokens, head_dim], float32
    std::vector<float> tail_v;          // [value tail tokens, head_dim], float32
    float fp8_k = 1, fp8_v = 1;         // fp8: the per-head key and value scales
  };

  // Per-thread scratch of attend: dequantized blocks and their scales as float32.
  struct thread_scratch {
    std::vector<float> block_k, block_v;  // [block_rows, head_dim]
    std::vector<float> k_scale, k_zero;   // [block_rows, head_dim]: the block's key groups
    std::vector<float> v_scale, v_zero;   // [block_rows, value groups]
  };

  bool parallel_worth_it(std::uint64_t multiply_adds) const {
    return m_threads > 1 && multiply_adds >= min_parallel_multiply_adds;
  }

  void check_kv(tensor_view k, tensor_view v) const {
    ATTNBENCH_CHECK(m_prepared, internal, "prepare must be called first");
    check_kv_shapes(k, v, m_shape);
  }

  // Keys of rows [first, first + rows) when the first `qk` are quantized (the rows all on one
  // side of qk): dequantized into the scratch, or the tail rows in place past qk.
  const float* key_block(const head_store& s, thread_scratch& ts, std::int64_t first, int rows,
                         std::int64_t qk) const {
    const int d = m_shape.head_dim;
    if (first >= qk) return s.tail_k.data() + (first - m_quantized_k) * d;
    ATTNBENCH_ASSERT(first + rows <= qk);
    if (m_config.fp8) {
      dequantize_fp8(s.k_codes.data() + first * m_row_bytes, m_row_bytes, rows, s.fp8_k, d,
                     ts.block_k.data());
      return ts.block_k.data();
    }
    const std::int64_t g0 = first / m_config.group;
    const std::int64_t groups = (first + rows - 1) / m_config.group - g0 + 1;
    const auto count = static_cast<std::size_t>(groups * d);
    const auto at = static_cast<std::size_t>(g0 * d);
    dequantize_keys(s.k_codes.data() + first * m_row_bytes, m_row_bytes, first, rows,
                    m_config.group, s.k_scale.read(at, count, ts.k_scale.data()),
                    s.k_zero.read(at, count, ts.k_zero.data()), d, m_config.bits,
                    ts.block_k.data());
    return ts.block_k.data();
  }

  // Values of rows [first, first + rows) when the first `qv` are quantized (likewise).
  const float* value_block(const head_store& s, thread_scratch& ts, std::int64_t first, int rows,
                           std::int64_t qv) const {
    const int d = m_shape.head_dim;
    if (first >= qv) return s.tail_v.data() + (first - m_quantized_v) * d;
    ATTNBENCH_ASSERT(first + rows <= qv);
    if (m_config.fp8) {
      dequantize_fp8(s.v_codes.data() + first * m_row_bytes, m_row_bytes, rows, s.fp8_v, d,
                     ts.block_v.data());
      return ts.block_v.data();
    }
    const auto at = static_cast<std::size_t>(first * m_value_groups);
    const auto count = static_cast<std::size_t>(rows * m_value_groups);
    const float* scales = s.v_scale.read(at, count, ts.v_scale.data());
    const float* zeros = s.v_zero.read(at, count, ts.v_zero.data());
    const std::uint8_t* codes = s.v_codes.data() + first * m_row_bytes;
    if (m_value_groups == 1)
      dequantize_values(codes, m_row_bytes, rows, scales, zeros, d, m_config.bits,
                        ts.block_v.data());
    else
      dequantize_value_groups(codes, m_row_bytes, rows, scales, zeros, d, m_config.bits,
                              m_value_channels, m_value_groups, ts.block_v.data());
    return ts.block_v.data();
  }

  // Appends the G keys at rows [first, first + G) of `k` (row stride `stride`) to the quantized
  // store, per channel over the group's tokens.
  void quantize_keys(head_store& s, const float* k, std::size_t stride, std::int64_t group,
                     std::int64_t first) const {
    const int d = m_shape.head_dim;
    const auto n = static_cast<std::size_t>(group);
    const float* rows = k + static_cast<std::size_t>(first) * stride;
    const std::size_t first_code = s.k_codes.size();
    s.k_codes.resize(first_code + n * static_cast<std::size_t>(m_row_bytes), 0);
    if (m_config.fp8) {
      for (std::size_t r = 0; r < n; ++r)
        for (int c = 0; c < d; ++c)
          s.k_codes[first_code + r * static_cast<std::size_t>(m_row_bytes) +
                    static_cast<std::size_t>(c)] =
              kv_quant::to_e4m3(rows[r * stride + static_cast<std::size_t>(c)] / s.fp8_k);
      return;
    }
    for (int c = 0; c < d; ++c) {
      float lo = rows[c], hi = rows[c];
      for (std::size_t r = 1; r < n; ++r) {
        lo = std::min(lo, rows[r * stride + static_cast<std::size_t>(c)]);
        hi = std::max(hi, rows[r * stride + static_cast<std::size_t>(c)]);
      }
      const kv_quant::quant_range range = kv_quant::stored_range(lo, hi, m_config);
      s.k_scale.push(range.scale);
      s.k_zero.push(range.zero);
      for (std::size_t r = 0; r < n; ++r)
        put_code(
            s.k_codes.data() + first_code + r * static_cast<std::size_t>(m_row_bytes), c,
            kv_quant::encode(rows[r * stride + static_cast<std::size_t>(c)], range, m_config.bits),
            m_config.bits);
    }
  }

  // Appends the first `count` value rows of `v` (row stride `stride`), each over its channel
  // groups (the whole row unless value_group is set).
  void quantize_values(head_store& s, const float* v, std::size_t stride,
                       std::int64_t count) const {
    const int d = m_shape.head_dim, bits = m_config.bits, channels = m_value_channels;
    const std::size_t first_code = s.v_codes.size();
    s.v_codes.resize(first_code + static_cast<std::size_t>(count * m_row_bytes), 0);
    for (std::size_t r = 0; r < static_cast<std::size_t>(count); ++r) {
      const float* row = v + r * stride;
      std::uint8_t* codes =
          s.v_codes.data() + first_code + r * static_cast<std::size_t>(m_row_bytes);
      if (m_config.fp8) {
        for (int c = 0; c < d; ++c) codes[c] = kv_quant::to_e4m3(row[c] / s.fp8_v);
        continue;
      }
      for (int begin = 0; begin < d; begin += channels) {
        const int end = std::min(d, begin + channels);
        const auto [lo, hi] = std::minmax_element(row + begin, row + end);
        const kv_quant::quant_range range = kv_quant::stored_range(*lo, *hi, m_config);
        s.v_scale.push(range.scale);
        s.v_zero.push(range.zero);
        for (int c = begin; c < end; ++c)
          put_code(codes, c, kv_quant::encode(row[c], range, bits), bits);
      }
    }
  }

  // Exact causal attention of every prompt query over the float32 prompt rows.
  void prompt_outputs(tensor_view q, tensor_view k, tensor_view v, tensor_view out) {
    exact_prompt_outputs(q, k, v, out, m_shape, m_scale, m_threads,
                         parallel_worth_it(prompt_multiply_adds(k.tokens, m_shape)), m_scratch);
  }

  kv_quant::config m_config;
  model_shape m_shape;
  float m_scale = 1.0f;
  int m_threads = 1;
  std::int64_t m_row_bytes = 0;  // bytes of one row of codes
  int m_value_channels = 1;      // channels per value quantization group
  int m_value_groups = 1;        // value quantization groups per row
  std::vector<head_store> m_heads;
  std::int64_t m_length = 0;       // tokens in the sequence
  std::int64_t m_quantized_k = 0;  // leading keys held quantized, the same for every head
  std::int64_t m_quantized_v = 0;  // leading values held quantized
  bool m_prepared = false;
  std::vector<online_softmax> m_scratch;          // one per thread
  std::vector<thread_scratch> m_threads_scratch;  // one per thread
  std::uint64_t m_keys_scored = 0;
  std::uint64_t m_kv_bytes_read = 0;
  std::uint64_t m_attend_calls = 0;
};

method_info kv_quant_info() {
  method_info info = make_method_info(
      "cpu",
      {"kv_quant", "KIVI: A Tuning-Free Asymmetric 2bit Quantization for KV Cache",
       "int8/int4/int2 (or fp8 e4m3) KV cache: keys per channel over G-token groups, values per "
       "token, fp16 "
       "scales and zeros, recent tokens in float32 (one shared tail, or KIVI's key and value "
       "windows)",
       "by default values are quantized over the whole row (value_group gives KIVI's channel "
       "groups) and K and V share one tail of R to R + G - 1 tokens (key_residual / "
       "value_residual give KIVI's separate windows); full precision is float32",
       kv_quant::schema()},
      [](const param_values& values) -> std::unique_ptr<kv_method> {
        return std::make_unique<kv_quant_method>(kv_quant::make_config(values));
      });
  info.check = kv_quant::check_params;
  // Nothing is evicted: every token held, in the form its age gives it, and read by the last query.
  info.footprint = [](const param_values& values, const footprint_query& query) {
    const kv_quant::config c = kv_quant::make_config(values);
    const std::int64_t length = query.tokens;
    kv_footprint f;
    f.resident_tokens = static_cast<double>(length) * query.kv_heads;
    f.resident_bytes =
        static_cast<double>(kv_quant::head_bytes(length, query.head_dim, c, query.element_bytes)) *
        query.kv_heads;
    f.read_bytes =
        static_cast<double>(kv_quant::query_read_bytes(length, kv_quant::quantized_keys(length, c),
                                                       kv_quant::quantized_values(length, c),
                                                       query.head_dim, c, query.element_bytes)) *
        query.kv_heads;
    f.keys_scored = static_cast<double>(length) * query.q_heads;
    return f;
  };
  return info;
}

}  // namespace

ATTNBENCH_REGISTER_METHOD(kv_quant_info());

}  // namespace attnbench::cpu
