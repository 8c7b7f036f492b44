#include "suites/plan/presets.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "harness/error.hpp"
#include "harness/record.hpp"
#include "suites/plan/embedded_presets.hpp"

namespace attnbench::plan {

namespace {

using nlohmann::json;

// Capacities on datasheets are binary: an "80 GB" H100 carries 80 GiB of HBM (CUDA reports
// ~79.2 GiB of it as total memory, the rest being reserved), so memory_gb is read as GiB.
// Bandwidths and FLOP/s are decimal (TB/s = 1e12 bytes/s, TFLOP/s = 1e12 FLOP/s).
constexpr double k_bytes_per_gib = 1024.0 * 1024.0 * 1024.0;
constexpr double k_tera = 1e12;

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

std::string joined(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
  return out;
}

/// Reads the fields of one JSON object, each exactly once, and refuses the object when a field
/// is missing, of the wrong type, out of range, or not one of `known`. Every message starts
/// with `where` (the file or preset) and names the field.
class object_reader {
 public:
  object_reader(const json& j, std::string where, const std::vector<std::string>& known)
      : m_j(j), m_where(std::move(where)) {
    if (!m_j.is_object())
      ATTNBENCH_BAD_INPUT(m_where << ": must be a JSON object, got " << m_j.type_name());
    for (const auto& [key, value] : m_j.items())
      if (std::find(known.begin(), known.end(), key) == known.end())
        ATTNBENCH_BAD_INPUT(m_where << ": unknown field '" << key << "' (known: " << joined(known)
                                    << ")");
  }

  const std::string& where() const { return m_where; }
  bool has(const char* key) const { return m_j.contains(key); }

  std::string text(const char* key) const {
    const json& v = require(key);
    if (!v.is_string() || v.get<std::string>().empty())
      ATTNBENCH_BAD_INPUT(m_where << ": field '" << key << "' must be a non-empty string, got "
                                  << v.dump());
    return v.get<std::string>();
  }

  bool boolean(const char* key) const {
    const json& v = require(key);
    if (!v.is_boolean())
      ATTNBENCH_BAD_INPUT(m_where << ": field '" << key << "' must be true or false, got "
                                  << v.dump());
    return v.get<bool>();
  }

  /// An integer in [lo, hi]; 32.0 is refused (a count written as a real is a typo or a unit
  /// mix-up, and the configs these files copy write counts as integers).
  std::int64_t integer(const char* key, std::int64_t lo,
                       std::int64_t hi = std::numeric_limits<int>::max()) const {
    const json& v = require(key);
    if (!v.is_number_integer())
      ATTNBENCH_BAD_INPUT(m_where << ": field '" << key << "' must be an integer, got "
                                  << v.dump());
    if (v.is_number_unsigned() && v.get<std::uint64_t>() > static_cast<std::uint64_t>(hi))
      ATTNBENCH_BAD_INPUT(m_where << ": field '" << key << "' must be at most " << hi << ", got "
                                  << v.dump());
    const std::int64_t n = v.get<std::int64_t>();
    if (n < lo || n > hi)
      ATTNBENCH_BAD_INPUT(m_where << ": field '" << key << "' must be in [" << lo << ", " << hi
                                  << "], got " << n);
    return n;
  }

  /// A finite number, > 0 (or >= 0 with allow_zero).
  double number(const char* key, bool allow_zero = false) const {
    const json& v = require(key);
    if (!v.is_number())
      ATTNBENCH_BAD_INPUT(m_where << ": field '" << key << "' must be a number, got " << v.dump());
    const double x = v.get<double>();
    if (!std::isfinite(x) || x < 0 || (x == 0 && !allow_zero))
      ATTNBENCH_BAD_INPUT(m_where << ": field '" << key << "' must be "
                                  << (allow_zero ? ">= 0" : "> 0") << ", got " << v.dump());
    return x;
  }

  object_reader object(const char* key, const std::vector<std::string>& known) const {
    return object_reader(require(key), m_where + ": field '" + key + "'", known);
  }

 private:
  const json& require(const char* key) const {
    auto it = m_j.find(key);
    if (it == m_j.end()) ATTNBENCH_BAD_INPUT(m_where << ": missing field '" << key << "'");
    return *it;
  }

  const json& m_j;
  std::string m_where;
};

json parse_json(const std::string& text, const std::string& origin) {
  try {
    return json::parse(text);
  } catch (const json::parse_error& e) {
    ATTNBENCH_BAD_INPUT(origin << ": not valid JSON (" << e.what() << ")");
  }
}

std::string read_file(const std::string& path, const char* what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) ATTNBENCH_BAD_INPUT("cannot read " << what << " '" << path << "'");
  std::ostringstream os;
  os << in.rdbuf();
  if (in.bad()) ATTNBENCH_BAD_INPUT("error reading " << what << " '" << path << "'");
  return os.str();
}

// A preset's name is its file stem, lower case, so that the case-insensitive lookup by name
// finds what a listing of datasets/ shows.
void check_name(const std::string& name, const std::string& where) {
  for (unsigned char c : name)
    if (!(std::islower(c) || std::isdigit(c) || c == '-' || c == '.' || c == '_'))
      ATTNBENCH_BAD_INPUT(where << ": field 'name' must be lower case letters, digits, '-', '.' "
                                   "or '_', got '"
                                << name << "'");
}

bool is_path(const std::string& value) {
  const std::string suffix = ".json";
  return value.find('/') != std::string::npos ||
         (value.size() >= suffix.size() &&
          lower(value.substr(value.size() - suffix.size())) == suffix);
}

std::vector<std::string> names_of(const std::vector<detail::embedded_preset>& table) {
  std::vector<std::string> out;
  for (const auto& p : table) out.emplace_back(p.name);
  std::sort(out.begin(), out.end());
  return out;
}

/// The embedded preset called `name` (any case), or nullptr.
const detail::embedded_preset* find_embedded(const std::vector<detail::embedded_preset>& table,
                                             const std::string& name) {
  const std::string wanted = lower(name);
  for (const auto& p : table)
    if (wanted == p.name) return &p;
  return nullptr;
}

// Parses a file from disk and checks that its `name` is its stem, as for the shipped ones.
template <class Preset, class Parse>
Preset load_from_path(const std::string& path, const char* what, Parse parse) {
  Preset p = parse(read_file(path, what), path);
  const std::string stem = std::filesystem::path(path).stem().string();
  if (p.name != stem)
    ATTNBENCH_BAD_INPUT(path << ": field 'name' is '" << p.name << "' but the file stem is '"
                             << stem << "' (they must be equal)");
  return p;
}

gpu_preset load_measured(const std::string& report_path);

}  // namespace

bool model_preset::is_local_layer(int layer) const {
  ATTNBENCH_ASSERT(layer >= 0 && layer < layers);
  if (sliding_window <= 0 || sliding_window_pattern <= 0) return false;
  if (sliding_window_pattern == 1) return true;
  return (layer + 1) % sliding_window_pattern != 0;
}

double model_preset::kv_bytes_per_token_layer(int element_bytes) const {
  ATTNBENCH_ASSERT(element_bytes > 0);
  if (mla) return double(mla->kv_lora_rank + mla->qk_rope_head_dim) * element_bytes;
  return 2.0 * kv_heads * head_dim * element_bytes;
}

double model_preset::dense_kv_bytes(std::int64_t tokens, int element_bytes) const {
  ATTNBENCH_ASSERT(tokens >= 0);
  const double per_token = kv_bytes_per_token_layer(element_bytes);
  double held_tokens = 0;  // summed over layers
  for (int l = 0; l < layers; ++l)
    held_tokens += double(is_local_layer(l) ? std::min(tokens, sliding_window) : tokens);
  return held_tokens * per_token;
}

model_preset parse_model(const std::string& json_text, const std::string& origin) {
  const json j = parse_json(json_text, origin);
  const object_reader r(
      j, origin,
      {"name", "display_name", "source", "layers", "hidden_size", "q_heads", "kv_heads", "head_dim",
       "intermediate_size", "vocab_size", "max_position_embeddings", "parameters",
       "tie_word_embeddings", "sliding_window", "sliding_window_pattern", "mla", "moe"});
  model_preset m;
  m.name = r.text("name");
  check_name(m.name, origin);
  m.display_name = r.text("display_name");
  m.source = r.text("source");
  m.layers = static_cast<int>(r.integer("layers", 1));
  m.hidden_size = static_cast<int>(r.integer("hidden_size", 1));
  m.q_heads = static_cast<int>(r.integer("q_heads", 1));
  m.kv_heads = static_cast<int>(r.integer("kv_heads", 1));
  m.head_dim = static_cast<int>(r.integer("head_dim", 1));
  m.intermediate_size = static_cast<int>(r.integer("intermediate_size", 1));
  const std::int64_t big = std::numeric_limits<std::int64_t>::max();
  m.vocab_size = r.integer("vocab_size", 1, big);
  m.max_position_embeddings = r.integer("max_position_embeddings", 1, big);
  m.parameters = r.number("parameters");
  m.tie_word_embeddings = r.boolean("tie_word_embeddings");
  if (m.q_heads % m.kv_heads != 0)
    ATTNBENCH_BAD_INPUT(origin << ": field 'q_heads' (" << m.q_heads
                               << ") must be a multiple of field 'kv_heads' (" << m.kv_heads
                               << ")");

  // The window and its pattern come together: one without the other says nothing.
  if (r.has("sliding_window") != r.has("sliding_window_pattern"))
    ATTNBENCH_BAD_INPUT(
        origin << ": field '"
               << (r.has("sliding_window") ? "sliding_window_pattern" : "sliding_window")
               << "' is missing (sliding_window and sliding_window_pattern "
                  "go together)");
  if (r.has("sliding_window")) {
    m.sliding_window = r.integer("sliding_window", 1, big);
    m.sliding_window_pattern = static_cast<int>(r.integer("sliding_window_pattern", 1, m.layers));
  }

  if (r.has("mla")) {
    const object_reader o =
        r.object("mla", {"kv_lora_rank", "qk_rope_head_dim", "qk_nope_head_dim", "v_head_dim"});
    mla_config c;
    c.kv_lora_rank = static_cast<int>(o.integer("kv_lora_rank", 1));
    c.qk_rope_head_dim = static_cast<int>(o.integer("qk_rope_head_dim", 1));
    c.qk_nope_head_dim = static_cast<int>(o.integer("qk_nope_head_dim", 0));
    c.v_head_dim = static_cast<int>(o.integer("v_head_dim", 1));
    // presets.hpp's convention: one latent shared by every head, and head_dim the width of
    // the query-key dot product.
    if (m.kv_heads != 1)
      ATTNBENCH_BAD_INPUT(origin << ": field 'kv_heads' must be 1 with 'mla' (the latent is "
                                    "shared by every head), got "
                                 << m.kv_heads);
    if (m.head_dim != c.qk_nope_head_dim + c.qk_rope_head_dim)
      ATTNBENCH_BAD_INPUT(origin << ": field 'head_dim' must be mla.qk_nope_head_dim + "
                                    "mla.qk_rope_head_dim = "
                                 << c.qk_nope_head_dim + c.qk_rope_head_dim << ", got "
                                 << m.head_dim);
    m.mla = c;
  }

  if (r.has("moe")) {
    const object_reader o = r.object("moe", {"experts", "experts_per_token", "shared_experts",
                                             "expert_intermediate_size", "first_dense_layers"});
    moe_config c;
    c.experts = static_cast<int>(o.integer("experts", 1));
    c.experts_per_token = static_cast<int>(o.integer("experts_per_token", 1, c.experts));
    c.shared_experts = static_cast<int>(o.integer("shared_experts", 0));
    c.expert_intermediate_size = static_cast<int>(o.integer("expert_intermediate_size", 1));
    c.first_dense_layers = static_cast<int>(o.integer("first_dense_layers", 0, m.layers));
    m.moe = c;
  }
  return m;
}

gpu_preset parse_gpu(const std::string& json_text, const std::string& origin) {
  const json j = parse_json(json_text, origin);
  const object_reader r(j, origin,
                        {"name", "display_name", "source", "memory_gb", "bandwidth_tb_per_s",
                         "bf16_tflops", "fp8_tflops", "interconnect_gb_per_s"});
  gpu_preset g;
  g.name = r.text("name");
  check_name(g.name, origin);
  g.display_name = r.text("display_name");
  g.source = r.text("source");
  g.memory_bytes = r.number("memory_gb") * k_bytes_per_gib;
  g.bandwidth_bytes_per_s = r.number("bandwidth_tb_per_s") * k_tera;
  g.bf16_flops = r.number("bf16_tflops") * k_tera;
  g.fp8_flops = r.number("fp8_tflops", /*allow_zero=*/true) * k_tera;  // 0: no fp8 (A100)
  // Optional: the datasheet's GPU-to-GPU figure (NVLink, or PCIe where there is none), which
  // counts both directions; a ring all-reduce moves data one way per link, so half of it.
  if (r.has("interconnect_gb_per_s"))
    g.interconnect_bytes_per_s = r.number("interconnect_gb_per_s") * 1e9 / 2;
  return g;
}

model_preset load_model(const std::string& name_or_path) {
  if (is_path(name_or_path))
    return load_from_path<model_preset>(name_or_path, "model preset file", parse_model);
  const auto& table = detail::embedded_models();
  if (const auto* p = find_embedded(table, name_or_path))
    return parse_model(p->text, std::string("model preset '") + p->name + "'");
  ATTNBENCH_BAD_INPUT("unknown model preset '" << name_or_path
                                               << "' (known: " << joined(model_names())
                                               << "; or the path of a .json file)");
}

gpu_preset load_gpu(const std::string& name_or_path) {
  const std::string measured = "measured:";
  if (name_or_path.rfind(measured, 0) == 0) {
    const std::string report = name_or_path.substr(measured.size());
    if (report.empty())
      ATTNBENCH_BAD_INPUT("GPU preset 'measured:' needs a report path: measured:REPORT.json");
    return load_measured(report);
  }
  if (is_path(name_or_path))
    return load_from_path<gpu_preset>(name_or_path, "GPU preset file", parse_gpu);
  const auto& table = detail::embedded_gpus();
  if (const auto* p = find_embedded(table, name_or_path))
    return parse_gpu(p->text, std::string("GPU preset '") + p->name + "'");
  ATTNBENCH_BAD_INPUT("unknown GPU preset '"
                      << name_or_path << "' (known: " << joined(gpu_names())
                      << "; or the path of a .json file, or measured:REPORT.json)");
}

std::optional<std::string> builtin_calibration(const std::string& gpu_name) {
  for (const auto& c : detail::embedded_calibrations())
    if (gpu_name == c.name) return std::string(c.text);
  return std::nullopt;
}

std::vector<std::string> model_names() { return names_of(detail::embedded_models()); }
std::vector<std::string> gpu_names() { return names_of(detail::embedded_gpus()); }

namespace {

// measured:REPORT: the device a latency report ran on, with the best the dense operator
// reached on it standing in for the datasheet: the highest KV GB/s among its decode records
// (decode is bandwidth-bound, so that is the DRAM bandwidth the kernels actually get) and the
// highest TFLOP/s among its bf16 prefill records. fp8 is left at 0: the latency suite times
// no fp8 operator.
gpu_preset load_measured(const std::string& report_path) {
  const std::string where = "measured:" + report_path;
  const json doc = parse_json(read_file(report_path, "report"), where);
  report rep;
  try {
    rep = report_from_json(doc);
  } catch (const error& e) {
    ATTNBENCH_BAD_INPUT(where << ": " << e.what());
  }

  const auto gpus = rep.meta.find("gpus");
  if (gpus == rep.meta.end() || !gpus->is_array() || gpus->empty())
    ATTNBENCH_BAD_INPUT(where << ": the report has no GPU (meta.gpus is empty: run the latency "
                                 "suite with --backend cuda on the device)");
  const json& gpu = gpus->front();
  if (!gpu.is_object() || !gpu.contains("name") || !gpu["name"].is_string() ||
      !gpu.contains("memory_bytes") || !gpu["memory_bytes"].is_number() ||
      gpu["memory_bytes"].get<double>() <= 0)
    ATTNBENCH_BAD_INPUT(where << ": meta.gpus[0] needs a string 'name' and a positive "
                                 "'memory_bytes'");

  auto axis = [](const record& r, const char* key) {
    auto it = r.axes.find(key);
    return it != r.axes.end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  auto metric = [](const record& r, const char* key) {
    auto it = r.metrics.find(key);
    return it != r.metrics.end() && std::isfinite(it->second) ? it->second : 0.0;
  };
  double best_gbps = 0;
  double best_tflops = 0;
  for (const record& r : rep.records) {
    if (r.suite != "latency" || r.method != "dense" || r.status != record_status::ok ||
        r.backend != "cuda")
      continue;
    const std::string phase = axis(r, "phase");
    if (phase == "decode") best_gbps = std::max(best_gbps, metric(r, "kv_gbps"));
    if (phase == "prefill" && axis(r, "dtype") == "bf16")
      best_tflops = std::max(best_tflops, metric(r, "tflops"));
  }
  if (best_gbps <= 0)
    ATTNBENCH_BAD_INPUT(where << ": no ok CUDA record of suite 'latency', method 'dense', phase "
                                 "'decode' with a positive metric 'kv_gbps'");
  if (best_tflops <= 0)
    ATTNBENCH_BAD_INPUT(where << ": no ok CUDA record of suite 'latency', method 'dense', phase "
                                 "'prefill', dtype 'bf16' with a positive metric 'tflops'");

  gpu_preset g;
  g.name = "measured";
  g.display_name = gpu["name"].get<std::string>() + " (measured)";
  g.source = "measured: " + report_path;
  g.memory_bytes = gpu["memory_bytes"].get<double>();
  g.bandwidth_bytes_per_s = best_gbps * 1e9;
  g.bf16_flops = best_tflops * k_tera;
  g.fp8_flops = 0;
  g.measured = true;
  return g;
}

}  // namespace

}  // namespace attnbench::plan
