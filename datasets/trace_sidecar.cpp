// The sidecar (NAME.json): its checked fields, the assembly of a trace from the sidecar and
// the three tensors, and the sidecar text the writers put next to the tensors.
#include <string>

#include "datasets/trace_io.hpp"
#include "datasets/trace_io_internal.hpp"
#include "harness/error.hpp"

namespace attnbench {

using json = nlohmann::json;
using namespace trace_detail;

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

namespace trace_detail {

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

}  // namespace trace_detail

}  // namespace attnbench
