/// kvquant on the CPU: per KV head, packed NUQ codes of pre-RoPE keys and of values, fp16 ranges,
/// CSR tables of float32 outliers; decode attention dequantizes 64-row blocks, patches the
/// outliers, re-applies RoPE to the keys and folds the block into cpu::online_softmax.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "adapters/common/cpu/cache_method_cpu.hpp"
#include "adapters/common/cpu/calibration_cpu.hpp"
#include "adapters/common/cpu/cpu_attention.hpp"
#include "adapters/kv_quant/kv_quant.hpp"
#include "adapters/kvquant/kvquant.hpp"
#include "harness/error.hpp"

namespace attnbench::cpu {

namespace {

// Sparse float32 elements of a row-major table, CSR: row r's entries are
// [offsets[r], offsets[r + 1]) of channel / value.
struct outlier_table {
  std::vector<std::int32_t> offsets{0};  // [rows + 1]
  std::vector<std::uint16_t> channel;
  std::vector<float> value;

  void add(int c, float x) {
    channel.push_back(static_cast<std::uint16_t>(c));
    value.push_back(x);
  }
  void end_row() { offsets.push_back(static_cast<std::int32_t>(value.size())); }
  // Writes row r's outliers into out ([d]).
  void patch(std::int64_t r, float* out) const {
    for (auto i = offsets[static_cast<std::size_t>(r)];
         i < offsets[static_cast<std::size_t>(r) + 1]; ++i)
      out[channel[static_cast<std::size_t>(i)]] = value[static_cast<std::size_t>(i)];
  }
};

class kvquant_method final : public kv_method {
 public:
  explicit kvquant_method(kvquant::config config) : m_config(config) {}

  std::optional<std::string> unsupported_reason(const attention_problem& problem) const override {
    if (auto why = gqa_unsupported_reason(problem)) return why;
    if (auto why = calibration_unsupported_reason(problem, "kvquant")) return why;
    if (!problem.rope)
      return std::string(
          "kvquant quantizes pre-RoPE keys and needs the keys' RoPE, which this "
          "source does not give");
    if (problem.rope->rotary_dims > problem.shape.head_dim ||
        problem.rope->inv_freq.size() * 2 != static_cast<std::size_t>(problem.rope->rotary_dims))
      return std::string("kvquant: the RoPE does not fit head_dim");
    if (problem.shape.head_dim > 65536) return std::string("kvquant: head_dim above 65536");
    return std::nullopt;
  }

  void prepare(const attention_problem& problem, const exec_context& ctx) override {
    auto why = unsupported_reason(problem);
    ATTNBENCH_CHECK(!why, unsupported, *why);
    m_shape = problem.shape;
    m_scale = problem.softmax_scale();
    m_threads = std::max(1, ctx.threads);
    m_row_bytes = kvquant::code_bytes(m_shape.head_dim, m_config.bits);
    const int d = m_shape.head_dim, kv_heads = m_shape.kv_heads;
    const std::int64_t total = std::max(problem.max_tokens, problem.context_tokens);

    // RoPE tables of every position the sequence reaches: [total, rotary_dims / 2].
    m_pairs = problem.rope->rotary_dims / 2;
    m_cos.assign(static_cast<std::size_t>(total * m_pairs), 0.0f);
    m_sin.assign(m_cos.size(), 0.0f);
    for (std::int64_t p = 0; p < total; ++p)
      for (int j = 0; j < m_pairs; ++j) {
        const double angle =
            static_cast<double>(p) * problem.rope->inv_freq[static_cast<std::size_t>(j)];
        m_cos[static_cast<std::size_t>(p * m_pairs + j)] = static_cast<float>(std::cos(angle));
        m_sin[static_cast<std::size_t>(p * m_pairs + j)] = static_cast<float>(std::sin(angle));
      }

    calibrate(problem);

    m_heads.assign(static_cast<std::size_t>(kv_heads), head_store{});
    for (auto& h : m_heads) {
      h.k_codes.reserve(static_cast<std::size_t>(total * m_row_bytes));
      h.v_codes.reserve(static_cast<std::size_t>(total * m_row_bytes));
      h.v_lo.reserve(static_cast<std::size_t>(total));
      h.v_width.reserve(static_cast<std::size_t>(total));
    }
    m_scratch.clear();
    m_blocks.assign(static_cast<std::size_t>(m_threads), {});
    for (int t = 0; t < m_threads; ++t) {
      m_scratch.emplace_back(m_shape.group_size(), d);
      m_blocks[static_cast<std::size_t>(t)].k.resize(static_cast<std::size_t>(block_rows * d));
      m_blocks[static_cast<std::size_t>(t)].v.resize(static_cast<std::size_t>(block_rows * d));
    }
    m_length = 0;
    m_keys_scored = m_kv_bytes_read = m_attend_calls = 0;
    m_prepared = true;
  }

  void prefill(tensor_view q, tensor_view k, tensor_view v, tensor_view* maybe_out) override {
    check_kv(k, v);
    ATTNBENCH_CHECK(m_length == 0, internal, "prefill must be called once, before any append");
    if (maybe_out) prompt_outputs(q, k, v, *maybe_out);
    const auto multiply_adds = static_cast<std::uint64_t>(k.tokens) *
                               static_cast<std::uint64_t>(m_shape.kv_heads * m_shape.head_dim);
#pragma omp parallel for schedule(static) \
    num_threads(m_threads) if (parallel_worth_it(multiply_adds))
    for (int h = 0; h < m_shape.kv_heads; ++h) {
      std::vector<float> row(static_cast<std::size_t>(m_shape.head_dim));
      for (int t = 0; t < k.tokens; ++t) store(h, t, k.at(t, h), v.at(t, h), row.data());
    }
    m_length = k.tokens;
  }

  void append(tensor_view k, tensor_view v) override {
    check_kv(k, v);
    std::vector<float> row(static_cast<std::size_t>(m_shape.head_dim));
    for (int t = 0; t < k.tokens; ++t) {
      for (int h = 0; h < m_shape.kv_heads; ++h)
        store(h, m_length, k.at(t, h), v.at(t, h), row.data());
      ++m_length;
    }
  }

  void attend(tensor_view q, tensor_view out) override {
    ATTNBENCH_CHECK(m_prepared, internal, "prepare must be called first");
    const int n = q.tokens, kv_heads = m_shape.kv_heads, group = m_shape.group_size();
    const int d = m_shape.head_dim;
    check_attend_shapes(q, out, m_shape, m_length);

    // Bytes read by a query seeing `visible` rows of a head: both rows of codes, the value range,
    // the two CSR offsets and the outliers of every row, the key ranges and the level sets.
    std::uint64_t rows_total = 0;
    for (int i = 0; i < n; ++i) {
      const std::int64_t visible = m_length - n + i + 1;
      rows_total += static_cast<std::uint64_t>(visible);
      for (const auto& s : m_heads) {
        const auto outliers =
            static_cast<std::int64_t>(s.k_out.offsets[static_cast<std::size_t>(visible)] +
                                      s.v_out.offsets[static_cast<std::size_t>(visible)]);
        m_kv_bytes_read += static_cast<std::uint64_t>(visible * (2 * m_row_bytes + 4 + 8) +
                                                      6 * outliers + 4 * d + level_bytes());
      }
    }
    m_keys_scored += rows_total * static_cast<std::uint64_t>(kv_heads * group);
    m_attend_calls += static_cast<std::uint64_t>(n);

    const auto multiply_adds = rows_total * static_cast<std::uint64_t>(kv_heads * group * d);
#pragma omp parallel for schedule(static) \
    num_threads(m_threads) if (parallel_worth_it(multiply_adds))
    for (int h = 0; h < kv_heads; ++h) {
      const auto thread = static_cast<std::size_t>(omp_get_thread_num());
      online_softmax& sm = m_scratch[thread];
      block_scratch& b = m_blocks[thread];
      for (int i = 0; i < n; ++i) {
        const std::int64_t visible = m_length - n + i + 1;
        sm.start(q.at(i, h * group), static_cast<std::size_t>(d), group, m_scale);
        for (std::int64_t first = 0; first < visible; first += block_rows) {
          const int rows = static_cast<int>(std::min<std::int64_t>(block_rows, visible - first));
          for (int r = 0; r < rows; ++r) {
            load_key(h, first + r,
                     b.k.data() + static_cast<std::size_t>(r) * static_cast<std::size_t>(d));
            load_value(h, first + r,
                       b.v.data() + static_cast<std::size_t>(r) * static_cast<std::size_t>(d));
          }
          sm.add(kv_rows{b.k.data(), b.v.data(), static_cast<std::size_t>(d), rows});
        }
        sm.finish(out.at(i, h * group), static_cast<std::size_t>(d));
      }
    }
  }

  cache_stats stats() const override {
    cache_stats s;
    s.resident_tokens.assign(m_heads.size(), m_length);
    const std::int64_t d = m_shape.head_dim;
    std::int64_t bytes = level_bytes();
    for (const auto& h : m_heads) {
      const auto outliers = static_cast<std::int64_t>(h.k_out.value.size() + h.v_out.value.size());
      bytes +=
          2 * m_length * m_row_bytes + 4 * m_length + 4 * d + 6 * outliers + 8 * (m_length + 1);
    }
    s.resident_bytes = static_cast<std::uint64_t>(bytes);
    s.keys_scored = m_keys_scored;
    s.kv_bytes_read = m_kv_bytes_read;
    s.attend_calls = m_attend_calls;
    s.budget_tokens = -1;
    s.simulated = false;
    return s;
  }

 private:
  struct head_store {
    std::vector<float> k_lo, k_width;  // [head_dim]: calibrated key range per channel (fp16 values)
    std::vector<std::uint8_t> k_codes;         // [tokens, row_bytes]
    std::vector<std::uint8_t> v_codes;         // [tokens, row_bytes]
    std::vector<std::uint16_t> v_lo, v_width;  // [tokens]: value range per token, fp16 bits
    outlier_table k_out, v_out;                // pre-RoPE key and value outliers
  };
  struct block_scratch {
    std::vector<float> k, v;  // [block_rows, head_dim]
  };

  bool every_element_outlier() const { return m_config.outliers >= 1.0; }
  std::int64_t level_bytes() const { return 2 * (std::int64_t{1} << m_config.bits) * 4; }

  bool parallel_worth_it(std::uint64_t multiply_adds) const {
    return m_threads > 1 && multiply_adds >= min_parallel_multiply_adds;
  }

  void check_kv(tensor_view k, tensor_view v) const {
    ATTNBENCH_CHECK(m_prepared, internal, "prepare must be called first");
    check_kv_shapes(k, v, m_shape);
  }

  // Rotates x ([head_dim]) by +position (sign 1) or -position (sign -1) with the RoPE tables.
  void rotate(float* x, std::int64_t position, float sign) const {
    const float* c = m_cos.data() + position * m_pairs;
    const float* s = m_sin.data() + position * m_pairs;
    for (int j = 0; j < m_pairs; ++j) {
      const float a = x[j], b = x[j + m_pairs], sj = sign * s[j];
      x[j] = a * c[j] - b * sj;
      x[j + m_pairs] = b * c[j] + a * sj;
    }
  }

  // Rotates x by -position with the frequencies themselves (calibration positions may lie past
  // the tables).
  void unrotate_exact(float* x, std::int64_t position, const rotary_embedding& rope) const {
    for (int j = 0; j < m_pairs; ++j) {
      const double angle =
          -static_cast<double>(position) * rope.inv_freq[static_cast<std::size_t>(j)];
      const float c = static_cast<float>(std::cos(angle)), s = static_cast<float>(std::sin(angle));
      const float a = x[j], b = x[j + m_pairs];
      x[j] = a * c - b * s;
      x[j + m_pairs] = b * c + a * s;
    }
  }

  // Value range of a row without its outliers: low end and width, rounded to fp16.
  static std::pair<float, float> value_range(const float* x, int d, const std::vector<int>& out) {
    float lo = 0, hi = 0;
    bool any = false;
    for (int i = 0, o = 0; i < d; ++i) {
      if (o < static_cast<int>(out.size()) && out[static_cast<std::size_t>(o)] == i) {
        ++o;
        continue;
      }
      lo = any ? std::min(lo, x[i]) : x[i];
      hi = any ? std::max(hi, x[i]) : x[i];
      any = true;
    }
    const float lo16 = kv_quant::round_fp16(lo);
    return {lo16, kv_quant::round_fp16(hi - lo16)};
  }

  // Key ranges per head and channel, and the two level sets, from the layer's calibration.
  void calibrate(const attention_problem& problem) {
    const calibration_layer& c = problem.calibration->layer(problem.layer);
    check_calibration_layer(c, m_shape, problem.layer);
    const int d = m_shape.head_dim, tokens = c.k.tokens();
    const double f = m_config.outliers / 2;
    std::vector<float> key_samples, value_samples;
    m_ranges.assign(static_cast<std::size_t>(m_shape.kv_heads), {});
    for (int h = 0; h < m_shape.kv_heads; ++h) {
      const kv_rows rows = calibration_rows(c, h);
      std::vector<float> keys(static_cast<std::size_t>(tokens) * static_cast<std::size_t>(d));
      for (int t = 0; t < tokens; ++t) {
        float* x = keys.data() + static_cast<std::size_t>(t) * static_cast<std::size_t>(d);
        std::copy(rows.k + static_cast<std::size_t>(t) * rows.row_stride,
                  rows.k + static_cast<std::size_t>(t) * rows.row_stride + d, x);
        unrotate_exact(x, t, *problem.rope);
      }
      auto& range = m_ranges[static_cast<std::size_t>(h)];
      range.lo.assign(static_cast<std::size_t>(d), 0.0f);
      range.width.assign(static_cast<std::size_t>(d), 0.0f);
      std::vector<float> column(static_cast<std::size_t>(tokens));
      for (int ch = 0; ch < d; ++ch) {
        for (int t = 0; t < tokens; ++t)
          column[static_cast<std::size_t>(t)] = keys[static_cast<std::size_t>(t) * d + ch];
        std::sort(column.begin(), column.end());
        // The channel's range drops the `outliers / 2` lowest and highest calibration values.
        const auto cut = static_cast<std::size_t>(std::floor(f * (tokens - 1)));
        const float lo = kv_quant::round_fp16(column[cut]);
        const float width = kv_quant::round_fp16(column[column.size() - 1 - cut] - lo);
        range.lo[static_cast<std::size_t>(ch)] = lo;
        range.width[static_cast<std::size_t>(ch)] = std::max(0.0f, width);
        for (float x : column)
          if (x >= lo && x <= lo + width) key_samples.push_back(kvquant::normalize(x, lo, width));
      }
      for (int t = 0; t < tokens; ++t) {
        const float* x = rows.v + static_cast<std::size_t>(t) * rows.row_stride;
        const auto out = kvquant::row_outliers(x, d, m_config.outliers);
        const auto [lo, width] = value_range(x, d, out);
        for (int i = 0, o = 0; i < d; ++i) {
          if (o < static_cast<int>(out.size()) && out[static_cast<std::size_t>(o)] == i) {
            ++o;
            continue;
          }
          value_samples.push_back(kvquant::normalize(x[i], lo, width));
        }
      }
    }
    const int levels = 1 << m_config.bits;
    m_key_levels = kvquant::fit_levels(std::move(key_samples), levels);
    m_value_levels = kvquant::fit_levels(std::move(value_samples), levels);
  }

  // Quantizes the key and value of `position` into head h's store. scratch: [head_dim].
  void store(int h, std::int64_t position, const float* k, const float* v, float* scratch) {
    head_store& s = m_heads[static_cast<std::size_t>(h)];
    const auto& range = m_ranges[static_cast<std::size_t>(h)];
    const int d = m_shape.head_dim, bits = m_config.bits;
    const bool exact = every_element_outlier();

    std::copy(k, k + d, scratch);
    rotate(scratch, position, -1.0f);
    const std::size_t first = s.k_codes.size();
    s.k_codes.resize(first + static_cast<std::size_t>(m_row_bytes), 0);
    for (int c = 0; c < d; ++c) {
      const float x = scratch[c], lo = range.lo[static_cast<std::size_t>(c)];
      const float width = range.width[static_cast<std::size_t>(c)];
      if (exact || x < lo || x > lo + width)
        s.k_out.add(c, x);
      else
        kvquant::put_code(s.k_codes.data() + first, c,
                          static_cast<unsigned>(kvquant::nearest_level(
                              m_key_levels, kvquant::normalize(x, lo, width))),
                          bits);
    }
    s.k_out.end_row();

    std::vector<int> out;
    if (exact) {
      out.resize(static_cast<std::size_t>(d));
      for (int i = 0; i < d; ++i) out[static_cast<std::size_t>(i)] = i;
    } else {
      out = kvquant::row_outliers(v, d, m_config.outliers);
    }
    const auto [lo, width] = value_range(v, d, out);
    s.v_lo.push_back(kv_quant::to_fp16_bits(lo));
    s.v_width.push_back(kv_quant::to_fp16_bits(width));
    const std::size_t vfirst = s.v_codes.size();
    s.v_codes.resize(vfirst + static_cast<std::size_t>(m_row_bytes), 0);
    for (int i = 0, o = 0; i < d; ++i) {
      if (o < static_cast<int>(out.size()) && out[static_cast<std::size_t>(o)] == i) {
        ++o;
        s.v_out.add(i, v[i]);
        continue;
      }
      kvquant::put_code(s.v_codes.data() + vfirst, i,
                        static_cast<unsigned>(kvquant::nearest_level(
                            m_value_levels, kvquant::normalize(v[i], lo, width))),
                        bits);
    }
    s.v_out.end_row();
  }

  // The key of row r of head h, dequantized, patched and rotated back to its position. out: [d].
  void load_key(int h, std::int64_t r, float* out) const {
    const head_store& s = m_heads[static_cast<std::size_t>(h)];
    const auto& range = m_ranges[static_cast<std::size_t>(h)];
    const std::uint8_t* codes = s.k_codes.data() + static_cast<std::size_t>(r * m_row_bytes);
    for (int c = 0; c < m_shape.head_dim; ++c)
      out[c] = kvquant::denormalize(m_key_levels[kvquant::get_code(codes, c, m_config.bits)],
                                    range.lo[static_cast<std::size_t>(c)],
                                    range.width[static_cast<std::size_t>(c)]);
    s.k_out.patch(r, out);
    rotate(out, r, 1.0f);
  }

  // The value of row r of head h. out: [d].
  void load_value(int h, std::int64_t r, float* out) const {
    const head_store& s = m_heads[static_cast<std::size_t>(h)];
    const float lo = kv_quant::from_fp16_bits(s.v_lo[static_cast<std::size_t>(r)]);
    const float width = kv_quant::from_fp16_bits(s.v_width[static_cast<std::size_t>(r)]);
    const std::uint8_t* codes = s.v_codes.data() + static_cast<std::size_t>(r * m_row_bytes);
    for (int i = 0; i < m_shape.head_dim; ++i)
      out[i] = kvquant::denormalize(m_value_levels[kvquant::get_code(codes, i, m_config.bits)], lo,
                                    width);
    s.v_out.patch(r, out);
  }

  // Exact causal attention of every prompt query over the float32 prompt rows.
  void prompt_outputs(tensor_view q, tensor_view k, tensor_view v, tensor_view out) {
    exact_prompt_outputs(q, k, v, out, m_shape, m_scale, m_threads,
                         parallel_worth_it(prompt_multiply_adds(k.tokens, m_shape)), m_scratch);
  }

  struct key_range {
    std::vector<float> lo, width;  // [head_dim], fp16 values
  };

  kvquant::config m_config;
  model_shape m_shape;
  float m_scale = 1.0f;
  int m_threads = 1;
  std::int64_t m_row_bytes = 0;
  int m_pairs = 0;                                  // rotary_dims / 2
  std::vector<float> m_cos, m_sin;                  // [positions, pairs]
  std::vector<key_range> m_ranges;                  // per KV head
  std::vector<float> m_key_levels, m_value_levels;  // [2^bits], sorted, in [-1, 1] units
  std::vector<head_store> m_heads;
  std::int64_t m_length = 0;
  bool m_prepared = false;
  std::vector<online_softmax> m_scratch;  // one per thread
  std::vector<block_scratch> m_blocks;    // one per thread
  std::uint64_t m_keys_scored = 0;
  std::uint64_t m_kv_bytes_read = 0;
  std::uint64_t m_attend_calls = 0;
};

}  // namespace

ATTNBENCH_REGISTER_METHOD(make_method_info(
    "cpu",
    {"kvquant",
     "KVQuant: Towards 10 Million Context Length LLM Inference with KV Cache Quantization",
     "pre-RoPE keys per channel, values per token, as indices of 2^b non-uniform levels fitted "
     "on the calibration pass; the `outliers` share kept exactly in a sparse float32 table",
     "plain k-means levels (the paper weights by Fisher information); key ranges per channel "
     "from calibration quantiles, value ranges per token; no full-precision sink token or "
     "Q-Norm; needs the source's RoPE and calibration",
     kvquant::schema()},
    [](const param_values& values) -> std::unique_ptr<kv_method> {
      return std::make_unique<kvquant_method>(kvquant::make_config(values));
    }));

}  // namespace attnbench::cpu
