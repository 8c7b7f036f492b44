#include "reports/ruler_summary.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <map>
#include <set>
#include <sstream>
#include <tuple>

#include "reports/leaderboard.hpp"
#include "reports/render_md_csv.hpp"

namespace attnbench {

namespace {

// RULER's task order (k_ruler_task_order) first; other task names follow alphabetically.
int task_rank(const std::string& t) {
  const int tasks = static_cast<int>(k_ruler_task_order.size());
  for (int i = 0; i < tasks; ++i)
    if (t == k_ruler_task_order[static_cast<std::size_t>(i)]) return i;
  return tasks;
}

// Scores and averages in percent, one decimal; "-" where there is none.
std::string percent(double v) { return format_real_or_dash("%.1f", v); }

// 4096 -> "4k", 131072 -> "128k", 1048576 -> "1m", others as is.
std::string length_label(std::int64_t n) {
  if (n > 0 && n % (1 << 20) == 0) return std::to_string(n >> 20) + "m";
  if (n > 0 && n % 1024 == 0) return std::to_string(n / 1024) + "k";
  return std::to_string(n);
}

// A Markdown table of a label column and right-aligned numbers.
std::string numbers_table(const std::vector<std::string>& header,
                          const std::vector<std::vector<std::string>>& rows) {
  std::vector<bool> right(header.size(), true);
  right[0] = false;
  return render_markdown_table(header, rows, right);
}

std::string row_label(const ruler_method_summary& s) {
  return s.method_spec + (s.mode == "query_aware" ? "" : " (" + s.mode + ")") +
         (s.backend == "cpu" ? "" : " [" + s.backend + "]");
}

double mean_finite(const std::vector<double>& v) {
  double sum = 0;
  int n = 0;
  for (double x : v)
    if (std::isfinite(x)) {
      sum += x;
      ++n;
    }
  return n ? sum / n : k_nan;
}

}  // namespace

std::int64_t ruler_effective_length(const std::vector<std::int64_t>& lengths,
                                    const std::vector<double>& averages, double threshold) {
  std::int64_t best = 0;
  for (std::size_t j = 0; j < lengths.size() && j < averages.size(); ++j) {
    if (!(std::isfinite(averages[j]) && averages[j] > threshold)) break;
    best = lengths[j];
  }
  return best;
}

std::vector<ruler_method_summary> summarize_ruler(const report& r) {
  using key_t = std::tuple<std::string, std::string, std::string>;
  struct acc {
    double sum = 0, se2 = 0;
    int ok = 0, not_ok = 0;
  };
  std::map<key_t, std::map<std::pair<std::string, std::int64_t>, acc>> groups;
  std::map<key_t, double> thresholds;
  for (const auto& rec : r.records) {
    if (rec.suite != "ruler" || !rec.axes.contains("task") || !rec.axes.contains("length"))
      continue;
    const key_t key{rec.method_spec, rec.mode, rec.backend};
    acc& a = groups[key][{rec.axes.at("task").get<std::string>(),
                          rec.axes.at("length").get<std::int64_t>()}];
    auto score = rec.metrics.find("score");
    if (rec.status != record_status::ok || score == rec.metrics.end()) {
      ++a.not_ok;
      continue;
    }
    a.sum += score->second;
    auto se = rec.metrics.find("score_stderr");
    if (se != rec.metrics.end()) a.se2 += se->second * se->second;
    ++a.ok;
    if (rec.extra.contains("threshold") && rec.extra.at("threshold").is_number() &&
        !thresholds.count(key))
      thresholds[key] = rec.extra.at("threshold").get<double>();
  }

  std::vector<ruler_method_summary> out;
  for (const auto& [key, cells] : groups) {
    ruler_method_summary s;
    std::tie(s.method_spec, s.mode, s.backend) = key;
    auto t = thresholds.find(key);
    s.threshold = t == thresholds.end() ? k_ruler_default_threshold : t->second;
    std::set<std::int64_t> lengths;
    std::set<std::string> tasks;
    for (const auto& [cell, a] : cells) {
      tasks.insert(cell.first);
      lengths.insert(cell.second);
    }
    s.tasks.assign(tasks.begin(), tasks.end());
    std::stable_sort(
        s.tasks.begin(), s.tasks.end(),
        [](const std::string& a, const std::string& b) { return task_rank(a) < task_rank(b); });
    s.lengths.assign(lengths.begin(), lengths.end());
    s.cells.assign(s.tasks.size(), std::vector<ruler_cell>(s.lengths.size()));
    for (std::size_t i = 0; i < s.tasks.size(); ++i)
      for (std::size_t j = 0; j < s.lengths.size(); ++j) {
        ruler_cell& c = s.cells[i][j];
        auto it = cells.find({s.tasks[i], s.lengths[j]});
        if (it == cells.end() || it->second.ok == 0) {
          c.score = c.score_stderr = k_nan;
          if (it != cells.end()) c.not_ok = it->second.not_ok;
          s.complete = false;
          continue;
        }
        const acc& a = it->second;
        c.records = a.ok;
        c.not_ok = a.not_ok;
        c.score = a.sum / a.ok;
        c.score_stderr = std::sqrt(a.se2) / a.ok;
      }
    for (std::size_t j = 0; j < s.lengths.size(); ++j) {
      std::vector<double> column;
      for (std::size_t i = 0; i < s.tasks.size(); ++i) column.push_back(s.cells[i][j].score);
      s.length_average.push_back(mean_finite(column));
    }
    s.average = mean_finite(s.length_average);
    s.effective_length = ruler_effective_length(s.lengths, s.length_average, s.threshold);
    out.push_back(std::move(s));
  }
  return out;
}

std::string ruler_table(const report& r, std::size_t detail_methods) {
  const auto summaries = summarize_ruler(r);
  if (summaries.empty()) return "";
  std::vector<std::string> tasks;
  std::vector<std::int64_t> lengths;
  std::set<std::string> specs;
  for (const auto& s : summaries) {
    specs.insert(s.method_spec);
    for (const auto& t : s.tasks)
      if (std::find(tasks.begin(), tasks.end(), t) == tasks.end()) tasks.push_back(t);
    for (auto l : s.lengths)
      if (std::find(lengths.begin(), lengths.end(), l) == lengths.end()) lengths.push_back(l);
  }
  std::stable_sort(tasks.begin(), tasks.end(), [](const std::string& a, const std::string& b) {
    return task_rank(a) < task_rank(b);
  });
  std::sort(lengths.begin(), lengths.end());

  std::ostringstream os;
  // Scores per task, averaged over the lengths that have one.
  {
    std::vector<std::string> header{"ruler: score % per task (mean over lengths)"};
    header.insert(header.end(), tasks.begin(), tasks.end());
    std::vector<std::vector<std::string>> rows;
    for (const auto& s : summaries) {
      std::vector<std::string> row{row_label(s)};
      for (const auto& t : tasks) {
        auto it = std::find(s.tasks.begin(), s.tasks.end(), t);
        std::vector<double> v;
        if (it != s.tasks.end())
          for (const auto& c : s.cells[static_cast<std::size_t>(it - s.tasks.begin())])
            v.push_back(c.score);
        row.push_back(percent(mean_finite(v)));
      }
      rows.push_back(std::move(row));
    }
    os << numbers_table(header, rows) << '\n';
  }
  // Average over tasks per length, the overall average and the effective length.
  {
    std::vector<std::string> header{"ruler: average % per length"};
    for (auto l : lengths) header.push_back(length_label(l));
    header.insert(header.end(), {"avg", "effective length"});
    std::vector<std::vector<std::string>> rows;
    double threshold = summaries.front().threshold;
    for (const auto& s : summaries) {
      std::vector<std::string> row{row_label(s) + (s.complete ? "" : " *")};
      for (auto l : lengths) {
        auto it = std::find(s.lengths.begin(), s.lengths.end(), l);
        row.push_back(
            it == s.lengths.end()
                ? "-"
                : percent(s.length_average[static_cast<std::size_t>(it - s.lengths.begin())]));
      }
      row.push_back(percent(s.average));
      row.push_back(s.effective_length > 0 ? length_label(s.effective_length)
                                           : "<" + length_label(s.lengths.front()));
      rows.push_back(std::move(row));
      threshold = s.threshold;
    }
    os << numbers_table(header, rows)
       << "effective length: the largest length up to which the average stays above "
       << percent(threshold) << "% (RULER); * some task x length cell has no ok record\n";
  }
  // Task x length detail with standard errors for small reports.
  if (specs.size() <= detail_methods)
    for (const auto& s : summaries) {
      std::vector<std::string> header{"ruler: " + row_label(s) + " score % +- stderr"};
      for (auto l : s.lengths) header.push_back(length_label(l));
      std::vector<std::vector<std::string>> rows;
      for (std::size_t i = 0; i < s.tasks.size(); ++i) {
        std::vector<std::string> row{s.tasks[i]};
        for (const auto& c : s.cells[i])
          row.push_back(std::isfinite(c.score) ? percent(c.score) + " +- " + percent(c.score_stderr)
                                               : (c.not_ok ? "err" : "-"));
        rows.push_back(std::move(row));
      }
      std::vector<std::string> avg{"average"};
      for (double a : s.length_average) avg.push_back(percent(a));
      rows.push_back(std::move(avg));
      os << '\n' << numbers_table(header, rows);
    }
  return os.str();
}

}  // namespace attnbench
