#include "suites/plan/plan_model.hpp"

#include <algorithm>
#include <cmath>
#include <map>
#include <sstream>

#include "harness/error.hpp"
#include "reports/render_md_csv.hpp"

namespace attnbench::plan {

namespace {

// CUDA context, cuBLAS and NCCL workspaces and CUDA graphs outside the engine's tensors: about
// what vLLM reports as non-torch memory plus graph capture on an H100 (0.5-1 GiB).
constexpr double k_runtime_bytes = 1.0 * k_gib;
// vLLM's profile run samples this many dummy requests (its default max_num_seqs).
constexpr double k_profiled_seqs = 256;
// Latency of one small all-reduce (NCCL over NVLink, a few microseconds per hop).
constexpr double k_allreduce_latency_s = 8e-6;

std::string thousands(double v) {
  std::string digits = std::to_string(static_cast<long long>(std::floor(v)));
  std::string out;
  int n = 0;
  for (auto it = digits.rbegin(); it != digits.rend(); ++it) {
    if (n > 0 && n % 3 == 0 && *it != '-') out.insert(out.begin(), ',');
    out.insert(out.begin(), *it);
    ++n;
  }
  return out;
}

// Linear interpolation of y over sorted x, clamped to the ends.
double interpolate(const std::vector<std::pair<double, double>>& xy, double x) {
  if (xy.empty()) return 0;
  if (x <= xy.front().first) return xy.front().second;
  if (x >= xy.back().first) return xy.back().second;
  auto hi = std::upper_bound(xy.begin(), xy.end(), x,
                             [](double v, const auto& p) { return v < p.first; });
  auto lo = hi - 1;
  const double t = (x - lo->first) / (hi->first - lo->first);
  return lo->second + t * (hi->second - lo->second);
}

double json_number(const nlohmann::json& j, const char* key, double fallback) {
  auto it = j.find(key);
  return it != j.end() && it->is_number() ? it->get<double>() : fallback;
}

}  // namespace

double dtype_bytes(const std::string& dtype, const char* option) {
  static const std::map<std::string, double> sizes = {{"fp32", 4}, {"bf16", 2}, {"fp16", 2},
                                                      {"fp8", 1},  {"int8", 1}, {"int4", 0.5}};
  auto it = sizes.find(dtype);
  if (it == sizes.end())
    ATTNBENCH_BAD_INPUT(option << " '" << dtype << "' is not a dtype (known: bf16, fp16, fp32, "
                               << "fp8, int8, int4)");
  return it->second;
}

memory_budget parse_budget(const std::string& text) {
  memory_budget b;
  b.text = text;
  const auto colon = text.find(':');
  if (colon == std::string::npos)
    ATTNBENCH_BAD_INPUT("--budget '" << text
                                     << "' is not ENGINE:VALUE (vllm:0.9, trtllm-free:0.9, "
                                        "sglang:0.88, bytes:64e9)");
  b.engine = text.substr(0, colon);
  const std::string value = text.substr(colon + 1);
  std::optional<double> v = parse_real(value);
  if (b.engine == "bytes") {
    if (!v || !std::isfinite(*v) || *v <= 0 || *v > 1e15)
      ATTNBENCH_BAD_INPUT("--budget bytes '" << value << "' is not a byte count in (0, 1e15]");
    b.bytes = *v;
    return b;
  }
  if (b.engine != "vllm" && b.engine != "trtllm-free" && b.engine != "sglang")
    ATTNBENCH_BAD_INPUT("--budget engine '" << b.engine
                                            << "' is unknown (known: vllm, trtllm-free, sglang, "
                                               "bytes)");
  if (!v || !std::isfinite(*v) || *v <= 0 || *v > 1)
    ATTNBENCH_BAD_INPUT("--budget fraction '" << value << "' is not in (0, 1]");
  b.fraction = *v;
  return b;
}

// ---- memory -------------------------------------------------------------------------------

memory_model::memory_model(plan_inputs in) : m_in(std::move(in)) {
  const model_preset& m = m_in.model;
  const method_info& info = *m_in.method.info;
  if (!info.footprint) {
    std::string with;
    for (const method_info* other : method_registry::instance().all())
      if (other->backend == "cpu" && other->footprint)
        with += (with.empty() ? "" : ", ") + other->name;
    ATTNBENCH_BAD_INPUT("method '" << info.name
                                   << "' has no planning model: what it holds or reads depends "
                                      "on the data (methods with one: "
                                   << with << ")");
  }
  const int tp = m_in.tp;
  if (tp < 1 || tp > 1024) ATTNBENCH_BAD_INPUT("--tp " << tp << " is out of range [1, 1024]");
  if (m.q_heads % tp != 0)
    ATTNBENCH_BAD_INPUT("--tp " << tp << " does not divide " << m.display_name << "'s " << m.q_heads
                                << " query heads");
  m_q_heads = m.q_heads / tp;
  if (m.mla) {
    m_kv_heads = 1;  // the latent is shared by the heads: every rank holds all of it
    m_replicated = tp > 1;
  } else if (tp <= m.kv_heads) {
    if (m.kv_heads % tp != 0)
      ATTNBENCH_BAD_INPUT("--tp " << tp << " does not divide " << m.display_name << "'s "
                                  << m.kv_heads << " KV heads");
    m_kv_heads = m.kv_heads / tp;
  } else {
    // vLLM: each rank keeps one KV head, shared by its query heads (tp must be a multiple).
    if (tp % m.kv_heads != 0)
      ATTNBENCH_BAD_INPUT("--tp " << tp << " is neither a divisor nor a multiple of "
                                  << m.display_name << "'s " << m.kv_heads << " KV heads");
    m_kv_heads = 1;
    m_replicated = true;
  }
  const double kv_element = dtype_bytes(m_in.kv_dtype, "--kv-dtype");
  if (kv_element < 1 || m_in.kv_dtype == "int8")
    ATTNBENCH_BAD_INPUT("--kv-dtype '" << m_in.kv_dtype
                                       << "' is not a full-precision cache dtype (bf16, fp16, "
                                          "fp32, fp8; integer codes are kv_quant's)");
  m_kv_element = kv_element;
  const double weight_element = dtype_bytes(m_in.dtype, "--dtype");
  if (m_in.max_batched_tokens < 1 || m_in.max_batched_tokens > (std::int64_t{1} << 24))
    ATTNBENCH_BAD_INPUT("--max-batched-tokens " << m_in.max_batched_tokens
                                                << " is out of range [1, 16777216]");
  if (m_in.output_tokens < 0 || m_in.output_tokens > (std::int64_t{1} << 30))
    ATTNBENCH_BAD_INPUT("--output-tokens " << m_in.output_tokens << " is out of range [0, 2^30]");

  const std::string& engine = m_in.budget.engine;
  m_page = m_in.page_tokens >= 0     ? m_in.page_tokens
           : engine == "vllm"        ? 16
           : engine == "trtllm-free" ? 32
                                     : 1;
  if (m_page < 1 || m_page > 65536)
    ATTNBENCH_BAD_INPUT("--page " << m_page << " is out of range [1, 65536]");

  m_weights = m.parameters * weight_element / tp;
  // Peak activations of a prefill chunk on one rank, in bf16: the residual stream and its
  // normalized copy, plus the wider of the QKV projection and the MLP's gate/up/activation
  // (MoE: the routed and shared experts' intermediates of a token); the sampler's fp32 logits
  // and probabilities for the profiled requests.
  const double tokens = static_cast<double>(m_in.max_batched_tokens);
  const double qkv = (m.q_heads + 2.0 * m.kv_heads) * m.head_dim / tp;
  double mlp = 3.0 * m.intermediate_size / tp;
  if (m.moe)
    mlp = std::max(mlp, 3.0 * (m.moe->experts_per_token + m.moe->shared_experts) *
                            m.moe->expert_intermediate_size / tp);
  m_activation = tokens * 2.0 * (2.0 * m.hidden_size + std::max(qkv, mlp)) +
                 k_profiled_seqs * static_cast<double>(m.vocab_size) * 4.0 * 2.0;
  m_runtime = k_runtime_bytes;
  const double total = m_in.gpu.memory_bytes;
  if (engine == "vllm")
    m_pool = m_in.budget.fraction * total - m_weights - m_activation - m_runtime;
  else if (engine == "trtllm-free")
    m_pool = m_in.budget.fraction * (total - m_weights - m_activation - m_runtime);
  else if (engine == "sglang")
    m_pool = m_in.budget.fraction * total - m_weights;
  else
    m_pool = m_in.budget.bytes;
  m_lookback = sawtooth_lookback();
}

sequence_cost memory_model::layer(int layer, std::int64_t prompt, std::int64_t tokens) const {
  const model_preset& m = m_in.model;
  footprint_query q;
  q.q_heads = m_q_heads;
  q.kv_heads = m_kv_heads;
  // MLA: the latent (kv_lora_rank + rope dims) is one row per token, counted as a K/V row pair
  // of half its width so that kv_row_bytes gives its size.
  q.head_dim = m.mla ? (m.mla->kv_lora_rank + m.mla->qk_rope_head_dim) / 2 : m.head_dim;
  q.layer = layer;
  q.layers = m.layers;
  q.prompt_tokens = prompt;
  q.tokens = tokens;
  q.element_bytes = static_cast<int>(m_kv_element);
  kv_footprint f = m_in.method.info->footprint(m_in.method.params, q);
  double per_head = f.resident_tokens / m_kv_heads;
  // A sliding-window layer holds at most its window of what the method keeps, and reads no more.
  if (m.is_local_layer(layer) && per_head > static_cast<double>(m.sliding_window)) {
    const double cut = static_cast<double>(m.sliding_window) / per_head;
    f.resident_bytes *= cut;
    f.read_bytes *= cut;
    f.selection_bytes *= cut;
    f.metadata_bytes *= cut;
    f.keys_scored *= cut;
    per_head = static_cast<double>(m.sliding_window);
  }
  sequence_cost c;
  c.kv_bytes = f.resident_bytes;
  if (per_head > 0 && m_page > 1)
    c.kv_bytes = c.kv_bytes * (std::ceil(per_head / m_page) * m_page) / per_head;
  // Summaries kept beside the rows (Quest's page bounds) hold device memory too.
  c.kv_bytes += f.metadata_bytes;
  c.host_bytes = f.host_bytes;
  c.read_bytes = f.read_bytes;
  c.selection_bytes = f.selection_bytes;
  c.keys_scored = f.keys_scored;
  c.simulated = f.simulated;
  return c;
}

sequence_cost memory_model::sequence(std::int64_t context) const {
  sequence_cost sum;
  const std::int64_t tokens = context + m_in.output_tokens;
  std::map<std::pair<bool, double>, double> peaks;
  for (int l = 0; l < m_in.model.layers; ++l) {
    const sequence_cost c = layer(l, context, tokens);
    double held = c.kv_bytes;
    // A method whose holdings shrink at some steps (lagged eviction, group quantization): what
    // a sequence of at most `context` tokens may hold, its sawtooth's peaks in the look-back.
    // Layers of one kind holding the same now peak the same: the look-back runs once per kind.
    if (m_lookback > 0) {
      const auto key = std::make_pair(m_in.model.is_local_layer(l), c.kv_bytes);
      auto it = peaks.find(key);
      if (it == peaks.end()) {
        for (std::int64_t shorter = std::max<std::int64_t>(1, context - m_lookback);
             shorter < context; ++shorter)
          held = std::max(held, layer(l, shorter, shorter + m_in.output_tokens).kv_bytes);
        it = peaks.emplace(key, held).first;
      }
      held = it->second;
    }
    sum.kv_bytes += held;
    sum.host_bytes += c.host_bytes;
    sum.read_bytes += c.read_bytes;
    sum.selection_bytes += c.selection_bytes;
    sum.keys_scored += c.keys_scored;
    sum.simulated = sum.simulated || c.simulated;
  }
  return sum;
}

std::int64_t memory_model::sawtooth_lookback() const {
  // Probe the first two layers (a local and a global one where they alternate) over stretches
  // of prompt lengths and of decode steps for a fall in what they hold; the look-back spans
  // twice the widest stretch between falls (at least 256 tokens).
  std::int64_t widest = 0;
  bool falls = false;
  for (int l = 0; l < std::min(2, m_in.model.layers); ++l) {
    for (std::int64_t start : {std::int64_t{3000}, std::int64_t{70000}}) {
      std::int64_t last_fall = -1;
      double prompt_before = layer(l, start, start).kv_bytes, decode_before = prompt_before;
      for (std::int64_t n = start + 1; n <= start + 2048; ++n) {
        const double prompt_now = layer(l, n, n).kv_bytes;
        const double decode_now = layer(l, start, n).kv_bytes;
        if (prompt_now < prompt_before || decode_now < decode_before) {
          falls = true;
          if (last_fall >= 0) widest = std::max(widest, n - last_fall);
          last_fall = n;
        }
        prompt_before = prompt_now;
        decode_before = decode_now;
      }
    }
  }
  if (!falls) return 0;
  return std::min<std::int64_t>(65536, std::max<std::int64_t>(256, 2 * widest));
}

double memory_model::dense_layer_read(int layer, std::int64_t tokens) const {
  const model_preset& m = m_in.model;
  const double row = m.mla ? (m.mla->kv_lora_rank + m.mla->qk_rope_head_dim) * m_kv_element
                           : 2.0 * m.head_dim * m_kv_element * m_kv_heads;
  const std::int64_t seen = m.is_local_layer(layer) ? std::min(tokens, m.sliding_window) : tokens;
  return row * static_cast<double>(seen);
}

double memory_model::dense_kv_bytes(std::int64_t tokens) const {
  double bytes = 0;
  for (int l = 0; l < m_in.model.layers; ++l) {
    const double read = dense_layer_read(l, tokens);
    const double row = dense_layer_read(l, 1);
    const double rows = read / row;
    bytes += std::ceil(rows / m_page) * m_page * row;
  }
  return bytes;
}

std::int64_t memory_model::max_batch(std::int64_t context) const {
  if (m_pool <= 0) return 0;
  const double per_seq = sequence(context).kv_bytes;
  if (per_seq <= 0) return std::int64_t{1} << 40;
  return static_cast<std::int64_t>(std::min(std::floor(m_pool / per_seq), 1e12));
}

std::vector<std::string> memory_model::engine_lines(std::int64_t context) const {
  std::vector<std::string> out;
  const double pool = std::max(0.0, m_pool);
  const double per_seq = sequence(context).kv_bytes;
  const double per_token = per_seq / static_cast<double>(context + m_in.output_tokens);
  const double tokens = per_token > 0 ? std::floor(pool / per_token) : 0;
  const double concurrency = per_seq > 0 ? pool / per_seq : 0;
  const std::string& engine = m_in.budget.engine;
  if (engine == "vllm") {
    out.push_back("GPU KV cache size: " + thousands(tokens) + " tokens");
    out.push_back("Maximum concurrency for " + thousands(static_cast<double>(context)) +
                  " tokens per request: " + format_real("%.2f", concurrency) + "x");
  } else if (engine == "trtllm-free") {
    out.push_back("[MemUsageChange] Allocated " + format_real("%.2f", pool / k_gib) +
                  " GiB for max tokens in paged KV cache (" + thousands(tokens) + ").");
  } else if (engine == "sglang") {
    out.push_back("KV Cache is allocated. #tokens: " + thousands(tokens) +
                  ", K size: " + format_real("%.2f", pool / 2 / k_gib) +
                  " GB, V size: " + format_real("%.2f", pool / 2 / k_gib) + " GB");
  } else {
    out.push_back("KV pool: " + format_real("%.2f", pool / k_gib) + " GiB, " + thousands(tokens) +
                  " tokens, " + format_real("%.2f", concurrency) + " requests of " +
                  thousands(static_cast<double>(context)) + " tokens");
  }
  return out;
}

// ---- device curves ------------------------------------------------------------------------

plan_inputs op_plan_inputs(const record& rec, const method_instance& method) {
  plan_inputs in;
  in.model.name = "op";
  in.model.display_name = "op";
  in.model.layers = 1;
  in.model.q_heads = static_cast<int>(json_number(rec.axes, "q_heads", 32));
  in.model.kv_heads = static_cast<int>(json_number(rec.axes, "kv_heads", 8));
  in.model.head_dim = static_cast<int>(json_number(rec.axes, "head_dim", 128));
  in.model.hidden_size = in.model.q_heads * in.model.head_dim;
  in.model.max_position_embeddings = std::int64_t{1} << 40;
  in.kv_dtype = rec.axes.value("dtype", std::string("bf16"));
  in.method = method;
  in.budget.engine = "bytes";
  in.budget.bytes = 1;
  in.page_tokens = 1;
  return in;
}

device_curves device_curves::from_report(const report& r, const std::string& origin) {
  device_curves c;
  c.m_measured = true;
  std::map<double, std::vector<decode_point>> decode;
  for (const record& rec : r.records) {
    if (rec.suite != "latency" || rec.method != "dense" || rec.status != record_status::ok)
      continue;
    if (rec.axes.value("dtype", std::string()) != "bf16") continue;
    auto median = rec.metrics.find("median_s");
    if (median == rec.metrics.end() || !(median->second > 0)) continue;
    const std::string phase = rec.axes.value("phase", std::string());
    if (phase == "decode" && !rec.axes.contains("page_size")) {
      const double bytes = json_number(rec.extra, "kv_bytes_per_call", 0);
      if (bytes > 0) decode[json_number(rec.axes, "batch", 1)].push_back({bytes, median->second});
    } else if (phase == "prefill") {
      auto tflops = rec.metrics.find("tflops");
      if (tflops == rec.metrics.end()) continue;
      const prefill_point p{json_number(rec.axes, "length", 0), tflops->second * 1e12};
      (rec.axes.value("causal", true) ? c.m_prefill_causal : c.m_prefill_full).push_back(p);
      c.m_flops = std::max(c.m_flops, p.flops);
    }
  }
  if (decode.empty())
    ATTNBENCH_BAD_INPUT(origin << " has no dense bf16 decode record of suite latency to "
                                  "calibrate on (run: attnbench run --suite latency --backend "
                                  "cuda --method dense --param latency.phase=decode,prefill)");
  for (auto& [batch, points] : decode) {
    std::sort(points.begin(), points.end(),
              [](const decode_point& a, const decode_point& b) { return a.bytes < b.bytes; });
    for (const decode_point& p : points)
      c.m_bandwidth = std::max(c.m_bandwidth, p.bytes / p.seconds);
    c.m_decode.emplace_back(batch, std::move(points));
  }
  for (auto* curve : {&c.m_prefill_causal, &c.m_prefill_full})
    std::sort(curve->begin(), curve->end(),
              [](const prefill_point& a, const prefill_point& b) { return a.length < b.length; });
  if (c.m_flops <= 0) c.m_flops = 0;  // prefill unmeasured: decode-only calibration

  // Selection beyond reading its metadata (Quest scores pages and takes a top-k, one more kernel
  // per step): per method, a fixed cost per step plus a cost per selection byte, the
  // least-squares line (both terms >= 0) through what its decode records measured over what
  // reading its rows and metadata explains.
  std::map<std::string, std::vector<std::pair<double, double>>> residuals;  // (bytes, seconds)
  for (const record& rec : r.records) {
    if (rec.suite != "latency" || rec.method == "dense" || rec.status != record_status::ok ||
        rec.axes.value("phase", std::string()) != "decode" || rec.axes.contains("page_size"))
      continue;
    const method_info* info = method_registry::instance().find(rec.method, "cpu");
    auto median = rec.metrics.find("median_s");
    if (!info || !info->footprint || median == rec.metrics.end()) continue;
    const memory_model memory(op_plan_inputs(rec, resolve_method(rec.method_spec, "cpu")));
    const auto length = static_cast<std::int64_t>(json_number(rec.axes, "length", 0));
    const double batch = json_number(rec.axes, "batch", 1);
    const sequence_cost one = memory.layer(0, length, length);
    if (!(one.selection_bytes > 0)) continue;
    const double rows = c.decode_seconds(batch, batch * (one.read_bytes - one.selection_bytes));
    const double meta = c.decode_seconds(batch, batch * one.selection_bytes);
    residuals[rec.method].emplace_back(batch * one.selection_bytes, median->second - rows - meta);
  }
  for (const auto& [method, points] : residuals) {
    const double n = static_cast<double>(points.size());
    double sx = 0, sy = 0, sxx = 0, sxy = 0;
    for (const auto& [x, y] : points) {
      sx += x;
      sy += y;
      sxx += x * x;
      sxy += x * y;
    }
    const double det = n * sxx - sx * sx;
    double fixed = 0, per_byte = 0;
    if (points.size() >= 2 && det > 0) {
      per_byte = (n * sxy - sx * sy) / det;
      fixed = (sy - per_byte * sx) / n;
    }
    if (per_byte < 0 || points.size() < 2 || det <= 0) {
      per_byte = 0;
      fixed = sy / n;
    }
    if (fixed < 0) {
      fixed = 0;
      per_byte = sxx > 0 ? sxy / sxx : 0;
    }
    c.m_selection[method] = {std::max(0.0, fixed), std::max(0.0, per_byte)};
  }
  std::string device = "the device";
  if (auto g = r.meta.find("gpus"); g != r.meta.end() && g->is_array() && !g->empty())
    device = g->front().value("name", device);
  c.m_source = "measured: " + origin + " (" + device + ")";
  return c;
}

device_curves device_curves::from_spec(const gpu_preset& gpu) {
  device_curves c;
  c.m_bandwidth = gpu.bandwidth_bytes_per_s;
  c.m_flops = gpu.bf16_flops;
  c.m_source = "spec sheet: " + gpu.display_name + " (no latency report given)";
  return c;
}

double device_curves::decode_seconds(double batch, double bytes) const {
  if (m_decode.empty()) return bytes / m_bandwidth;
  // Along one batch's curve: linear between points, the asymptotic bandwidth past the last one,
  // and below the first, the straight line to the latency floor its first two points extend to.
  auto along = [&](const std::vector<decode_point>& pts) {
    if (bytes >= pts.back().bytes) {
      double slope_bw = m_bandwidth;
      if (pts.size() >= 2) {
        const auto& a = pts[pts.size() - 2];
        const auto& b = pts.back();
        if (b.seconds > a.seconds) slope_bw = (b.bytes - a.bytes) / (b.seconds - a.seconds);
      }
      return pts.back().seconds + (bytes - pts.back().bytes) / slope_bw;
    }
    if (bytes <= pts.front().bytes) {
      double floor = 0;
      if (pts.size() >= 2) {
        const double slope = (pts[1].seconds - pts[0].seconds) / (pts[1].bytes - pts[0].bytes);
        floor = std::clamp(pts[0].seconds - slope * pts[0].bytes, 0.0, pts[0].seconds);
      }
      return floor + (pts[0].seconds - floor) * bytes / pts[0].bytes;
    }
    std::vector<std::pair<double, double>> xy;
    for (const auto& p : pts) xy.emplace_back(p.bytes, p.seconds);
    return interpolate(xy, bytes);
  };
  if (batch <= m_decode.front().first) return along(m_decode.front().second);
  if (batch >= m_decode.back().first) return along(m_decode.back().second);
  for (std::size_t i = 1; i < m_decode.size(); ++i) {
    if (batch > m_decode[i].first) continue;
    const double b0 = m_decode[i - 1].first, b1 = m_decode[i].first;
    const double t = (std::log(batch) - std::log(b0)) / (std::log(b1) - std::log(b0));
    return (1 - t) * along(m_decode[i - 1].second) + t * along(m_decode[i].second);
  }
  return along(m_decode.back().second);
}

double device_curves::selection_seconds(const std::string& method, double bytes) const {
  auto it = m_selection.find(method);
  return it == m_selection.end() ? 0.0 : it->second.first + it->second.second * bytes;
}

double device_curves::prefill_flops(std::int64_t length, bool causal) const {
  const auto& curve = causal && !m_prefill_causal.empty() ? m_prefill_causal
                      : !m_prefill_full.empty()           ? m_prefill_full
                                                          : m_prefill_causal;
  if (curve.empty()) return m_flops;
  std::vector<std::pair<double, double>> xy;
  for (const auto& p : curve) xy.emplace_back(std::log(p.length), p.flops);
  return interpolate(xy, std::log(static_cast<double>(std::max<std::int64_t>(length, 1))));
}

// ---- speed --------------------------------------------------------------------------------

speed_model::speed_model(const memory_model& memory, const device_curves& curves)
    : m_memory(memory), m_curves(curves) {
  if (!(curves.bandwidth() > 0))
    ATTNBENCH_BAD_INPUT(
        "the device's bandwidth is unknown: give a GPU preset with "
        "bandwidth_tb_per_s or a latency report");
}

double speed_model::attention_from_cost(double batch, const sequence_cost& one) const {
  const double rows = std::max(0.0, one.read_bytes - one.selection_bytes);
  double t = m_curves.decode_seconds(batch, batch * rows);
  if (one.selection_bytes > 0)
    t += m_curves.decode_seconds(batch, batch * one.selection_bytes) +
         m_curves.selection_seconds(m_memory.inputs().method.info->name,
                                    batch * one.selection_bytes);
  return t;
}

double speed_model::attention_layer_s(int layer, double batch, std::int64_t prompt,
                                      std::int64_t tokens) const {
  return attention_from_cost(batch, m_memory.layer(layer, prompt, tokens));
}

namespace {

// Parameters of one layer's linear maps read by a decode step of `batch` sequences, and the
// parameters every token multiplies (for the compute bound). MoE: the routed experts the batch
// touches, E (1 - (1 - k/E)^batch) in expectation under uniform routing.
struct linear_load {
  double read_params = 0;
  double active_params = 0;
};

linear_load layer_linear(const model_preset& m, double batch) {
  const double embed = static_cast<double>(m.vocab_size) * m.hidden_size;
  const double embeddings = m.tie_word_embeddings ? embed : 2 * embed;
  const double body = std::max(0.0, m.parameters - embeddings) / m.layers;
  if (!m.moe) return {body, body};
  const moe_config& e = *m.moe;
  const int moe_layers = m.layers - e.first_dense_layers;
  const double expert = 3.0 * m.hidden_size * e.expert_intermediate_size;
  const double routed = expert * e.experts * moe_layers;
  const double rest = std::max(0.0, m.parameters - embeddings - routed) / m.layers;
  const double touched =
      e.experts * (1 - std::pow(1 - static_cast<double>(e.experts_per_token) / e.experts, batch));
  const double per_moe_layer = static_cast<double>(moe_layers) / m.layers;
  return {rest + per_moe_layer * touched * expert,
          rest + per_moe_layer * e.experts_per_token * expert};
}

}  // namespace

step_time speed_model::decode(double batch, std::int64_t context) const {
  const plan_inputs& in = m_memory.inputs();
  const model_preset& m = in.model;
  const double tp = in.tp;
  const double weight_element = dtype_bytes(in.dtype, "--dtype");
  const std::int64_t tokens = context + in.output_tokens;
  step_time t;
  // Layers whose footprint is the same cost the same: evaluate each distinct one once.
  std::map<std::pair<double, double>, double> seen;
  for (int l = 0; l < m.layers; ++l) {
    const sequence_cost c = m_memory.layer(l, context, tokens);
    auto key = std::make_pair(c.read_bytes, c.selection_bytes);
    auto it = seen.find(key);
    if (it == seen.end()) it = seen.emplace(key, attention_from_cost(batch, c)).first;
    t.attention_s += it->second;
  }
  const linear_load load = layer_linear(m, batch);
  const double read_s = load.read_params * weight_element / tp / m_curves.bandwidth();
  const double compute_s =
      m_curves.flops() > 0 ? 2.0 * load.active_params * batch / tp / m_curves.flops() : 0;
  const double lm_head = static_cast<double>(m.vocab_size) * m.hidden_size;
  t.linear_s =
      m.layers * std::max(read_s, compute_s) + lm_head * weight_element / tp / m_curves.bandwidth();
  if (in.tp > 1 && in.gpu.interconnect_bytes_per_s > 0) {
    const double bytes = batch * m.hidden_size * 2.0;
    const double ring = 2.0 * (tp - 1) / tp * bytes / in.gpu.interconnect_bytes_per_s;
    t.comm_s = m.layers * 2.0 * (k_allreduce_latency_s + ring);
  }
  t.total_s = t.attention_s + t.linear_s + t.comm_s;
  return t;
}

step_time speed_model::prefill(std::int64_t context) const {
  const plan_inputs& in = m_memory.inputs();
  const model_preset& m = in.model;
  const double tp = in.tp;
  const double s = static_cast<double>(context);
  const double qk_dim = m.head_dim;
  const double v_dim = m.mla ? m.mla->v_head_dim : m.head_dim;
  const double heads = static_cast<double>(m.q_heads) / tp;
  step_time t;
  for (int l = 0; l < m.layers; ++l) {
    // Query-key pairs of a causal prefill: s(s+1)/2, or with a window w: each query sees at
    // most w keys.
    double pairs = s * (s + 1) / 2;
    if (m.is_local_layer(l) && s > m.sliding_window) {
      const double w = static_cast<double>(m.sliding_window);
      pairs = w * (w + 1) / 2 + (s - w) * w;
    }
    const double flops = 2.0 * heads * pairs * (qk_dim + v_dim);
    const double rate = m_curves.prefill_flops(context, true);
    t.attention_s += rate > 0 ? flops / rate : 0;
  }
  const linear_load load = layer_linear(m, s);
  const double rate = m_curves.flops();
  const double weight_element = dtype_bytes(in.dtype, "--dtype");
  const double lm_head = static_cast<double>(m.vocab_size) * m.hidden_size;
  const double compute = 2.0 * load.active_params * s / tp;
  const double read = load.read_params * weight_element / tp / m_curves.bandwidth();
  t.linear_s = m.layers * std::max(rate > 0 ? compute / rate : 0, read) +
               lm_head * weight_element / tp / m_curves.bandwidth();
  if (in.tp > 1 && in.gpu.interconnect_bytes_per_s > 0) {
    const double bytes = s * m.hidden_size * 2.0;
    t.comm_s =
        m.layers * 2.0 *
        (k_allreduce_latency_s + 2.0 * (tp - 1) / tp * bytes / in.gpu.interconnect_bytes_per_s);
  }
  t.total_s = t.attention_s + t.linear_s + t.comm_s;
  return t;
}

std::optional<std::int64_t> speed_model::efficiency_length(double batch) const {
  // Dense decode attention of every layer at n tokens, and the method's.
  const model_preset& m = m_memory.inputs().model;
  auto gap = [&](std::int64_t n) {
    double method = 0, dense = 0;
    for (int l = 0; l < m.layers; ++l) {
      method += attention_layer_s(l, batch, n, n);
      sequence_cost d;
      d.read_bytes = m_memory.dense_layer_read(l, n);
      dense += attention_from_cost(batch, d);
    }
    return method - dense;
  };
  std::int64_t prev = 0;
  for (std::int64_t n = 256; n <= (std::int64_t{1} << 22); n *= 2) {
    if (gap(n) < 0) {
      if (prev == 0) return n;
      std::int64_t lo = prev, hi = n;  // gap(lo) >= 0 > gap(hi)
      while (hi - lo > std::max<std::int64_t>(1, lo / 256)) {
        const std::int64_t mid = lo + (hi - lo) / 2;
        (gap(mid) < 0 ? hi : lo) = mid;
      }
      return hi;
    }
    prev = n;
  }
  return std::nullopt;
}

}  // namespace attnbench::plan
