#include "suites/common/ops/op_axes.hpp"
#include <algorithm>

#include <cmath>
#include <sstream>

#include "harness/error.hpp"
#include "harness/params.hpp"

namespace attnbench {

namespace {

std::vector<std::string> split_commas(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) out.push_back(item);
  if (!text.empty() && text.back() == ',') out.emplace_back();
  return out;
}

std::int64_t parse_int(const std::string& name, const std::string& text, std::int64_t min,
                       std::int64_t max) {
  auto v = parse_real(text);
  if (!v || *v != std::floor(*v) || *v < static_cast<double>(min) || *v > static_cast<double>(max))
    ATTNBENCH_BAD_INPUT("--param " << name << ": expected an integer in [" << min << ", " << max
                                   << "], got '" << text << "'");
  return static_cast<std::int64_t>(*v);
}

bool parse_bool(const std::string& name, const std::string& text) {
  if (text == "1" || text == "true") return true;
  if (text == "0" || text == "false") return false;
  ATTNBENCH_BAD_INPUT("--param " << name << ": expected 1, 0, true or false, got '" << text << "'");
}

}  // namespace

std::vector<std::string> param_items(const run_options& options, const std::string& suite,
                                     const std::string& key) {
  // `--axis SUITE.KEY=...` sets the same list as `--param SUITE.KEY=...`.
  if (auto axis = options.axis_values.find(suite + "." + key); axis != options.axis_values.end()) {
    std::vector<std::string> items;
    for (const auto& v : axis->second)
      items.push_back(v.is_string() ? v.get<std::string>() : v.dump());
    return items;
  }
  auto it = options.params.find(suite + "." + key);
  if (it == options.params.end()) return {};
  auto items = split_commas(it->second);
  for (const auto& item : items)
    if (item.empty())
      ATTNBENCH_BAD_INPUT("--param " << suite << "." << key << ": empty item in '" << it->second
                                     << "'");
  ATTNBENCH_CHECK(!items.empty(), bad_input, "--param " << suite << "." << key << " is empty");
  return items;
}

std::int64_t int_setting(const run_options& options, const std::string& suite,
                         const std::string& key, std::int64_t fallback, std::int64_t min,
                         std::int64_t max) {
  auto it = options.params.find(suite + "." + key);
  return it == options.params.end() ? fallback : parse_int(it->first, it->second, min, max);
}

double real_setting(const run_options& options, const std::string& suite, const std::string& key,
                    double fallback, double min, double max) {
  auto it = options.params.find(suite + "." + key);
  if (it == options.params.end()) return fallback;
  auto v = parse_real(it->second);
  if (!v || *v < min || *v > max)
    ATTNBENCH_BAD_INPUT("--param " << it->first << ": expected a number in [" << min << ", " << max
                                   << "], got '" << it->second << "'");
  return *v;
}

bool bool_setting(const run_options& options, const std::string& suite, const std::string& key,
                  bool fallback) {
  auto it = options.params.find(suite + "." + key);
  return it == options.params.end() ? fallback : parse_bool(it->first, it->second);
}

op_axes default_op_axes(const run_options& options) {
  op_axes a;
  a.phases = {"decode"};
  a.batches = {1};
  a.lengths = {1024};
  a.causal = {true};
  if (options.backend == "cuda") {
    a.heads = {{32, 8}};
    a.head_dims = {128};
    a.dtypes = {"bf16"};
  } else {
    a.heads = {{options.shape.q_heads, options.shape.kv_heads}};
    a.head_dims = {options.shape.head_dim};
    a.dtypes = {"fp32"};
  }
  return a;
}

std::vector<axis_def> op_axis_defs(const op_axes& defaults) {
  std::vector<std::int64_t> batches(defaults.batches.begin(), defaults.batches.end()), qs, kvs,
      dims(defaults.head_dims.begin(), defaults.head_dims.end()), causal,
      pages(defaults.page_sizes.begin(), defaults.page_sizes.end());
  for (const auto& [q, kv] : defaults.heads) qs.push_back(q), kvs.push_back(kv);
  for (bool c : defaults.causal) causal.push_back(c ? 1 : 0);
  return {text_axis("backend", {}, {}, "the run's --backend"),
          text_axis("phase", defaults.phases, {}, "prefill, decode"),
          int64_axis("batch", batches),
          int64_axis("length", defaults.lengths, {}, "--lengths (not in the quick preset)"),
          int64_axis("q_heads", qs),
          int64_axis("kv_heads", kvs),
          int64_axis("head_dim", dims),
          text_axis("dtype", defaults.dtypes, {}, "bf16, fp16, fp32"),
          int64_axis("causal", causal, {}, "1 or 0, prefill only"),
          int64_axis("page_size", pages, {}, "0: contiguous")};
}

op_axes parse_op_axes(const run_options& options, const std::string& suite,
                      const op_axes& defaults) {
  op_axes axes = defaults;
  const std::string prefix = suite + ".";
  if (auto items = param_items(options, suite, "phase"); !items.empty()) {
    axes.phases.clear();
    for (const auto& p : items) {
      if (p != "prefill" && p != "decode")
        ATTNBENCH_BAD_INPUT("--param " << prefix << "phase: unknown phase '" << p
                                       << "' (known: prefill, decode)");
      axes.phases.push_back(p);
    }
  }
  if (auto items = param_items(options, suite, "batch"); !items.empty()) {
    axes.batches.clear();
    for (const auto& b : items)
      axes.batches.push_back(static_cast<int>(parse_int(prefix + "batch", b, 1, 4096)));
  }
  if (auto items = param_items(options, suite, "heads"); !items.empty()) {
    axes.heads.clear();
    for (const auto& h : items) {
      const auto slash = h.find('/');
      const int q = static_cast<int>(parse_int(prefix + "heads", h.substr(0, slash), 1, 1024));
      const int kv =
          slash == std::string::npos
              ? q
              : static_cast<int>(parse_int(prefix + "heads", h.substr(slash + 1), 1, 1024));
      if (q % kv != 0)
        ATTNBENCH_BAD_INPUT("--param " << prefix << "heads: query heads must be a multiple of KV "
                                       << "heads, got '" << h << "'");
      axes.heads.emplace_back(q, kv);
    }
  }
  // `--axis SUITE.q_heads=...` / `kv_heads=...`: the (query, KV) pairs of their product whose
  // query heads are a multiple of the KV heads; an axis not given keeps the defaults' values.
  const auto q_axis = param_items(options, suite, "q_heads");
  const auto kv_axis = param_items(options, suite, "kv_heads");
  if (!q_axis.empty() || !kv_axis.empty()) {
    std::vector<int> qs, kvs;
    for (const auto& q : q_axis)
      qs.push_back(static_cast<int>(parse_int(prefix + "q_heads", q, 1, 1024)));
    for (const auto& kv : kv_axis)
      kvs.push_back(static_cast<int>(parse_int(prefix + "kv_heads", kv, 1, 1024)));
    for (const auto& [q, kv] : axes.heads) {
      if (q_axis.empty()) qs.push_back(q);
      if (kv_axis.empty()) kvs.push_back(kv);
    }
    axes.heads.clear();
    for (int q : qs)
      for (int kv : kvs)
        if (q % kv == 0 &&
            std::find(axes.heads.begin(), axes.heads.end(), std::pair{q, kv}) == axes.heads.end())
          axes.heads.emplace_back(q, kv);
    ATTNBENCH_CHECK(!axes.heads.empty(), bad_input,
                    "--axis " << prefix << "q_heads / kv_heads: no query head count is a multiple "
                              << "of a KV head count");
  }
  if (auto items = param_items(options, suite, "head_dim"); !items.empty()) {
    axes.head_dims.clear();
    for (const auto& d : items)
      axes.head_dims.push_back(static_cast<int>(parse_int(prefix + "head_dim", d, 1, 1024)));
  }
  if (auto items = param_items(options, suite, "dtype"); !items.empty()) {
    axes.dtypes.clear();
    for (const auto& t : items) {
      if (t != "bf16" && t != "fp16" && t != "fp32")
        ATTNBENCH_BAD_INPUT("--param " << prefix << "dtype: unknown dtype '" << t
                                       << "' (known: bf16, fp16, fp32)");
      axes.dtypes.push_back(t);
    }
  }
  if (auto items = param_items(options, suite, "causal"); !items.empty()) {
    axes.causal.clear();
    for (const auto& c : items) axes.causal.push_back(parse_bool(prefix + "causal", c));
  }
  if (auto items = param_items(options, suite, "page_size"); !items.empty()) {
    axes.page_sizes.clear();
    for (const auto& p : items)
      axes.page_sizes.push_back(static_cast<int>(parse_int(prefix + "page_size", p, 0, 4096)));
  }
  // The quick preset's lengths are sized for the accuracy suites; operator suites keep their
  // own tiny default there so that timing every CPU method stays within the preset's minute.
  if (!options.lengths.empty() && !options.quick) axes.lengths = options.lengths;
  if (auto items = param_items(options, suite, "length"); !items.empty()) {
    axes.lengths.clear();
    for (const auto& l : items) axes.lengths.push_back(parse_int(prefix + "length", l, 1, 1 << 30));
  }
  for (auto length : axes.lengths)
    if (length < 1) ATTNBENCH_BAD_INPUT("length must be >= 1, got " << length);
  return axes;
}

std::vector<std::pair<std::string, nlohmann::json>> op_case_axes(const std::string& backend,
                                                                 const op_shape& shape) {
  std::vector<std::pair<std::string, nlohmann::json>> axes = {
      {"backend", backend},         {"phase", shape.phase},     {"batch", shape.batch},
      {"length", shape.length},     {"q_heads", shape.q_heads}, {"kv_heads", shape.kv_heads},
      {"head_dim", shape.head_dim}, {"dtype", shape.dtype}};
  if (shape.phase == "prefill") axes.emplace_back("causal", shape.causal);
  if (shape.page_size != 0) axes.emplace_back("page_size", shape.page_size);
  return axes;
}

std::vector<op_shape> op_shapes(const op_axes& axes) {
  std::vector<op_shape> out;
  for (const auto& phase : axes.phases)
    for (int batch : axes.batches)
      for (auto length : axes.lengths)
        for (const auto& [q, kv] : axes.heads)
          for (int head_dim : axes.head_dims)
            for (const auto& dtype : axes.dtypes) {
              const std::vector<bool> causal =
                  phase == "prefill" ? axes.causal : std::vector<bool>{true};
              for (bool c : causal)
                for (int page_size : axes.page_sizes) {
                  op_shape s;
                  s.phase = phase;
                  s.batch = batch;
                  s.length = length;
                  s.q_heads = q;
                  s.kv_heads = kv;
                  s.head_dim = head_dim;
                  s.dtype = dtype;
                  s.causal = c;
                  s.page_size = page_size;
                  out.push_back(s);
                }
            }
  return out;
}

op_shape op_shape_from_axes(const nlohmann::json& axes) {
  op_shape s;
  s.phase = axes.at("phase").get<std::string>();
  s.batch = axes.at("batch").get<int>();
  s.length = axes.at("length").get<std::int64_t>();
  s.q_heads = axes.at("q_heads").get<int>();
  s.kv_heads = axes.at("kv_heads").get<int>();
  s.head_dim = axes.at("head_dim").get<int>();
  s.dtype = axes.at("dtype").get<std::string>();
  s.causal = axes.contains("causal") ? axes.at("causal").get<bool>() : true;
  s.page_size = axes.contains("page_size") ? axes.at("page_size").get<int>() : 0;
  return s;
}

const calibration_source* op_calibration(const op_shape& shape, const run_context& ctx) {
  const model_shape& run = ctx.options->shape;
  const bool same_shape = shape.q_heads == run.q_heads && shape.kv_heads == run.kv_heads &&
                          shape.head_dim == run.head_dim;
  return same_shape ? ctx.calibration : nullptr;
}

}  // namespace attnbench
