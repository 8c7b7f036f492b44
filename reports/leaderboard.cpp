#include "reports/leaderboard.hpp"

#include <algorithm>
#include <cstdio>
#include <set>
#include <utility>

#include "reports/posir_summary.hpp"
#include "reports/render_md_csv.hpp"
#include "reports/ruler_summary.hpp"

namespace attnbench {

namespace {

using nlohmann::json;

/// Running mean.
struct mean_acc {
  double sum = 0;
  int n = 0;
  void add(double v) {
    if (std::isfinite(v)) sum += v, ++n;
  }
  double get() const { return n ? sum / n : std::numeric_limits<double>::quiet_NaN(); }
};

const double* metric_of(const record& r, const std::string& name) {
  auto it = r.metrics.find(name);
  return it != r.metrics.end() && std::isfinite(it->second) ? &it->second : nullptr;
}

std::string axis_text(const json& axes, const char* name) {
  auto it = axes.find(name);
  if (it == axes.end()) return "";
  return it->is_string() ? it->get<std::string>() : it->dump();
}

method_key key_of(const record& r) { return {r.method_spec, r.mode, r.backend}; }

table_cell number_cell(double v, const std::string& text) {
  table_cell c;
  if (std::isfinite(v)) {
    c.value = v;
    c.text = text;
  }
  return c;
}

table_cell text_cell(const std::string& s) {
  table_cell c;
  c.text = s;
  return c;
}

/// Everything the leaderboard needs about one method key.
struct method_scores {
  const ruler_method_summary* ruler = nullptr;  // from summarize_ruler
  mean_acc niah;
  mean_acc posir_psi;  // PSI per length bucket (posir_summary)
  mean_acc fidelity;
  mean_acc resident_ratio;
  bool simulated = false;
  mean_acc bytes_read;
};

/// Decode speedups of one (method spec, mode) on one backend, and the devices that timed them.
struct backend_speed {
  std::vector<double> speedups;
  std::set<std::string> devices;
};

// The latency case a decode record belongs to, independent of the method: suite case name and
// backend (the runner names cases by their axes only).
std::string latency_case(const record& r) { return r.case_name + '\x1f' + r.backend; }

// The device a latency record was timed on: the GPU named in its peak model (CUDA), else the
// report's host CPU.
std::string timing_device(const record& r, const report& rep) {
  if (auto peak = r.extra.find("peak"); peak != r.extra.end() && peak->is_object())
    if (auto d = peak->find("device"); d != peak->end() && d->is_string() && !d->empty())
      return d->get<std::string>();
  const json host = rep.meta.value("host", json::object());
  return host.is_object() ? host.value("cpu", std::string()) : "";
}

bool is_decode_latency(const record& r) {
  if (r.suite != "latency" || r.status != record_status::ok) return false;
  const std::string phase = axis_text(r.axes, "phase");
  return phase.empty() || phase == "decode";
}

}  // namespace

double percent_scale(const report& r, const std::string& metric) {
  auto it = r.metrics.find(metric);
  if (it != r.metrics.end()) {
    if (it->second.unit == "%" || it->second.unit == "percent") return 1.0;
    if (it->second.unit == "fraction") return 100.0;
  }
  return 1.0;
}

std::string length_text(double tokens) {
  if (!std::isfinite(tokens)) return "-";
  const auto n = static_cast<long long>(tokens);
  if (static_cast<double>(n) == tokens && n > 0) {
    if (n % (1024 * 1024) == 0) return std::to_string(n / (1024 * 1024)) + "M";
    if (n % 1024 == 0) return std::to_string(n / 1024) + "k";
    return std::to_string(n);
  }
  return format_real("%g", tokens);
}

std::string format_value(double v, const std::string& unit) {
  if (!std::isfinite(v)) return "-";
  const double a = std::abs(v);
  if (unit == "bytes" || unit == "B") {
    if (a >= 1024.0 * 1024 * 1024) return format_real("%.3g GiB", v / (1024.0 * 1024 * 1024));
    if (a >= 1024.0 * 1024) return format_real("%.3g MiB", v / (1024.0 * 1024));
    if (a >= 1024.0) return format_real("%.3g KiB", v / 1024.0);
    return format_real("%.0f B", v);
  }
  if (unit == "s") {
    if (a >= 1.0 || a == 0) return format_real("%.4g s", v);
    if (a >= 1e-3) return format_real("%.4g ms", v * 1e3);
    if (a >= 1e-6) return format_real("%.4g us", v * 1e6);
    return format_real("%.4g ns", v * 1e9);
  }
  if (unit == "%") return format_real("%.1f", v);
  if (a >= 1e6) return format_real("%.3gM", v / 1e6);
  if (a >= 1e4) return format_real("%.3gk", v / 1e3);
  return format_real("%.4g", v);
}

table build_leaderboard(const report& r) {
  std::map<method_key, method_scores> scores;
  const double accuracy_scale = percent_scale(r, "accuracy");

  // Dense decode medians per latency case, for the speedup column.
  std::map<std::string, double> dense_decode;
  for (const record& rec : r.records)
    if (rec.method == "dense" && is_decode_latency(rec))
      if (const double* m = metric_of(rec, "median_s"); m && *m > 0)
        dense_decode[latency_case(rec)] = *m;

  // Decode speedups per (spec, mode) and backend: a row's speed column takes the CUDA ones when
  // there are any (the hardware methods are deployed on), else its own backend's.
  std::map<std::pair<std::string, std::string>, std::map<std::string, backend_speed>> speeds;

  for (const record& rec : r.records) {
    method_scores& s = scores[key_of(rec)];
    if (rec.status != record_status::ok) continue;
    if (rec.suite == "niah") {
      if (const double* v = metric_of(rec, "accuracy")) s.niah.add(*v * accuracy_scale);
    } else if (rec.suite == "fidelity") {
      const double* v = metric_of(rec, "rel_l2");
      if (!v) v = metric_of(rec, "rel_l2_error");
      if (v) s.fidelity.add(*v);
    } else if (is_decode_latency(rec)) {
      auto dense = dense_decode.find(latency_case(rec));
      if (const double* m = metric_of(rec, "median_s"); m && *m > 0 && dense != dense_decode.end()) {
        backend_speed& b = speeds[{rec.method_spec, rec.mode}][rec.backend];
        b.speedups.push_back(dense->second / *m);
        if (const std::string device = timing_device(rec, r); !device.empty())
          b.devices.insert(device);
      }
    }
    if (rec.suite == "niah" || rec.suite == "ruler") {
      if (const double* v = metric_of(rec, "resident_kv_ratio")) s.resident_ratio.add(*v);
      if (const double* v = metric_of(rec, "kv_bytes_read_per_step")) s.bytes_read.add(*v);
      if (auto it = rec.extra.find("simulated"); it != rec.extra.end() && it->is_boolean())
        s.simulated = s.simulated || it->get<bool>();
    }
  }

  // RULER and PosIR: the suites' own summaries (average, effective length, PSI per bucket).
  const std::vector<ruler_method_summary> ruler = summarize_ruler(r);
  for (const ruler_method_summary& m : ruler) scores[{m.method_spec, m.mode, m.backend}].ruler = &m;
  // PosIR: PSI per length bucket from the posir suite's own summary, averaged over buckets.
  for (const posir_length_summary& p : posir_summary(r))
    scores[{p.method_spec, p.mode, p.backend}].posir_psi.add(p.psi);

  table t;
  t.key = "leaderboard";
  t.title = "Leaderboard";
  t.note =
      "One row per method spec, mode and backend. Accuracy columns are in % (higher is better); "
      "the effective length is the largest length up to which the RULER average stays above the "
      "threshold; "
      "KV resident is resident KV bytes / dense (methods that only simulate eviction count as "
      "1); decode speedup is the geometric mean of dense / method decode latency over matching "
      "latency cases, from the CUDA latency records of the same method spec and mode when there are "
      "any (whatever the row's backend), else from the row's own backend; the speed source column "
      "names the backend and device.";
  t.columns = {
      {"method", "method", "", false, true, "method spec"},
      {"mode", "mode", "", false, true, "query_aware or query_agnostic"},
      {"backend", "backend", "", false, true, "cpu or cuda"},
      {"ruler_avg", "RULER avg", "%", true, true, "mean RULER score over tasks and lengths"},
      {"ruler_eff_len", "RULER eff. length", "tokens", true, true,
       "largest length up to which the task-average score stays above the threshold"},
      {"niah_avg", "NIAH avg", "%", true, true, "mean NIAH accuracy over the grid"},
      {"posir_psi", "PosIR PSI", "", true, false,
       "position sensitivity 1 - min/max bin accuracy, mean over length buckets"},
      {"fidelity_rel_l2", "fidelity error", "rel L2", true, false,
       "mean relative L2 error of the attention output vs dense"},
      {"kv_resident_ratio", "KV resident", "x dense", true, false,
       "resident KV bytes / dense KV bytes (niah, ruler)"},
      {"kv_read_per_step", "KV read / step", "bytes", true, false,
       "KV bytes read per decode step, all layers (niah, ruler)"},
      {"decode_speedup", "decode speedup", "x", true, true,
       "geometric mean of dense / method decode latency"},
      {"speed_source", "speed source", "", false, true,
       "backend and device of the latency records behind the decode speedup"},
  };

  for (const auto& [key, s] : scores) {
    std::vector<table_cell> row{text_cell(key.method_spec), text_cell(key.mode),
                                text_cell(key.backend)};
    if (!s.ruler || s.ruler->lengths.empty()) {
      row.push_back({});
      row.push_back({});
    } else {
      const std::int64_t eff = s.ruler->effective_length;
      row.push_back(number_cell(s.ruler->average, format_real("%.1f", s.ruler->average)));
      row.push_back(
          number_cell(static_cast<double>(eff),
                      eff > 0 ? length_text(static_cast<double>(eff))
                              : "< " + length_text(static_cast<double>(s.ruler->lengths.front()))));
    }
    row.push_back(number_cell(s.niah.get(), format_real("%.1f", s.niah.get())));

    row.push_back(number_cell(s.posir_psi.get(), format_real("%.2f", s.posir_psi.get())));
    row.push_back(number_cell(s.fidelity.get(), format_real("%.3g", s.fidelity.get())));

    const double ratio = s.simulated ? 1.0 : s.resident_ratio.get();
    row.push_back(number_cell(s.resident_ratio.n ? ratio : NAN,
                              format_real("%.3f", ratio) + (s.simulated ? " (simulated)" : "")));
    row.push_back(number_cell(s.bytes_read.get(), format_value(s.bytes_read.get(), "bytes")));

    const backend_speed* speed = nullptr;
    std::string speed_backend;
    if (auto found = speeds.find({key.method_spec, key.mode}); found != speeds.end()) {
      for (const std::string& b : {std::string("cuda"), key.backend})
        if (auto it = found->second.find(b); !speed && it != found->second.end())
          speed = &it->second, speed_backend = b;
    }
    double log_sum = 0;
    if (speed)
      for (double x : speed->speedups) log_sum += std::log(x);
    const double speedup =
        speed ? std::exp(log_sum / static_cast<double>(speed->speedups.size())) : NAN;
    row.push_back(number_cell(speedup, format_real("%.2f", speedup)));
    std::string source = speed_backend;
    if (speed)
      for (const std::string& device : speed->devices)
        source += (&device == &*speed->devices.begin() ? ": " : ", ") + device;
    row.push_back(text_cell(source));
    t.rows.push_back(std::move(row));
  }

  // Best first: RULER average, then NIAH average (an empty value sorts last), then the name.
  auto rank = [](double v) { return std::isfinite(v) ? v : -1.0; };
  std::stable_sort(t.rows.begin(), t.rows.end(), [&](const auto& a, const auto& b) {
    if (rank(a[3].value) != rank(b[3].value)) return rank(a[3].value) > rank(b[3].value);
    if (rank(a[5].value) != rank(b[5].value)) return rank(a[5].value) > rank(b[5].value);
    return a[0].text < b[0].text;
  });
  return t;
}

std::vector<table> build_suite_tables(const report& r) {
  struct group {
    int ok = 0, not_ok = 0;
    std::map<std::string, mean_acc> metrics;
  };
  std::map<std::string, std::map<method_key, group>> suites;
  std::map<std::string, std::set<std::string>> names;
  for (const record& rec : r.records) {
    group& g = suites[rec.suite][key_of(rec)];
    (rec.status == record_status::ok ? g.ok : g.not_ok) += 1;
    for (const auto& [name, value] : rec.metrics) {
      names[rec.suite].insert(name);
      if (rec.status == record_status::ok) g.metrics[name].add(value);
    }
  }

  std::vector<table> out;
  for (const auto& [suite, groups] : suites) {
    table t;
    t.key = suite;
    t.title = "Suite " + suite;
    t.note = "Mean over the ok records of each (method, mode, backend).";
    t.columns = {{"method", "method", "", false, true, "method spec"},
                 {"mode", "mode", "", false, true, ""},
                 {"backend", "backend", "", false, true, ""},
                 {"ok", "ok", "records", true, true, "records with status ok"},
                 {"not_ok", "not ok", "records", true, false, "skipped, error or oom records"}};
    for (const std::string& name : names[suite]) {
      table_column c{name, name, "", true, true, ""};
      if (auto it = r.metrics.find(name); it != r.metrics.end()) {
        c.unit = it->second.unit;
        c.higher_is_better = it->second.higher_is_better;
        c.doc = it->second.doc;
      }
      t.columns.push_back(std::move(c));
    }
    for (const auto& [key, g] : groups) {
      std::vector<table_cell> row{text_cell(key.method_spec), text_cell(key.mode),
                                  text_cell(key.backend), number_cell(g.ok, std::to_string(g.ok)),
                                  number_cell(g.not_ok, std::to_string(g.not_ok))};
      for (const std::string& name : names[suite]) {
        auto it = g.metrics.find(name);
        const double v = it == g.metrics.end() ? NAN : it->second.get();
        const std::string unit = t.columns[row.size()].unit;
        row.push_back(number_cell(v, format_value(v, unit)));
      }
      t.rows.push_back(std::move(row));
    }
    out.push_back(std::move(t));
  }
  return out;
}

}  // namespace attnbench
