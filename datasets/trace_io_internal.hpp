/// Internals shared by the trace readers and writers (datasets/trace_io.cpp, trace_safetensors.cpp,
/// trace_npy.cpp, trace_sidecar.cpp): limits, checked byte and shape helpers, value coding, and
/// the file helpers. Not part of the trace API (datasets/trace_io.hpp).
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "datasets/trace_io.hpp"

namespace attnbench::trace_detail {

// Tensors of more than 8 dimensions are not traces; the cap keeps shape text short.
constexpr std::size_t max_rank = 8;
// A sidecar holds T positions and a few spans: 64 MB is ~5M tokens of positions.
constexpr std::uintmax_t max_sidecar_bytes = 64u << 20;
// The sidecar's shape fields: generous bounds that still keep products far from overflow.
constexpr std::int64_t max_heads = 1 << 16;
constexpr std::int64_t max_head_dim = 1 << 16;
constexpr std::int64_t max_layers = 1 << 16;
constexpr std::int64_t max_tokens = std::int64_t{1} << 40;


/// Untrusted text (tensor names, JSON parser messages) on one printable line.
std::string printable(std::string_view text, std::size_t max_chars = 80);
/// "[2, 4, 96, 32]": shapes in messages.
std::string shape_text(const std::vector<std::int64_t>& shape);
/// Bytes of one stored element.
std::size_t dtype_bytes(trace_dtype t);
/// Little-endian integers assembled byte by byte: correct on any host and at any alignment.
std::uint64_t read_u64_le(const std::uint8_t* p);
std::uint32_t read_u32_le(const std::uint8_t* p);
/// Number of elements of `shape`, refusing overflow and payloads above max_trace_bytes (as
/// floats) before anything is allocated.
std::uint64_t checked_elements(const std::vector<std::int64_t>& shape, const std::string& what);
/// `count` stored elements as floats, refusing NaN / Inf.
std::vector<float> decode_values(const std::uint8_t* p, std::uint64_t count, trace_dtype t,
                                 const std::string& what);
/// JSON parse that refuses duplicate keys at any depth.
nlohmann::json parse_json_strict(std::string_view text, const std::string& what);
/// Appends the bytes of `values` in `dtype`, refusing values the dtype cannot hold.
void encode_values(const std::vector<float>& values, trace_dtype dtype,
                   std::vector<std::uint8_t>& out);
/// Writes a whole file; throws error id `io` naming the path.
void write_file(const std::string& path, const void* data, std::size_t size);
/// The sidecar written next to the tensors (datasets/trace_sidecar.cpp).
std::string sidecar_text(const qkv_trace& t);
/// [layers, heads, tokens, head_dim] tensor holding `data`.
trace_tensor as_tensor(const std::vector<float>& data, int layers, int heads, std::int64_t tokens,
                       int head_dim);
/// NAME from NAME.safetensors, NAME.q.npy or NAME.json (the first suffix that matches).
std::string stem_of(const std::string& path, std::initializer_list<std::string_view> suffixes);

}  // namespace attnbench::trace_detail
