// Trace import: parsers for safetensors and npy held in memory, the sidecar check, and the
// file-level loader and writers. Parsers never trust a length or a shape before checking it
// against the bytes actually present, so the fuzzer (tests/fuzz/fuzz_trace_parsers.cpp) can
// feed them anything; every rejection is one bad_input line.
#include "datasets/trace_io.hpp"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <new>
#include <optional>
#include <set>
#include <sstream>

#include <unistd.h>

#include "harness/error.hpp"

namespace attnbench {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

// Tensors of more than 8 dimensions are not traces; the cap keeps shape text short.
constexpr std::size_t max_rank = 8;
// A sidecar holds T positions and a few spans: 64 MB is ~5M tokens of positions.
constexpr std::uintmax_t max_sidecar_bytes = 64u << 20;
// The sidecar's shape fields: generous bounds that still keep products far from overflow.
constexpr std::int64_t max_heads = 1 << 16;
constexpr std::int64_t max_head_dim = 1 << 16;
constexpr std::int64_t max_layers = 1 << 16;
constexpr std::int64_t max_tokens = std::int64_t{1} << 40;

// Untrusted text (tensor names, JSON parser messages) is shown on one printable line.
std::string printable(std::string_view text, std::size_t max_chars = 80) {
  std::string out;
  for (char c : text.substr(0, max_chars)) {
    auto u = static_cast<unsigned char>(c);
    out += (u < 0x20 || u >= 0x7f) ? '?' : c;
  }
  if (text.size() > max_chars) out += "...";
  return out;
}

// "[2, 4, 96, 32]": shapes in messages.
std::string shape_text(const std::vector<std::int64_t>& shape) {
  std::ostringstream os;
  os << '[';
  for (std::size_t i = 0; i < shape.size(); ++i) os << (i ? ", " : "") << shape[i];
  os << ']';
  return os.str();
}

// Bytes of one stored element.
std::size_t dtype_bytes(trace_dtype t) { return t == trace_dtype::f32 ? 4 : 2; }

// Little-endian integers assembled byte by byte: correct on any host and at any alignment.
std::uint64_t read_u64_le(const std::uint8_t* p) {
  std::uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

std::uint32_t read_u32_le(const std::uint8_t* p) {
  return static_cast<std::uint32_t>(p[0]) | (static_cast<std::uint32_t>(p[1]) << 8) |
         (static_cast<std::uint32_t>(p[2]) << 16) | (static_cast<std::uint32_t>(p[3]) << 24);
}

// Number of elements of `shape`, refusing overflow and payloads above max_trace_bytes (as
// floats) before anything is allocated.
std::uint64_t checked_elements(const std::vector<std::int64_t>& shape, const std::string& what) {
  std::uint64_t n = 1;
  bool empty = false;
  for (auto d : shape) {
    if (d == 0) empty = true;
    if (d < 0) ATTNBENCH_BAD_INPUT(what << " has a negative dimension in " << shape_text(shape));
  }
  if (empty) return 0;
  constexpr std::uint64_t max_elements = max_trace_bytes / sizeof(float);
  for (auto d : shape) {
    auto ud = static_cast<std::uint64_t>(d);
    ATTNBENCH_CHECK(n <= max_elements / ud, bad_input,
                    what << " shape " << shape_text(shape) << " is above the "
                         << (max_trace_bytes >> 30) << " GiB trace limit");
    n *= ud;
  }
  return n;
}

// Converts `count` stored elements to float and refuses NaN / Inf (a trace with them would
// silently poison every metric).
std::vector<float> decode_values(const std::uint8_t* p, std::uint64_t count, trace_dtype t,
                                 const std::string& what) {
  std::vector<float> out(static_cast<std::size_t>(count));
  for (std::size_t i = 0; i < out.size(); ++i) {
    float f;
    if (t == trace_dtype::f32) {
      std::memcpy(&f, p + 4 * i, 4);
    } else {
      std::uint16_t h = static_cast<std::uint16_t>(p[2 * i] | (p[2 * i + 1] << 8));
      f = t == trace_dtype::f16 ? half_to_float(h) : bf16_to_float(h);
    }
    if (!std::isfinite(f))
      ATTNBENCH_BAD_INPUT(what << " has " << (std::isnan(f) ? "NaN" : "Inf") << " at element "
                               << i);
    out[i] = f;
  }
  return out;
}

// JSON parse that refuses duplicate keys at any depth (nlohmann keeps the last one silently,
// which would let two "q" entries point at different bytes).
json parse_json_strict(std::string_view text, const std::string& what) {
  std::vector<std::set<std::string>> keys;
  std::string duplicate;
  auto callback = [&](int, json::parse_event_t event, json& parsed) {
    if (event == json::parse_event_t::object_start) keys.emplace_back();
    if (event == json::parse_event_t::object_end && !keys.empty()) keys.pop_back();
    if (event == json::parse_event_t::key && !keys.empty() && parsed.is_string() &&
        !keys.back().insert(parsed.get<std::string>()).second && duplicate.empty())
      duplicate = parsed.get<std::string>();
    return true;
  };
  json j;
  try {
    j = json::parse(text.begin(), text.end(), callback);
  } catch (const json::exception& e) {
    ATTNBENCH_BAD_INPUT("bad " << what << " JSON: " << printable(e.what(), 160));
  }
  if (!duplicate.empty())
    ATTNBENCH_BAD_INPUT("bad " << what << " JSON: duplicate key '" << printable(duplicate) << "'");
  return j;
}

// The safetensors dtype names this loader accepts; the others (F64, I8, BOOL, F8_E4M3, ...)
// are named in the message so the user knows what to convert.
trace_dtype safetensors_dtype(const std::string& name, const std::string& tensor) {
  if (name == "F32") return trace_dtype::f32;
  if (name == "F16") return trace_dtype::f16;
  if (name == "BF16") return trace_dtype::bf16;
  ATTNBENCH_BAD_INPUT("tensor '" << printable(tensor) << "' has dtype " << printable(name)
                                 << " (accepted: F32, F16, BF16)");
}

// ---- npy header: a Python dict literal such as
// {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }

// numpy writes exactly these three keys; the grammar accepted is the subset numpy emits
// (single or double quotes, any spacing, optional trailing commas), nothing is evaluated.
struct npy_header_parser {
  std::string_view text;
  std::size_t at = 0;

  void skip_space() {
    while (at < text.size() && (text[at] == ' ' || text[at] == '\t' || text[at] == '\n')) ++at;
  }
  [[noreturn]] void fail(const std::string& why) {
    ATTNBENCH_BAD_INPUT("bad npy header: " << why << " at character " << at);
  }
  bool accept(char c) {
    skip_space();
    if (at < text.size() && text[at] == c) {
      ++at;
      return true;
    }
    return false;
  }
  void expect(char c) {
    if (!accept(c)) fail(std::string("expected '") + c + "'");
  }
  std::string string_literal() {
    skip_space();
    if (at >= text.size() || (text[at] != '\'' && text[at] != '"')) fail("expected a string");
    char quote = text[at++];
    auto end = text.find(quote, at);
    if (end == std::string_view::npos) fail("unterminated string");
    std::string s(text.substr(at, end - at));
    at = end + 1;
    return s;
  }
  bool boolean() {
    skip_space();
    for (auto [word, value] : {std::pair{"True", true}, std::pair{"False", false}}) {
      std::string_view w(word);
      if (text.substr(at, w.size()) == w) {
        at += w.size();
        return value;
      }
    }
    fail("expected True or False");
  }
  std::vector<std::int64_t> shape_tuple() {
    expect('(');
    std::vector<std::int64_t> dims;
    while (!accept(')')) {
      skip_space();
      std::int64_t d = 0;
      std::size_t digits = 0;
      while (at < text.size() && text[at] >= '0' && text[at] <= '9') {
        // 18 digits always fit in int64; more is an absurd dimension.
        if (++digits > 18) fail("dimension too large");
        d = d * 10 + (text[at++] - '0');
      }
      if (digits == 0) fail("expected a dimension");
      if (dims.size() == max_rank) fail("more than 8 dimensions");
      dims.push_back(d);
      if (!accept(',')) {
        expect(')');
        break;
      }
    }
    return dims;
  }
};

}  // namespace

const char* name_of(trace_dtype t) {
  switch (t) {
    case trace_dtype::f32:
      return "F32";
    case trace_dtype::f16:
      return "F16";
    case trace_dtype::bf16:
      return "BF16";
  }
  return "F32";
}

// ---- float conversions (IEEE 754 binary16 and bfloat16, round to nearest even)

// binary16: 1 sign, 5 exponent (bias 15), 10 mantissa bits. Exponent 0 holds zeros and
// subnormals (mant * 2^-24), 31 holds Inf and NaN; the rest rebias to float's 127.
float half_to_float(std::uint16_t h) {
  std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000) << 16;
  std::uint32_t exp = (h >> 10) & 0x1f;
  std::uint32_t mant = h & 0x3ff;
  if (exp == 0) {
    float f = std::ldexp(static_cast<float>(mant), -24);
    return sign ? -f : f;
  }
  std::uint32_t bits =
      exp == 31 ? (sign | 0x7f800000u | (mant << 13)) : (sign | ((exp + 112) << 23) | (mant << 13));
  return std::bit_cast<float>(bits);
}

// Rounds to nearest, ties to even, as numpy and torch do: the dropped bits are compared with
// half of the last kept bit.
std::uint16_t float_to_half(float f) {
  std::uint32_t x = std::bit_cast<std::uint32_t>(f);
  std::uint32_t sign = (x >> 16) & 0x8000;
  std::uint32_t exp = (x >> 23) & 0xff;
  std::uint32_t mant = x & 0x7fffff;
  if (exp == 0xff) return static_cast<std::uint16_t>(sign | 0x7c00 | (mant ? 0x200 : 0));
  int e = static_cast<int>(exp) - 127 + 15;
  if (e >= 31) return static_cast<std::uint16_t>(sign | 0x7c00);
  if (e <= 0) {
    // Subnormal half: the value is mant24 * 2^(exp - 150) = m * 2^-24.
    if (e < -10) return static_cast<std::uint16_t>(sign);
    mant |= 0x800000;
    int shift = 14 - e;
    std::uint32_t h = mant >> shift;
    std::uint32_t rem = mant & ((1u << shift) - 1);
    std::uint32_t half = 1u << (shift - 1);
    if (rem > half || (rem == half && (h & 1))) ++h;
    return static_cast<std::uint16_t>(sign | h);
  }
  std::uint32_t h = (static_cast<std::uint32_t>(e) << 10) | (mant >> 13);
  std::uint32_t rem = mant & 0x1fff;
  // A carry out of the mantissa correctly bumps the exponent (up to Inf).
  if (rem > 0x1000 || (rem == 0x1000 && (h & 1))) ++h;
  return static_cast<std::uint16_t>(sign | h);
}

// bfloat16 is the top half of a float: widening is a shift.
float bf16_to_float(std::uint16_t b) {
  return std::bit_cast<float>(static_cast<std::uint32_t>(b) << 16);
}

// Adding 0x7fff plus the lowest kept bit rounds to nearest even; NaN keeps a quiet-NaN payload
// so the carry cannot turn it into Inf.
std::uint16_t float_to_bf16(float f) {
  std::uint32_t x = std::bit_cast<std::uint32_t>(f);
  if (std::isnan(f)) return static_cast<std::uint16_t>((x >> 16) | 0x40);
  x += 0x7fff + ((x >> 16) & 1);
  return static_cast<std::uint16_t>(x >> 16);
}

std::vector<std::pair<std::int64_t, std::int64_t>> qkv_trace::evidence() const {
  std::vector<std::pair<std::int64_t, std::int64_t>> spans;
  if (meta.is_object() && meta.contains("evidence"))
    for (const auto& s : meta["evidence"])
      spans.emplace_back(s[0].get<std::int64_t>(), s[1].get<std::int64_t>());
  return spans;
}

// ---- parsers

// Layout: u64 little-endian N, N bytes of JSON header, then the data buffer. Each header entry
// gives a dtype, a shape and [begin, end) offsets into the data buffer. The checks run in the
// order of the bytes: length, header, each entry against the buffer, then the tiling of the
// buffer, and only then is anything allocated or converted.
std::map<std::string, trace_tensor> parse_safetensors(const std::uint8_t* data, std::size_t size) {
  ATTNBENCH_CHECK(size >= 8, bad_input,
                  "truncated: " << size << " bytes, shorter than the 8-byte safetensors header");
  std::uint64_t header_bytes = read_u64_le(data);
  ATTNBENCH_CHECK(header_bytes <= max_safetensors_header_bytes, bad_input,
                  "safetensors header length " << header_bytes << " is above the limit of "
                                               << max_safetensors_header_bytes << " bytes");
  ATTNBENCH_CHECK(header_bytes <= size - 8, bad_input,
                  "truncated: the safetensors header needs " << header_bytes
                                                             << " bytes, the file has " << size - 8
                                                             << " after its length");
  std::string_view header_text(reinterpret_cast<const char*>(data + 8),
                               static_cast<std::size_t>(header_bytes));
  json header = parse_json_strict(header_text, "safetensors header");
  ATTNBENCH_CHECK(header.is_object(), bad_input, "bad safetensors header: not a JSON object");

  const std::uint8_t* buffer = data + 8 + header_bytes;
  const std::uint64_t buffer_bytes = size - 8 - header_bytes;

  struct entry {
    std::string name;
    trace_dtype dtype;
    std::vector<std::int64_t> shape;
    std::uint64_t elements, begin, end;
  };
  std::vector<entry> entries;
  std::uint64_t total_floats = 0;
  for (const auto& [name, info] : header.items()) {
    if (name == "__metadata__") {
      ATTNBENCH_CHECK(info.is_object(), bad_input,
                      "bad safetensors header: __metadata__ is not an object");
      continue;
    }
    const std::string what = "tensor '" + printable(name) + "'";
    ATTNBENCH_CHECK(info.is_object() && info.contains("dtype") && info["dtype"].is_string() &&
                        info.contains("shape") && info["shape"].is_array() &&
                        info.contains("data_offsets") && info["data_offsets"].is_array(),
                    bad_input,
                    "bad safetensors header: " << what << " needs dtype, shape and data_offsets");
    entry e{name, safetensors_dtype(info["dtype"].get<std::string>(), name), {}, 0, 0, 0};
    const json& shape = info["shape"];
    ATTNBENCH_CHECK(shape.size() <= max_rank, bad_input,
                    what << " has " << shape.size() << " dimensions (at most 8)");
    for (const auto& d : shape) {
      ATTNBENCH_CHECK(d.is_number_unsigned(), bad_input,
                      "bad safetensors header: " << what << " has a non-integer dimension");
      auto v = d.get<std::uint64_t>();
      ATTNBENCH_CHECK(v <= static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()),
                      bad_input, what << " has an absurd dimension " << v);
      e.shape.push_back(static_cast<std::int64_t>(v));
    }
    const json& offsets = info["data_offsets"];
    ATTNBENCH_CHECK(
        offsets.size() == 2 && offsets[0].is_number_unsigned() && offsets[1].is_number_unsigned(),
        bad_input,
        "bad safetensors header: " << what << " data_offsets is not two unsigned integers");
    e.begin = offsets[0].get<std::uint64_t>();
    e.end = offsets[1].get<std::uint64_t>();
    ATTNBENCH_CHECK(e.begin <= e.end, bad_input,
                    what << " data_offsets [" << e.begin << ", " << e.end << "] are reversed");
    ATTNBENCH_CHECK(e.end <= buffer_bytes, bad_input,
                    "truncated: " << what << " data ends at byte " << e.end
                                  << " of a data buffer of " << buffer_bytes << " bytes");
    e.elements = checked_elements(e.shape, what);
    ATTNBENCH_CHECK(e.elements * dtype_bytes(e.dtype) == e.end - e.begin, bad_input,
                    what << " shape " << shape_text(e.shape) << " of " << name_of(e.dtype)
                         << " needs " << e.elements * dtype_bytes(e.dtype)
                         << " bytes, data_offsets give " << e.end - e.begin);
    total_floats += e.elements;
    ATTNBENCH_CHECK(
        total_floats <= max_trace_bytes / sizeof(float), bad_input,
        "tensors total more than the " << (max_trace_bytes >> 30) << " GiB trace limit");
    entries.push_back(std::move(e));
  }

  // The reference loader requires the tensors to tile the data buffer exactly: no overlap
  // (two tensors sharing bytes), no holes, nothing after the last tensor.
  std::vector<const entry*> order;
  for (const auto& e : entries) order.push_back(&e);
  std::sort(order.begin(), order.end(), [](const entry* a, const entry* b) {
    return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
  });
  std::uint64_t covered = 0;
  for (const entry* e : order) {
    ATTNBENCH_CHECK(e->begin >= covered, bad_input,
                    "tensor '" << printable(e->name) << "' data_offsets [" << e->begin << ", "
                               << e->end << "] overlap another tensor");
    ATTNBENCH_CHECK(
        e->begin == covered, bad_input,
        "hole in the safetensors data buffer before tensor '" << printable(e->name) << "'");
    covered = e->end;
  }
  ATTNBENCH_CHECK(
      covered == buffer_bytes, bad_input,
      buffer_bytes - covered << " bytes after the last tensor in the safetensors data buffer");

  std::map<std::string, trace_tensor> tensors;
  for (const auto& e : entries) {
    trace_tensor t;
    t.shape = e.shape;
    t.stored = e.dtype;
    t.data =
        decode_values(buffer + e.begin, e.elements, e.dtype, "tensor '" + printable(e.name) + "'");
    tensors.emplace(e.name, std::move(t));
  }
  return tensors;
}

// Layout: "\x93NUMPY", major and minor version bytes, the header length (u16 in version 1,
// u32 in 2 and 3), the header (a Python dict literal padded with spaces and '\n'), then the
// raw array.
trace_tensor parse_npy(const std::uint8_t* data, std::size_t size) {
  static constexpr std::uint8_t magic[6] = {0x93, 'N', 'U', 'M', 'P', 'Y'};
  ATTNBENCH_CHECK(size >= 10, bad_input, "truncated: " << size << " bytes, not an npy file");
  ATTNBENCH_CHECK(std::memcmp(data, magic, 6) == 0, bad_input,
                  "bad npy header: no \\x93NUMPY magic");
  const int major = data[6];
  ATTNBENCH_CHECK(major >= 1 && major <= 3 && data[7] == 0, bad_input,
                  "bad npy header: unknown format version " << major << "." << int{data[7]});
  // Version 1 stores the header length in 2 bytes, versions 2 and 3 in 4.
  std::size_t prefix = major == 1 ? 10 : 12;
  ATTNBENCH_CHECK(size >= prefix, bad_input, "truncated: " << size << " bytes, not an npy file");
  std::uint64_t header_bytes =
      major == 1 ? static_cast<std::uint64_t>(data[8] | (data[9] << 8)) : read_u32_le(data + 8);
  ATTNBENCH_CHECK(header_bytes <= size - prefix, bad_input,
                  "truncated: the npy header needs " << header_bytes << " bytes, the file has "
                                                     << size - prefix);
  npy_header_parser p{std::string_view(reinterpret_cast<const char*>(data + prefix), header_bytes)};

  std::string descr;
  std::optional<bool> fortran;
  std::optional<std::vector<std::int64_t>> shape;
  p.expect('{');
  while (!p.accept('}')) {
    std::string key = p.string_literal();
    p.expect(':');
    if (key == "descr" && descr.empty()) {
      descr = p.string_literal();
      if (descr.empty()) p.fail("empty descr");
    } else if (key == "fortran_order" && !fortran) {
      fortran = p.boolean();
    } else if (key == "shape" && !shape) {
      shape = p.shape_tuple();
    } else {
      p.fail("unexpected or repeated key '" + printable(key) + "'");
    }
    if (!p.accept(',')) {
      p.expect('}');
      break;
    }
  }
  ATTNBENCH_CHECK(!descr.empty() && fortran && shape, bad_input,
                  "bad npy header: needs descr, fortran_order and shape");
  ATTNBENCH_CHECK(!*fortran, bad_input, "npy array is in Fortran order (only C order is accepted)");
  trace_dtype dtype;
  if (descr == "<f4") {
    dtype = trace_dtype::f32;
  } else if (descr == "<f2") {
    dtype = trace_dtype::f16;
  } else if (descr[0] == '>') {
    ATTNBENCH_BAD_INPUT("npy dtype '" << printable(descr)
                                      << "' is big-endian (only little-endian is accepted)");
  } else {
    ATTNBENCH_BAD_INPUT("npy dtype '" << printable(descr) << "' is not accepted ('<f4', '<f2')");
  }
  std::uint64_t elements = checked_elements(*shape, "npy array");
  std::uint64_t needed = elements * dtype_bytes(dtype);
  std::uint64_t have = size - prefix - header_bytes;
  ATTNBENCH_CHECK(have >= needed, bad_input,
                  "truncated: npy shape " << shape_text(*shape) << " needs " << needed
                                          << " data bytes, the file has " << have);
  ATTNBENCH_CHECK(have == needed, bad_input, have - needed << " bytes after the npy array data");
  trace_tensor t;
  t.shape = *shape;
  t.stored = dtype;
  t.data = decode_values(data + prefix + header_bytes, elements, dtype, "npy array");
  return t;
}

// ---- sidecar

namespace {

// An integer field of the sidecar in [lo, hi], or one line naming the field.
std::int64_t sidecar_int(const json& j, const char* key, std::int64_t lo, std::int64_t hi) {
  ATTNBENCH_CHECK(j.contains(key), bad_input, "sidecar has no '" << key << "'");
  const json& v = j[key];
  ATTNBENCH_CHECK(v.is_number_integer(), bad_input, "sidecar '" << key << "' is not an integer");
  // Non-negative JSON integers parse as unsigned: compare them as unsigned, so 2^64 - 1 does
  // not wrap to -1.
  bool in_range = v.is_number_unsigned()
                      ? v.get<std::uint64_t>() <= static_cast<std::uint64_t>(hi) &&
                            static_cast<std::int64_t>(v.get<std::uint64_t>()) >= lo
                      : v.get<std::int64_t>() >= lo && v.get<std::int64_t>() <= hi;
  ATTNBENCH_CHECK(
      in_range, bad_input,
      "sidecar '" << key << "' = " << v.dump() << " is out of range [" << lo << ", " << hi << "]");
  return v.get<std::int64_t>();
}

// The tensor holds exactly the shape the sidecar declares ([layers, heads, tokens, head_dim]).
void check_shape(const trace_tensor& t, const char* name, std::vector<std::int64_t> expected) {
  ATTNBENCH_CHECK(t.shape == expected, bad_input,
                  "shape mismatch: " << name << " is " << shape_text(t.shape)
                                     << ", the sidecar says " << shape_text(expected));
}

}  // namespace

qkv_trace assemble_trace(std::string_view sidecar_json, trace_tensor q, trace_tensor k,
                         trace_tensor v) {
  json meta = parse_json_strict(sidecar_json, "sidecar");
  ATTNBENCH_CHECK(meta.is_object(), bad_input, "bad sidecar: not a JSON object");
  qkv_trace t;
  ATTNBENCH_CHECK(meta.contains("model") && meta["model"].is_string(), bad_input,
                  "sidecar has no 'model' string");
  t.model = meta["model"].get<std::string>();
  t.layers = static_cast<int>(sidecar_int(meta, "layers", 1, max_layers));
  t.q_heads = static_cast<int>(sidecar_int(meta, "q_heads", 1, max_heads));
  t.kv_heads = static_cast<int>(sidecar_int(meta, "kv_heads", 1, max_heads));
  t.head_dim = static_cast<int>(sidecar_int(meta, "head_dim", 1, max_head_dim));
  t.tokens = sidecar_int(meta, "tokens", 1, max_tokens);
  ATTNBENCH_CHECK(
      t.q_heads % t.kv_heads == 0, bad_input,
      "sidecar q_heads " << t.q_heads << " is not a multiple of kv_heads " << t.kv_heads);
  // Shapes first: they bound `tokens` by the data actually present before anything of that
  // size is allocated.
  check_shape(q, "q", {t.layers, t.q_heads, t.tokens, t.head_dim});
  check_shape(k, "k", {t.layers, t.kv_heads, t.tokens, t.head_dim});
  check_shape(v, "v", {t.layers, t.kv_heads, t.tokens, t.head_dim});

  if (meta.contains("positions")) {
    const json& pos = meta["positions"];
    ATTNBENCH_CHECK(pos.is_array() && static_cast<std::int64_t>(pos.size()) == t.tokens, bad_input,
                    "sidecar 'positions' is not an array of " << t.tokens << " integers");
    for (const auto& p : pos) {
      ATTNBENCH_CHECK(p.is_number_unsigned() && p.get<std::uint64_t>() <= (1ull << 40), bad_input,
                      "sidecar 'positions' holds a value that is not a position");
      t.positions.push_back(p.get<std::int64_t>());
    }
  } else {
    t.positions.resize(static_cast<std::size_t>(t.tokens));
    for (std::int64_t i = 0; i < t.tokens; ++i) t.positions[static_cast<std::size_t>(i)] = i;
  }
  // Optional fields the suites read: where the question starts (posir's query-agnostic mode
  // prefills the tokens before it) and one role name per (layer, KV head).
  if (meta.contains("question_begin")) {
    const json& qb = meta["question_begin"];
    ATTNBENCH_CHECK(qb.is_number_unsigned() && qb.get<std::uint64_t>() >= 1 &&
                        qb.get<std::uint64_t>() < static_cast<std::uint64_t>(t.tokens),
                    bad_input,
                    "sidecar 'question_begin' is not a token index in [1, " << t.tokens << ")");
  }
  if (meta.contains("kv_head_roles")) {
    const json& roles = meta["kv_head_roles"];
    const auto count = static_cast<std::size_t>(t.layers) * static_cast<std::size_t>(t.kv_heads);
    ATTNBENCH_CHECK(
        roles.is_array() && roles.size() == count &&
            std::all_of(roles.begin(), roles.end(), [](const json& r) { return r.is_string(); }),
        bad_input,
        "sidecar 'kv_head_roles' is not an array of " << count << " strings (layers x kv_heads)");
  }
  if (meta.contains("rope_base"))
    ATTNBENCH_CHECK(meta["rope_base"].is_number() && meta["rope_base"].get<double>() > 0 &&
                        std::isfinite(meta["rope_base"].get<double>()),
                    bad_input, "sidecar 'rope_base' is not a positive number");
  if (meta.contains("evidence")) {
    const json& ev = meta["evidence"];
    ATTNBENCH_CHECK(ev.is_array(), bad_input, "sidecar 'evidence' is not an array of spans");
    for (const auto& s : ev) {
      bool ok = s.is_array() && s.size() == 2 && s[0].is_number_unsigned() &&
                s[1].is_number_unsigned() &&
                s[0].get<std::uint64_t>() < s[1].get<std::uint64_t>() &&
                s[1].get<std::uint64_t>() <= static_cast<std::uint64_t>(t.tokens);
      ATTNBENCH_CHECK(
          ok, bad_input,
          "sidecar 'evidence' span is not [begin, end) with 0 <= begin < end <= " << t.tokens);
    }
  }
  t.q = std::move(q.data);
  t.k = std::move(k.data);
  t.v = std::move(v.data);
  t.meta = std::move(meta);
  return t;
}

// ---- files

namespace {

bool ends_with(const std::string& s, std::string_view suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// MemAvailable from /proc/meminfo (what can be allocated without swapping); 0 when unknown.
std::uint64_t available_memory_bytes() {
  std::ifstream in("/proc/meminfo");
  std::string key;
  std::uint64_t kb = 0;
  std::string unit;
  while (in >> key >> kb >> unit)
    if (key == "MemAvailable:") return kb * 1024;
  long pages = sysconf(_SC_AVPHYS_PAGES);
  long page = sysconf(_SC_PAGE_SIZE);
  return pages > 0 && page > 0 ? static_cast<std::uint64_t>(pages) * page : 0;
}

// The whole file, refused before reading when it is above `limit` bytes.
std::vector<std::uint8_t> read_file(const fs::path& path, std::uintmax_t limit) {
  std::error_code ec;
  ATTNBENCH_CHECK(fs::is_regular_file(path, ec), bad_input, "missing file " << path.string());
  auto size = fs::file_size(path, ec);
  ATTNBENCH_CHECK(!ec, bad_input, "cannot stat " << path.string() << ": " << ec.message());
  ATTNBENCH_CHECK(size <= limit, bad_input,
                  path.string() << " is " << size << " bytes, above the limit of " << limit);
  std::vector<std::uint8_t> bytes(static_cast<std::size_t>(size));
  std::ifstream in(path, std::ios::binary);
  in.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(size));
  ATTNBENCH_CHECK(in && in.gcount() == static_cast<std::streamsize>(size), bad_input,
                  "cannot read " << path.string());
  return bytes;
}

void write_file(const std::string& path, const void* data, std::size_t size) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(static_cast<const char*>(data), static_cast<std::streamsize>(size));
  out.close();
  ATTNBENCH_CHECK(out, io, "cannot write " << path);
}

// Moves tensor `name` out of a parsed file, or names what the file has instead.
trace_tensor take(std::map<std::string, trace_tensor>& tensors, const std::string& name) {
  auto it = tensors.find(name);
  if (it == tensors.end()) {
    std::string have;
    for (const auto& [n, t] : tensors) have += (have.empty() ? "" : ", ") + printable(n);
    ATTNBENCH_BAD_INPUT("no tensor '" << name << "' (has: " << (have.empty() ? "none" : have)
                                      << ")");
  }
  return std::move(it->second);
}

// Bytes of one tensor in `dtype`, refusing values the dtype cannot hold.
void encode_values(const std::vector<float>& values, trace_dtype dtype,
                   std::vector<std::uint8_t>& out) {
  for (float f : values) {
    if (dtype == trace_dtype::f32) {
      auto bits = std::bit_cast<std::uint32_t>(f);
      for (int b = 0; b < 4; ++b) out.push_back(static_cast<std::uint8_t>(bits >> (8 * b)));
      continue;
    }
    std::uint16_t h = dtype == trace_dtype::f16 ? float_to_half(f) : float_to_bf16(f);
    float back = dtype == trace_dtype::f16 ? half_to_float(h) : bf16_to_float(h);
    ATTNBENCH_CHECK(std::isfinite(back), bad_input,
                    "value " << f << " is not finite in " << name_of(dtype));
    out.push_back(static_cast<std::uint8_t>(h & 0xff));
    out.push_back(static_cast<std::uint8_t>(h >> 8));
  }
}

// The sidecar written next to the tensors: the trace's meta with the fields the loader reads
// set from the trace itself, so the two can never disagree.
std::string sidecar_text(const qkv_trace& t) {
  json meta = t.meta.is_object() ? t.meta : json::object();
  meta["model"] = t.model;
  meta["layers"] = t.layers;
  meta["q_heads"] = t.q_heads;
  meta["kv_heads"] = t.kv_heads;
  meta["head_dim"] = t.head_dim;
  meta["tokens"] = t.tokens;
  meta["positions"] = t.positions;
  return meta.dump() + "\n";
}

trace_tensor as_tensor(const std::vector<float>& data, int layers, int heads, std::int64_t tokens,
                       int head_dim) {
  trace_tensor t;
  t.shape = {layers, heads, tokens, head_dim};
  t.data = data;
  return t;
}

// NAME from NAME.safetensors, NAME.q.npy or NAME.json (the first suffix that matches).
std::string stem_of(const std::string& path, std::initializer_list<std::string_view> suffixes) {
  for (auto s : suffixes)
    if (ends_with(path, s)) return path.substr(0, path.size() - s.size());
  return path;
}

}  // namespace

// The writer mirrors the reference: tensors in the given order, tiling the buffer, metadata
// (string values only, as the format requires) under "__metadata__".
std::vector<std::uint8_t> safetensors_bytes(
    const std::vector<std::pair<std::string, const trace_tensor*>>& tensors, trace_dtype dtype,
    const json& metadata) {
  json header = json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::vector<std::uint8_t> payload;
  for (const auto& [name, t] : tensors) {
    auto begin = payload.size();
    encode_values(t->data, dtype, payload);
    header[name] = {
        {"dtype", name_of(dtype)}, {"shape", t->shape}, {"data_offsets", {begin, payload.size()}}};
  }
  std::string text = header.dump();
  // The reference writer pads the header with spaces so the data starts 8-byte aligned.
  text.append((8 - text.size() % 8) % 8, ' ');
  std::vector<std::uint8_t> out(8 + text.size() + payload.size());
  for (std::size_t b = 0; b < 8; ++b) out[b] = static_cast<std::uint8_t>(text.size() >> (8 * b));
  std::memcpy(out.data() + 8, text.data(), text.size());
  if (!payload.empty()) std::memcpy(out.data() + 8 + text.size(), payload.data(), payload.size());
  return out;
}

std::vector<std::uint8_t> npy_bytes(const trace_tensor& tensor, trace_dtype dtype) {
  ATTNBENCH_CHECK(dtype != trace_dtype::bf16, bad_input, "npy has no BF16 dtype");
  std::ostringstream os;
  os << "{'descr': '" << (dtype == trace_dtype::f32 ? "<f4" : "<f2")
     << "', 'fortran_order': False, 'shape': (";
  for (std::size_t i = 0; i < tensor.shape.size(); ++i) os << (i ? ", " : "") << tensor.shape[i];
  // A one-element Python tuple needs its trailing comma.
  os << (tensor.shape.size() == 1 ? ",), }" : "), }");
  std::string header = os.str();
  // Format 1.0 pads the header with spaces and a newline to a multiple of 64 bytes in all.
  std::size_t total = 10 + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header += '\n';
  // Magic, version 1.0, then the header length in 2 little-endian bytes.
  std::string prefix = "\x93NUMPY";
  prefix += {'\x01', '\x00', static_cast<char>(header.size() & 0xff),
             static_cast<char>(header.size() >> 8)};
  prefix += header;
  std::vector<std::uint8_t> out(prefix.begin(), prefix.end());
  encode_values(tensor.data, dtype, out);
  return out;
}

void write_trace_safetensors(const qkv_trace& trace, const std::string& stem, trace_dtype dtype) {
  std::string base = stem_of(stem, {".safetensors"});
  trace_tensor q = as_tensor(trace.q, trace.layers, trace.q_heads, trace.tokens, trace.head_dim);
  trace_tensor k = as_tensor(trace.k, trace.layers, trace.kv_heads, trace.tokens, trace.head_dim);
  trace_tensor v = as_tensor(trace.v, trace.layers, trace.kv_heads, trace.tokens, trace.head_dim);
  auto bytes = safetensors_bytes({{"q", &q}, {"k", &k}, {"v", &v}}, dtype,
                                 json{{"format", "attnbench-trace"}});
  write_file(base + ".safetensors", bytes.data(), bytes.size());
  std::string side = sidecar_text(trace);
  write_file(base + ".json", side.data(), side.size());
}

void write_trace_npy(const qkv_trace& trace, const std::string& stem, trace_dtype dtype) {
  std::string base = stem_of(stem, {".q.npy", ".json"});
  const std::pair<const char*, trace_tensor> parts[] = {
      {"q", as_tensor(trace.q, trace.layers, trace.q_heads, trace.tokens, trace.head_dim)},
      {"k", as_tensor(trace.k, trace.layers, trace.kv_heads, trace.tokens, trace.head_dim)},
      {"v", as_tensor(trace.v, trace.layers, trace.kv_heads, trace.tokens, trace.head_dim)}};
  for (const auto& [name, t] : parts) {
    auto bytes = npy_bytes(t, dtype);
    write_file(base + "." + name + ".npy", bytes.data(), bytes.size());
  }
  std::string side = sidecar_text(trace);
  write_file(base + ".json", side.data(), side.size());
}

// Finds the files by the convention of the header (NAME.safetensors first, then the .npy
// triple), checks sizes against limits and free memory, parses, assembles, and prefixes any
// rejection with the path the user gave.
qkv_trace load_trace(const std::string& path) {
  try {
    std::string stem = stem_of(path, {".safetensors", ".q.npy", ".json"});
    std::error_code ec;
    fs::path tensors_path = stem + ".safetensors";
    bool npy = false;
    if (!fs::exists(tensors_path, ec)) {
      npy = fs::exists(stem + ".q.npy", ec);
      ATTNBENCH_CHECK(
          npy, bad_input,
          "no tensor file (looked for " << stem << ".safetensors and " << stem << ".q.npy)");
    }
    fs::path sidecar_path = stem + ".json";
    ATTNBENCH_CHECK(fs::is_regular_file(sidecar_path, ec), bad_input,
                    "missing sidecar " << sidecar_path.string());

    // Refuse before reading: the files plus their float copies (up to twice the bytes of a
    // 16-bit file) must fit in max_trace_bytes and in the memory this machine has free.
    std::vector<fs::path> files;
    if (npy)
      for (const char* n : {".q.npy", ".k.npy", ".v.npy"}) files.emplace_back(stem + n);
    else
      files.push_back(tensors_path);
    std::uintmax_t total = 0;
    for (const auto& f : files) {
      ATTNBENCH_CHECK(fs::is_regular_file(f, ec), bad_input, "missing file " << f.string());
      total += fs::file_size(f, ec);
    }
    std::uint64_t available = available_memory_bytes();
    ATTNBENCH_CHECK(total <= max_trace_bytes, bad_input,
                    "tensor files total " << total << " bytes, above the "
                                          << (max_trace_bytes >> 30) << " GiB trace limit");
    ATTNBENCH_CHECK(available == 0 || 3 * total <= available, bad_input,
                    "tensor files total " << total << " bytes; loading needs up to " << 3 * total
                                          << " and this machine has " << available
                                          << " bytes available");

    auto side_bytes = read_file(sidecar_path, max_sidecar_bytes);
    std::string_view side(reinterpret_cast<const char*>(side_bytes.data()), side_bytes.size());
    // Each npy file is named in its own rejection, since three files share one stem.
    if (npy) {
      std::vector<trace_tensor> parts;
      for (const auto& f : files) {
        auto bytes = read_file(f, max_trace_bytes);
        try {
          parts.push_back(parse_npy(bytes.data(), bytes.size()));
        } catch (const error& e) {
          ATTNBENCH_BAD_INPUT(f.filename().string() << ": " << e.what());
        }
      }
      return assemble_trace(side, std::move(parts[0]), std::move(parts[1]), std::move(parts[2]));
    }
    std::map<std::string, trace_tensor> tensors;
    {
      auto bytes = read_file(tensors_path, max_trace_bytes + max_safetensors_header_bytes + 8);
      tensors = parse_safetensors(bytes.data(), bytes.size());
    }
    trace_tensor q = take(tensors, "q"), k = take(tensors, "k"), v = take(tensors, "v");
    return assemble_trace(side, std::move(q), std::move(k), std::move(v));
  } catch (const error& e) {
    ATTNBENCH_BAD_INPUT("trace '" << path << "': " << e.what());
  } catch (const std::bad_alloc&) {
    ATTNBENCH_BAD_INPUT("trace '" << path << "': out of memory while loading");
  }
}

}  // namespace attnbench
