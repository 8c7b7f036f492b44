// safetensors: the parser of the in-memory file (checked before anything is allocated) and the
// writer, which mirrors the reference implementation's layout.
#include <cstring>
#include <map>
#include <set>
#include <string>

#include "datasets/trace_io.hpp"
#include "datasets/trace_io_internal.hpp"
#include "harness/error.hpp"

namespace attnbench {

using json = nlohmann::json;
using namespace trace_detail;

namespace {

// The safetensors dtype names this loader accepts; the others (F64, I8, BOOL, F8_E4M3, ...)
// are named in the message so the user knows what to convert.
trace_dtype safetensors_dtype(const std::string& name, const std::string& tensor) {
  if (name == "F32") return trace_dtype::f32;
  if (name == "F16") return trace_dtype::f16;
  if (name == "BF16") return trace_dtype::bf16;
  ATTNBENCH_BAD_INPUT("tensor '" << printable(tensor) << "' has dtype " << printable(name)
                                 << " (accepted: F32, F16, BF16)");
}

}  // namespace

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

}  // namespace attnbench
