// libFuzzer target for the trace parsers (datasets/trace_io): safetensors, npy and the sidecar.
// The first input byte picks the parser, the rest is the file. Every rejection must be one
// attnbench::error(bad_input) on one line; any other exception, a sanitizer report or a
// round-trip mismatch is a crash. Built only with clang (-DATTNBENCH_BUILD_FUZZERS=ON);
// tests/fuzz/run_fuzz.sh builds the seed corpus and runs it.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

#include "datasets/trace_io.hpp"
#include "harness/error.hpp"

using namespace attnbench;

namespace {

[[noreturn]] void crash(const char* why, const std::string& detail) {
  std::fprintf(stderr, "fuzz_trace_parsers: %s: %s\n", why, detail.c_str());
  std::abort();
}

void check_rejection(const error& e) {
  std::string m = e.what();
  if (e.id() != error_id::bad_input) crash("rejection is not bad_input", m);
  if (m.empty() || m.find('\n') != std::string::npos) crash("rejection is not one line", m);
}

// Whatever parses must serialize and parse back to the same shapes and values.
void round_trip(const std::map<std::string, trace_tensor>& tensors) {
  std::vector<std::pair<std::string, const trace_tensor*>> list;
  for (const auto& [name, t] : tensors) list.emplace_back(name, &t);
  auto bytes = safetensors_bytes(list, trace_dtype::f32);
  auto back = parse_safetensors(bytes.data(), bytes.size());
  if (back.size() != tensors.size()) crash("round trip", "tensor count differs");
  for (const auto& [name, t] : tensors) {
    const auto& b = back.at(name);
    if (b.shape != t.shape || b.data != t.data) crash("round trip", "tensor differs");
  }
}

// A fixed, valid set of tensors for fuzzing the sidecar: q [1, 2, 3, 4], k and v [1, 1, 3, 4].
trace_tensor tensor_of(std::vector<std::int64_t> shape) {
  trace_tensor t;
  std::size_t n = 1;
  for (auto d : shape) n *= static_cast<std::size_t>(d);
  t.shape = std::move(shape);
  t.data.assign(n, 0.5f);
  return t;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::uint8_t mode = data[0] % 3;
  ++data;
  --size;
  try {
    if (mode == 0) {
      round_trip(parse_safetensors(data, size));
    } else if (mode == 1) {
      trace_tensor t = parse_npy(data, size);
      auto bytes = npy_bytes(t, trace_dtype::f32);
      trace_tensor back = parse_npy(bytes.data(), bytes.size());
      if (back.shape != t.shape || back.data != t.data) crash("npy round trip", "differs");
    } else {
      qkv_trace t =
          assemble_trace(std::string_view(reinterpret_cast<const char*>(data), size),
                         tensor_of({1, 2, 3, 4}), tensor_of({1, 1, 3, 4}), tensor_of({1, 1, 3, 4}));
      if (t.positions.size() != 3 || t.q.size() != 24) crash("sidecar", "inconsistent trace");
      for (auto [b, e] : t.evidence())
        if (b < 0 || b >= e || e > 3) crash("sidecar", "evidence span out of range");
    }
  } catch (const error& e) {
    check_rejection(e);
  }
  return 0;
}
