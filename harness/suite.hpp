/// Suites (DESIGN §5): a registered family of cases with declared axes and metrics. Suites know
/// axes, workloads and metrics, never kernels; the runner forms cases x methods and records.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "harness/method.hpp"
#include "harness/record.hpp"

namespace attnbench {

class retrieval_model;

enum class run_mode { query_aware, query_agnostic };
const char* name_of(run_mode m);
run_mode parse_run_mode(const std::string& s);  // throws bad_input

/// How `--depths` values are spaced between start and stop.
enum class depth_spacing { linear, sigmoid };

/// Options every suite reads (CLI and config file fields; DESIGN §5). `lengths`, `depths`,
/// `needles`, `haystack`, `tasks` and `budgets` are the shared options (`--lengths`, ...): each
/// is an alias of the axis of that name (length, depth, needle, haystack, task, budget) in every
/// suite that declares it; `axis_values` holds `--axis SUITE.NAME=values` (see axis_values()).
struct run_options {
  std::vector<std::int64_t> lengths;  // empty: the suite's default
  std::vector<double> depths;         // empty: the suite's default
  int samples = 0;                    // 0: the suite's default
  std::uint64_t seed = 0;
  run_mode mode = run_mode::query_aware;
  model_shape shape;
  std::string backend = "cpu";
  std::vector<std::string> needles;   // value kinds; empty: suite default
  std::string haystack;               // empty: suite default
  std::vector<std::string> tasks;     // task names (`ruler`); empty: the suite's default
  std::vector<std::int64_t> budgets;  // token budgets swept by suites that take them
  std::string trace;                  // imported Q/K/V trace file; empty: the workload
  // Suite-specific settings "suite.key" -> text (`--param ruler.num_needle_k=4`); the runner
  // rejects keys that no selected suite declares in param_names(); suites parse the values.
  std::map<std::string, std::string> params;
  // `--axis SUITE.NAME=values`, keyed "SUITE.NAME", values of the axis's type (parse_axis).
  std::map<std::string, std::vector<nlohmann::json>> axis_values;
  // The quick preset (`attnbench` with no --suite, --lengths or --config): every suite shrinks
  // its default axes so that all suites x all CPU methods stay under a minute on 2 cores.
  bool quick = false;
};

/// The value type of an axis.
enum class axis_type { int64, real, text };
const char* name_of(axis_type t);  // "int64", "real", "text"

/// One axis of a suite's case product, declared typed as nvbench's add_int64_axis does: a new
/// axis is one entry in its suite's axes(), settable at once as `--axis SUITE.NAME=values`.
/// `defaults` and `quick` (the quick preset's values; empty: the defaults) may be empty when
/// the values depend on the run (a trace's length, the backend); `doc` then says what they are.
struct axis_def {
  std::string name;
  axis_type type = axis_type::int64;
  std::vector<nlohmann::json> defaults;
  std::vector<nlohmann::json> quick;
  std::string doc;
};
axis_def int64_axis(std::string name, std::vector<std::int64_t> defaults,
                    std::vector<std::int64_t> quick = {}, std::string doc = "");
axis_def real_axis(std::string name, std::vector<double> defaults, std::vector<double> quick = {},
                   std::string doc = "");
axis_def text_axis(std::string name, std::vector<std::string> defaults,
                   std::vector<std::string> quick = {}, std::string doc = "");

/// Parses `text` (comma-separated) as values of `axis`: integers take k / m suffixes (x1024),
/// reals are decimal, text is taken as it is. Throws bad_input naming `key` and the value.
std::vector<nlohmann::json> parse_axis(const axis_def& axis, const std::string& key,
                                       const std::string& text);

/// The values an axis takes in this run, first found of: `--axis SUITE.NAME=...`; the shared
/// option the axis name aliases (`--lengths` for "length", ...; see run_options); the quick
/// preset's values (in the quick preset); the declared defaults.
std::vector<nlohmann::json> axis_values(const run_options& o, const std::string& suite,
                                        const axis_def& axis);
/// The shared options and the axis each aliases: {"--lengths", "length"}, {"--depths", "depth"},
/// {"--needle", "needle"}, {"--haystack", "haystack"}, {"--tasks", "task"}, {"--budgets", "budget"}.
struct shared_option {
  const char* option;
  const char* axis;
};
const std::vector<shared_option>& shared_options();
/// The values the shared option aliasing `axis` gives in `o`; empty when not given (or when no
/// shared option aliases `axis`).
std::vector<nlohmann::json> shared_option_values(const run_options& o, const std::string& axis);
/// Axis values as text joined by `separator` ("4096,16384"; strings unquoted), for listings.
std::string values_text(const std::vector<nlohmann::json>& values,
                        const std::string& separator = ",");

std::vector<std::int64_t> int64_values(const run_options& o, const std::string& suite,
                                       const axis_def& axis);
std::vector<double> real_values(const run_options& o, const std::string& suite,
                                const axis_def& axis);
std::vector<std::string> text_values(const run_options& o, const std::string& suite,
                                     const axis_def& axis);

/// One point of a suite's axis product.
struct suite_case {
  std::string name;  // canonical: "niah(length=4096,depth=0.5,...)"
  nlohmann::json axes = nlohmann::json::object();
};

/// Everything a case needs besides its axes.
struct run_context {
  const run_options* options = nullptr;
  const retrieval_model* model = nullptr;
  const calibration_source* calibration = nullptr;  // offline calibration for the methods
  exec_context exec;
};

class suite {
 public:
  virtual ~suite() = default;
  virtual std::string name() const = 0;
  virtual std::string description() const = 0;
  /// Typed axes in product order (first outermost), for `--axis` and `attnbench list suites`.
  virtual std::vector<axis_def> axes() const = 0;
  virtual std::map<std::string, metric_info> metrics() const = 0;
  /// Keys this suite reads from run_options::params, without the "suite." prefix.
  virtual std::vector<std::string> param_names() const { return {}; }
  /// True for suites that measure time or memory (`latency`, `memory`): the runner runs their
  /// jobs one at a time, after the parallel ones, with exec.threads = the threads asked for.
  virtual bool exclusive() const { return false; }
  /// True for suites that can run on an imported Q/K/V trace (`--trace`) instead of the workload.
  virtual bool reads_traces() const { return false; }
  /// The axis product in a documented order (first axis outermost).
  virtual std::vector<suite_case> cases(const run_options& options) const = 0;
  /// Estimated peak host bytes of one case (0: unknown); the runner refuses, as bad input, a
  /// sweep whose cases cannot fit in this machine's memory.
  virtual std::uint64_t estimate_bytes(const suite_case& c, const run_options& options) const {
    return 0;
  }
  /// Runs one case with one method and fills rec.metrics / rec.extra. Throws attnbench::error
  /// on failure (id unsupported -> "skipped", out_of_memory -> "oom", others -> "error").
  virtual void run(const suite_case& c, const method_instance& method, const run_context& ctx,
                   record& rec) const = 0;
};

/// The declared axis `name` of `s`; throws bad_input naming the suite's axes when it has none.
const axis_def& find_axis(const std::vector<axis_def>& axes, const std::string& suite,
                          const std::string& name);

class suite_registry {
 public:
  static suite_registry& instance();
  void add(std::unique_ptr<suite> s);
  const suite* find(const std::string& name) const;  // nullptr when unknown
  std::vector<const suite*> all() const;             // sorted by name

 private:
  std::vector<std::unique_ptr<suite>> m_suites;
};

struct suite_registrar {
  explicit suite_registrar(std::unique_ptr<suite> s) {
    suite_registry::instance().add(std::move(s));
  }
};

/// Canonical case name: suite(axis=value,...) in the given order; reals without trailing zeros.
std::string case_name(const std::string& suite,
                      const std::vector<std::pair<std::string, nlohmann::json>>& axes);

}  // namespace attnbench

/// ATTNBENCH_REGISTER_SUITE(type): registers a default-constructed suite.
#define ATTNBENCH_REGISTER_SUITE(TYPE)                                                    \
  static const ::attnbench::suite_registrar ATTNBENCH_CONCAT_(attnbench_suite_registrar_, \
                                                              __LINE__)(std::make_unique<TYPE>())
