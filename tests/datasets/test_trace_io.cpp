// datasets/trace_io: F16/BF16 conversions, safetensors and npy round trips, the shipped tiny
// trace (it loads, matches the retrieval model it was made from, and its retrieval head finds
// the needle), and one named one-line rejection for every kind of malformed input.
//
// The shipped trace is (re)written by tools/traces (build/tools/traces/attnbench_make_tiny_trace
// datasets/traces).
#include <catch2/catch.hpp>

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include "datasets/haystack.hpp"
#include "datasets/retrieval_model.hpp"
#include "datasets/trace_io.hpp"
#include "harness/error.hpp"
#include "tools/traces/tiny_trace.hpp"

using namespace attnbench;
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

fs::path scratch() {
  static fs::path dir = [] {
    auto d = fs::temp_directory_path() / ("attnbench-trace-" + std::to_string(::getpid()));
    fs::create_directories(d);
    return d;
  }();
  return dir;
}

fs::path source_dir() {
  const char* dir = std::getenv("ATTNBENCH_SOURCE_DIR");
  return dir ? fs::path(dir) : fs::current_path();
}

// A small trace with distinct values, for round trips.
qkv_trace make_ramp_trace(int layers, int q_heads, int kv_heads, std::int64_t tokens, int dim) {
  qkv_trace t;
  t.model = "ramp";
  t.layers = layers;
  t.q_heads = q_heads;
  t.kv_heads = kv_heads;
  t.head_dim = dim;
  t.tokens = tokens;
  for (std::int64_t i = 0; i < tokens; ++i) t.positions.push_back(100 + 2 * i);
  auto fill = [](std::vector<float>& x, std::size_t n, float phase) {
    for (std::size_t i = 0; i < n; ++i)
      x.push_back(std::sin(0.37f * static_cast<float>(i) + phase) * 3.0f);
  };
  fill(t.q, static_cast<std::size_t>(layers * q_heads * tokens * dim), 0.1f);
  fill(t.k, static_cast<std::size_t>(layers * kv_heads * tokens * dim), 0.7f);
  fill(t.v, static_cast<std::size_t>(layers * kv_heads * tokens * dim), 1.3f);
  t.meta = {{"evidence", {{1, 3}}}, {"note", "round trip"}};
  return t;
}

// Largest relative error a value can get from rounding to `dtype` (half an ulp).
double rounding_tolerance(trace_dtype dtype) {
  return dtype == trace_dtype::f32 ? 0.0 : dtype == trace_dtype::f16 ? 1.0 / 2048 : 1.0 / 256;
}

void check_same(const qkv_trace& a, const qkv_trace& b, trace_dtype dtype) {
  CHECK(a.model == b.model);
  CHECK(a.layers == b.layers);
  CHECK(a.q_heads == b.q_heads);
  CHECK(a.kv_heads == b.kv_heads);
  CHECK(a.head_dim == b.head_dim);
  CHECK(a.tokens == b.tokens);
  CHECK(a.positions == b.positions);
  CHECK(a.evidence() == b.evidence());
  double tol = rounding_tolerance(dtype);
  for (auto [x, y] : {std::pair{&a.q, &b.q}, std::pair{&a.k, &b.k}, std::pair{&a.v, &b.v}}) {
    REQUIRE(x->size() == y->size());
    double worst = 0;
    for (std::size_t i = 0; i < x->size(); ++i)
      worst = std::max(
          worst, std::abs(double{(*x)[i]} - (*y)[i]) / std::max(std::abs(double{(*x)[i]}), 1e-4));
    CHECK(worst <= tol);
  }
}

std::vector<std::uint8_t> slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void spit(const fs::path& p, const std::vector<std::uint8_t>& bytes) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
}

void spit(const fs::path& p, const std::string& text) {
  spit(p, std::vector<std::uint8_t>(text.begin(), text.end()));
}

// A safetensors file from a raw header text and payload.
std::vector<std::uint8_t> raw_safetensors(const std::string& header,
                                          const std::vector<std::uint8_t>& payload,
                                          std::uint64_t declared_length = 0) {
  std::uint64_t n = declared_length ? declared_length : header.size();
  std::vector<std::uint8_t> out(8 + header.size() + payload.size());
  for (std::size_t b = 0; b < 8; ++b) out[b] = static_cast<std::uint8_t>(n >> (8 * b));
  std::memcpy(out.data() + 8, header.data(), header.size());
  if (!payload.empty()) std::memcpy(out.data() + 8 + header.size(), payload.data(), payload.size());
  return out;
}

std::vector<std::uint8_t> floats_le(const std::vector<float>& values) {
  std::vector<std::uint8_t> out(values.size() * 4);
  std::memcpy(out.data(), values.data(), out.size());
  return out;
}

// The message of the bad_input error `f` throws; fails the test when it throws nothing else.
template <class F>
std::string rejection(F&& f) {
  try {
    f();
  } catch (const error& e) {
    CHECK(e.id() == error_id::bad_input);
    std::string m = e.what();
    CHECK(m.find('\n') == std::string::npos);
    return m;
  }
  FAIL("no error thrown");
  return "";
}

std::string safetensors_rejection(const std::vector<std::uint8_t>& bytes) {
  return rejection([&] { parse_safetensors(bytes.data(), bytes.size()); });
}

std::string npy_rejection(const std::string& header, std::size_t data_bytes) {
  std::vector<std::uint8_t> bytes = {
      0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, static_cast<std::uint8_t>(header.size()), 0};
  bytes.insert(bytes.end(), header.begin(), header.end());
  bytes.resize(bytes.size() + data_bytes, 0);
  return rejection([&] { parse_npy(bytes.data(), bytes.size()); });
}

}  // namespace

TEST_CASE("half and bfloat16 conversions round to nearest even", "[trace]") {
  CHECK(float_to_half(1.0f) == 0x3c00);
  CHECK(float_to_half(-2.0f) == 0xc000);
  CHECK(float_to_half(65504.0f) == 0x7bff);
  CHECK(float_to_half(65520.0f) == 0x7c00);  // rounds up past the largest half: Inf
  CHECK(float_to_half(std::ldexp(1.0f, -24)) == 0x0001);
  CHECK(float_to_half(std::ldexp(1.0f, -25)) == 0x0000);         // tie -> even (0)
  CHECK(float_to_half(std::ldexp(3.0f, -25)) == 0x0002);         // tie -> even (2)
  CHECK(float_to_half(1.0f + std::ldexp(1.0f, -11)) == 0x3c00);  // tie -> even
  CHECK(float_to_half(1.0f + std::ldexp(3.0f, -11)) == 0x3c02);  // tie -> even
  CHECK(float_to_half(1.0f + std::ldexp(1.0f, -11) + 1e-6f) == 0x3c01);
  CHECK(half_to_float(0x3555) == Approx(0.333251953125).epsilon(0));
  CHECK(half_to_float(0x0001) == std::ldexp(1.0f, -24));
  CHECK(std::isinf(half_to_float(0x7c00)));
  CHECK(std::isnan(half_to_float(0x7e00)));
  for (std::uint32_t h = 0; h < 0x7c00; ++h)  // every finite positive half survives both ways
    REQUIRE(float_to_half(half_to_float(static_cast<std::uint16_t>(h))) == h);

  CHECK(float_to_bf16(1.0f) == 0x3f80);
  CHECK(float_to_bf16(1.0f + std::ldexp(1.0f, -8)) == 0x3f80);  // tie -> even
  CHECK(float_to_bf16(1.0f + std::ldexp(3.0f, -8)) == 0x3f82);  // tie -> even
  CHECK(bf16_to_float(0xc040) == -3.0f);
  CHECK(std::isnan(bf16_to_float(float_to_bf16(std::numeric_limits<float>::quiet_NaN()))));
}

TEST_CASE("traces survive a safetensors and npy round trip", "[trace]") {
  const qkv_trace t = make_ramp_trace(2, 4, 2, 5, 8);
  SECTION("safetensors") {
    auto dtype = GENERATE(trace_dtype::f32, trace_dtype::f16, trace_dtype::bf16);
    fs::path stem = scratch() / (std::string("rt_") + name_of(dtype));
    write_trace_safetensors(t, stem.string(), dtype);
    // Every spelling of the path finds the same pair of files.
    for (const std::string& p :
         {stem.string(), stem.string() + ".safetensors", stem.string() + ".json"}) {
      qkv_trace back = load_trace(p);
      check_same(t, back, dtype);
      CHECK(back.meta["note"] == "round trip");
    }
    auto tensors = parse_safetensors(slurp(stem.string() + ".safetensors").data(),
                                     slurp(stem.string() + ".safetensors").size());
    CHECK(tensors.at("q").shape == std::vector<std::int64_t>{2, 4, 5, 8});
    CHECK(tensors.at("k").stored == dtype);
  }
  SECTION("npy") {
    auto dtype = GENERATE(trace_dtype::f32, trace_dtype::f16);
    fs::path stem = scratch() / (std::string("rtnpy_") + name_of(dtype));
    write_trace_npy(t, stem.string(), dtype);
    CHECK_FALSE(fs::exists(stem.string() + ".safetensors"));
    check_same(t, load_trace(stem.string()), dtype);
    check_same(t, load_trace(stem.string() + ".q.npy"), dtype);
  }
  SECTION("npy headers of other writers: version 2.0, one dimension, no trailing comma") {
    std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': (3,)}\n";
    std::vector<std::uint8_t> bytes = {
        0x93, 'N', 'U', 'M', 'P', 'Y', 2, 0, static_cast<std::uint8_t>(header.size()), 0, 0, 0};
    bytes.insert(bytes.end(), header.begin(), header.end());
    auto data = floats_le({1.5f, -2.0f, 0.25f});
    bytes.insert(bytes.end(), data.begin(), data.end());
    trace_tensor x = parse_npy(bytes.data(), bytes.size());
    CHECK(x.shape == std::vector<std::int64_t>{3});
    CHECK(x.data == std::vector<float>{1.5f, -2.0f, 0.25f});
    // A scalar: shape ().
    trace_tensor s = parse_npy(npy_bytes(trace_tensor{{}, {7.0f}}, trace_dtype::f32).data(),
                               npy_bytes(trace_tensor{{}, {7.0f}}, trace_dtype::f32).size());
    CHECK(s.shape.empty());
    CHECK(s.data == std::vector<float>{7.0f});
  }
}

TEST_CASE("the shipped tiny trace loads and is the retrieval model's Q/K/V", "[trace]") {
  const fs::path path = source_dir() / "datasets" / "traces" / "tiny.safetensors";
  REQUIRE(fs::exists(path));
  CHECK(fs::file_size(path) < 100 * 1024);
  const qkv_trace shipped = load_trace(path.string());
  const qkv_trace fresh = make_tiny_trace();
  check_same(fresh, shipped, trace_dtype::f16);
  REQUIRE(shipped.evidence().size() == 1);

  // The retrieval head's query at the last prompt token ("... KEY is :") puts its largest
  // logit on the first value token of the needle, inside the evidence span.
  const auto [ev_begin, ev_end] = shipped.evidence().front();
  const std::int64_t value_begin = shipped.meta.at("value_begin").get<std::int64_t>();
  const auto roles = shipped.meta.at("kv_head_roles").get<std::vector<std::string>>();
  int checked = 0;
  for (int l = 0; l < shipped.layers; ++l)
    for (int g = 0; g < shipped.kv_heads; ++g) {
      if (roles[static_cast<std::size_t>(l * shipped.kv_heads + g)] != "retrieval") continue;
      const int h = g * (shipped.q_heads / shipped.kv_heads);
      const float* q = &shipped.q[shipped.q_index(l, h, shipped.tokens - 1)];
      std::int64_t best = -1;
      float best_logit = -1e30f;
      for (std::int64_t t = 0; t < shipped.tokens; ++t) {
        const float* k = &shipped.k[shipped.kv_index(l, g, t)];
        float dot = 0;
        for (int d = 0; d < shipped.head_dim; ++d) dot += q[d] * k[d];
        if (dot > best_logit) best_logit = dot, best = t;
      }
      CHECK(best == value_begin);
      CHECK(best >= ev_begin);
      CHECK(best < ev_end);
      ++checked;
    }
  CHECK(checked >= 1);
}

TEST_CASE("malformed safetensors are rejected with one line naming the problem", "[trace]") {
  const std::vector<std::uint8_t> four = floats_le({1, 2, 3, 4});
  const std::string good = R"({"x":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]}})";
  REQUIRE(
      parse_safetensors(raw_safetensors(good, four).data(), 8 + good.size() + 16).at("x").data ==
      std::vector<float>{1, 2, 3, 4});

  auto whole = raw_safetensors(good, four);
  // Truncated: inside the length, inside the header, inside the data.
  CHECK_THAT(safetensors_rejection({whole.begin(), whole.begin() + 5}),
             Catch::Contains("truncated"));
  CHECK_THAT(safetensors_rejection({whole.begin(), whole.begin() + 20}),
             Catch::Contains("truncated"));
  CHECK_THAT(safetensors_rejection({whole.begin(), whole.end() - 3}),
             Catch::Contains("truncated") && Catch::Contains("'x'"));
  CHECK_THAT(safetensors_rejection(raw_safetensors("{\"x\": [1,", {})),
             Catch::Contains("bad safetensors header JSON"));
  CHECK_THAT(safetensors_rejection(raw_safetensors("[1, 2]", {})),
             Catch::Contains("not a JSON object"));
  CHECK_THAT(safetensors_rejection(raw_safetensors(R"({"x":{"dtype":"F32"}})", {})),
             Catch::Contains("needs dtype, shape and data_offsets"));
  CHECK_THAT(safetensors_rejection(raw_safetensors(
                 R"({"x":{"dtype":"F64","shape":[2],"data_offsets":[0,16]}})", four)),
             Catch::Contains("dtype F64") && Catch::Contains("accepted: F32, F16, BF16"));
  CHECK_THAT(safetensors_rejection(raw_safetensors(
                 R"({"x":{"dtype":"F32","shape":[3,2],"data_offsets":[0,16]}})", four)),
             Catch::Contains("needs 24 bytes, data_offsets give 16"));
  CHECK_THAT(safetensors_rejection(raw_safetensors(
                 R"({"x":{"dtype":"F32","shape":[-2,2],"data_offsets":[0,16]}})", four)),
             Catch::Contains("non-integer dimension"));
  // Absurd sizes, refused before allocating anything of that size.
  CHECK_THAT(safetensors_rejection(raw_safetensors(good, four, std::uint64_t{1} << 62)),
             Catch::Contains("header length"));
  CHECK_THAT(safetensors_rejection(raw_safetensors(good, four, 1'000'000)),
             Catch::Contains("truncated"));
  CHECK_THAT(safetensors_rejection(
                 raw_safetensors(R"({"x":{"dtype":"F32","shape":[4294967296,4294967296,16],)"
                                 R"("data_offsets":[0,16]}})",
                                 four)),
             Catch::Contains("GiB trace limit"));
  CHECK_THAT(
      safetensors_rejection(raw_safetensors(
          R"({"x":{"dtype":"F32","shape":[1099511627776],"data_offsets":[0,4398046511104]}})",
          four)),
      Catch::Contains("truncated"));
  // Offsets: overlapping, duplicated names, holes, trailing bytes, reversed.
  CHECK_THAT(safetensors_rejection(
                 raw_safetensors(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,12]},)"
                                 R"("b":{"dtype":"F32","shape":[3],"data_offsets":[4,16]}})",
                                 four)),
             Catch::Contains("overlap"));
  CHECK_THAT(safetensors_rejection(
                 raw_safetensors(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},)"
                                 R"("a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})",
                                 four)),
             Catch::Contains("duplicate key 'a'"));
  CHECK_THAT(safetensors_rejection(
                 raw_safetensors(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                                 R"("b":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}})",
                                 four)),
             Catch::Contains("hole"));
  CHECK_THAT(safetensors_rejection(raw_safetensors(
                 R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,12]}})", four)),
             Catch::Contains("4 bytes after the last tensor"));
  CHECK_THAT(safetensors_rejection(raw_safetensors(
                 R"({"a":{"dtype":"F32","shape":[0],"data_offsets":[16,0]}})", four)),
             Catch::Contains("reversed"));
  // NaN and Inf values, in every dtype.
  CHECK_THAT(safetensors_rejection(raw_safetensors(
                 good, floats_le({1, std::numeric_limits<float>::quiet_NaN(), 3, 4}))),
             Catch::Contains("tensor 'x' has NaN at element 1"));
  CHECK_THAT(
      safetensors_rejection(raw_safetensors(
          R"({"x":{"dtype":"F16","shape":[2],"data_offsets":[0,4]}})", {0x00, 0x3c, 0x00, 0x7c})),
      Catch::Contains("tensor 'x' has Inf at element 1"));
  CHECK_THAT(
      safetensors_rejection(raw_safetensors(
          R"({"x":{"dtype":"BF16","shape":[2],"data_offsets":[0,4]}})", {0xc0, 0xff, 0x80, 0x3f})),
      Catch::Contains("tensor 'x' has NaN at element 0"));
  // Names with control characters are shown on one line.
  CHECK_THAT(safetensors_rejection(raw_safetensors(
                 "{\"a\\nb\":{\"dtype\":\"I8\",\"shape\":[16],\"data_offsets\":[0,16]}}", four)),
             Catch::Contains("tensor 'a?b'"));
}

TEST_CASE("malformed npy files are rejected with one line naming the problem", "[trace]") {
  const std::string ok = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), }";
  CHECK_THAT(npy_rejection(ok, 12), Catch::Contains("truncated") && Catch::Contains("needs 16"));
  CHECK_THAT(npy_rejection(ok, 20), Catch::Contains("4 bytes after the npy array data"));
  CHECK_THAT(npy_rejection("{'descr': '>f4', 'fortran_order': False, 'shape': (2, 2), }", 16),
             Catch::Contains("big-endian"));
  CHECK_THAT(npy_rejection("{'descr': '<f8', 'fortran_order': False, 'shape': (2, 2), }", 32),
             Catch::Contains("npy dtype '<f8' is not accepted"));
  CHECK_THAT(npy_rejection("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }", 16),
             Catch::Contains("Fortran order"));
  CHECK_THAT(npy_rejection("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), "
                           "'descr': '<f2'}",
                           16),
             Catch::Contains("repeated key 'descr'"));
  CHECK_THAT(npy_rejection("{'descr': '<f4', 'shape': (2, 2)}", 16),
             Catch::Contains("needs descr, fortran_order and shape"));
  CHECK_THAT(npy_rejection("{'descr': '<f4', 'fortran_order': False, 'shape': (2, x), }", 16),
             Catch::Contains("bad npy header: expected a dimension"));
  CHECK_THAT(npy_rejection("{'descr': '<f4', 'fortran_order': False, 'shape': "
                           "(4294967296, 4294967296, 4), }",
                           16),
             Catch::Contains("GiB trace limit"));
  CHECK_THAT(npy_rejection("{'descr': '<f4', 'fortran_order': False, 'shape': "
                           "(99999999999999999999,), }",
                           16),
             Catch::Contains("dimension too large"));
  std::vector<std::uint8_t> bad_magic = {'P', 'K', 3, 4, 0, 0, 0, 0, 0, 0, 0, 0};
  CHECK_THAT(rejection([&] { parse_npy(bad_magic.data(), bad_magic.size()); }),
             Catch::Contains("magic"));
  std::vector<std::uint8_t> long_header = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, 0xff, 0xff, '{'};
  CHECK_THAT(rejection([&] { parse_npy(long_header.data(), long_header.size()); }),
             Catch::Contains("truncated: the npy header needs 65535 bytes"));
  CHECK_THAT(rejection([&] {
               auto b = npy_bytes(trace_tensor{{2}, {1.0f, std::numeric_limits<float>::infinity()}},
                                  trace_dtype::f32);
               parse_npy(b.data(), b.size());
             }),
             Catch::Contains("npy array has Inf at element 1"));
}

TEST_CASE("trace files with a bad sidecar or mismatched shapes are rejected", "[trace]") {
  const qkv_trace t = make_ramp_trace(1, 2, 1, 3, 4);
  const fs::path stem = scratch() / "side";
  write_trace_safetensors(t, stem.string());
  const std::string good_side =
      std::string(reinterpret_cast<const char*>(slurp(stem.string() + ".json").data()),
                  slurp(stem.string() + ".json").size());
  json side = json::parse(good_side);

  auto with = [&](const std::string& key, const json& value) {
    json j = side;
    if (value.is_null())
      j.erase(key);
    else
      j[key] = value;
    spit(stem.string() + ".json", j.dump());
    std::string m = rejection([&] { load_trace(stem.string()); });
    spit(stem.string() + ".json", good_side);
    return m;
  };
  const std::string prefix = "trace '" + stem.string() + "': ";
  CHECK_THAT(
      with("tokens", 4),
      Catch::StartsWith(prefix) &&
          Catch::Contains("shape mismatch: q is [1, 2, 3, 4], the sidecar says [1, 2, 4, 4]"));
  CHECK_THAT(with("kv_heads", 3), Catch::Contains("not a multiple of kv_heads"));
  CHECK_THAT(with("head_dim", 8), Catch::Contains("shape mismatch"));
  CHECK_THAT(with("layers", nullptr), Catch::Contains("sidecar has no 'layers'"));
  CHECK_THAT(with("layers", 0), Catch::Contains("'layers' = 0 is out of range"));
  CHECK_THAT(with("tokens", "3"), Catch::Contains("'tokens' is not an integer"));
  CHECK_THAT(with("model", nullptr), Catch::Contains("no 'model' string"));
  CHECK_THAT(with("positions", json::array({0, 1})), Catch::Contains("'positions'"));
  CHECK_THAT(with("positions", json::array({0, -1, 2})), Catch::Contains("'positions'"));
  CHECK_THAT(with("evidence", json::array({json::array({2, 1})})), Catch::Contains("'evidence'"));
  CHECK_THAT(with("evidence", json::array({json::array({0, 9})})), Catch::Contains("'evidence'"));
  CHECK_THAT(with("rope_base", -1), Catch::Contains("'rope_base'"));
  CHECK_THAT(with("question_begin", 3), Catch::Contains("'question_begin' is not a token index"));
  CHECK_THAT(with("question_begin", 0), Catch::Contains("'question_begin'"));
  CHECK_THAT(with("kv_head_roles", json::array({"retrieval", "sink"})),
             Catch::Contains("'kv_head_roles' is not an array of 1 strings"));
  CHECK_THAT(with("kv_head_roles", json::array({7})), Catch::Contains("'kv_head_roles'"));
  side["question_begin"] = 2;
  side["kv_head_roles"] = json::array({"retrieval"});
  spit(stem.string() + ".json", side.dump());
  CHECK(load_trace(stem.string()).tokens == 3);
  spit(stem.string() + ".json", good_side);
  CHECK(load_trace(stem.string()).tokens == 3);

  spit(stem.string() + ".json", std::string("{\"model\": \"x\",, }"));
  CHECK_THAT(rejection([&] { load_trace(stem.string()); }),
             Catch::StartsWith(prefix) && Catch::Contains("bad sidecar JSON"));
  fs::remove(stem.string() + ".json");
  CHECK_THAT(rejection([&] { load_trace(stem.string() + ".safetensors"); }),
             Catch::Contains("missing sidecar"));
  CHECK_THAT(rejection([&] { load_trace((scratch() / "nowhere").string()); }),
             Catch::Contains("no tensor file"));

  // A tensor file without "v", and one truncated on disk.
  write_trace_safetensors(t, stem.string());
  trace_tensor q{{1, 2, 3, 4}, t.q}, k{{1, 1, 3, 4}, t.k};
  spit(stem.string() + ".safetensors", safetensors_bytes({{"q", &q}, {"k", &k}}, trace_dtype::f32));
  CHECK_THAT(rejection([&] { load_trace(stem.string()); }),
             Catch::Contains("no tensor 'v' (has: k, q)"));
  write_trace_safetensors(t, stem.string());
  auto bytes = slurp(stem.string() + ".safetensors");
  bytes.resize(bytes.size() / 2);
  spit(stem.string() + ".safetensors", bytes);
  CHECK_THAT(rejection([&] { load_trace(stem.string()); }),
             Catch::StartsWith(prefix) && Catch::Contains("truncated"));

  // npy: one file of the three with the wrong dtype is named.
  const fs::path npy = scratch() / "sidenpy";
  write_trace_npy(t, npy.string());
  auto kbytes = slurp(npy.string() + ".k.npy");
  std::string text(kbytes.begin(), kbytes.end());
  text.replace(text.find("<f4"), 3, "<i4");
  spit(npy.string() + ".k.npy", text);
  CHECK_THAT(rejection([&] { load_trace(npy.string()); }),
             Catch::Contains("sidenpy.k.npy: npy dtype '<i4' is not accepted"));
}

// The fuzzer's seed corpus (tests/fuzz/seeds: first byte 0 safetensors, 1 npy, 2 sidecar),
// replayed in the normal build so a parser change that breaks one shows up without clang.
TEST_CASE("the fuzz seeds parse or are rejected with one line", "[trace]") {
  const fs::path dir = source_dir() / "tests" / "fuzz" / "seeds";
  REQUIRE(fs::is_directory(dir));
  int parsed = 0, rejected = 0;
  for (const auto& entry : fs::directory_iterator(dir)) {
    const std::vector<std::uint8_t> bytes = slurp(entry.path());
    REQUIRE(!bytes.empty());
    INFO(entry.path().filename().string());
    const std::uint8_t* data = bytes.data() + 1;
    const std::size_t size = bytes.size() - 1;
    try {
      if (bytes[0] == 0) {
        parse_safetensors(data, size);
      } else if (bytes[0] == 1) {
        parse_npy(data, size);
      } else {
        assemble_trace(std::string_view(reinterpret_cast<const char*>(data), size),
                       trace_tensor{{1, 2, 3, 4}, std::vector<float>(24, 0.5f)},
                       trace_tensor{{1, 1, 3, 4}, std::vector<float>(12, 0.5f)},
                       trace_tensor{{1, 1, 3, 4}, std::vector<float>(12, 0.5f)});
      }
      ++parsed;
    } catch (const error& e) {
      CHECK(e.id() == error_id::bad_input);
      CHECK(std::string(e.what()).find('\n') == std::string::npos);
      ++rejected;
    }
  }
  // Seeds named st_f32 / st_mixed / npy_f4 / npy_f2_v2 / npy_scalar / side_good / side_nopos
  // are valid; the other ten are the hand-made bad files.
  CHECK(parsed == 7);
  CHECK(rejected == 10);
}

// The capture round trip (run by hand where torch is, e.g. the GPU machine):
//   python3 tools/traces/capture_trace.py --tiny-random --out /tmp/t/llama
//   ATTNBENCH_TRACE=/tmp/t/llama build/tests/datasets/test_trace_io "[.external]"
// The trace must load, and causal attention recomputed here from its Q/K/V must reproduce the
// model's own attention output that capture_trace.py stored as tensor "o".
TEST_CASE("a captured trace reproduces the model's attention output", "[.external]") {
  const char* stem = std::getenv("ATTNBENCH_TRACE");
  REQUIRE(stem != nullptr);
  const qkv_trace t = load_trace(stem);
  CHECK(t.meta.value("post_rope", false));
  std::vector<std::uint8_t> bytes = slurp(std::string(stem) + ".safetensors");
  trace_tensor o;
  if (!bytes.empty()) {
    o = parse_safetensors(bytes.data(), bytes.size()).at("o");
  } else {
    bytes = slurp(std::string(stem) + ".o.npy");
    o = parse_npy(bytes.data(), bytes.size());
  }
  REQUIRE(o.shape == std::vector<std::int64_t>{t.layers, t.q_heads, t.tokens, t.head_dim});
  const double scale = 1.0 / std::sqrt(static_cast<double>(t.head_dim));
  const int group = t.q_heads / t.kv_heads;
  double worst = 0, largest = 0;
  std::vector<double> logits(static_cast<std::size_t>(t.tokens)), acc(t.head_dim);
  for (int l = 0; l < t.layers; ++l)
    for (int h = 0; h < t.q_heads; ++h)
      for (std::int64_t i = 0; i < t.tokens; ++i) {
        const float* q = &t.q[t.q_index(l, h, i)];
        double top = -1e300, sum = 0;
        for (std::int64_t j = 0; j <= i; ++j) {
          const float* k = &t.k[t.kv_index(l, h / group, j)];
          double dot = 0;
          for (int d = 0; d < t.head_dim; ++d) dot += double{q[d]} * k[d];
          logits[static_cast<std::size_t>(j)] = dot * scale;
          top = std::max(top, dot * scale);
        }
        std::fill(acc.begin(), acc.end(), 0.0);
        for (std::int64_t j = 0; j <= i; ++j) {
          double w = std::exp(logits[static_cast<std::size_t>(j)] - top);
          sum += w;
          const float* v = &t.v[t.kv_index(l, h / group, j)];
          for (int d = 0; d < t.head_dim; ++d) acc[static_cast<std::size_t>(d)] += w * v[d];
        }
        const float* ref = &o.data[t.q_index(l, h, i)];
        for (int d = 0; d < t.head_dim; ++d) {
          worst = std::max(worst, std::abs(acc[static_cast<std::size_t>(d)] / sum - ref[d]));
          largest = std::max(largest, std::abs(double{ref[d]}));
        }
      }
  std::printf(
      "trace %s: %s, %d layers, %d/%d heads, head_dim %d, %lld tokens; attention "
      "recomputed from Q/K/V matches the model's to %.3g (max |o| %.3g)\n",
      stem, t.model.c_str(), t.layers, t.q_heads, t.kv_heads, t.head_dim,
      static_cast<long long>(t.tokens), worst, largest);
  // F32 traces of an fp32 model agree to ~1e-6 relative; 16-bit storage rounds to 2^-9.
  CHECK(worst <= 4e-3 * largest);
}
