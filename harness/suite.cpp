#include "harness/suite.hpp"

#include <algorithm>
#include <cmath>
#include <sstream>

#include "harness/error.hpp"

namespace attnbench {

const char* name_of(run_mode m) {
  return m == run_mode::query_aware ? "query_aware" : "query_agnostic";
}

run_mode parse_run_mode(const std::string& s) {
  if (s == "query_aware") return run_mode::query_aware;
  if (s == "query_agnostic") return run_mode::query_agnostic;
  ATTNBENCH_BAD_INPUT("unknown mode '" << s << "' (known: query_aware, query_agnostic)");
}

const char* name_of(axis_type t) {
  switch (t) {
    case axis_type::int64:
      return "int64";
    case axis_type::real:
      return "real";
    case axis_type::text:
      return "text";
  }
  return "?";
}

namespace {

template <typename T>
std::vector<nlohmann::json> to_json_list(const std::vector<T>& xs) {
  return std::vector<nlohmann::json>(xs.begin(), xs.end());
}

std::vector<std::string> split_commas(const std::string& text) {
  std::vector<std::string> out;
  std::string item;
  std::istringstream is(text);
  while (std::getline(is, item, ',')) out.push_back(item);
  if (!text.empty() && text.back() == ',') out.emplace_back();
  return out;
}

}  // namespace

axis_def int64_axis(std::string name, std::vector<std::int64_t> defaults,
                    std::vector<std::int64_t> quick, std::string doc) {
  return {std::move(name), axis_type::int64, to_json_list(defaults), to_json_list(quick),
          std::move(doc)};
}

axis_def real_axis(std::string name, std::vector<double> defaults, std::vector<double> quick,
                   std::string doc) {
  return {std::move(name), axis_type::real, to_json_list(defaults), to_json_list(quick),
          std::move(doc)};
}

axis_def text_axis(std::string name, std::vector<std::string> defaults,
                   std::vector<std::string> quick, std::string doc) {
  return {std::move(name), axis_type::text, to_json_list(defaults), to_json_list(quick),
          std::move(doc)};
}

std::vector<nlohmann::json> parse_axis(const axis_def& axis, const std::string& key,
                                       const std::string& text) {
  std::vector<nlohmann::json> out;
  for (const std::string& item : split_commas(text)) {
    if (item.empty()) ATTNBENCH_BAD_INPUT("--axis " << key << ": empty value in '" << text << "'");
    if (axis.type == axis_type::text) {
      out.emplace_back(item);
      continue;
    }
    std::string digits = item;
    double scale = 1;
    if (axis.type == axis_type::int64 && (digits.back() == 'k' || digits.back() == 'K'))
      scale = 1024, digits.pop_back();
    else if (axis.type == axis_type::int64 && (digits.back() == 'm' || digits.back() == 'M'))
      scale = 1024.0 * 1024.0, digits.pop_back();
    std::size_t used = 0;
    double v = 0;
    try {
      v = std::stod(digits, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != digits.size() || digits.empty() || !std::isfinite(v))
      ATTNBENCH_BAD_INPUT("--axis " << key << ": '" << item << "' is not "
                                    << (axis.type == axis_type::int64 ? "an integer" : "a number"));
    v *= scale;
    if (axis.type == axis_type::int64) {
      if (v != std::floor(v) || std::abs(v) > 9e15)
        ATTNBENCH_BAD_INPUT("--axis " << key << ": '" << item << "' is not an integer");
      out.emplace_back(static_cast<std::int64_t>(v));
    } else {
      out.emplace_back(v);
    }
  }
  return out;
}

const axis_def& find_axis(const std::vector<axis_def>& axes, const std::string& suite,
                          const std::string& name) {
  for (const auto& a : axes)
    if (a.name == name) return a;
  std::string known;
  for (const auto& a : axes) known += (known.empty() ? "" : ", ") + a.name;
  ATTNBENCH_BAD_INPUT("suite '" << suite << "' has no axis '" << name << "' (axes: " << known
                                << ")");
}

const std::vector<shared_option>& shared_options() {
  static const std::vector<shared_option> options = {
      {"--lengths", "length"},   {"--depths", "depth"}, {"--needle", "needle"},
      {"--haystack", "haystack"}, {"--tasks", "task"},  {"--budgets", "budget"}};
  return options;
}

std::vector<nlohmann::json> shared_option_values(const run_options& o, const std::string& axis) {
  if (axis == "length") return to_json_list(o.lengths);
  if (axis == "depth") return to_json_list(o.depths);
  if (axis == "needle") return to_json_list(o.needles);
  if (axis == "haystack")
    return o.haystack.empty() ? std::vector<nlohmann::json>{}
                              : std::vector<nlohmann::json>{nlohmann::json(o.haystack)};
  if (axis == "task") return to_json_list(o.tasks);
  if (axis == "budget") return to_json_list(o.budgets);
  return {};
}

std::string values_text(const std::vector<nlohmann::json>& values, const std::string& separator) {
  std::string out;
  for (const auto& v : values)
    out += (out.empty() ? "" : separator) + (v.is_string() ? v.get<std::string>() : v.dump());
  return out;
}

std::vector<nlohmann::json> axis_values(const run_options& o, const std::string& suite,
                                        const axis_def& axis) {
  if (auto it = o.axis_values.find(suite + "." + axis.name); it != o.axis_values.end())
    return it->second;
  if (auto shared = shared_option_values(o, axis.name); !shared.empty()) return shared;
  if (o.quick && !axis.quick.empty()) return axis.quick;
  return axis.defaults;
}

std::vector<std::int64_t> int64_values(const run_options& o, const std::string& suite,
                                       const axis_def& axis) {
  std::vector<std::int64_t> out;
  for (const auto& v : axis_values(o, suite, axis)) out.push_back(v.get<std::int64_t>());
  return out;
}

std::vector<double> real_values(const run_options& o, const std::string& suite,
                                const axis_def& axis) {
  std::vector<double> out;
  for (const auto& v : axis_values(o, suite, axis)) out.push_back(v.get<double>());
  return out;
}

std::vector<std::string> text_values(const run_options& o, const std::string& suite,
                                     const axis_def& axis) {
  std::vector<std::string> out;
  for (const auto& v : axis_values(o, suite, axis)) out.push_back(v.get<std::string>());
  return out;
}

suite_registry& suite_registry::instance() {
  static suite_registry registry;
  return registry;
}

void suite_registry::add(std::unique_ptr<suite> s) {
  ATTNBENCH_ASSERT(find(s->name()) == nullptr);
  m_suites.push_back(std::move(s));
}

const suite* suite_registry::find(const std::string& name) const {
  for (const auto& s : m_suites)
    if (s->name() == name) return s.get();
  return nullptr;
}

std::vector<const suite*> suite_registry::all() const {
  std::vector<const suite*> out;
  for (const auto& s : m_suites) out.push_back(s.get());
  std::sort(out.begin(), out.end(),
            [](const suite* a, const suite* b) { return a->name() < b->name(); });
  return out;
}

std::string case_name(const std::string& suite,
                      const std::vector<std::pair<std::string, nlohmann::json>>& axes) {
  std::ostringstream os;
  os << suite << '(';
  bool first = true;
  for (const auto& [k, v] : axes) {
    os << (first ? "" : ",") << k << '=';
    if (v.is_string())
      os << v.get<std::string>();
    else if (v.is_number_float()) {
      std::ostringstream num;
      num.precision(6);
      num << v.get<double>();
      os << num.str();
    } else
      os << v.dump();
    first = false;
  }
  os << ')';
  return os.str();
}

}  // namespace attnbench
