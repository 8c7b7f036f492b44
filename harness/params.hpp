/// Typed method parameters: a schema per method (name, type, default, range, doc), parsing of
/// method specs (`snapkv:budget=1024,window=32`) and validation at parse time with messages that
/// name the bad value. C++17-clean: included by .cu files through method.hpp.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace attnbench {

/// `list`: '/'-separated items of `param_def::element` type within [min, max] (`512/1024`).
enum class param_type { integer, real, boolean, choice, list };

const char* param_type_name(param_type t);

/// One declared parameter. `default_text` empty means "no default": the parameter is unset
/// unless given (e.g. `keep`, which competes with `budget`).
struct param_def {
  std::string name;
  param_type type = param_type::integer;
  std::string default_text;
  double min = 0;  // inclusive bounds for integer / real
  double max = 0;
  std::vector<std::string> choices;  // for param_type::choice
  std::string doc;
  param_type element = param_type::real;  // for param_type::list: integer or real items
};

param_def int_param(std::string name, std::optional<std::int64_t> def, std::int64_t min,
                    std::int64_t max, std::string doc);
param_def real_param(std::string name, std::optional<double> def, double min, double max,
                     std::string doc);
param_def bool_param(std::string name, bool def, std::string doc);
param_def choice_param(std::string name, std::string def, std::vector<std::string> choices,
                       std::string doc);
/// A list of integer or real items in [min, max], written `a/b/c`; unset unless given.
param_def list_param(std::string name, param_type element, double min, double max, std::string doc);

/// Validated parameter values of one method instance (every declared parameter with a
/// default is present; the others only when given).
class param_values {
 public:
  bool has(const std::string& name) const { return m_values.count(name) != 0; }
  std::int64_t get_int(const std::string& name) const;
  double get_real(const std::string& name) const;
  bool get_bool(const std::string& name) const;
  const std::string& get_string(const std::string& name) const;
  /// The items of a list parameter.
  std::vector<double> get_list(const std::string& name) const;
  /// Canonical text form of every value, in declaration order of the map (sorted by name).
  const std::map<std::string, std::string>& canonical() const { return m_values; }
  void set(const std::string& name, std::string canonical_text) {
    m_values[name] = std::move(canonical_text);
  }

 private:
  const std::string& raw(const std::string& name) const;
  std::map<std::string, std::string> m_values;
};

/// `name:key=value,key=value` as typed by a user, before validation. A wrapper method names the
/// method it wraps in parentheses: `chunk(snapkv:keep=0.5):chunk=1024` (docs/user-guide.md).
struct method_spec {
  std::string name;
  std::string inner;                                      // the wrapped method's spec, or ""
  std::vector<std::pair<std::string, std::string>> args;  // in the order given
  std::string text;                                       // as typed
};

/// Splits a spec; throws bad_input on empty names, missing '=', repeated keys, unbalanced or
/// empty parentheses.
method_spec parse_method_spec(const std::string& text);

/// Checks `given` against `schema` for method `method`: unknown keys, type errors, ranges and
/// choices all throw bad_input naming the value, e.g.
/// "snapkv: unknown parameter 'windw' (known: budget, keep, window, kernel)".
param_values validate_params(const std::string& method, const std::vector<param_def>& schema,
                             const std::vector<std::pair<std::string, std::string>>& given);

/// Canonical `name:k=v,...` string of a validated instance (sorted keys, all values shown); a
/// wrapper's is `name(inner canonical):k=v,...`.
std::string canonical_spec(const std::string& name, const param_values& values,
                           const std::string& inner_canonical = "");

/// A finite real number spelled exactly (no trailing characters), or nothing.
std::optional<double> parse_real(const std::string& text);

// ---- The budget convention shared by every eviction / selection method -------------------

/// `budget` (tokens, default `default_tokens`) and `keep` (fraction in (0, 1], no default).
std::vector<param_def> budget_params(std::int64_t default_tokens);

/// Resolves the token budget for a context of `context_tokens`: `keep` wins when given
/// (ceil(keep * context), at least 1), else `budget`.
std::int64_t resolve_budget(const param_values& values, std::int64_t context_tokens);

}  // namespace attnbench
