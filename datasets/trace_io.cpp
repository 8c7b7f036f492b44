// Trace import: the format-independent part (the shared checked helpers of
// trace_io_internal.hpp, dtype names and 16-bit float conversions) and the file-level loader.
// The formats have their own files: trace_safetensors.cpp, trace_npy.cpp, trace_sidecar.cpp.
// Parsers never trust a length or a shape before checking it against the bytes actually present,
// so the fuzzer (tests/fuzz/fuzz_trace_parsers.cpp) can feed them anything; every rejection is
// one bad_input line.
#include "datasets/trace_io.hpp"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <new>
#include <optional>
#include <set>
#include <sstream>

#include <unistd.h>

#include "datasets/trace_io_internal.hpp"
#include "harness/error.hpp"

namespace attnbench {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace trace_detail {

// Untrusted text (tensor names, JSON parser messages) is shown on one printable line.
std::string printable(std::string_view text, std::size_t max_chars) {
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

bool ends_with(const std::string& s, std::string_view suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
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

void write_file(const std::string& path, const void* data, std::size_t size) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(static_cast<const char*>(data), static_cast<std::streamsize>(size));
  out.close();
  ATTNBENCH_CHECK(out, io, "cannot write " << path);
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
}  // namespace trace_detail

using namespace trace_detail;

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

// ---- files

namespace {


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

}  // namespace

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
