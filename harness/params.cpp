#include "harness/params.hpp"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <set>
#include <sstream>

#include "harness/error.hpp"

namespace attnbench {

const char* param_type_name(param_type t) {
  switch (t) {
    case param_type::integer:
      return "int";
    case param_type::real:
      return "real";
    case param_type::boolean:
      return "bool";
    case param_type::choice:
      return "choice";
    case param_type::list:
      return "list";
  }
  return "?";
}

namespace {

std::string format_real(double x) {
  std::ostringstream os;
  os.precision(10);
  os << x;
  return os.str();
}

std::optional<std::int64_t> parse_int(const std::string& s) {
  if (s.empty()) return std::nullopt;
  char* end = nullptr;
  errno = 0;
  long long v = std::strtoll(s.c_str(), &end, 10);
  // Accept the size suffixes users type for lengths and budgets: 4k = 4096, 1m = 1048576.
  std::int64_t mult = 1;
  if (end && *end != '\0') {
    std::string suffix(end);
    if (suffix == "k" || suffix == "K")
      mult = 1024;
    else if (suffix == "m" || suffix == "M")
      mult = 1024 * 1024;
    else
      return std::nullopt;
  }
  if (errno == ERANGE) return std::nullopt;
  return static_cast<std::int64_t>(v) * mult;
}

std::optional<bool> parse_bool(const std::string& s) {
  if (s == "true" || s == "1" || s == "yes" || s == "on") return true;
  if (s == "false" || s == "0" || s == "no" || s == "off") return false;
  return std::nullopt;
}

std::string known_names(const std::vector<param_def>& schema) {
  std::string out;
  for (const auto& p : schema) out += (out.empty() ? "" : ", ") + p.name;
  return out.empty() ? "none" : out;
}

// Validates one textual value against its definition; returns the canonical text.
std::string canonicalize(const std::string& method, const param_def& def, const std::string& text) {
  switch (def.type) {
    case param_type::list: {
      // Each item as a parameter of the element type with the list's bounds, named after the
      // list and the item's index in messages.
      std::string out;
      std::size_t begin = 0, index = 0;
      while (true) {
        const std::size_t end = text.find('/', begin);
        const std::string item = text.substr(begin, end == std::string::npos ? end : end - begin);
        if (item.empty())
          ATTNBENCH_BAD_INPUT(method << ": parameter '" << def.name << "' = '" << text
                                     << "' has an empty item (write items as a/b/c)");
        param_def one = def;
        one.type = def.element;
        one.name = def.name + "[" + std::to_string(index) + "]";
        out += (out.empty() ? "" : "/") + canonicalize(method, one, item);
        if (end == std::string::npos) break;
        begin = end + 1;
        ++index;
      }
      return out;
    }
    case param_type::integer: {
      auto v = parse_int(text);
      if (!v)
        ATTNBENCH_BAD_INPUT(method << ": parameter '" << def.name << "' expects an integer, got '"
                                   << text << "'");
      if (*v < def.min || *v > def.max)
        ATTNBENCH_BAD_INPUT(method << ": parameter '" << def.name << "' = " << *v
                                   << " is out of range [" << static_cast<std::int64_t>(def.min)
                                   << ", " << static_cast<std::int64_t>(def.max) << "]");
      return std::to_string(*v);
    }
    case param_type::real: {
      auto v = parse_real(text);
      if (!v)
        ATTNBENCH_BAD_INPUT(method << ": parameter '" << def.name << "' expects a number, got '"
                                   << text << "'");
      if (*v < def.min || *v > def.max)
        ATTNBENCH_BAD_INPUT(method << ": parameter '" << def.name << "' = " << text
                                   << " is out of range [" << format_real(def.min) << ", "
                                   << format_real(def.max) << "]");
      return format_real(*v);
    }
    case param_type::boolean: {
      auto v = parse_bool(text);
      if (!v)
        ATTNBENCH_BAD_INPUT(method << ": parameter '" << def.name
                                   << "' expects true or false, got '" << text << "'");
      return *v ? "true" : "false";
    }
    case param_type::choice: {
      if (std::find(def.choices.begin(), def.choices.end(), text) == def.choices.end()) {
        std::string known;
        for (const auto& c : def.choices) known += (known.empty() ? "" : ", ") + c;
        ATTNBENCH_BAD_INPUT(method << ": parameter '" << def.name << "' = '" << text
                                   << "' is not one of: " << known);
      }
      return text;
    }
  }
  return text;
}

}  // namespace

std::optional<double> parse_real(const std::string& s) {
  if (s.empty()) return std::nullopt;
  char* end = nullptr;
  double v = std::strtod(s.c_str(), &end);
  if (!end || *end != '\0' || !std::isfinite(v)) return std::nullopt;
  return v;
}

param_def int_param(std::string name, std::optional<std::int64_t> def, std::int64_t min,
                    std::int64_t max, std::string doc) {
  param_def p;
  p.name = std::move(name);
  p.type = param_type::integer;
  p.default_text = def ? std::to_string(*def) : "";
  p.min = static_cast<double>(min);
  p.max = static_cast<double>(max);
  p.doc = std::move(doc);
  return p;
}

param_def real_param(std::string name, std::optional<double> def, double min, double max,
                     std::string doc) {
  param_def p;
  p.name = std::move(name);
  p.type = param_type::real;
  p.default_text = def ? format_real(*def) : "";
  p.min = min;
  p.max = max;
  p.doc = std::move(doc);
  return p;
}

param_def bool_param(std::string name, bool def, std::string doc) {
  param_def p;
  p.name = std::move(name);
  p.type = param_type::boolean;
  p.default_text = def ? "true" : "false";
  p.doc = std::move(doc);
  return p;
}

param_def choice_param(std::string name, std::string def, std::vector<std::string> choices,
                       std::string doc) {
  param_def p;
  p.name = std::move(name);
  p.type = param_type::choice;
  p.default_text = std::move(def);
  p.choices = std::move(choices);
  p.doc = std::move(doc);
  return p;
}

param_def list_param(std::string name, param_type element, double min, double max,
                     std::string doc) {
  param_def p;
  p.name = std::move(name);
  p.type = param_type::list;
  p.element = element;
  p.min = min;
  p.max = max;
  p.doc = std::move(doc);
  return p;
}

const std::string& param_values::raw(const std::string& name) const {
  auto it = m_values.find(name);
  ATTNBENCH_CHECK(it != m_values.end(), internal, "parameter '" << name << "' is not set");
  return it->second;
}

std::int64_t param_values::get_int(const std::string& name) const {
  return std::strtoll(raw(name).c_str(), nullptr, 10);
}
double param_values::get_real(const std::string& name) const {
  return std::strtod(raw(name).c_str(), nullptr);
}
bool param_values::get_bool(const std::string& name) const { return raw(name) == "true"; }
const std::string& param_values::get_string(const std::string& name) const { return raw(name); }
std::vector<double> param_values::get_list(const std::string& name) const {
  std::vector<double> items;
  std::stringstream ss(raw(name));
  std::string item;
  while (std::getline(ss, item, '/')) items.push_back(std::strtod(item.c_str(), nullptr));
  return items;
}

method_spec parse_method_spec(const std::string& text) {
  method_spec spec;
  spec.text = text;
  const std::size_t name_end = text.find_first_of(":(");
  spec.name = text.substr(0, name_end);
  if (spec.name.empty()) ATTNBENCH_BAD_INPUT("method spec '" << text << "' has no method name");
  std::size_t rest_begin = name_end;
  if (name_end != std::string::npos && text[name_end] == '(') {
    // The wrapped spec runs to the matching ')'; it may hold ':', ',' and wrappers of its own.
    int depth = 0;
    std::size_t close = std::string::npos;
    for (std::size_t i = name_end; i < text.size() && close == std::string::npos; ++i) {
      if (text[i] == '(') ++depth;
      if (text[i] == ')' && --depth == 0) close = i;
    }
    if (close == std::string::npos)
      ATTNBENCH_BAD_INPUT("method spec '" << text << "': unbalanced '(' after '" << spec.name
                                          << "'");
    spec.inner = text.substr(name_end + 1, close - name_end - 1);
    if (spec.inner.empty())
      ATTNBENCH_BAD_INPUT("method spec '" << text << "': empty parentheses (write " << spec.name
                                          << "(METHOD))");
    rest_begin = close + 1;
    if (rest_begin < text.size() && text[rest_begin] != ':')
      ATTNBENCH_BAD_INPUT("method spec '" << text << "': expected ':' or the end after ')', got '"
                                          << text.substr(rest_begin) << "'");
  }
  if (rest_begin == std::string::npos || rest_begin >= text.size()) return spec;
  std::string rest = text.substr(rest_begin + 1);
  if (rest.find_first_of("()") != std::string::npos)
    ATTNBENCH_BAD_INPUT("method spec '" << text << "': unexpected parenthesis in the parameters '"
                                        << rest << "'");
  std::set<std::string> seen;
  std::stringstream ss(rest);
  std::string item;
  while (std::getline(ss, item, ',')) {
    auto eq = item.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == item.size())
      ATTNBENCH_BAD_INPUT("method spec '" << text << "': expected key=value, got '" << item << "'");
    std::string key = item.substr(0, eq);
    if (!seen.insert(key).second)
      ATTNBENCH_BAD_INPUT("method spec '" << text << "': parameter '" << key << "' given twice");
    spec.args.emplace_back(key, item.substr(eq + 1));
  }
  if (!rest.empty() && rest.back() == ',')
    ATTNBENCH_BAD_INPUT("method spec '" << text << "': trailing ','");
  return spec;
}

param_values validate_params(const std::string& method, const std::vector<param_def>& schema,
                             const std::vector<std::pair<std::string, std::string>>& given) {
  param_values values;
  for (const auto& def : schema)
    if (!def.default_text.empty()) values.set(def.name, def.default_text);
  for (const auto& [key, text] : given) {
    auto it = std::find_if(schema.begin(), schema.end(),
                           [&](const param_def& d) { return d.name == key; });
    if (it == schema.end())
      ATTNBENCH_BAD_INPUT(method << ": unknown parameter '" << key
                                 << "' (known: " << known_names(schema) << ")");
    values.set(key, canonicalize(method, *it, text));
  }
  return values;
}

std::string canonical_spec(const std::string& name, const param_values& values,
                           const std::string& inner_canonical) {
  std::string out = name;
  if (!inner_canonical.empty()) out += "(" + inner_canonical + ")";
  char sep = ':';
  for (const auto& [k, v] : values.canonical()) {
    out += sep + k + "=" + v;
    sep = ',';
  }
  return out;
}

std::vector<param_def> budget_params(std::int64_t default_tokens) {
  return {int_param("budget", default_tokens, 1, std::int64_t{1} << 40,
                    "KV tokens kept per head (ignored when keep is given)"),
          real_param("keep", std::nullopt, 1e-9, 1.0,
                     "fraction of the context kept; overrides budget")};
}

std::int64_t resolve_budget(const param_values& values, std::int64_t context_tokens) {
  if (values.has("keep")) {
    double keep = values.get_real("keep");
    auto tokens = static_cast<std::int64_t>(std::ceil(keep * static_cast<double>(context_tokens)));
    return std::max<std::int64_t>(1, tokens);
  }
  return values.get_int("budget");
}

}  // namespace attnbench
