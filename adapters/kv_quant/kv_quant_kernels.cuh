/// kv_quant's CUDA kernels (adapters/kv_quant/kv_quant.hpp for the rule): the device layout of the
/// quantized cache, the quantizers that write it when rows arrive, and the decode that reads it.
///
/// Layout. Rows are grouped in tiles of 16 tokens. A tile's codes are stored in the order the
/// tensor cores consume them: lane l of a warp reads its own 16-byte (or 8-byte) chunks, which hold
/// exactly its elements of the m16n8k16 A fragments, so a tile is dequantized in registers with no
/// shuffles or shared memory. Keys feed S^T = K Q^T (A = 16 rows x 16 channels per step), values
/// feed O^T = V^T P^T (A = 16 channels x 16 rows). A lane's element pair (two elements of one
/// 32-bit fragment register) sits in one 32-bit word: int8 pair j of a word = bytes (j, j + 2),
/// int4 = nibbles (j, j + 4), int2 = 2-bit fields (j, j + 8), fp8 = bytes (2j, 2j + 1); each
/// becomes a half2 with one byte permute or one LOP3 plus one HSUB2 (the 0x6400 exponent trick
/// of LMDeploy / FasterTransformer dequantizers) or one e4m3x2 conversion. Key scales and zeros
/// (per channel per key group) are stored per group in the order lanes of the same thread-in-quad
/// need them; value scales and zeros (per token per channel group) as (scale, zero) pairs per row.
///
/// Decode ("Flash-Decoding" split-KV, as adapters/common/cuda/decode.cuh): one CTA per (split of
/// the quantized rows, KV head, sequence) plus one CTA per (KV head, sequence) for the rest (the
/// rows past the last whole tile of both prefixes: the bf16 tails, read from ring buffers, and
/// rows where only one of key and value is quantized). Each warp of a split CTA walks whole key
/// groups: keys dequantized with HFMA2 into fp16 A fragments and multiplied by the group's queries
/// (fp16, pre-scaled; heads padded to the mma's 8 columns) on tensor cores; an online softmax per
/// head over the S^T fragments; values enter the PV mma as raw integer codes, their per-token
/// scales folded into P (P'_r = s_r p_r) and their zeros summed apart (sum_r z_r p_r, added to
/// every channel of the value group at the end). Partial outputs are merged by their log-sum-exps
/// in the last CTA of each (sequence, KV head) to finish. C++17.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "adapters/common/cuda/cuda_common.cuh"
#include "adapters/common/cuda/mma.cuh"
#include "adapters/common/cuda/online_softmax.cuh"

namespace attnbench::cuda::kvq {

using bf16 = __nv_bfloat16;

/// The stored element: unsigned integer codes of 8, 4 or 2 bits, or fp8 e4m3.
enum class code_format { u8, u4, u2, e4m3 };

__host__ __device__ constexpr int format_bits(code_format f) {
  return f == code_format::u4 ? 4 : f == code_format::u2 ? 2 : 8;
}

/// Where a lane's element pairs live in a tile of 16 rows of `d` channels.
struct tile_layout {
  int bits = 8;
  bool fp8 = false;
  int d = 128;

  /// Element pairs per 32-bit word, words per lane per tile, words per lane-contiguous chunk.
  __host__ __device__ int pairs_per_word() const { return 16 / bits; }
  __host__ __device__ int words_per_lane() const { return d * bits / 64; }
  __host__ __device__ int chunk_words() const {
    return words_per_lane() < 4 ? words_per_lane() : 4;
  }
  __host__ __device__ int tile_words() const { return 32 * words_per_lane(); }
  /// Word (within the tile) and bit of element e of pair `pair` of `lane`.
  __host__ __device__ void slot(int lane, int pair, int e, int& word, int& bit) const {
    const int ppw = pairs_per_word(), w = pair / ppw, j = pair % ppw, cw = chunk_words();
    word = ((w / cw) * 32 + lane) * cw + w % cw;
    bit = (fp8 ? 2 * j + e : j + ppw * e) * bits;
  }
  /// The inverse of slot's word: the lane and the lane's word index of tile word `m`.
  __host__ __device__ void word_owner(int m, int& lane, int& w) const {
    const int cw = chunk_words(), chunk = m / (32 * cw), rem = m % (32 * cw);
    lane = rem / cw;
    w = chunk * cw + rem % cw;
  }
};

/// Row (within the tile) and channel of element e of key pair `pair` of `lane`: A fragment of
/// S^T = K Q^T at k-step pair / 4, register pair % 4 (rows g, g + 8; channels 2t, 2t + 1, + 8).
__host__ __device__ inline void key_element(int lane, int pair, int e, int& row, int& dim) {
  const int g = lane / 4, t = lane % 4, ks = pair / 4, i = pair % 4;
  row = g + 8 * (i & 1);
  dim = 16 * ks + 2 * t + 8 * (i >> 1) + e;
}
/// Value pair: A fragment of O^T = V^T P^T at m-tile pair / 4 (channels g, g + 8; rows 2t, 2t + 1,
/// + 8).
__host__ __device__ inline void value_element(int lane, int pair, int e, int& row, int& dim) {
  const int g = lane / 4, t = lane % 4, mi = pair / 4, i = pair % 4;
  dim = 16 * mi + g + 8 * (i & 1);
  row = 2 * t + 8 * (i >> 1) + e;
}
/// Inverses: the lane, pair and element of (row within the tile, channel).
__host__ __device__ inline void key_slot_of(int row, int dim, int& lane, int& pair, int& e) {
  const int ks = dim / 16, dd = dim % 16;
  e = dd % 2;
  lane = 4 * (row % 8) + (dd % 8) / 2;
  pair = 4 * ks + row / 8 + 2 * (dd / 8);
}
__host__ __device__ inline void value_slot_of(int row, int dim, int& lane, int& pair, int& e) {
  const int mi = dim / 16, dd = dim % 16;
  e = row % 2;
  lane = 4 * (dd % 8) + (row % 8) / 2;
  pair = 4 * mi + dd / 8 + 2 * (row / 8);
}

/// Index of channel `dim`'s scale (zero: + d / 4) in a key group's 2d scale elements: the group
/// holds, per thread-in-quad t (= (dim % 8) / 2), d / 4 scales then d / 4 zeros, as the half2
/// pairs (2t, 2t + 1) + 16 ks + 8 hi in order ks, hi.
__host__ __device__ inline int key_scale_index(int dim, int d) {
  const int t = (dim % 8) / 2, w = 2 * (dim / 16) + (dim % 16) / 8;
  return t * (d / 2) + 2 * w + dim % 2;
}

/// A bf16 row source: element (segment, row, dim) at base + segment * segment_stride +
/// (row & row_mask) * row_stride + dim (a prompt [tokens, kv_heads, d] or a ring buffer).
struct row_source {
  const bf16* base = nullptr;
  std::int64_t segment_stride = 0, row_stride = 0, row_mask = -1;
  __device__ float at(int segment, std::int64_t row, int dim) const {
    return __bfloat162float(base[segment * segment_stride + (row & row_mask) * row_stride + dim]);
  }
};

/// The quantized store of `segments` (sequence, KV head) pairs, as the kernels see it.
struct store_view {
  tile_layout layout;
  int segments = 1;
  int key_group = 32;        // tokens per key group (a multiple of 16)
  int value_channels = 128;  // channels per value group (a multiple of 16 dividing d)
  int value_groups = 1;
  bool half_scales = true;
  std::uint32_t* k_codes = nullptr;  // [segments][tiles][tile_words]
  std::uint32_t* v_codes = nullptr;
  std::int64_t code_words = 0;  // per segment
  void* k_scales = nullptr;     // [segments][key groups][2 d] (__half or float)
  void* v_scales = nullptr;     // [segments][rows][value groups][2]
  std::int64_t k_scale_elems = 0, v_scale_elems = 0;  // per segment
  float* fp8_scales = nullptr;                        // [segments][2]: keys, values
  bf16* k_ring = nullptr;  // [segments][ring][d]: rows at row & (ring - 1)
  bf16* v_ring = nullptr;
  int ring = 1;

  __device__ float scale_at(const void* base, std::int64_t i) const {
    return half_scales ? __half2float(static_cast<const __half*>(base)[i])
                       : static_cast<const float*>(base)[i];
  }
  __device__ void put_scale(void* base, std::int64_t i, float x) const {
    if (half_scales)
      static_cast<__half*>(base)[i] = __float2half_rn(x);
    else
      static_cast<float*>(base)[i] = x;
  }
};

/// The stored value of a scale or zero: rounded to fp16 when the store keeps fp16.
__device__ __forceinline__ float stored(float x, bool half) {
  return half ? __half2float(__float2half_rn(x)) : x;
}

/// kv_quant::encode with the same float operations (no contraction): the nearest code, ties up.
__device__ __forceinline__ std::uint32_t encode(float x, float scale, float zero, int max_code) {
  if (!(scale > 0.0f)) return 0;
  const float code = floorf(__fadd_rn(__fdiv_rn(__fsub_rn(x, zero), scale), 0.5f));
  return static_cast<std::uint32_t>(fminf(fmaxf(code, 0.0f), static_cast<float>(max_code)));
}

__device__ __forceinline__ std::uint32_t encode_fp8(float x, float scale) {
  return static_cast<std::uint32_t>(
      __nv_cvt_float_to_fp8(__fdiv_rn(x, scale), __NV_SATFINITE, __NV_E4M3));
}

/// Key groups [first_group, first_group + gridDim.x) of every segment (gridDim.y): per channel
/// min/max over the group's rows, the stored range, then the codes of its tiles, word by word.
/// blockDim.x = d.
__global__ void quantize_keys_kernel(store_view s, row_source src, std::int64_t first_group) {
  const int seg = blockIdx.y, d = s.layout.d, bits = s.layout.bits, max_code = (1 << bits) - 1;
  const std::int64_t group = first_group + blockIdx.x, first_row = group * s.key_group;
  __shared__ float s_scale[128], s_zero[128];
  const int c = threadIdx.x;
  if (!s.layout.fp8) {
    float lo = src.at(seg, first_row, c), hi = lo;
    for (int r = 1; r < s.key_group; ++r) {
      const float x = src.at(seg, first_row + r, c);
      lo = fminf(lo, x);
      hi = fmaxf(hi, x);
    }
    const float scale =
        stored(__fdiv_rn(__fsub_rn(hi, lo), static_cast<float>(max_code)), s.half_scales);
    const float zero = stored(lo, s.half_scales);
    s_scale[c] = scale;
    s_zero[c] = zero;
    const std::int64_t at = seg * s.k_scale_elems + group * 2 * d + key_scale_index(c, d);
    s.put_scale(s.k_scales, at, scale);
    s.put_scale(s.k_scales, at + d / 4, zero);
  }
  __syncthreads();
  const float fp8_scale = s.layout.fp8 ? s.fp8_scales[2 * seg] : 1.0f;
  const int tiles = s.key_group / 16, tile_words = s.layout.tile_words();
  const int ppw = s.layout.pairs_per_word();
  for (int m = threadIdx.x; m < tiles * tile_words; m += blockDim.x) {
    const int tile = m / tile_words, word = m % tile_words;
    int lane = 0, w = 0;
    s.layout.word_owner(word, lane, w);
    std::uint32_t value = 0;
    for (int j = 0; j < ppw; ++j)
      for (int e = 0; e < 2; ++e) {
        int row = 0, dim = 0, wd = 0, bit = 0;
        key_element(lane, w * ppw + j, e, row, dim);
        s.layout.slot(lane, w * ppw + j, e, wd, bit);
        const float x = src.at(seg, first_row + 16 * tile + row, dim);
        const std::uint32_t code = s.layout.fp8 ? encode_fp8(x, fp8_scale)
                                                : encode(x, s_scale[dim], s_zero[dim], max_code);
        value |= code << bit;
      }
    s.k_codes[seg * s.code_words + (first_row / 16 + tile) * tile_words + word] = value;
  }
}

/// Value rows [first_row, end_row) of every segment (gridDim.y), one 16-row tile per CTA
/// (gridDim.x tiles from first_row's): per row and channel group min/max, then the tile's words,
/// keeping the codes of rows outside the range (earlier rows of a partly quantized tile).
/// blockDim.x = 128.
__global__ void quantize_values_kernel(store_view s, row_source src, std::int64_t first_row,
                                       std::int64_t end_row) {
  const int seg = blockIdx.y, bits = s.layout.bits, max_code = (1 << bits) - 1;
  const std::int64_t tile = first_row / 16 + blockIdx.x, tile_row = tile * 16;
  __shared__ float s_scale[16][8], s_zero[16][8];
  const int groups = s.value_groups, channels = s.value_channels;
  if (!s.layout.fp8)
    for (int x = threadIdx.x; x < 16 * groups; x += blockDim.x) {
      const int r = x / groups, grp = x % groups;
      const std::int64_t row = tile_row + r;
      if (row < first_row || row >= end_row) continue;
      float lo = src.at(seg, row, grp * channels), hi = lo;
      for (int c = 1; c < channels; ++c) {
        const float v = src.at(seg, row, grp * channels + c);
        lo = fminf(lo, v);
        hi = fmaxf(hi, v);
      }
      const float scale =
          stored(__fdiv_rn(__fsub_rn(hi, lo), static_cast<float>(max_code)), s.half_scales);
      const float zero = stored(lo, s.half_scales);
      s_scale[r][grp] = scale;
      s_zero[r][grp] = zero;
      const std::int64_t at = seg * s.v_scale_elems + (row * groups + grp) * 2;
      s.put_scale(s.v_scales, at, scale);
      s.put_scale(s.v_scales, at + 1, zero);
    }
  __syncthreads();
  const float fp8_scale = s.layout.fp8 ? s.fp8_scales[2 * seg + 1] : 1.0f;
  const int tile_words = s.layout.tile_words(), ppw = s.layout.pairs_per_word();
  const std::uint32_t mask = bits == 8 ? 0xffu : (1u << bits) - 1;
  for (int m = threadIdx.x; m < tile_words; m += blockDim.x) {
    int lane = 0, w = 0;
    s.layout.word_owner(m, lane, w);
    std::uint32_t* at = s.v_codes + seg * s.code_words + tile * tile_words + m;
    std::uint32_t value = *at;
    for (int j = 0; j < ppw; ++j)
      for (int e = 0; e < 2; ++e) {
        int row = 0, dim = 0, wd = 0, bit = 0;
        value_element(lane, w * ppw + j, e, row, dim);
        const std::int64_t abs_row = tile_row + row;
        if (abs_row < first_row || abs_row >= end_row) continue;
        s.layout.slot(lane, w * ppw + j, e, wd, bit);
        const float x = src.at(seg, abs_row, dim);
        const int grp = dim / channels;
        const std::uint32_t code = s.layout.fp8
                                       ? encode_fp8(x, fp8_scale)
                                       : encode(x, s_scale[row][grp], s_zero[row][grp], max_code);
        value = (value & ~(mask << bit)) | (code << bit);
      }
    *at = value;
  }
}

/// fp8: the per-segment key and value scales from rows [0, rows) of k and v (largest |x| / 448,
/// 1 when zero; fp16-rounded when the store keeps fp16). One CTA of 256 threads per segment.
__global__ void fp8_scales_kernel(store_view s, row_source k, row_source v, std::int64_t rows) {
  const int seg = blockIdx.x, d = s.layout.d;
  float ak = 0.0f, av = 0.0f;
  for (std::int64_t x = threadIdx.x; x < rows * d; x += blockDim.x) {
    ak = fmaxf(ak, fabsf(k.at(seg, x / d, static_cast<int>(x % d))));
    av = fmaxf(av, fabsf(v.at(seg, x / d, static_cast<int>(x % d))));
  }
  __shared__ float s_k[256], s_v[256];
  s_k[threadIdx.x] = ak;
  s_v[threadIdx.x] = av;
  __syncthreads();
  for (int half = blockDim.x / 2; half > 0; half /= 2) {
    if (static_cast<int>(threadIdx.x) < half) {
      s_k[threadIdx.x] = fmaxf(s_k[threadIdx.x], s_k[threadIdx.x + half]);
      s_v[threadIdx.x] = fmaxf(s_v[threadIdx.x], s_v[threadIdx.x + half]);
    }
    __syncthreads();
  }
  if (threadIdx.x == 0) {
    const float mk = s_k[0], mv = s_v[0];
    s.fp8_scales[2 * seg] = stored(mk > 0.0f ? __fdiv_rn(mk, 448.0f) : 1.0f, s.half_scales);
    s.fp8_scales[2 * seg + 1] = stored(mv > 0.0f ? __fdiv_rn(mv, 448.0f) : 1.0f, s.half_scales);
  }
}

/// Copies source rows [src_first, src_first + gridDim.x) of k and v into the ring slots of
/// sequence rows dst_first, ... (row & (ring - 1)) of every segment (gridDim.y). blockDim.x = d.
__global__ void ring_store_kernel(store_view s, row_source k, row_source v, std::int64_t src_first,
                                  std::int64_t dst_first) {
  const int seg = blockIdx.y, d = s.layout.d;
  const std::int64_t row = dst_first + blockIdx.x;
  const std::int64_t at =
      (seg * static_cast<std::int64_t>(s.ring) + (row & (s.ring - 1))) * d + threadIdx.x;
  s.k_ring[at] = __float2bfloat16_rn(k.at(seg, src_first + blockIdx.x, threadIdx.x));
  s.v_ring[at] = __float2bfloat16_rn(v.at(seg, src_first + blockIdx.x, threadIdx.x));
}

/// One decode step of `batch` sequences.
struct decode_params {
  store_view store;
  const bf16* q = nullptr;  // [batch, q_heads, d]
  float* out = nullptr;     // [batch, q_heads, d]
  int batch = 1, kv_heads = 1, q_heads = 1;
  std::int64_t length = 0;       // rows each query sees
  std::int64_t keys_held = 0;    // quantized key prefix
  std::int64_t values_held = 0;  // quantized value prefix
  std::int64_t main_rows = 0;    // rows of the split CTAs: min(both prefixes, length), whole tiles
  float scale = 1.0f;
  int splits = 0;                // split CTAs per (sequence, KV head); the tail CTA is x = splits
  int groups_per_split = 1;      // key groups per split CTA
  float* part_out = nullptr;     // [batch, q_heads, splits + 1, d]
  float* part_lse = nullptr;     // [batch, q_heads, splits + 1], log2 units
  unsigned* arrivals = nullptr;  // [batch * kv_heads], 0 between launches
};

constexpr int decode_threads = 128;

__device__ __forceinline__ std::uint32_t movmatrix_trans(std::uint32_t x) {
  std::uint32_t y;
  asm volatile("movmatrix.sync.aligned.m8n8.trans.b16 %0, %1;\n" : "=r"(y) : "r"(x));
  return y;
}
__device__ __forceinline__ std::uint32_t h2_bits(__half2 h) {
  std::uint32_t u;
  memcpy(&u, &h, 4);
  return u;
}
__device__ __forceinline__ __half2 bits_h2(std::uint32_t u) {
  __half2 h;
  memcpy(&h, &u, 4);
  return h;
}

/// Element pair j of word w as half2 (integer codes exactly, fp8 as its e4m3 value).
template <code_format F>
__device__ __forceinline__ __half2 code_pair(std::uint32_t w, int j) {
  if constexpr (F == code_format::e4m3) {
    const __half2_raw raw = __nv_cvt_fp8x2_to_halfraw2(
        static_cast<__nv_fp8x2_storage_t>((w >> (16 * j)) & 0xffffu), __NV_E4M3);
    __half2 h;
    memcpy(&h, &raw, 4);
    return h;
  } else {
    std::uint32_t x;
    if constexpr (F == code_format::u8)
      x = __byte_perm(w, 0x64646464u, static_cast<unsigned>(j | 4 << 4 | (j + 2) << 8 | 4 << 12));
    else if constexpr (F == code_format::u4)
      x = ((w >> (4 * j)) & 0x000f000fu) | 0x64006400u;
    else
      x = ((w >> (2 * j)) & 0x00030003u) | 0x64006400u;
    // 0x6400 | c is the fp16 value 1024 + c.
    return __hsub2(bits_h2(x), __float2half2_rn(1024.0f));
  }
}

/// Loads a lane's `Words` words of one tile (chunks of 4 or 2 words, lane-contiguous).
template <int Words>
__device__ __forceinline__ void load_tile(const std::uint32_t* tile, int lane,
                                          std::uint32_t (&w)[Words]) {
  constexpr int cw = Words < 4 ? Words : 4;
#pragma unroll
  for (int q = 0; q < Words / cw; ++q) {
    const std::uint32_t* at = tile + (q * 32 + lane) * cw;
    if constexpr (cw == 4) {
      const uint4 x = *reinterpret_cast<const uint4*>(at);
      w[4 * q] = x.x;
      w[4 * q + 1] = x.y;
      w[4 * q + 2] = x.z;
      w[4 * q + 3] = x.w;
    } else {
      const uint2 x = *reinterpret_cast<const uint2*>(at);
      w[2 * q] = x.x;
      w[2 * q + 1] = x.y;
    }
  }
}

template <code_format F, int D>
__global__ void __launch_bounds__(decode_threads, 2) decode_kernel(const decode_params p) {
  constexpr int bits = format_bits(F);
  constexpr bool fp8 = F == code_format::e4m3;
  constexpr int words = D * bits / 64;    // per lane per tile
  constexpr int U = words >= 16 ? 1 : 2;  // tiles per prefetched item
  constexpr int ppw = 16 / bits;
  constexpr int steps = D / 16;
  constexpr int tail_lanes = D / 8;  // tail CTA: lanes per row (8 channels each)
  constexpr int tail_walkers = decode_threads / tail_lanes;
  const store_view& s = p.store;
  const int split = blockIdx.x, h = blockIdx.y, b = blockIdx.z;
  const int seg = b * p.kv_heads + h, group_size = p.q_heads / p.kv_heads;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int first_head = h * group_size;
  const bf16* q = p.q + (static_cast<std::int64_t>(b) * p.q_heads + first_head) * D;
  const float scale_log2 = p.scale * detail::log2_e;

  __shared__ float s_m[16][8], s_l[16][8];
  __shared__ float s_acc[16 * 8 * 64];  // [walkers][8 heads][D]: 32 KB for both head_dims
  int walkers = 4;

  if (split < p.splits) {
    // ---- Split CTA: whole tiles of [0, main_rows) on tensor cores, a warp per key group. ----
    walkers = 4;
    const int g = lane / 4, t = lane % 4;
    // Query fragments (B of S^T = K Q^T): channels 16 ks + 2t (+1, +8, +9) of head g.
    const float qs = scale_log2 * (fp8 ? s.fp8_scales[2 * seg] : 1.0f);
    std::uint32_t qb[steps][2];
#pragma unroll
    for (int ks = 0; ks < steps; ++ks)
#pragma unroll
      for (int hi = 0; hi < 2; ++hi) {
        float lo = 0.0f, up = 0.0f;
        if (g < group_size) {
          const int c = 16 * ks + 2 * t + 8 * hi;
          lo = __bfloat162float(q[g * D + c]) * qs;
          up = __bfloat162float(q[g * D + c + 1]) * qs;
        }
        qb[ks][hi] = h2_bits(__floats2half2_rn(lo, up));
      }
    float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};
    float acc[steps][4], zs[steps][2];
#pragma unroll
    for (int mi = 0; mi < steps; ++mi) {
      acc[mi][0] = acc[mi][1] = acc[mi][2] = acc[mi][3] = 0.0f;
      zs[mi][0] = zs[mi][1] = 0.0f;
    }
    const int tiles_per_group = s.key_group / 16;
    const std::int64_t main_tiles = p.main_rows / 16;
    const std::int64_t groups = (main_tiles + tiles_per_group - 1) / tiles_per_group;
    const std::int64_t g_begin = static_cast<std::int64_t>(split) * p.groups_per_split;
    const std::int64_t g_end = min(groups, g_begin + p.groups_per_split);
    const std::uint32_t* kc = s.k_codes + seg * s.code_words;
    const std::uint32_t* vc = s.v_codes + seg * s.code_words;
    const int vch = s.value_channels, vgroups = s.value_groups;

    // Value scale and zero of (row, group) of this segment.
    auto value_range = [&](std::int64_t row, int grp, float& scale, float& zero) {
      const std::int64_t at = seg * s.v_scale_elems + (row * vgroups + grp) * 2;
      if (s.half_scales) {
        const __half2 x =
            *reinterpret_cast<const __half2*>(static_cast<const __half*>(s.v_scales) + at);
        scale = __low2float(x);
        zero = __high2float(x);
      } else {
        const float2 x =
            *reinterpret_cast<const float2*>(static_cast<const float*>(s.v_scales) + at);
        scale = x.x;
        zero = x.y;
      }
    };

    // One tile: S^T on tensor cores, online softmax per head column, PV on tensor cores.
    auto consume = [&](std::int64_t tile, const std::uint32_t(&kw)[words],
                       const std::uint32_t(&vw)[words], const __half2(&ksc)[steps * 2],
                       const __half2(&kz)[steps * 2], const std::uint32_t(&v0)[4]) {
      float sc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
#pragma unroll
      for (int ks = 0; ks < steps; ++ks) {
        std::uint32_t a[4];
#pragma unroll
        for (int i = 0; i < 4; ++i) {
          const int pair = 4 * ks + i;
          __half2 x = code_pair<F>(kw[pair / ppw], pair % ppw);
          if constexpr (!fp8) x = __hfma2(x, ksc[2 * ks + (i >> 1)], kz[2 * ks + (i >> 1)]);
          a[i] = h2_bits(x);
        }
        mma_16816<__half>(sc, a, qb[ks][0], qb[ks][1]);
      }
      // sc[c]: row g, head 2t + c; sc[2 + c]: row g + 8.
      float pr[2][2];
#pragma unroll
      for (int c = 0; c < 2; ++c) {
        float mx = fmaxf(sc[c], sc[2 + c]);
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 4));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 8));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 16));
        const float next = fmaxf(m[c], mx);
        const auto [use, alpha] = detail::online_rescale(next, m[c], 1.0f);
        m[c] = next;
        pr[c][0] = fast_exp2(sc[c] - use);
        pr[c][1] = fast_exp2(sc[2 + c] - use);
        l[c] = l[c] * alpha + pr[c][0] + pr[c][1];
#pragma unroll
        for (int mi = 0; mi < steps; ++mi) {
          acc[mi][c] *= alpha;
          acc[mi][2 + c] *= alpha;
          zs[mi][c] *= alpha;
        }
      }
      std::uint32_t b0 = 0, b1 = 0;
#pragma unroll
      for (int mi = 0; mi < steps; ++mi) {
        if ((16 * mi) % vch == 0) {
          // A new value channel group: P scaled by its per-token scales, zeros summed apart.
          float sg = 1.0f, zg = 0.0f, sg8 = 1.0f, zg8 = 0.0f;
          if constexpr (!fp8) {
            if (mi == 0) {
              // Prefetched with the codes, raw (converted only now, once they have arrived).
              if (s.half_scales) {
                sg = __low2float(bits_h2(v0[0])), zg = __high2float(bits_h2(v0[0]));
                sg8 = __low2float(bits_h2(v0[1])), zg8 = __high2float(bits_h2(v0[1]));
              } else {
                sg = __uint_as_float(v0[0]), zg = __uint_as_float(v0[1]);
                sg8 = __uint_as_float(v0[2]), zg8 = __uint_as_float(v0[3]);
              }
            } else {
              value_range(tile * 16 + g, 16 * mi / vch, sg, zg);
              value_range(tile * 16 + g + 8, 16 * mi / vch, sg8, zg8);
            }
          }
          b0 = movmatrix_trans(h2_bits(__floats2half2_rn(pr[0][0] * sg, pr[1][0] * sg)));
          b1 = movmatrix_trans(h2_bits(__floats2half2_rn(pr[0][1] * sg8, pr[1][1] * sg8)));
          if constexpr (!fp8) {
            zs[mi][0] += zg * pr[0][0] + zg8 * pr[0][1];
            zs[mi][1] += zg * pr[1][0] + zg8 * pr[1][1];
          }
        }
        std::uint32_t a[4];
#pragma unroll
        for (int i = 0; i < 4; ++i) {
          const int pair = 4 * mi + i;
          a[i] = h2_bits(code_pair<F>(vw[pair / ppw], pair % ppw));
        }
        mma_16816<__half>(acc[mi], a, b0, b1);
      }
    };

    // The warp walks items of up to U tiles of one key group (groups g_begin + warp, + 4, ...),
    // loading the next item's codes and scales before computing the current one, so a warp
    // always has one item's bytes in flight (U: 16 code words of keys per lane, 1 to 2 tiles).
    struct item_data {
      std::uint32_t k[U][words], v[U][words];
      __half2 ksc[steps * 2], kz[steps * 2];
      std::uint32_t v0[U][4];  // value scales of rows g, g + 8 of group 0, raw
    };
    auto load_item = [&](std::int64_t gi, int j, item_data& x) {
#pragma unroll
      for (int u = 0; u < U; ++u) {
        const std::int64_t tile = gi * tiles_per_group + j + u;
        if (j + u < tiles_per_group && tile < main_tiles) {
          load_tile<words>(kc + tile * 32 * words, lane, x.k[u]);
          load_tile<words>(vc + tile * 32 * words, lane, x.v[u]);
          if constexpr (!fp8) {
            const std::int64_t at = seg * s.v_scale_elems + (tile * 16 + g) * vgroups * 2;
            const std::int64_t at8 = at + 8 * vgroups * 2;
            if (s.half_scales) {
              const auto* base = static_cast<const __half*>(s.v_scales);
              x.v0[u][0] = *reinterpret_cast<const std::uint32_t*>(base + at);
              x.v0[u][1] = *reinterpret_cast<const std::uint32_t*>(base + at8);
            } else {
              const auto* base = static_cast<const float*>(s.v_scales);
              const float2 a = *reinterpret_cast<const float2*>(base + at);
              const float2 c = *reinterpret_cast<const float2*>(base + at8);
              x.v0[u][0] = __float_as_uint(a.x), x.v0[u][1] = __float_as_uint(a.y);
              x.v0[u][2] = __float_as_uint(c.x), x.v0[u][3] = __float_as_uint(c.y);
            }
          }
        }
      }
      if constexpr (!fp8) {
        // The group's key scales and zeros of this lane's channels, as half2 pairs.
        if (s.half_scales) {
          const __half* base = static_cast<const __half*>(s.k_scales) + seg * s.k_scale_elems +
                               gi * 2 * D + t * (D / 2);
#pragma unroll
          for (int i = 0; i < steps * 2; i += 4) {
            const uint4 sv = *reinterpret_cast<const uint4*>(base + 2 * i);
            const uint4 zv = *reinterpret_cast<const uint4*>(base + D / 4 + 2 * i);
            x.ksc[i] = bits_h2(sv.x), x.ksc[i + 1] = bits_h2(sv.y), x.ksc[i + 2] = bits_h2(sv.z),
            x.ksc[i + 3] = bits_h2(sv.w);
            x.kz[i] = bits_h2(zv.x), x.kz[i + 1] = bits_h2(zv.y), x.kz[i + 2] = bits_h2(zv.z),
            x.kz[i + 3] = bits_h2(zv.w);
          }
        } else {
          const float* base = static_cast<const float*>(s.k_scales) + seg * s.k_scale_elems +
                              gi * 2 * D + t * (D / 2);
#pragma unroll
          for (int i = 0; i < steps * 2; i += 2) {
            const float4 sv = *reinterpret_cast<const float4*>(base + 2 * i);
            const float4 zv = *reinterpret_cast<const float4*>(base + D / 4 + 2 * i);
            x.ksc[i] = __floats2half2_rn(sv.x, sv.y), x.ksc[i + 1] = __floats2half2_rn(sv.z, sv.w);
            x.kz[i] = __floats2half2_rn(zv.x, zv.y), x.kz[i + 1] = __floats2half2_rn(zv.z, zv.w);
          }
        }
      }
    };
    // The item after (gi, j): the next U tiles of the group, else the warp's next group.
    auto advance = [&](std::int64_t& gi, int& j) {
      j += U;
      if (j >= tiles_per_group || gi * tiles_per_group + j >= main_tiles) {
        gi += 4;
        j = 0;
      }
    };
    std::int64_t gi = g_begin + warp;
    int j = 0;
    item_data cur, next;
    if (gi < g_end) load_item(gi, j, cur);
    while (gi < g_end) {
      std::int64_t next_gi = gi;
      int next_j = j;
      advance(next_gi, next_j);
      if (next_gi < g_end) load_item(next_gi, next_j, next);
#pragma unroll
      for (int u = 0; u < U; ++u) {
        const std::int64_t tile = gi * tiles_per_group + j + u;
        if (j + u < tiles_per_group && tile < main_tiles)
          consume(tile, cur.k[u], cur.v[u], cur.ksc, cur.kz, cur.v0[u]);
      }
      cur = next;
      gi = next_gi;
      j = next_j;
    }

    // Sums over the 8 lanes of each head column; the zero terms join their channel groups.
    const float vscale = fp8 ? s.fp8_scales[2 * seg + 1] : 1.0f;
#pragma unroll
    for (int c = 0; c < 2; ++c) {
#pragma unroll
      for (int o = 4; o < 32; o *= 2) l[c] += __shfl_xor_sync(0xffffffffu, l[c], o);
      float zero = 0.0f;
#pragma unroll
      for (int mi = 0; mi < steps; ++mi) {
        float z = zs[mi][c];
#pragma unroll
        for (int o = 4; o < 32; o *= 2) z += __shfl_xor_sync(0xffffffffu, z, o);
        if ((16 * mi) % vch == 0) zero = z;
        const int head = 2 * t + c;
        s_acc[(warp * 8 + head) * D + 16 * mi + g] = (acc[mi][c] + zero) * vscale;
        s_acc[(warp * 8 + head) * D + 16 * mi + g + 8] = (acc[mi][2 + c] + zero) * vscale;
      }
      if (g == 0) {
        s_m[warp][2 * t + c] = m[c];
        s_l[warp][2 * t + c] = l[c];
      }
    }
  } else {
    // ---- Tail CTA: rows [main_rows, length), 8 channels per thread, element by element. ----
    walkers = tail_walkers;
    const int part = threadIdx.x % tail_lanes, walker = threadIdx.x / tail_lanes;
    const tile_layout& L = s.layout;
    const int mask = bits == 8 ? 0xff : (1 << bits) - 1;
    float qf[8][8], m[8], l[8], acc[8][8];
#pragma unroll
    for (int hh = 0; hh < 8; ++hh) {
      m[hh] = -INFINITY;
      l[hh] = 0.0f;
#pragma unroll
      for (int i = 0; i < 8; ++i) {
        qf[hh][i] =
            hh < group_size ? __bfloat162float(q[hh * D + part * 8 + i]) * scale_log2 : 0.0f;
        acc[hh][i] = 0.0f;
      }
    }
    auto code_of = [&](const std::uint32_t* codes, std::int64_t row, int lane_of, int pair, int e) {
      int word = 0, bit = 0;
      L.slot(lane_of, pair, e, word, bit);
      return static_cast<int>(
          (codes[seg * s.code_words + (row / 16) * L.tile_words() + word] >> bit) &
          static_cast<std::uint32_t>(mask));
    };
    auto fp8_value = [](int code) {
      const __half_raw raw =
          __nv_cvt_fp8_to_halfraw(static_cast<__nv_fp8_storage_t>(code), __NV_E4M3);
      return __half2float(__half(raw));
    };
    for (std::int64_t base = p.main_rows; base < p.length; base += tail_walkers) {
      const std::int64_t row = base + walker;
      const bool ok = row < p.length;
      float kf[8], vf[8];
#pragma unroll
      for (int i = 0; i < 8; ++i) kf[i] = vf[i] = 0.0f;
      if (ok) {
        const std::int64_t ring_at =
            (seg * static_cast<std::int64_t>(s.ring) + (row & (s.ring - 1))) * D + part * 8;
#pragma unroll
        for (int i = 0; i < 8; ++i) {
          const int dim = part * 8 + i, rr = static_cast<int>(row % 16);
          int ln = 0, pair = 0, e = 0;
          if (row < p.keys_held) {
            key_slot_of(rr, dim, ln, pair, e);
            const int code = code_of(s.k_codes, row, ln, pair, e);
            if (fp8) {
              kf[i] = fp8_value(code) * s.fp8_scales[2 * seg];
            } else {
              const std::int64_t at =
                  seg * s.k_scale_elems + (row / s.key_group) * 2 * D + key_scale_index(dim, D);
              kf[i] = __fadd_rn(__fmul_rn(static_cast<float>(code), s.scale_at(s.k_scales, at)),
                                s.scale_at(s.k_scales, at + D / 4));
            }
          } else {
            kf[i] = __bfloat162float(s.k_ring[ring_at + i]);
          }
          if (row < p.values_held) {
            value_slot_of(rr, dim, ln, pair, e);
            const int code = code_of(s.v_codes, row, ln, pair, e);
            if (fp8) {
              vf[i] = fp8_value(code) * s.fp8_scales[2 * seg + 1];
            } else {
              const std::int64_t at =
                  seg * s.v_scale_elems + (row * s.value_groups + dim / s.value_channels) * 2;
              vf[i] = __fadd_rn(__fmul_rn(static_cast<float>(code), s.scale_at(s.v_scales, at)),
                                s.scale_at(s.v_scales, at + 1));
            }
          } else {
            vf[i] = __bfloat162float(s.v_ring[ring_at + i]);
          }
        }
      }
#pragma unroll
      for (int hh = 0; hh < 8; ++hh) {
        float dot = 0.0f;
#pragma unroll
        for (int i = 0; i < 8; ++i) dot = fmaf(qf[hh][i], kf[i], dot);
#pragma unroll
        for (int o = tail_lanes / 2; o > 0; o /= 2) dot += __shfl_xor_sync(0xffffffffu, dot, o);
        const float sc = ok ? dot : -INFINITY;
        const float next = fmaxf(m[hh], sc);
        const auto [use, alpha] = detail::online_rescale(next, m[hh], 1.0f);
        m[hh] = next;
        const float pr = fast_exp2(sc - use);
        l[hh] = l[hh] * alpha + pr;
#pragma unroll
        for (int i = 0; i < 8; ++i) acc[hh][i] = fmaf(pr, vf[i], acc[hh][i] * alpha);
      }
    }
#pragma unroll
    for (int hh = 0; hh < 8; ++hh) {
      if (part == 0) {
        s_m[walker][hh] = m[hh];
        s_l[walker][hh] = l[hh];
      }
#pragma unroll
      for (int i = 0; i < 8; ++i) s_acc[(walker * 8 + hh) * D + part * 8 + i] = acc[hh][i];
    }
  }
  __syncthreads();

  // Merge the CTA's walkers, then the splits (the last CTA of the pair to finish), as decode.cuh.
  const int total = p.splits + 1;
  for (int x = threadIdx.x; x < group_size * D; x += decode_threads) {
    const int hh = x / D, dim = x % D;
    float mx = -INFINITY;
    for (int w = 0; w < walkers; ++w) mx = fmaxf(mx, s_m[w][hh]);
    const float use = detail::softmax_base(mx, 1.0f);
    float sum = 0.0f, o = 0.0f;
    for (int w = 0; w < walkers; ++w) {
      const float f = fast_exp2(s_m[w][hh] - use);
      sum += s_l[w][hh] * f;
      o += s_acc[(w * 8 + hh) * D + dim] * f;
    }
    const std::int64_t head = static_cast<std::int64_t>(b) * p.q_heads + first_head + hh;
    if (total == 1) {
      p.out[head * D + dim] = sum > 0.0f ? o / sum : 0.0f;
      continue;
    }
    const std::int64_t slot = head * total + split;
    p.part_out[slot * D + dim] = sum > 0.0f ? o / sum : 0.0f;
    if (dim == 0) p.part_lse[slot] = sum > 0.0f ? mx + __log2f(sum) : -INFINITY;
  }
  if (total == 1) return;
  __shared__ bool s_last;
  __threadfence();
  __syncthreads();
  if (threadIdx.x == 0)
    s_last = atomicAdd(p.arrivals + seg, 1u) == static_cast<unsigned>(total - 1);
  __syncthreads();
  if (!s_last) return;
  __threadfence();
  for (int x = threadIdx.x; x < group_size * D; x += decode_threads) {
    const int hh = x / D, dim = x % D;
    const std::int64_t head = static_cast<std::int64_t>(b) * p.q_heads + first_head + hh;
    const float* lse = p.part_lse + head * total;
    const float* partials = p.part_out + head * total * D + dim;
    float mx = -INFINITY;
    for (int sp = 0; sp < total; ++sp) mx = fmaxf(mx, __ldcg(lse + sp));
    const float use = detail::softmax_base(mx, 1.0f);
    float sum = 0.0f, o = 0.0f;
    for (int sp = 0; sp < total; ++sp) {
      const float w = exp2f(__ldcg(lse + sp) - use);
      sum += w;
      o += w * __ldcg(partials + static_cast<std::int64_t>(sp) * D);
    }
    p.out[head * D + dim] = sum > 0.0f ? o / sum : 0.0f;
  }
  if (threadIdx.x == 0) p.arrivals[seg] = 0;
}

}  // namespace attnbench::cuda::kvq
