/// kv_quant on the GPU (adapters/kv_quant/kv_quant.hpp for the rule, kv_quant_cpu.cpp for the CPU
/// twin): the same quantized prefixes, ranges and codes (keys per channel over G-token groups,
/// values per token over channel groups, fp16 or float32 scales and zeros; or fp8 e4m3 with a scale
/// per head), quantized on the device as rows arrive (prefill and every append), and a fused
/// split-KV decode that dequantizes in registers (adapters/kv_quant/kv_quant_kernels.cuh).
/// Differences from the CPU twin: the full-precision tails are bf16 (CPU: float32) and inputs are
/// rounded to bf16 before quantizing (ranges and codes are those of the bf16 values); keys are
/// dequantized in fp16 and multiplied by fp16 queries on tensor cores, values enter the PV product
/// as exact integer codes with P scaled by their per-token scales in fp16 (float32 accumulation
/// throughout); with scales=fp32 the key scales are rounded to fp16 for that arithmetic. The
/// tensor-core tiles need group (and value_group, when set below head_dim) to be a multiple of 16
/// dividing into 16-row tiles; other values are skipped. Also the latency suite's timed op (decode
/// only, contiguous bf16 cache): one decode step of the batch over a prefilled quantized cache;
/// kv_bytes counts what the kernel reads (codes, the scales of the groups touched, bf16 tails).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "adapters/common/cuda/cache_method_cuda.hpp"
#include "adapters/common/cuda/dispatch.cuh"
#include "adapters/common/cuda/timed_ops_cuda.cuh"
#include "adapters/kv_quant/kv_quant.hpp"
#include "adapters/kv_quant/kv_quant_cuda.hpp"
#include "adapters/kv_quant/kv_quant_kernels.cuh"

namespace attnbench::cuda {
namespace {

using kvq::bf16;
using kvq::code_format;

code_format format_of(const kv_quant::config& c) {
  if (c.fp8) return code_format::e4m3;
  return c.bits == 8 ? code_format::u8 : c.bits == 4 ? code_format::u4 : code_format::u2;
}

/// Why the CUDA kernels cannot run config `c` at head_dim d, or nothing.
std::optional<std::string> config_unsupported(const kv_quant::config& c, int d) {
  if (c.group % 16 != 0)
    return "cuda kv_quant needs group a multiple of 16 (16-row tensor-core tiles), not " +
           std::to_string(c.group);
  const int channels = kv_quant::value_group_channels(d, c);
  if (channels % 16 != 0 || d % channels != 0)
    return "cuda kv_quant needs value_group a multiple of 16 dividing head_dim, not " +
           std::to_string(c.value_group);
  return std::nullopt;
}

/// Scratch of the decode's split merge.
struct merge_workspace {
  device_buffer<float> part_out, part_lse;
  device_buffer<unsigned> arrivals;
};

/// The quantized store of `segments` (sequence, KV head) pairs on the device, and its decode.
class quant_store {
 public:
  kvq::store_view view;

  void reset(const kv_quant::config& c, int segments, int d, std::int64_t max_rows) {
    m_config = c;
    kvq::store_view& s = view;
    s.layout = kvq::tile_layout{c.bits, c.fp8, d};
    s.segments = segments;
    s.key_group = static_cast<int>(c.group);
    s.value_channels = kv_quant::value_group_channels(d, c);
    s.value_groups = kv_quant::value_groups(d, c);
    s.half_scales = c.fp16_scales;
    const std::int64_t groups = std::max<std::int64_t>(1, (max_rows + c.group - 1) / c.group);
    const std::int64_t rows = groups * c.group;
    s.code_words = rows / 16 * s.layout.tile_words();
    s.k_scale_elems = groups * 2 * d;
    s.v_scale_elems = rows * s.value_groups * 2;
    const std::size_t n = static_cast<std::size_t>(segments);
    m_k_codes.resize(n * s.code_words);
    m_v_codes.resize(n * s.code_words);
    ATTNBENCH_CUDA(cudaMemset(m_k_codes.data(), 0, m_k_codes.bytes()));
    ATTNBENCH_CUDA(cudaMemset(m_v_codes.data(), 0, m_v_codes.bytes()));
    const std::size_t scale_bytes = c.fp16_scales ? 2 : 4;
    if (!c.fp8) {
      m_k_scales.resize(n * s.k_scale_elems * scale_bytes);
      m_v_scales.resize(n * s.v_scale_elems * scale_bytes);
    }
    m_fp8.resize(2 * n);
    const std::vector<float> ones(2 * n, 1.0f);
    ATTNBENCH_CUDA(cudaMemcpy(m_fp8.data(), ones.data(), m_fp8.bytes(), cudaMemcpyHostToDevice));
    // The ring holds every row not yet quantized as key or value: at most the larger window
    // (kv_quant_cpu.cpp's reserve: R + G, or R_k; R_v + 1) while a row is being added.
    const std::int64_t key_window = c.key_residual > 0 ? c.key_residual : c.residual + c.group;
    const std::int64_t value_window = c.value_residual >= 0 ? c.value_residual + 1 : key_window;
    const std::int64_t window =
        std::min(std::max<std::int64_t>(key_window, value_window), max_rows + 1);
    s.ring = 16;
    while (s.ring < window) s.ring *= 2;
    m_k_ring.resize(n * s.ring * d);
    m_v_ring.resize(n * s.ring * d);
    s.k_codes = m_k_codes.data();
    s.v_codes = m_v_codes.data();
    s.k_scales = m_k_scales.data();
    s.v_scales = m_v_scales.data();
    s.fp8_scales = m_fp8.data();
    s.k_ring = m_k_ring.data();
    s.v_ring = m_v_ring.data();
    m_keys = m_values = 0;
    ATTNBENCH_CUDA(cudaDeviceSynchronize());
  }

  /// Sets the fp8 scales from rows [0, rows) of k and v (the prompt).
  void set_fp8_scales(const kvq::row_source& k, const kvq::row_source& v, std::int64_t rows,
                      cudaStream_t stream) {
    if (!m_config.fp8 || rows <= 0) return;
    kvq::fp8_scales_kernel<<<view.segments, 256, 0, stream>>>(view, k, v, rows);
    ATTNBENCH_CUDA_LAUNCHED();
  }

  /// Quantizes keys up to `keys` and values up to `values` (prefix lengths) from the sources.
  void quantize(const kvq::row_source& k, const kvq::row_source& v, std::int64_t keys,
                std::int64_t values, cudaStream_t stream) {
    const int d = view.layout.d;
    if (keys > m_keys) {
      const std::int64_t first = m_keys / view.key_group, count = (keys - m_keys) / view.key_group;
      const dim3 grid(static_cast<unsigned>(count), static_cast<unsigned>(view.segments));
      kvq::quantize_keys_kernel<<<grid, d, 0, stream>>>(view, k, first);
      ATTNBENCH_CUDA_LAUNCHED();
      m_keys = keys;
    }
    if (values > m_values) {
      const std::int64_t tiles = (values + 15) / 16 - m_values / 16;
      const dim3 grid(static_cast<unsigned>(tiles), static_cast<unsigned>(view.segments));
      kvq::quantize_values_kernel<<<grid, 128, 0, stream>>>(view, v, m_values, values);
      ATTNBENCH_CUDA_LAUNCHED();
      m_values = values;
    }
  }

  /// Copies source rows [src_first, src_first + count) into the rings at sequence rows dst_first...
  void store_rows(const kvq::row_source& k, const kvq::row_source& v, std::int64_t src_first,
                  std::int64_t dst_first, std::int64_t count, cudaStream_t stream) {
    if (count <= 0) return;
    const dim3 grid(static_cast<unsigned>(count), static_cast<unsigned>(view.segments));
    kvq::ring_store_kernel<<<grid, view.layout.d, 0, stream>>>(view, k, v, src_first, dst_first);
    ATTNBENCH_CUDA_LAUNCHED();
  }

  /// The rings as row sources (for quantizing rows as they leave the windows).
  kvq::row_source ring_source(bool keys) const {
    kvq::row_source r;
    r.base = keys ? view.k_ring : view.v_ring;
    r.segment_stride = static_cast<std::int64_t>(view.ring) * view.layout.d;
    r.row_stride = view.layout.d;
    r.row_mask = view.ring - 1;
    return r;
  }

  std::int64_t keys() const { return m_keys; }
  std::int64_t values() const { return m_values; }

  /// One decode step: q [batch, q_heads, d] bf16 -> out [batch, q_heads, d] float, each query
  /// seeing `length` rows.
  void decode(const bf16* q, float* out, int batch, int kv_heads, int q_heads, std::int64_t length,
              float scale, int sms, cudaStream_t stream) {
    kvq::decode_params p;
    p.store = view;
    p.q = q;
    p.out = out;
    p.batch = batch;
    p.kv_heads = kv_heads;
    p.q_heads = q_heads;
    p.length = length;
    p.keys_held = m_keys;
    p.values_held = m_values;
    p.main_rows = std::min({m_keys, m_values, length}) / 16 * 16;
    p.scale = scale;
    const int d = view.layout.d;
    dispatch_head_dim(d, [&](auto dim) {
      constexpr int D = decltype(dim)::value;
      switch (format_of(m_config)) {
        case code_format::u8:
          return launch<code_format::u8, D>(p, sms, stream);
        case code_format::u4:
          return launch<code_format::u4, D>(p, sms, stream);
        case code_format::u2:
          return launch<code_format::u2, D>(p, sms, stream);
        case code_format::e4m3:
          return launch<code_format::e4m3, D>(p, sms, stream);
      }
    });
  }

  /// Device bytes held (codes, scales, rings, merge scratch).
  std::uint64_t bytes() const {
    return m_k_codes.bytes() + m_v_codes.bytes() + m_k_scales.bytes() + m_v_scales.bytes() +
           m_fp8.bytes() + m_k_ring.bytes() + m_v_ring.bytes() + m_ws.part_out.bytes() +
           m_ws.part_lse.bytes();
  }

  /// Host copies of the device buffers (dump_kv_quant).
  template <class T>
  static std::vector<T> download(const device_buffer<T>& b) {
    std::vector<T> host(b.size());
    if (!host.empty())
      ATTNBENCH_CUDA(cudaMemcpy(host.data(), b.data(), b.bytes(), cudaMemcpyDeviceToHost));
    return host;
  }
  std::vector<kv_quant_head_dump> dump(std::int64_t length) const;

 private:
  template <code_format F, int D>
  void launch(kvq::decode_params& p, int sms, cudaStream_t stream) {
    auto kernel = kvq::decode_kernel<F, D>;
    static const int per_sm = [&] {
      int n = 0;
      ATTNBENCH_CUDA(
          cudaOccupancyMaxActiveBlocksPerMultiprocessor(&n, kernel, kvq::decode_threads, 0));
      return std::max(1, n);
    }();
    // Splits: whole key groups per CTA, as many CTAs as fill one wave of the GPU (decode.cuh's
    // plan_decode), at least 4 groups per split (one per warp).
    const std::int64_t tiles = p.main_rows / 16, per_group = view.key_group / 16;
    const std::int64_t groups = (tiles + per_group - 1) / per_group;
    const int pairs = p.batch * p.kv_heads;
    std::int64_t splits = 0;
    if (groups > 0) {
      const std::int64_t want = std::max(1, per_sm * sms / pairs);
      splits = std::max<std::int64_t>(1, std::min(want, (groups + 3) / 4));
      p.groups_per_split = static_cast<int>((groups + splits - 1) / splits);
      splits = (groups + p.groups_per_split - 1) / p.groups_per_split;
    }
    p.splits = static_cast<int>(splits);
    const std::size_t slots = static_cast<std::size_t>(p.batch) * p.q_heads * (splits + 1);
    if (m_ws.part_lse.size() < slots) {
      m_ws.part_lse.resize(slots);
      m_ws.part_out.resize(slots * D);
    }
    if (m_ws.arrivals.size() < static_cast<std::size_t>(pairs)) {
      m_ws.arrivals.resize(static_cast<std::size_t>(pairs));
      ATTNBENCH_CUDA(cudaMemset(m_ws.arrivals.data(), 0, m_ws.arrivals.bytes()));
      ATTNBENCH_CUDA(cudaDeviceSynchronize());
    }
    p.part_out = m_ws.part_out.data();
    p.part_lse = m_ws.part_lse.data();
    p.arrivals = m_ws.arrivals.data();
    const dim3 grid(static_cast<unsigned>(splits + 1), static_cast<unsigned>(p.kv_heads),
                    static_cast<unsigned>(p.batch));
    kernel<<<grid, kvq::decode_threads, 0, stream>>>(p);
    ATTNBENCH_CUDA_LAUNCHED();
  }

  kv_quant::config m_config;
  device_buffer<std::uint32_t> m_k_codes, m_v_codes;
  device_buffer<std::uint8_t> m_k_scales, m_v_scales;  // __half or float elements
  device_buffer<float> m_fp8;
  device_buffer<bf16> m_k_ring, m_v_ring;
  merge_workspace m_ws;
  std::int64_t m_keys = 0, m_values = 0;  // quantized prefixes
};

std::vector<kv_quant_head_dump> quant_store::dump(std::int64_t length) const {
  const kvq::store_view& s = view;
  const int d = s.layout.d, bits = s.layout.bits;
  const auto k_codes = download(m_k_codes), v_codes = download(m_v_codes);
  const auto k_scales = download(m_k_scales), v_scales = download(m_v_scales);
  const auto fp8 = download(m_fp8);
  const auto k_ring = download(m_k_ring), v_ring = download(m_v_ring);
  auto scale_at = [&](const std::vector<std::uint8_t>& raw, std::int64_t i) {
    if (s.half_scales) {
      __half h;
      std::memcpy(&h, raw.data() + 2 * i, 2);
      return __half2float(h);
    }
    float f;
    std::memcpy(&f, raw.data() + 4 * i, 4);
    return f;
  };
  auto code_at = [&](const std::vector<std::uint32_t>& codes, int seg, std::int64_t row, int lane,
                     int pair, int e) {
    int word = 0, bit = 0;
    s.layout.slot(lane, pair, e, word, bit);
    const std::uint32_t w = codes[seg * s.code_words + row / 16 * s.layout.tile_words() + word];
    return static_cast<std::uint8_t>((w >> bit) & (bits == 8 ? 0xffu : (1u << bits) - 1));
  };
  std::vector<kv_quant_head_dump> heads(static_cast<std::size_t>(s.segments));
  for (int seg = 0; seg < s.segments; ++seg) {
    kv_quant_head_dump& h = heads[static_cast<std::size_t>(seg)];
    h.fp8_k = fp8[2 * seg];
    h.fp8_v = fp8[2 * seg + 1];
    for (std::int64_t row = 0; row < m_keys; ++row)
      for (int c = 0; c < d; ++c) {
        int lane = 0, pair = 0, e = 0;
        kvq::key_slot_of(static_cast<int>(row % 16), c, lane, pair, e);
        h.k_codes.push_back(code_at(k_codes, seg, row, lane, pair, e));
      }
    for (std::int64_t row = 0; row < m_values; ++row)
      for (int c = 0; c < d; ++c) {
        int lane = 0, pair = 0, e = 0;
        kvq::value_slot_of(static_cast<int>(row % 16), c, lane, pair, e);
        h.v_codes.push_back(code_at(v_codes, seg, row, lane, pair, e));
      }
    if (!m_config.fp8) {
      for (std::int64_t g = 0; g < m_keys / s.key_group; ++g)
        for (int c = 0; c < d; ++c) {
          const std::int64_t at = seg * s.k_scale_elems + g * 2 * d + kvq::key_scale_index(c, d);
          h.k_scale.push_back(scale_at(k_scales, at));
          h.k_zero.push_back(scale_at(k_scales, at + d / 4));
        }
      for (std::int64_t row = 0; row < m_values; ++row)
        for (int g = 0; g < s.value_groups; ++g) {
          const std::int64_t at = seg * s.v_scale_elems + (row * s.value_groups + g) * 2;
          h.v_scale.push_back(scale_at(v_scales, at));
          h.v_zero.push_back(scale_at(v_scales, at + 1));
        }
    }
    auto tail = [&](const std::vector<bf16>& ring, std::int64_t first, std::vector<float>& out) {
      for (std::int64_t row = first; row < length; ++row)
        for (int c = 0; c < d; ++c)
          out.push_back(__bfloat162float(
              ring[(seg * static_cast<std::int64_t>(s.ring) + (row & (s.ring - 1))) * d + c]));
    };
    tail(k_ring, m_keys, h.k_tail);
    tail(v_ring, m_values, h.v_tail);
  }
  return heads;
}

/// The CUDA adapter: one segment per KV head (batch 1).
class kv_quant_cuda_method final : public kv_method {
 public:
  explicit kv_quant_cuda_method(const param_values& values)
      : m_config(kv_quant::make_config(values)) {}

  std::optional<std::string> unsupported_reason(const attention_problem& problem) const override {
    if (auto why = cuda_unsupported_reason(problem)) return why;
    return config_unsupported(m_config, problem.shape.head_dim);
  }

  void prepare(const attention_problem& problem, const exec_context& ctx) override {
    auto why = unsupported_reason(problem);
    ATTNBENCH_CHECK(!why, unsupported, *why);
    m_shape = problem.shape;
    m_scale = problem.softmax_scale();
    m_stream = static_cast<cudaStream_t>(ctx.stream);
    m_sms = multiprocessors();
    const std::int64_t total = std::max(problem.max_tokens, problem.context_tokens);
    m_store.reset(m_config, m_shape.kv_heads, m_shape.head_dim, total);
    m_length = 0;
    m_keys_scored = m_kv_bytes_read = m_attend_calls = 0;
    m_prepared = true;
  }

  void prefill(tensor_view q, tensor_view k, tensor_view v, tensor_view* maybe_out) override {
    check_prefill_inputs(m_prepared, m_length, m_shape, k, v);
    const int tokens = k.tokens;
    upload(k, m_k_in);
    upload(v, m_v_in);
    if (maybe_out) {
      // The prompt's own outputs in full precision (bf16 K/V), as KIVI's prefill and the CPU twin.
      ATTNBENCH_CHECK(q.tokens == tokens && maybe_out->tokens == tokens, internal,
                      "prefill q/out shapes do not match");
      upload(q, m_q_in);
      const std::size_t n = maybe_out->size();
      if (m_out16.size() < n) m_out16.resize(n);
      if (m_out.size() < n) m_out.resize(n);
      flash_prefill<element>(prompt_prefill_args(m_shape, m_scale, m_q_in.data(), m_k_in.data(),
                                                 m_v_in.data(), m_out16.data(), tokens),
                             m_stream);
      convert(m_out16.data(), m_out.data(), n, m_stream);
      download(m_out, *maybe_out);
    }
    const kvq::row_source ks = input_source(m_k_in), vs = input_source(m_v_in);
    m_store.set_fp8_scales(ks, vs, tokens, m_stream);
    const std::int64_t qk = kv_quant::quantized_keys(tokens, m_config);
    const std::int64_t qv = kv_quant::quantized_values(tokens, m_config);
    m_store.quantize(ks, vs, qk, qv, m_stream);
    const std::int64_t first = std::min(qk, qv);
    m_store.store_rows(ks, vs, first, first, tokens - first, m_stream);
    m_length = tokens;
    ATTNBENCH_CUDA(cudaStreamSynchronize(m_stream));
  }

  // Token by token, as the CPU twin: each row enters the rings, then the rows leaving the
  // windows are quantized from there.
  void append(tensor_view k, tensor_view v) override {
    ATTNBENCH_CHECK(m_prepared, internal, "prepare must be called first");
    const int n = k.tokens, d = m_shape.head_dim;
    ATTNBENCH_CHECK(k.heads == m_shape.kv_heads && k.head_dim == d && v.tokens == n, internal,
                    "append k/v shapes do not match the problem");
    upload(k, m_k_in);
    upload(v, m_v_in);
    const kvq::row_source ks = input_source(m_k_in), vs = input_source(m_v_in);
    for (int t = 0; t < n; ++t) {
      m_store.store_rows(ks, vs, t, m_length, 1, m_stream);
      ++m_length;
      m_store.quantize(m_store.ring_source(true), m_store.ring_source(false),
                       kv_quant::quantized_keys(m_length, m_config),
                       kv_quant::quantized_values(m_length, m_config), m_stream);
    }
    ATTNBENCH_CUDA(cudaStreamSynchronize(m_stream));
  }

  void attend(tensor_view q, tensor_view out) override {
    ATTNBENCH_CHECK(m_prepared, internal, "prepare must be called first");
    const int n = q.tokens, hq = m_shape.q_heads, hk = m_shape.kv_heads, d = m_shape.head_dim;
    ATTNBENCH_CHECK(q.heads == hq && q.head_dim == d && out.tokens == n && n <= m_length, internal,
                    "attend q/out shapes do not match the problem");
    upload(q, m_q_in);
    if (m_out.size() < out.size()) m_out.resize(out.size());
    for (int i = 0; i < n; ++i) {
      // Query i sits at position m_length - n + i and sees the rows up to it.
      const std::int64_t visible = m_length - n + i + 1;
      const std::size_t at = static_cast<std::size_t>(i) * hq * d;
      m_store.decode(m_q_in.data() + at, m_out.data() + at, 1, hk, hq, visible, m_scale, m_sms,
                     m_stream);
      m_keys_scored += static_cast<std::uint64_t>(visible) * hq;
      m_kv_bytes_read +=
          kv_quant::query_read_bytes(visible, m_store.keys(), m_store.values(), d, m_config, 2) *
          static_cast<std::uint64_t>(hk);
    }
    m_attend_calls += static_cast<std::uint64_t>(n);
    download(m_out, out);
  }

  cache_stats stats() const override {
    cache_stats s;
    s.resident_tokens.assign(static_cast<std::size_t>(m_shape.kv_heads), m_length);
    s.resident_bytes = static_cast<std::uint64_t>(m_shape.kv_heads) *
                       kv_quant::head_bytes(m_length, m_shape.head_dim, m_config, 2);
    s.keys_scored = m_keys_scored;
    s.kv_bytes_read = m_kv_bytes_read;
    s.attend_calls = m_attend_calls;
    s.budget_tokens = -1;
    s.simulated = false;
    return s;
  }

  std::vector<kv_quant_head_dump> dump() const { return m_store.dump(m_length); }

 private:
  // The uploaded [tokens, kv_heads, d] rows as a source: segment = KV head.
  kvq::row_source input_source(const device_buffer<element>& buf) const {
    kvq::row_source r;
    r.base = buf.data();
    r.segment_stride = m_shape.head_dim;
    r.row_stride = static_cast<std::int64_t>(m_shape.kv_heads) * m_shape.head_dim;
    return r;
  }
  void upload(tensor_view t, device_buffer<element>& dev) {
    upload_rows(t, dev, m_staging, m_stream);
  }
  void download(const device_buffer<float>& dev, tensor_view out) {
    download_rows(dev, out, m_stream);
  }

  kv_quant::config m_config;
  model_shape m_shape;
  float m_scale = 1.0f;
  cudaStream_t m_stream = nullptr;
  int m_sms = 1;
  bool m_prepared = false;
  std::int64_t m_length = 0;
  quant_store m_store;
  device_buffer<float> m_staging, m_out;
  device_buffer<element> m_q_in, m_k_in, m_v_in, m_out16;
  std::uint64_t m_keys_scored = 0, m_kv_bytes_read = 0, m_attend_calls = 0;
};

/// Decode step of the batch over a prefilled quantized cache of `length` hashed bf16 rows per
/// (sequence, KV head), quantized once when the op is built.
class kv_quant_op final : public timed_op {
 public:
  kv_quant_op(const op_shape& s, const param_values& values)
      : m_shape(s), m_config(kv_quant::make_config(values)) {
    ATTNBENCH_CHECK(s.phase == "decode", unsupported,
                    "cuda kv_quant times decode only (prefill is dense flash attention)");
    ATTNBENCH_CHECK(s.dtype == "bf16", unsupported,
                    "cuda kv_quant keeps bf16 tails, not " << s.dtype);
    ATTNBENCH_CHECK(s.page_size == 0, unsupported, "cuda kv_quant reads a contiguous cache only");
    check_op_shape(s);
    const auto why = config_unsupported(m_config, s.head_dim);
    ATTNBENCH_CHECK(!why, unsupported, *why);
    const int segments = s.batch * s.kv_heads, d = s.head_dim;
    m_store.reset(m_config, segments, d, s.length);
    {
      // Hashed K/V [segments, length, d], quantized and copied into the rings, then freed.
      const std::size_t elems = static_cast<std::size_t>(segments) * s.length * d;
      device_buffer<bf16> k(elems), v(elems);
      fill_hash(k.data(), elems, 4u, 1.0f, nullptr);
      fill_hash(v.data(), elems, 5u, 1.0f, nullptr);
      kvq::row_source ks, vs;
      ks.base = k.data();
      vs.base = v.data();
      ks.segment_stride = vs.segment_stride = s.length * d;
      ks.row_stride = vs.row_stride = d;
      m_store.set_fp8_scales(ks, vs, s.length, nullptr);
      const std::int64_t qk = kv_quant::quantized_keys(s.length, m_config);
      const std::int64_t qv = kv_quant::quantized_values(s.length, m_config);
      m_store.quantize(ks, vs, qk, qv, nullptr);
      const std::int64_t first = std::min(qk, qv);
      m_store.store_rows(ks, vs, first, first, s.length - first, nullptr);
      ATTNBENCH_CUDA(cudaDeviceSynchronize());
    }
    m_q.resize(static_cast<std::size_t>(s.batch) * s.q_heads * d);
    m_out.resize(m_q.size());
    fill_hash(m_q.data(), m_q.size(), 6u, 1.0f, nullptr);
    ATTNBENCH_CUDA(cudaDeviceSynchronize());
    m_sms = multiprocessors();
  }
  void run(void* stream) override {
    m_store.decode(m_q.data(), m_out.data(), m_shape.batch, m_shape.kv_heads, m_shape.q_heads,
                   m_shape.length, 1.0f / std::sqrt(static_cast<float>(m_shape.head_dim)), m_sms,
                   static_cast<cudaStream_t>(stream));
  }
  double flops() const override {
    return 4.0 * m_shape.batch * m_shape.q_heads * static_cast<double>(m_shape.length) *
           m_shape.head_dim;
  }
  double kv_bytes() const override {
    return static_cast<double>(m_shape.batch) * m_shape.kv_heads *
           static_cast<double>(kv_quant::query_read_bytes(
               m_shape.length, m_store.keys(), m_store.values(), m_shape.head_dim, m_config, 2));
  }
  std::uint64_t resident_bytes() const override {
    return m_store.bytes() + m_q.bytes() + m_out.bytes();
  }

 private:
  op_shape m_shape;
  kv_quant::config m_config;
  quant_store m_store;
  device_buffer<bf16> m_q;
  device_buffer<float> m_out;
  int m_sms = 1;
};

}  // namespace

std::optional<std::vector<kv_quant_head_dump>> dump_kv_quant(const kv_method& method) {
  const auto* m = dynamic_cast<const kv_quant_cuda_method*>(&method);
  if (!m) return std::nullopt;
  return m->dump();
}

}  // namespace attnbench::cuda

ATTNBENCH_REGISTER_METHOD([] {
  auto info = attnbench::cuda::cuda_method_info<attnbench::cuda::kv_quant_cuda_method>(
      "kv_quant", "KIVI: A Tuning-Free Asymmetric 2bit Quantization for KV Cache",
      "int8/int4/int2 (or fp8 e4m3) KV cache quantized on the device, keys per channel over "
      "G-token groups, values per token; fused dequantizing split-KV decode on tensor cores, bf16 "
      "recent tokens",
      attnbench::kv_quant::schema());
  info.check = attnbench::kv_quant::check_params;
  info.simplified =
      "as the CPU twin, with bf16 recent tokens (CPU: float32), keys dequantized in fp16 and "
      "multiplied on tensor cores, P scaled by the value scales in fp16; group and value_group "
      "must be multiples of 16";
  return info;
}());

ATTNBENCH_REGISTER_TIMED_OP("kv_quant", "cuda",
                            [](const attnbench::method_instance& method,
                               const attnbench::op_shape& shape, const attnbench::exec_context&) {
                              return std::unique_ptr<attnbench::timed_op>(
                                  std::make_unique<attnbench::cuda::kv_quant_op>(shape,
                                                                                 method.params));
                            });
