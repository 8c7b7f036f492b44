// npy (format 1.0-3.0): the header grammar numpy emits, the parser of the in-memory file and the
// writer of one tensor per file (NAME.q.npy, NAME.k.npy, NAME.v.npy beside NAME.json).
#include <cstring>
#include <optional>
#include <sstream>
#include <string>

#include "datasets/trace_io.hpp"
#include "datasets/trace_io_internal.hpp"
#include "harness/error.hpp"

namespace attnbench {

using json = nlohmann::json;
using namespace trace_detail;

namespace {

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

}  // namespace attnbench
