#include "reports/compare.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <sstream>

#include "reports/leaderboard.hpp"
#include "reports/render_md_csv.hpp"
#include "reports/stats.hpp"

namespace attnbench {

namespace {

using nlohmann::json;

/// The records of one report that share a join key, in report order.
struct record_group {
  std::vector<const record*> records;

  const record& first() const { return *records.front(); }

  // ok only when every record is; otherwise the first status that is not ok.
  record_status status() const {
    for (const record* r : records)
      if (r->status != record_status::ok) return r->status;
    return record_status::ok;
  }
  std::string reason() const {
    for (const record* r : records)
      if (r->status != record_status::ok) return r->reason;
    return {};
  }
};

struct grouped_report {
  std::vector<std::string> order;  // join keys in order of first appearance
  std::map<std::string, record_group> groups;
};

grouped_report group_records(const report& r) {
  grouped_report g;
  for (const record& rec : r.records) {
    const std::string key = record_join_key(rec);
    auto [it, fresh] = g.groups.try_emplace(key);
    if (fresh) g.order.push_back(key);
    it->second.records.push_back(&rec);
  }
  return g;
}

std::string label_of(const record& r) {
  return r.suite + " | " + r.case_name + " | " + r.method_spec + " | " + r.mode + " | " + r.backend;
}

// Raw latency samples of the group's ok records (`extra.samples_s`); empty when there are none.
std::vector<double> latency_samples(const record_group& g) {
  std::vector<double> out;
  for (const record* r : g.records) {
    if (r->status != record_status::ok) continue;
    auto it = r->extra.find("samples_s");
    if (it == r->extra.end() || !it->is_array()) continue;
    for (const json& v : *it)
      if (v.is_number() && std::isfinite(v.get<double>())) out.push_back(v.get<double>());
  }
  return out;
}

// Per-sample ratios sample / yardstick of the group's ok records (`extra.reference_s` beside
// `extra.samples_s`, one each); empty when an ok record has none.
std::vector<double> normalized_samples(const record_group& g) {
  std::vector<double> out;
  for (const record* r : g.records) {
    if (r->status != record_status::ok) continue;
    auto s = r->extra.find("samples_s"), ref = r->extra.find("reference_s");
    if (s == r->extra.end() || ref == r->extra.end() || !s->is_array() || !ref->is_array() ||
        s->size() != ref->size())
      return {};
    for (std::size_t i = 0; i < s->size(); ++i) {
      const json &x = (*s)[i], &y = (*ref)[i];
      if (!x.is_number() || !y.is_number() || !(y.get<double>() > 0)) return {};
      if (std::isfinite(x.get<double>())) out.push_back(x.get<double>() / y.get<double>());
    }
  }
  return out;
}

bool has_samples_field(const record_group& g) {
  return std::any_of(g.records.begin(), g.records.end(),
                     [](const record* r) { return r->extra.contains("samples_s"); });
}

// Samples behind one record's accuracy: `extra.samples_run`, else the per-sample detail list.
double accuracy_sample_count(const record& r) {
  if (auto it = r.extra.find("samples_run"); it != r.extra.end() && it->is_number())
    return it->get<double>();
  if (auto it = r.extra.find("samples"); it != r.extra.end() && it->is_array())
    return static_cast<double>(it->size());
  return 0;
}

/// Pooled accuracy of a group: successes (accuracy / 100 * n summed) and trials.
struct pooled_accuracy {
  double successes = 0, trials = 0, value_sum = 0;
  int values = 0;
  bool counts_known = true;
  double percent() const {
    return trials > 0 ? 100.0 * successes / trials : values ? value_sum / values : NAN;
  }
};

pooled_accuracy pool_accuracy(const record_group& g, const std::string& metric, double scale) {
  pooled_accuracy p;
  for (const record* r : g.records) {
    if (r->status != record_status::ok) continue;
    auto it = r->metrics.find(metric);
    if (it == r->metrics.end() || !std::isfinite(it->second)) continue;
    const double pct = it->second * scale;
    const double n = accuracy_sample_count(*r);
    p.value_sum += pct;
    ++p.values;
    if (n > 0) {
      p.successes += pct / 100.0 * n;
      p.trials += n;
    } else {
      p.counts_known = false;
    }
  }
  return p;
}

double mean_metric(const record_group& g, const std::string& metric, int& count) {
  double sum = 0;
  count = 0;
  for (const record* r : g.records) {
    if (r->status != record_status::ok) continue;
    auto it = r->metrics.find(metric);
    if (it == r->metrics.end() || !std::isfinite(it->second)) continue;
    sum += it->second;
    ++count;
  }
  return count ? sum / count : NAN;
}

bool is_accuracy_metric(const report& base, const report& now, const std::string& name) {
  for (const report* r : {&base, &now}) {
    auto it = r->metrics.find(name);
    if (it != r->metrics.end()) return it->second.unit == "%" && it->second.higher_is_better;
  }
  return false;
}

bool higher_is_better(const report& base, const report& now, const std::string& name) {
  for (const report* r : {&base, &now}) {
    auto it = r->metrics.find(name);
    if (it != r->metrics.end()) return it->second.higher_is_better;
  }
  return true;
}

std::string unit_of(const report& base, const report& now, const std::string& name) {
  for (const report* r : {&base, &now}) {
    auto it = r->metrics.find(name);
    if (it != r->metrics.end()) return it->second.unit;
  }
  return "";
}

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

metric_change change_skeleton(const record& r, const std::string& metric) {
  metric_change c;
  c.suite = r.suite;
  c.case_name = r.case_name;
  c.method_spec = r.method_spec;
  c.mode = r.mode;
  c.backend = r.backend;
  c.metric = metric;
  return c;
}

// Significant and beyond the threshold decides; `worse` says which direction hurts.
verdict decide(bool significant, bool beyond, bool worse) {
  if (!significant || !beyond) return verdict::unchanged;
  return worse ? verdict::regression : verdict::improvement;
}

}  // namespace

std::string record_join_key(const record& r) {
  // Fields joined by a byte that cannot occur in the JSON dump of params.
  const char sep = '\x1f';
  return r.suite + sep + r.case_name + sep + r.method + sep + r.params.dump() + sep + r.backend +
         sep + r.mode;
}

const char* verdict_name(verdict v) {
  switch (v) {
    case verdict::regression:
      return "regression";
    case verdict::improvement:
      return "improvement";
    case verdict::unchanged:
      return "unchanged";
    case verdict::untested:
      return "untested";
  }
  return "unchanged";
}

std::size_t comparison::count(verdict v) const {
  return static_cast<std::size_t>(std::count_if(
      changes.begin(), changes.end(), [v](const metric_change& c) { return c.result == v; }));
}

comparison compare_reports(const report& base, const report& now, const compare_options& options) {
  comparison out;
  out.options = options;
  const grouped_report b = group_records(base), n = group_records(now);
  std::size_t few_sample_cases = 0;

  // Machine factor per backend: the median, over records normalized on both sides, of their
  // normalized medians new / base.
  // The normalized samples (base, new) of each join key normalized on both sides.
  std::map<std::string, double> machine_factor;
  std::map<std::string, std::pair<std::vector<double>, std::vector<double>>> normalized_pairs;
  if (options.normalize_latency) {
    std::map<std::string, std::vector<double>> ratios;
    for (const std::string& key : b.order) {
      auto found = n.groups.find(key);
      if (found == n.groups.end()) continue;
      std::vector<double> xb = normalized_samples(b.groups.at(key)),
                          xn = normalized_samples(found->second);
      if (xb.empty() || xn.empty()) continue;
      ratios[b.groups.at(key).first().backend].push_back(sample_median(xn) / sample_median(xb));
      normalized_pairs[key] = {std::move(xb), std::move(xn)};
    }
    for (auto& [backend, r] : ratios) {
      const bool applied = r.size() >= options.min_factor_records;
      const double f = applied ? sample_median(r) : 1.0;
      machine_factor[backend] = f;
      std::string note = backend + " latency: " + std::to_string(r.size()) +
                         " records compared as op / yardstick time per sample";
      if (applied)
        note += "; the new run's normalized times are " +
                format_real("%+.1f%%", 100.0 * (f - 1.0)) +
                " vs the base's overall (median), a shift divided out before testing";
      else
        note += "; too few records (< " + std::to_string(options.min_factor_records) +
                ") for a machine factor";
      out.notes.push_back(note + " (--raw-latency: raw seconds)");
      if (applied && std::abs(f - 1.0) > options.threshold)
        out.warnings.push_back(
            "every " + backend + " latency record moved by " +
            format_real("%+.1f%%", 100.0 * (f - 1.0)) +
            " against the yardstick together: a different machine state, or a change to code "
            "every method shares; not gated (compare with --raw-latency to see raw times)");
    }
  }

  for (const std::string& key : b.order) {
    const record_group& gb = b.groups.at(key);
    auto found = n.groups.find(key);
    if (found == n.groups.end()) {
      out.removed.push_back(label_of(gb.first()));
      continue;
    }
    const record_group& gn = found->second;
    ++out.matched_records;

    // Status first: a case that stopped working is a regression whatever its metrics say.
    const record_status sb = gb.status(), sn = gn.status();
    if ((sb == record_status::ok) != (sn == record_status::ok)) {
      metric_change c = change_skeleton(gb.first(), "status");
      c.test = "status";
      c.result = sb == record_status::ok ? verdict::regression : verdict::improvement;
      c.note = std::string(status_name(sb)) + " -> " + status_name(sn);
      const std::string reason = sn == record_status::ok ? gb.reason() : gn.reason();
      if (!reason.empty()) c.note += ": " + reason;
      out.changes.push_back(std::move(c));
      continue;
    }
    if (sb != record_status::ok) continue;

    // Latency from raw samples.
    const bool latency_record = has_samples_field(gb) || has_samples_field(gn);
    if (latency_record) {
      std::vector<double> xb = latency_samples(gb), xn = latency_samples(gn);
      metric_change c = change_skeleton(gb.first(), "median_s");
      c.unit = "s";
      c.n_base = xb.size();
      c.n_new = xn.size();
      c.base = sample_median(xb);
      c.now = sample_median(xn);
      // The test runs on what the change is measured on: normalized ratios when both sides
      // have them (NEW's divided by the machine factor), else raw seconds.
      std::string normalized;
      auto f = machine_factor.find(c.backend);
      auto pair = normalized_pairs.find(key);
      if (f != machine_factor.end() && pair != normalized_pairs.end()) {
        auto& [nb, nn] = pair->second;
        for (double& x : nn) x /= f->second;
        // base / new above stay raw seconds; the change is the normalized one, spelled out.
        c.note = "op / yardstick " + format_real("%.3g", sample_median(nb)) + " -> " +
                 format_real("%.3g", sample_median(nn)) + " (machine factor " +
                 format_real("%.3f", f->second) + " divided out)";
        xb = std::move(nb);
        xn = std::move(nn);
        normalized = " (normalized)";
      }
      if (!xb.empty() && !xn.empty() && c.base > 0) {
        const mann_whitney_result t = mann_whitney_u(xb, xn);
        c.test = (t.exact ? "mann-whitney exact" : "mann-whitney normal") + normalized;
        c.p_value = t.p_value;
        c.change = sample_median(xn) / sample_median(xb) - 1.0;
        c.result =
            decide(t.p_value<options.alpha, std::abs(c.change)> options.threshold, c.change > 0);
        if (xb.size() < options.min_samples || xn.size() < options.min_samples) {
          ++few_sample_cases;
          c.note += std::string(c.note.empty() ? "" : "; ") + "fewer than " +
                    std::to_string(options.min_samples) + " samples per side";
        }
      } else {
        c.test = "none";
        c.note = "no raw samples on one side";
      }
      out.changes.push_back(std::move(c));
    }

    // Every metric either side reports, in name order.
    std::map<std::string, bool> names;
    for (const record_group* g : {&gb, &gn})
      for (const record* r : g->records)
        for (const auto& [name, value] : r->metrics) names[name] = true;
    for (const auto& [name, unused] : names) {
      if (ends_with(name, "_stderr")) continue;
      if (is_accuracy_metric(base, now, name)) {
        const double scale = percent_scale(base, name);
        const pooled_accuracy pb = pool_accuracy(gb, name, scale);
        const pooled_accuracy pn = pool_accuracy(gn, name, scale);
        if (!pb.values || !pn.values) continue;
        metric_change c = change_skeleton(gb.first(), name);
        c.unit = "%";
        c.base = pb.percent();
        c.now = pn.percent();
        c.change = c.now - c.base;
        c.change_in_points = true;
        c.n_base = static_cast<std::size_t>(std::lround(pb.trials));
        c.n_new = static_cast<std::size_t>(std::lround(pn.trials));
        const bool beyond = std::abs(c.change) > options.accuracy_points;
        if (pb.counts_known && pn.counts_known) {
          const proportion_test_result t =
              two_proportion_z(pb.successes, pb.trials, pn.successes, pn.trials);
          c.test = "two-proportion z";
          c.p_value = t.p_value;
          c.result = decide(t.p_value < options.alpha, beyond, c.change < 0);
        } else {
          c.test = "none";
          c.note = "no sample count in the records";
          c.result = beyond ? verdict::untested : verdict::unchanged;
        }
        out.changes.push_back(std::move(c));
        continue;
      }
      // Timing metrics of a latency record are covered by the samples above.
      if (latency_record) continue;
      int cb = 0, cn = 0;
      const double mb = mean_metric(gb, name, cb), mn = mean_metric(gn, name, cn);
      if (!cb || !cn) continue;
      const double rel = mb != 0 ? mn / mb - 1.0 : (mn == 0 ? 0.0 : INFINITY);
      if (!(std::abs(rel) > options.threshold)) continue;
      metric_change c = change_skeleton(gb.first(), name);
      c.unit = unit_of(base, now, name);
      c.base = mb;
      c.now = mn;
      c.change = rel;
      c.test = "none";
      c.result = verdict::untested;
      c.note = higher_is_better(base, now, name) == (rel > 0) ? "better" : "worse";
      out.changes.push_back(std::move(c));
    }
  }
  for (const std::string& key : n.order)
    if (!b.groups.count(key)) out.added.push_back(label_of(n.groups.at(key).first()));

  if (few_sample_cases)
    out.warnings.push_back(std::to_string(few_sample_cases) +
                           " latency comparison(s) have fewer than " +
                           std::to_string(options.min_samples) +
                           " raw samples per side: the U test has little power there");
  for (const char* which : {"base", "new"}) {
    const report& r = std::string(which) == "base" ? base : now;
    if (r.records.empty()) out.warnings.push_back(std::string(which) + " report has no records");
  }
  return out;
}

namespace {

std::string change_text(const metric_change& c) {
  if (!std::isfinite(c.change)) return "-";
  if (c.change_in_points) return format_real("%+.1f pts", c.change);
  return format_real("%+.1f%%", 100.0 * c.change);
}

std::string p_text(double p) {
  if (!std::isfinite(p)) return "-";
  return p < 1e-4 ? std::string("<1e-4") : format_real("%.4f", p);
}

std::string value_text(double v, const std::string& unit) {
  if (!std::isfinite(v)) return "-";
  if (unit == "%") return format_real("%.1f%%", v);
  return format_value(v, unit);
}

std::string change_table(const std::vector<const metric_change*>& rows) {
  std::vector<std::vector<std::string>> cells;
  for (const metric_change* c : rows) {
    std::string n =
        c->n_base || c->n_new ? std::to_string(c->n_base) + " / " + std::to_string(c->n_new) : "-";
    std::string base = c->metric == "status" ? "" : value_text(c->base, c->unit);
    std::string now = c->metric == "status" ? "" : value_text(c->now, c->unit);
    cells.push_back({c->suite, c->case_name, c->method_spec, c->mode, c->backend, c->metric, base,
                     now, c->metric == "status" ? "" : change_text(*c), p_text(c->p_value), n,
                     c->test, c->note});
  }
  return render_markdown_table(
      {"suite", "case", "method", "mode", "backend", "metric", "base", "new", "change", "p",
       "n base / new", "test", "note"},
      cells,
      {false, false, false, false, false, false, true, true, true, true, true, false, false});
}

// Lists longer than this are folded into <details> so a pull-request comment stays short.
constexpr std::size_t k_fold_after = 10;

void section(std::ostringstream& os, const std::string& title,
             const std::vector<const metric_change*>& rows) {
  if (rows.empty()) return;
  os << "### " << title << " (" << rows.size() << ")\n\n";
  if (rows.size() > k_fold_after) os << "<details><summary>show all</summary>\n\n";
  os << change_table(rows);
  if (rows.size() > k_fold_after) os << "\n</details>\n";
  os << '\n';
}

void list_section(std::ostringstream& os, const std::string& title,
                  const std::vector<std::string>& items) {
  if (items.empty()) return;
  os << "### " << title << " (" << items.size() << ")\n\n";
  if (items.size() > k_fold_after) os << "<details><summary>show all</summary>\n\n";
  for (const std::string& s : items) os << "- `" << s << "`\n";
  if (items.size() > k_fold_after) os << "\n</details>\n";
  os << '\n';
}

}  // namespace

std::string comparison_markdown(const comparison& c) {
  std::vector<const metric_change*> regressions, improvements, untested;
  for (const metric_change& m : c.changes) {
    if (m.result == verdict::regression) regressions.push_back(&m);
    if (m.result == verdict::improvement) improvements.push_back(&m);
    if (m.result == verdict::untested) untested.push_back(&m);
  }
  std::ostringstream os;
  os << "## attnbench compare\n\n";
  const std::size_t nreg = regressions.size();
  os << "**"
     << (nreg ? std::to_string(nreg) + (nreg == 1 ? " regression" : " regressions")
              : std::string("No regression"))
     << "**: " << improvements.size() << " improvement(s), " << c.count(verdict::unchanged)
     << " unchanged, " << untested.size() << " untested change(s) over " << c.matched_records
     << " matched records; " << c.added.size() << " added, " << c.removed.size() << " removed.\n\n";
  if (!c.base_label.empty()) os << "- base: " << c.base_label << "\n";
  if (!c.new_label.empty()) os << "- new: " << c.new_label << "\n";
  os << "- gate: p < " << format_real("%g", c.options.alpha) << " and a change beyond "
     << format_real("%g", 100.0 * c.options.threshold) << "% (latency medians, Mann-Whitney U) or "
     << format_real("%g", c.options.accuracy_points)
     << " points (accuracy, two-proportion z); a case that stops running is a regression\n";
  for (const std::string& note : c.notes) os << "- " << note << "\n";
  os << '\n';
  section(os, "Regressions", regressions);
  section(os, "Improvements", improvements);
  section(os, "Changes beyond the threshold, not tested (no raw samples or sample counts)",
          untested);
  list_section(os, "Added records", c.added);
  list_section(os, "Removed records", c.removed);
  if (!c.warnings.empty()) {
    os << "### Warnings\n\n";
    for (const std::string& w : c.warnings) os << "- " << w << "\n";
    os << '\n';
  }
  return os.str();
}

nlohmann::json comparison_json(const comparison& c) {
  auto number = [](double v) { return std::isfinite(v) ? json(v) : json(nullptr); };
  json changes = json::array();
  for (const metric_change& m : c.changes)
    changes.push_back({{"suite", m.suite},
                       {"case", m.case_name},
                       {"method_spec", m.method_spec},
                       {"mode", m.mode},
                       {"backend", m.backend},
                       {"metric", m.metric},
                       {"unit", m.unit},
                       {"base", number(m.base)},
                       {"new", number(m.now)},
                       {"change", number(m.change)},
                       {"change_unit", m.change_in_points ? "points" : "relative"},
                       {"p_value", number(m.p_value)},
                       {"n_base", m.n_base},
                       {"n_new", m.n_new},
                       {"test", m.test},
                       {"verdict", verdict_name(m.result)},
                       {"note", m.note}});
  return {{"result", c.has_regression() ? "regression" : "ok"},
          {"base", c.base_label},
          {"new", c.new_label},
          {"options",
           {{"threshold", c.options.threshold},
            {"accuracy_points", c.options.accuracy_points},
            {"alpha", c.options.alpha},
            {"min_samples", c.options.min_samples}}},
          {"counts",
           {{"matched_records", c.matched_records},
            {"regressions", c.count(verdict::regression)},
            {"improvements", c.count(verdict::improvement)},
            {"unchanged", c.count(verdict::unchanged)},
            {"untested", c.count(verdict::untested)},
            {"added", c.added.size()},
            {"removed", c.removed.size()}}},
          {"changes", std::move(changes)},
          {"added", c.added},
          {"removed", c.removed},
          {"warnings", c.warnings},
          {"notes", c.notes}};
}

}  // namespace attnbench
