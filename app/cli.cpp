#include "app/cli.hpp"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <iterator>
#include <optional>
#include <set>
#include <sstream>
#include <thread>

#include <boost/program_options.hpp>

#include "adapters/common/cpu_only.hpp"
#include "app/plan_command.hpp"
#include "app/mpi_run.hpp"
#include "app/progress.hpp"
#include "app/report_commands.hpp"
#include "app/sweep_scripts.hpp"
#include "harness/error.hpp"
#include "reports/file_io.hpp"
#include "reports/methods_page.hpp"
#include "reports/run_reporters.hpp"
#include "reports/suites_page.hpp"
#include "suites/plan/presets.hpp"

namespace po = boost::program_options;

namespace attnbench {

namespace {

// Drops repeated values, keeping the first of each in order: `--lengths 1k,1k` or a repeated
// --method runs once, so no report holds duplicate records.
template <typename T>
void drop_repeats(std::vector<T>& values) {
  std::vector<T> kept;
  for (auto& v : values)
    if (std::find(kept.begin(), kept.end(), v) == kept.end()) kept.push_back(std::move(v));
  values = std::move(kept);
}

std::vector<std::string> split(const std::string& text, char sep) {
  std::vector<std::string> out;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, sep)) out.push_back(item);
  if (!text.empty() && text.back() == sep) out.emplace_back();
  return out;
}

const char* k_usage =
    "usage: attnbench <command> [options]\n"
    "\n"
    "commands:\n"
    "  list [methods|suites]   registered methods (typed parameters, defaults) and suites\n"
    "  run [options]           run suites x methods and write a JSON report\n"
    "  report FILES...         leaderboard and tables: --format md|csv|html [-o PATH]\n"
    "  compare BASE NEW        regression gate between two reports [--fail-on-regression]\n"
    "  merge FILES... -o OUT   combine shard reports into one, proven complete\n"
    "  plan --model M --gpu G  capacity planning: what fits, how fast (docs/planning.md)\n"
    "  plan-sweep [run options] --shards N --scheduler slurm|k8s|mpi --out DIR\n"
    "                          a sweep split over a cluster: manifest and job (docs/scale.md)\n"
    "\n"
    "  --version               version, git commit and build options\n"
    "\n"
    "example: attnbench run --suite niah --method snapkv:budget=256 --lengths 4k,16k\n"
    "`attnbench <command> --help` describes each command. Exit codes: 0 ok, 1 failure,\n"
    "2 bad input.\n";

// ---- list -------------------------------------------------------------------------------

// The CPU methods without a CUDA adapter and why (`list methods --backend cuda`): the line of
// adapters/common/cpu_only.hpp, or, in a build without the CUDA backend, that.
// Whether this build registered any CUDA method (the backend is built).
bool cuda_backend_built() {
  const auto all = method_registry::instance().all();
  return std::any_of(all.begin(), all.end(),
                     [](const method_info* m) { return m->backend == "cuda"; });
}

std::vector<cpu_only_method> cuda_gaps() {
  const auto& registry = method_registry::instance();
  const bool have_cuda = cuda_backend_built();
  std::vector<cpu_only_method> out;
  for (const method_info* m : registry.all()) {
    if (m->backend != "cpu" || registry.find(m->name, "cuda")) continue;
    std::string why =
        "this build has no CUDA backend: nvcc was not found or ATTNBENCH_ENABLE_CUDA=OFF, "
        "docs/gpu.md";
    if (have_cuda) {
      why = "no CUDA adapter";
      for (const cpu_only_method& c : cpu_only_methods())
        if (c.name == m->name) why = c.reason;
    }
    out.push_back({m->name, why});
  }
  return out;
}

int cmd_list(const std::vector<std::string>& args) {
  po::options_description desc(
      "attnbench list [methods|suites] [--backend B] [--format text|md|json|names]\n\n"
      "example: attnbench list methods --format json");
  std::string what = "all", backend, format = "text";
  desc.add_options()("help,h", "show this help")("what", po::value(&what),
                                                 "methods, suites, models, gpus or all (default)")(
      "backend", po::value(&backend), "only methods of this backend (cpu, cuda)")(
      "format", po::value(&format),
      "text (default); md: docs/methods.md (backend cpu unless given) or "
      "docs/suites-reference.md; "
      "json: every method and suite as JSON; names: one name per line (shell completion)");
  po::positional_options_description pos;
  pos.add("what", 1);
  po::variables_map vm;
  po::store(po::command_line_parser(args).options(desc).positional(pos).run(), vm);
  po::notify(vm);
  if (!backend.empty() && backend != "cpu" && backend != "cuda")
    ATTNBENCH_BAD_INPUT("unknown backend '" << backend << "' (known: cpu, cuda)");
  if (vm.count("help")) {
    std::cout << desc << "\n";
    return 0;
  }
  if (what == "models" || what == "gpus") {
    // The presets of `attnbench plan` (docs/planning.md): one name per line, or with what they
    // are and where their numbers come from.
    for (const std::string& name : what == "models" ? plan::model_names() : plan::gpu_names()) {
      if (format == "names") {
        std::cout << name << "\n";
      } else if (what == "models") {
        const plan::model_preset m = plan::load_model(name);
        std::cout << name << "  " << m.display_name << ": " << m.layers << " layers, "
                  << m.q_heads << "/" << m.kv_heads << " heads, head_dim " << m.head_dim
                  << (m.mla ? ", MLA" : "") << (m.moe ? ", MoE" : "")
                  << (m.sliding_window ? ", sliding-window layers" : "") << "  (" << m.source
                  << ")\n";
      } else {
        const plan::gpu_preset g = plan::load_gpu(name);
        std::cout << name << "  " << g.display_name << ": " << g.memory_bytes / (1 << 30)
                  << " GiB, " << g.bandwidth_bytes_per_s / 1e12 << " TB/s, "
                  << g.bf16_flops / 1e12 << " bf16 TFLOP/s  (" << g.source << ")\n";
      }
    }
    return 0;
  }
  if (what != "all" && what != "methods" && what != "suites")
    ATTNBENCH_BAD_INPUT("list: unknown topic '" << what
                                                << "' (known: methods, suites, models, gpus)");
  if (format != "text" && format != "md" && format != "json" && format != "names")
    ATTNBENCH_BAD_INPUT("list: unknown format '" << format << "' (known: text, md, json, names)");
  if (format == "json" || format == "names") {
    nlohmann::json out = nlohmann::json::object();
    std::set<std::string> names;
    if (what != "suites") {
      out["methods"] = nlohmann::json::array();
      for (const auto* m : method_registry::instance().all()) {
        if (!backend.empty() && m->backend != backend) continue;
        names.insert(m->name);
        nlohmann::json params = nlohmann::json::array();
        for (const auto& p : m->params) {
          nlohmann::json j = {{"name", p.name},
                              {"type", param_type_name(p.type)},
                              {"default", p.default_text},
                              {"doc", p.doc}};
          if (p.type == param_type::integer || p.type == param_type::real ||
              p.type == param_type::list) {
            j["min"] = p.min;
            j["max"] = p.max;
          }
          if (p.type == param_type::list) j["element"] = param_type_name(p.element);
          if (p.type == param_type::choice) j["choices"] = p.choices;
          params.push_back(std::move(j));
        }
        out["methods"].push_back({{"name", m->name},
                                  {"backend", m->backend},
                                  {"paper", m->paper},
                                  {"rule", m->summary},
                                  {"simplified", m->simplified},
                                  {"plannable", static_cast<bool>(m->footprint)},
                                  {"params", params}});
      }
      if (backend == "cuda") {
        out["cpu_only"] = nlohmann::json::array();
        for (const cpu_only_method& c : cuda_gaps())
          out["cpu_only"].push_back({{"name", c.name}, {"reason", c.reason}});
      }
    }
    if (what != "methods") {
      out["suites"] = nlohmann::json::array();
      for (const auto* s : suite_registry::instance().all()) {
        names.insert(s->name());
        nlohmann::json axes = nlohmann::json::array();
        for (const auto& a : s->axes())
          axes.push_back({{"name", a.name},
                          {"type", name_of(a.type)},
                          {"defaults", a.defaults},
                          {"quick", a.quick},
                          {"doc", a.doc}});
        nlohmann::json metrics = nlohmann::json::object();
        for (const auto& [k, v] : s->metrics())
          metrics[k] = {{"unit", v.unit}, {"higher_is_better", v.higher_is_better}, {"doc", v.doc}};
        out["suites"].push_back({{"name", s->name()},
                                 {"description", s->description()},
                                 {"axes", axes},
                                 {"params", s->param_names()},
                                 {"metrics", metrics}});
      }
    }
    if (format == "names")
      for (const auto& n : names) std::cout << n << "\n";
    else
      std::cout << out.dump(2) << "\n";
    return 0;
  }
  if (format == "md" && what == "suites") {
    std::cout << suites_markdown(suite_registry::instance().all());
    return 0;
  }
  if (format == "md") {
    if (what != "methods")
      ATTNBENCH_BAD_INPUT("list: --format md takes methods or suites (docs/methods.md, "
                          "docs/suites-reference.md)");
    std::vector<const method_info*> methods;
    for (const auto* m : method_registry::instance().all())
      if (m->backend == (backend.empty() ? "cpu" : backend)) methods.push_back(m);
    std::cout << methods_markdown(methods);
    if (backend == "cuda") {
      std::cout << "\n## CPU only\n\nThese CPU methods have no CUDA adapter (`--backend cuda` "
                   "skips them):\n\n| method | why |\n| --- | --- |\n";
      for (const cpu_only_method& c : cuda_gaps())
        std::cout << "| `" << c.name << "` | " << c.reason << " |\n";
    }
    return 0;
  }
  if (what != "suites") {
    std::cout << "methods:\n";
    for (const auto* m : method_registry::instance().all()) {
      if (!backend.empty() && m->backend != backend) continue;
      std::cout << "  " << m->name << " [" << m->backend << "]  " << m->summary << "\n";
      if (!m->paper.empty()) std::cout << "      paper: " << m->paper << "\n";
      for (const auto& p : m->params) {
        std::cout << "      " << p.name << " (" << param_type_name(p.type);
        if (p.type == param_type::list) std::cout << " of " << param_type_name(p.element);
        // A list's items have the element type's range.
        const param_type ranged = p.type == param_type::list ? p.element : p.type;
        if (ranged == param_type::integer || ranged == param_type::real)
          std::cout << ", "
                    << (ranged == param_type::integer
                            ? std::to_string(static_cast<long long>(p.min))
                            : std::to_string(p.min))
                    << ".."
                    << (ranged == param_type::integer
                            ? std::to_string(static_cast<long long>(p.max))
                            : std::to_string(p.max));
        if (p.type == param_type::choice) {
          std::cout << ":";
          for (std::size_t i = 0; i < p.choices.size(); ++i)
            std::cout << (i ? "|" : " ") << p.choices[i];
        }
        std::cout << ", default " << (p.default_text.empty() ? "unset" : p.default_text) << ")  "
                  << p.doc << "\n";
      }
    }
  }
  if (what != "suites" && backend == "cuda") {
    const std::vector<cpu_only_method> gaps = cuda_gaps();
    if (!cuda_backend_built()) {
      std::cout << "cpu only: every method (" << gaps.front().reason << ")\n";
    } else {
      std::cout << "cpu only (no CUDA adapter; --backend cuda skips them):\n";
      for (const cpu_only_method& c : gaps) std::cout << "  " << c.name << "  " << c.reason << "\n";
    }
  }
  if (what != "methods") {
    std::cout << "suites:\n";
    for (const auto* s : suite_registry::instance().all()) {
      std::cout << "  " << s->name() << "  " << s->description() << "\n      axes:\n";
      for (const auto& a : s->axes()) {
        std::cout << "        " << a.name << " (" << name_of(a.type) << ")";
        if (!a.defaults.empty()) std::cout << " default " << values_text(a.defaults);
        if (!a.quick.empty()) std::cout << ", quick " << values_text(a.quick);
        if (!a.doc.empty()) std::cout << (a.defaults.empty() ? " " : "; ") << a.doc;
        std::cout << "\n";
      }
      std::cout << "      metrics:\n";
      for (const auto& [k, v] : s->metrics())
        std::cout << "        " << k << " (" << v.unit << ")" << (v.doc.empty() ? "" : ": ")
                  << v.doc << "\n";
    }
  }
  return 0;
}

// ---- run --------------------------------------------------------------------------------

// `--axis SUITE.NAME=values`: typed by the suite's declaration into cfg.options.axis_values.
void add_axis(run_options& o, const std::string& item) {
  const auto eq = item.find('=');
  const auto dot = item.find('.');
  if (eq == std::string::npos || dot == std::string::npos || dot > eq)
    ATTNBENCH_BAD_INPUT("--axis expects SUITE.NAME=values, got '" << item << "'");
  const std::string key = item.substr(0, eq), suite_name = item.substr(0, dot);
  const suite* s = suite_registry::instance().find(suite_name);
  if (!s) ATTNBENCH_BAD_INPUT("--axis " << key << ": unknown suite '" << suite_name << "'");
  const std::vector<axis_def> axes = s->axes();
  const axis_def& axis = find_axis(axes, suite_name, key.substr(dot + 1));
  o.axis_values[key] = parse_axis(axis, key, item.substr(eq + 1));
}

// A JSON config file's object (fields named as the long options); bad input names the file.
nlohmann::json read_config_file(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec))
    ATTNBENCH_BAD_INPUT("cannot read config file '" << path << "': not a regular file");
  std::ifstream in(path);
  if (!in) ATTNBENCH_BAD_INPUT("cannot read config file '" << path << "'");
  const std::string content((std::istreambuf_iterator<char>(in)),
                            std::istreambuf_iterator<char>());
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(content);  // the whole text: garbage after the object is an error
  } catch (const nlohmann::json::exception& e) {
    ATTNBENCH_BAD_INPUT("malformed config file '" << path << "': " << e.what());
  }
  if (!j.is_object())
    ATTNBENCH_BAD_INPUT("malformed config file '" << path << "': expected a JSON object");
  return j;
}

// Applies a config file's object `j` (read from `path`) to `cfg`.
void apply_config(const nlohmann::json& j, const std::string& path, run_config& cfg,
                  std::string& lengths, std::string& depths, std::string& shape, std::string& mode,
                  std::string& budgets) {
  auto strings = [&](const nlohmann::json& v, const std::string& key) {
    std::vector<std::string> out;
    if (v.is_string())
      out.push_back(v.get<std::string>());
    else if (v.is_array() &&
             std::all_of(v.begin(), v.end(), [](const auto& x) { return x.is_string(); }))
      for (const auto& x : v) out.push_back(x.get<std::string>());
    else
      ATTNBENCH_BAD_INPUT("config file '" << path << "': '" << key
                                          << "' must be a string or a list of strings");
    return out;
  };
  auto joined = [&](const nlohmann::json& v, const std::string& key) {
    if (v.is_string()) return v.get<std::string>();
    if (v.is_array()) {
      std::string s;
      for (const auto& x : v) {
        if (!x.is_number() && !x.is_string())
          ATTNBENCH_BAD_INPUT("config file '" << path << "': bad element in '" << key << "'");
        if (!s.empty()) s += ',';
        s += x.is_string() ? x.get<std::string>() : x.dump();
      }
      return s;
    }
    ATTNBENCH_BAD_INPUT("config file '" << path << "': '" << key << "' must be a string or a list");
  };
  auto integer = [&](const nlohmann::json& v, const std::string& key) {
    if (!v.is_number_integer())
      ATTNBENCH_BAD_INPUT("config file '" << path << "': '" << key << "' must be an integer");
    return v.get<std::int64_t>();
  };
  auto text = [&](const nlohmann::json& v, const std::string& key) {
    if (!v.is_string())
      ATTNBENCH_BAD_INPUT("config file '" << path << "': '" << key << "' must be a string");
    return v.get<std::string>();
  };
  for (const auto& [key, v] : j.items()) {
    if (key == "suite")
      cfg.suites = strings(v, key);
    else if (key == "method")
      cfg.methods = strings(v, key);
    else if (key == "lengths")
      lengths = joined(v, key);
    else if (key == "depths")
      depths = joined(v, key);
    else if (key == "samples") {
      cfg.options.samples = static_cast<int>(integer(v, key));
      if (cfg.options.samples < 1)
        ATTNBENCH_BAD_INPUT("config field 'samples' must be >= 1, got " << cfg.options.samples);
    } else if (key == "seed")
      cfg.options.seed = static_cast<std::uint64_t>(integer(v, key));
    else if (key == "threads")
      cfg.threads = static_cast<int>(integer(v, key));
    else if (key == "backend")
      cfg.options.backend = text(v, key);
    else if (key == "mode")
      mode = text(v, key);
    else if (key == "filter")
      cfg.filter = text(v, key);
    else if (key == "shape")
      shape = text(v, key);
    else if (key == "out")
      cfg.out_dir = text(v, key);
    else if (key == "needle")
      cfg.options.needles = strings(v, key);
    else if (key == "haystack")
      cfg.options.haystack = text(v, key);
    else if (key == "tasks")  // a list, or one comma-separated string as on the command line
      cfg.options.tasks = split(joined(v, key), ',');
    else if (key == "budgets")
      budgets = joined(v, key);
    else if (key == "trace")
      cfg.options.trace = text(v, key);
    else if (key == "params") {
      if (!v.is_object())
        ATTNBENCH_BAD_INPUT("config file '" << path << "': 'params' must be an object");
      for (const auto& [pk, pv] : v.items())
        cfg.options.params[pk] = pv.is_string() ? pv.get<std::string>() : pv.dump();
    } else if (key == "axis") {
      if (!v.is_object())
        ATTNBENCH_BAD_INPUT("config file '" << path << "': 'axis' must be an object");
      for (const auto& [ak, av] : v.items())
        add_axis(cfg.options, ak + "=" + (av.is_string() ? av.get<std::string>() : joined(av, ak)));
    } else if (key == "workload") {
      if (!v.is_object())
        ATTNBENCH_BAD_INPUT("config file '" << path << "': 'workload' must be an object");
      std::vector<std::pair<std::string, std::string>> overrides;
      for (const auto& [wk, wv] : v.items())
        overrides.emplace_back(wk, wv.is_string() ? wv.get<std::string>() : wv.dump());
      apply_workload_overrides(cfg.workload, overrides);
    } else
      ATTNBENCH_BAD_INPUT(
          "config file '"
          << path << "': unknown field '" << key
          << "' (known: suite, method, lengths, depths, samples, seed, threads, backend, "
             "mode, filter, shape, out, needle, haystack, tasks, budgets, trace, params, axis, "
             "workload)");
  }
}

// The options a manifest fixes (its configuration); `run --manifest` refuses them.
constexpr const char* k_manifest_fixed[] = {
    "suite", "method", "lengths", "depths",   "samples",  "seed",       "backend",
    "mode",  "filter", "shape",   "needle",   "haystack", "tasks",      "budgets",
    "trace", "axis",   "param",   "workload", "config",   "shard-costs"};
// The options of plan-sweep that are not part of the run's configuration.
constexpr const char* k_sweep_own[] = {"out",       "threads",     "shards",
                                       "scheduler", "shard-costs", "config"};

template <std::size_t N>
bool one_of(const std::string& name, const char* const (&names)[N]) {
  return std::find(std::begin(names), std::end(names), name) != std::end(names);
}

// A manifest written by plan-sweep, checked whole.
nlohmann::json read_manifest(const std::string& path) {
  nlohmann::json m;
  try {
    m = nlohmann::json::parse(read_text_file(path, "manifest"));
  } catch (const nlohmann::json::exception& e) {
    ATTNBENCH_BAD_INPUT("malformed manifest '" << path << "': " << e.what());
  }
  if (!m.is_object() || m.value("attnbench_manifest", 0) != 1 || !m.contains("args") ||
      !m["args"].is_array() || !m.contains("shards") || !m["shards"].is_number_integer() ||
      !m.contains("planned_cases") || !m["planned_cases"].is_array() ||
      !m.contains("config_hash") || !m.contains("manifest_hash"))
    ATTNBENCH_BAD_INPUT("malformed manifest '" << path
                                               << "': not written by attnbench plan-sweep "
                                                  "(attnbench_manifest 1 with args, shards, "
                                                  "planned_cases, config_hash, manifest_hash)");
  if (m["manifest_hash"] != manifest_hash_of(m))
    ATTNBENCH_BAD_INPUT("manifest '" << path << "' was changed after plan-sweep wrote it "
                                     << "(its manifest_hash does not match); plan the sweep again");
  m["path"] = path;
  return m;
}

enum class run_command { run, plan_sweep };

// plan-sweep after its run options were parsed into `cfg`: plans the cases, writes
// DIR/manifest.json and prints the scheduler's job. `args` are the run options as given.
int plan_sweep_command(run_config cfg, const po::variables_map& vm, std::vector<std::string> args) {
  for (const char* needed : {"shards", "scheduler", "out"})
    if (!vm.count(needed)) ATTNBENCH_BAD_INPUT("plan-sweep needs --" << needed);
  const int shards = vm["shards"].as<int>();
  if (shards < 1 || shards > 100000)
    ATTNBENCH_BAD_INPUT("--shards " << shards << " is not in [1, 100000]");
  const scheduler kind = parse_scheduler(vm["scheduler"].as<std::string>());
  const std::string dir = vm["out"].as<std::string>();
  cfg.shard = {0, shards};
  const sweep_plan plan = plan_sweep(cfg);
  nlohmann::json cases = nlohmann::json::array();
  for (std::size_t i = 0; i < plan.cases.size(); ++i)
    cases.push_back({{"case_id", plan.cases[i].case_id},
                     {"label", plan.cases[i].label},
                     {"cost", plan.cases[i].cost},
                     {"shard", plan.shard_of[i]}});
  const shard_balance balance = balance_of(plan.cases, plan.shard_of, shards);
  nlohmann::json manifest = {
      {"attnbench_manifest", 1},
      {"tool_version", version_line()},
      {"args", args},
      {"config",
       vm.count("config") ? read_config_file(vm["config"].as<std::string>()) : nlohmann::json()},
      {"config_hash", plan.config_hash},
      {"result_config", result_config(cfg)},
      {"shards", shards},
      {"scheduler", vm["scheduler"].as<std::string>()},
      {"cost_source", cfg.shard_costs.empty() ? "predicted" : cfg.shard_costs.string()},
      {"predicted_makespan_ratio", balance.ratio()},
      {"planned_cases", std::move(cases)}};
  manifest["manifest_hash"] = manifest_hash_of(manifest);
  const std::filesystem::path file = std::filesystem::path(dir) / "manifest.json";
  create_parent_folders(file);
  write_file_atomic(manifest.dump(2) + "\n", file);
  std::cout << sweep_script(kind, {dir, shards});
  std::cerr << "attnbench: wrote " << file.string() << ": " << plan.cases.size() << " cases in "
            << shards << " shards, predicted makespan / (total / n) = " << std::fixed
            << std::setprecision(3) << balance.ratio() << std::defaultfloat
            << "\nattnbench: when every shard is done: " << merge_command({dir, shards}) << "\n";
  return 0;
}

int cmd_run(const std::vector<std::string>& args, const std::vector<std::string>& argv,
            run_command command = run_command::run,
            const nlohmann::json* maybe_manifest = nullptr) {
  const bool sweep = command == run_command::plan_sweep;
  run_config cfg;
  cfg.argv = argv;
  // With no --suite, --lengths or --config: the quick preset (every suite and CPU method, small
  // sizes, < 60 s on 2 cores). Otherwise lengths and samples left unset take each suite's default.
  std::string lengths, depths, shape = "small", mode = "query_aware", config_file, budgets;
  std::vector<std::string> workload_overrides;
  po::options_description desc(
      sweep
          ? "attnbench plan-sweep [run options] --shards N --scheduler slurm|k8s|mpi --out DIR\n\n"
            "Plans a sweep split into N shards balanced by predicted cost: writes "
            "DIR/manifest.json (the run's\n"
            "options, every case with its cost and shard, their hashes) and prints a Slurm "
            "array script, a\n"
            "Kubernetes Indexed Job or an mpirun script that runs shard i into DIR/shard-i, "
            "then the merge\n"
            "command (docs/scale.md)\n\n"
            "example: attnbench plan-sweep --suite ruler --lengths 4k,16k --shards 8 "
            "--scheduler slurm --out sweep"
          : "attnbench run [options]\n\n"
            "Runs suite cases x method specs and writes DIR/report.json (atomically) and "
            "DIR/report.jsonl\n"
            "(streamed as cases finish). With no --suite, --lengths or --config: the quick preset\n"
            "(every suite, 15 representative CPU methods at a quarter of the context, small "
            "lengths,\n"
            "2 samples; `--method all` runs every method with its defaults). The terminal shows "
            "one\n"
            "compact leaderboard; --verbose adds the per-suite tables (also in `attnbench "
            "report`).\n"
            "Under `mpirun -n N` (a build with ATTNBENCH_ENABLE_MPI) the ranks split the cases "
            "and rank 0\nwrites the one report (docs/scale.md)\n\n"
            "example: attnbench run --suite ruler --tasks vt,qa_1 --method quest:budget=512 "
            "--lengths 4k");
  desc.add_options()("help,h", "show this help")("suite", po::value<std::vector<std::string>>(),
                                                 "suite to run (repeatable; default: all)")(
      "method", po::value<std::vector<std::string>>(),
      "method spec name:key=value,... (repeatable; `all`: every method of the backend; "
      "default: all, or the quick preset's 15)")(
      "lengths", po::value<std::string>(),
      "context lengths, e.g. 4k,16k,128k (default: the suite's)")(
      "depths", po::value<std::string>(),
      "needle depths: list 0,0.5,1 or start:stop:count[:linear|:sigmoid] (default 0:1:4)")(
      "samples", po::value<int>(), "samples per case (default: the suite's)")(
      "seed", po::value<std::string>(), "base seed, 0 to 2^64 - 1 (default 0)")(
      "threads", po::value<int>(), "cases run in parallel (default: all cores)")(
      "backend", po::value<std::string>(), "cpu or cuda (default cpu)")(
      "mode", po::value<std::string>(), "query_aware or query_agnostic (default query_aware)")(
      "filter", po::value<std::string>(), "regex over case names, e.g. 'length=4096'")(
      "shape", po::value<std::string>(), "model shape preset: small, llama3-8b (default small)")(
      "needle", po::value<std::vector<std::string>>(),
      "needle value kind: number, word, uuid (repeatable)")(
      "haystack", po::value<std::string>(), "haystack: noise, essay, needle (default essay)")(
      "tasks", po::value<std::string>(), "comma-separated task names of the ruler suite")(
      "budgets", po::value<std::string>(),
      "token budgets swept by suites that take them, e.g. 256,1024 (fidelity)")(
      "trace", po::value<std::string>(),
      "imported Q/K/V trace (.safetensors or .npy + .json sidecar) instead of the workload")(
      "axis", po::value<std::vector<std::string>>(),
      "axis values SUITE.NAME=v1,v2 (repeatable), e.g. niah.length=1k,4k; `attnbench list "
      "suites` shows each suite's typed axes (--lengths, --depths, --needle, --haystack, "
      "--tasks and --budgets set the axes of those names)")(
      "param", po::value<std::vector<std::string>>(),
      "suite setting suite.key=value (repeatable), e.g. ruler.num_needle_k=4")(
      "workload", po::value<std::vector<std::string>>(),
      "workload parameter key=value (repeatable), e.g. version=1 (the earlier workload) or "
      "retrieval_temp=13")(
      "out", po::value<std::string>(),
      "output folder (default attnbench-out); one that holds an earlier run is refused unless "
      "--resume or --overwrite is given")(
      "resume", po::value<std::string>(),
      "continue the run whose output folder is DIR: cases its report.jsonl holds as done are "
      "kept, the rest (and its error records) run; the options must match that run's")(
      "overwrite", po::bool_switch(&cfg.overwrite),
      "discard the results an earlier run left in the output folder")(
      "shard", po::value<std::string>(),
      "i/n: run only the cases of shard i of n, balanced by predicted cost (docs/scale.md); "
      "auto: i (and n) from SLURM_ARRAY_TASK_ID, JOB_COMPLETION_INDEX or the MPI rank")(
      "shard-count", po::value<int>(),
      "the n of --shard auto under Slurm arrays and Kubernetes Indexed Jobs")(
      "shard-costs", po::value<std::string>(),
      "balance the shards by the case timings of an earlier report or stream (meta.case_seconds)")(
      "manifest", po::value<std::string>(),
      "run the configuration of a plan-sweep manifest (options that change it are refused); "
      "with --shard and no --out, into shard-i beside the manifest, resumed")(
      "shards", po::value<int>(), "plan-sweep: the number of shards N")(
      "scheduler", po::value<std::string>(), "plan-sweep: slurm, k8s or mpi")(
      "config", po::value<std::string>(),
      "JSON file with the same fields; the command line overrides it")(
      "verbose", po::bool_switch(),
      "print the per-suite tables, NIAH heatmaps and PosIR / RULER tables after the "
      "leaderboard");
  po::variables_map vm;
  // `run` takes no positional arguments: a stray word (`run niah`) is bad input naming it, not
  // silently ignored.
  po::options_description all = desc;
  all.add_options()("stray", po::value<std::vector<std::string>>());
  po::positional_options_description stray;
  stray.add("stray", -1);
  const po::parsed_options parsed =
      po::command_line_parser(args).options(all).positional(stray).run();
  po::store(parsed, vm);
  po::notify(vm);
  // The command line as given, less the options `drop` names (long names), in its own words.
  const auto tokens_without = [&](const auto& drop) {
    std::vector<std::string> kept;
    for (const auto& o : parsed.options)
      if (!drop(o.string_key))
        kept.insert(kept.end(), o.original_tokens.begin(), o.original_tokens.end());
    return kept;
  };
  if (vm.count("stray")) {
    const std::string word = vm["stray"].as<std::vector<std::string>>().front();
    ATTNBENCH_BAD_INPUT("unexpected argument '" << word << "' (options start with --, e.g. --suite "
                                                << word << ")");
  }
  if (vm.count("help")) {
    std::cout << desc << "\n";
    return 0;
  }
  // An empty value is bad input, never "the default".
  for (const auto& [name, value] : vm) {
    if (const auto* s = boost::any_cast<std::string>(&value.value()); s && s->empty())
      ATTNBENCH_BAD_INPUT("--" << name << " has an empty value");
    if (const auto* l = boost::any_cast<std::vector<std::string>>(&value.value()))
      for (const auto& item : *l)
        if (item.empty()) ATTNBENCH_BAD_INPUT("--" << name << " has an empty value");
  }
  for (const char* own : {"shards", "scheduler"})
    if (!sweep && vm.count(own)) ATTNBENCH_BAD_INPUT("--" << own << " is an option of plan-sweep");
  if (sweep)
    for (const char* other : {"resume", "overwrite", "shard", "shard-count", "manifest"})
      if (vm.count(other) && !vm[other].defaulted())
        ATTNBENCH_BAD_INPUT("--" << other << " is an option of run, not of plan-sweep");
  if (vm.count("manifest")) {
    // The manifest's run: its options, then this command line's (which may not change them).
    for (const auto& [name, value] : vm)
      if (one_of(name, k_manifest_fixed))
        ATTNBENCH_BAD_INPUT("--" << name << " conflicts with --manifest "
                                 << vm["manifest"].as<std::string>()
                                 << " (the manifest fixes the run's configuration)");
    const nlohmann::json manifest = read_manifest(vm["manifest"].as<std::string>());
    std::vector<std::string> run_args = manifest["args"].get<std::vector<std::string>>();
    for (auto& t : tokens_without([](const std::string& k) { return k == "manifest"; }))
      run_args.push_back(std::move(t));
    return cmd_run(run_args, argv, run_command::run, &manifest);
  }
  std::set<std::string> seen_params;  // --param keys of the command line
  if (vm.count("config"))
    apply_config(read_config_file(vm["config"].as<std::string>()), vm["config"].as<std::string>(),
                 cfg, lengths, depths, shape, mode, budgets);
  else if (maybe_manifest && !maybe_manifest->value("config", nlohmann::json()).is_null())
    apply_config((*maybe_manifest)["config"], maybe_manifest->value("path", std::string()), cfg,
                 lengths, depths, shape, mode, budgets);
  if (vm.count("suite")) cfg.suites = vm["suite"].as<std::vector<std::string>>();
  if (vm.count("method")) cfg.methods = vm["method"].as<std::vector<std::string>>();
  if (vm.count("lengths")) lengths = vm["lengths"].as<std::string>();
  if (vm.count("depths")) depths = vm["depths"].as<std::string>();
  if (vm.count("samples")) cfg.options.samples = vm["samples"].as<int>();
  if (vm.count("seed")) cfg.options.seed = parse_seed(vm["seed"].as<std::string>());
  if (vm.count("threads")) cfg.threads = vm["threads"].as<int>();
  if (vm.count("backend")) cfg.options.backend = vm["backend"].as<std::string>();
  if (vm.count("mode")) mode = vm["mode"].as<std::string>();
  if (vm.count("filter")) cfg.filter = vm["filter"].as<std::string>();
  if (vm.count("shape")) shape = vm["shape"].as<std::string>();
  if (vm.count("needle")) cfg.options.needles = vm["needle"].as<std::vector<std::string>>();
  if (vm.count("haystack")) cfg.options.haystack = vm["haystack"].as<std::string>();
  if (vm.count("out")) cfg.out_dir = vm["out"].as<std::string>();
  if (vm.count("resume")) {
    const std::string dir = vm["resume"].as<std::string>();
    if (vm.count("out") && std::filesystem::path(vm["out"].as<std::string>()) != dir)
      ATTNBENCH_BAD_INPUT("--resume " << dir << " and --out " << vm["out"].as<std::string>()
                                      << " name different folders (--resume DIR writes into DIR)");
    if (cfg.overwrite)
      ATTNBENCH_BAD_INPUT("--resume " << dir << " and --overwrite contradict each other");
    cfg.out_dir = dir;
    cfg.resume = true;
  }
  cfg.handle_signals = true;
  cfg.maybe_log = &std::cerr;
  if (vm.count("shard-count") && (!vm.count("shard") || vm["shard"].as<std::string>() != "auto") &&
      !sweep)
    ATTNBENCH_BAD_INPUT("--shard-count goes with --shard auto (--shard i/n names the count)");
  if (vm.count("shard")) {
    const std::string shard = vm["shard"].as<std::string>();
    std::optional<int> count;
    if (maybe_manifest) count = (*maybe_manifest)["shards"].get<int>();
    if (vm.count("shard-count")) count = vm["shard-count"].as<int>();
    cfg.shard = shard == "auto" ? shard_from_environment(count) : parse_shard(shard);
  }
  if (vm.count("shard-costs")) {
    cfg.shard_costs = vm["shard-costs"].as<std::string>();
    if (!vm.count("shard") && !sweep)
      ATTNBENCH_BAD_INPUT("--shard-costs " << cfg.shard_costs.string() << " goes with --shard");
  }
  if (vm.count("tasks")) cfg.options.tasks = split(vm["tasks"].as<std::string>(), ',');
  if (vm.count("budgets")) budgets = vm["budgets"].as<std::string>();
  if (vm.count("trace")) cfg.options.trace = vm["trace"].as<std::string>();
  if (vm.count("axis"))
    for (const auto& item : vm["axis"].as<std::vector<std::string>>()) add_axis(cfg.options, item);
  if (vm.count("param"))
    for (const auto& kv : vm["param"].as<std::vector<std::string>>()) {
      auto eq = kv.find('=');
      if (eq == std::string::npos || kv.find('.') > eq)
        ATTNBENCH_BAD_INPUT("--param expects suite.key=value, got '" << kv << "'");
      if (!seen_params.insert(kv.substr(0, eq)).second)
        ATTNBENCH_BAD_INPUT("--param " << kv.substr(0, eq) << " is given twice");
      cfg.options.params[kv.substr(0, eq)] = kv.substr(eq + 1);
    }
  if (vm.count("workload")) {
    std::vector<std::pair<std::string, std::string>> overrides;
    for (const auto& kv : vm["workload"].as<std::vector<std::string>>()) {
      auto eq = kv.find('=');
      if (eq == std::string::npos)
        ATTNBENCH_BAD_INPUT("--workload expects key=value, got '" << kv << "'");
      for (const auto& [key, value] : overrides)
        if (key == kv.substr(0, eq)) ATTNBENCH_BAD_INPUT("--workload " << key << " is given twice");
      overrides.emplace_back(kv.substr(0, eq), kv.substr(eq + 1));
    }
    apply_workload_overrides(cfg.workload, overrides);
  }

  cfg.options.quick =
      !vm.count("suite") && !vm.count("lengths") && !vm.count("config") &&
      !(maybe_manifest && !maybe_manifest->value("config", nlohmann::json()).is_null());
  if (!lengths.empty()) cfg.options.lengths = parse_lengths(lengths);
  if (!depths.empty()) cfg.options.depths = parse_depths(depths);
  cfg.options.shape = shape_preset(shape);
  cfg.options.mode = parse_run_mode(mode);
  if (!budgets.empty())
    for (const auto& item : split(budgets, ',')) {
      auto v = parse_real(item);
      if (!v || *v < 1 || *v != std::floor(*v) || *v > 1e9)
        ATTNBENCH_BAD_INPUT("malformed --budgets value '" << item << "' (expected e.g. 256,1024)");
      cfg.options.budgets.push_back(static_cast<std::int64_t>(*v));
    }
  drop_repeats(cfg.suites);
  drop_repeats(cfg.methods);
  drop_repeats(cfg.options.needles);
  drop_repeats(cfg.options.tasks);
  drop_repeats(cfg.options.budgets);
  if (cfg.options.samples < 0 || (cfg.options.samples == 0 && vm.count("samples")))
    ATTNBENCH_BAD_INPUT("--samples must be >= 1, got " << cfg.options.samples);
  if (cfg.threads < 0) ATTNBENCH_BAD_INPUT("--threads must be >= 0, got " << cfg.threads);
  // Cases run one per thread: more threads than 4x the hardware's only wait (and OpenMP fails
  // outright far above it).
  const int max_threads = 4 * std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  if (cfg.threads > max_threads)
    ATTNBENCH_BAD_INPUT("--threads " << cfg.threads << " is above " << max_threads
                                     << " (4 x this machine's " << max_threads / 4
                                     << " hardware threads)");
  if (cfg.options.backend != "cpu" && cfg.options.backend != "cuda")
    ATTNBENCH_BAD_INPUT("unknown backend '" << cfg.options.backend << "' (known: cpu, cuda)");

  if (sweep)
    return plan_sweep_command(
        cfg, vm, tokens_without([](const std::string& k) { return one_of(k, k_sweep_own); }));
  if (maybe_manifest) {
    const nlohmann::json& m = *maybe_manifest;
    const std::string path = m["path"];
    if (stable_hash_hex(result_config(cfg).dump()) != m["config_hash"])
      ATTNBENCH_BAD_INPUT("manifest '" << path << "': its options give config hash "
                                       << stable_hash_hex(result_config(cfg).dump()) << " here, "
                                       << m["config_hash"].get<std::string>()
                                       << " where it was planned; was it written by another "
                                          "attnbench version?");
    for (const auto& c : m["planned_cases"])
      cfg.case_costs[c.at("case_id").get<std::string>()] = c.at("cost").get<double>();
    // A shard of the sweep writes, and resumes, its own folder beside the manifest.
    if (vm.count("shard") && !vm.count("out") && !vm.count("resume")) {
      cfg.out_dir =
          std::filesystem::path(path).parent_path() / ("shard-" + std::to_string(cfg.shard.index));
      cfg.resume = !cfg.overwrite;
    }
    // The other shard folders of the sweep: what they hold finished is not run again here.
    const auto sweep_dir = std::filesystem::path(path).parent_path();
    std::error_code ec;
    if (vm.count("shard"))
      for (const auto& entry : std::filesystem::directory_iterator(
               sweep_dir.empty() ? std::filesystem::path(".") : sweep_dir, ec))
        if (entry.is_directory() && entry.path().filename().string().rfind("shard-", 0) == 0 &&
            !std::filesystem::equivalent(entry.path(), cfg.out_dir, ec))
          cfg.sibling_streams.push_back(entry.path() / "report.jsonl");
    std::sort(cfg.sibling_streams.begin(), cfg.sibling_streams.end());
  }

  // Started by mpirun with several ranks and no --shard: the MPI mode (app/mpi_run.hpp), where
  // each rank runs its shard and rank 0 writes the one report. With --shard the ranks are
  // independent shards, merged afterwards.
  if (mpi_launched_ranks() > 1 && !vm.count("shard"))
    return run_mpi(cfg, vm["verbose"].as<bool>());

  jsonl_reporter stream(cfg.out_dir / "report.jsonl");
  json_file_reporter file(cfg.out_dir / "report.json");
  progress_reporter bar(std::cerr);
  html_file_reporter html(cfg.out_dir / "report.html");
  console_reporter console(std::cout, vm["verbose"].as<bool>());
  reporter_list out({&stream, &file, &html, &bar, &console});
  report rep = run_benchmark(cfg, out);
  if (const auto it = rep.meta.find("resume"); it != rep.meta.end()) {
    std::cerr << "attnbench: resumed " << it->value("records_kept", 0) << " completed case(s) from "
              << it->value("stream", std::string()) << "\n";
    if (it->value("dropped_line", 0))
      std::cerr << "attnbench: dropped its damaged last line " << it->value("dropped_line", 0)
                << " (a write cut short)\n";
    if (it->value("not_in_this_run", 0))
      std::cerr << "attnbench: " << it->value("not_in_this_run", 0)
                << " of its records are not cases of this run: they stay in the stream and are "
                   "left out of report.json\n";
  }
  if (const auto it = rep.meta.find("shard");
      it != rep.meta.end() && it->contains("held_elsewhere"))
    std::cerr << "attnbench: " << (*it)["held_elsewhere"].size()
              << " case(s) of this shard are finished in other shard folders of the sweep and "
                 "were not run again\n";
  std::cout << "\nreport: " << (cfg.out_dir / "report.json").string()
            << "\nhtml:   " << (cfg.out_dir / "report.html").string() << "\n";
  std::size_t not_ok = std::count_if(rep.records.begin(), rep.records.end(), [](const record& r) {
    return r.status == record_status::error || r.status == record_status::oom;
  });
  if (not_ok) std::cerr << "attnbench: " << not_ok << " case(s) failed; see the records' reason\n";
  if (const int code = interrupted_exit_code(rep)) {
    std::cerr << "attnbench: interrupted by " << rep.meta.value("interrupted_by", std::string())
              << ": the report holds " << rep.records.size() << " of "
              << rep.meta.value("planned_cases", nlohmann::json::array()).size()
              << " cases (meta.partial); `attnbench run --resume " << cfg.out_dir.string()
              << "` with the same options runs the rest\n";
    return code;
  }
  return 0;
}

}  // namespace

std::uint64_t parse_seed(const std::string& text) {
  const bool digits =
      !text.empty() && text.size() <= 20 &&
      std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; });
  errno = 0;
  const unsigned long long v = digits ? std::strtoull(text.c_str(), nullptr, 10) : 0;
  if (!digits || errno == ERANGE)
    ATTNBENCH_BAD_INPUT("--seed '" << text << "' is not an integer in [0, 2^64 - 1]");
  return v;
}

namespace {

// 64 -> "64", 16777216 -> "16m": a bound as counts are written.
std::string count_text(std::int64_t v) {
  if (v >= (1 << 20) && v % (1 << 20) == 0) return std::to_string(v >> 20) + "m";
  if (v >= 1024 && v % 1024 == 0) return std::to_string(v / 1024) + "k";
  return std::to_string(v);
}

}  // namespace

std::vector<std::int64_t> parse_counts(const std::string& text, const std::string& option,
                                       std::int64_t lo, std::int64_t hi) {
  std::vector<std::int64_t> out;
  for (const auto& item : split(text, ',')) {
    std::string s = item;
    std::int64_t mult = 1;
    if (!s.empty() && (s.back() == 'k' || s.back() == 'K'))
      mult = 1024, s.pop_back();
    else if (!s.empty() && (s.back() == 'm' || s.back() == 'M'))
      mult = 1024 * 1024, s.pop_back();
    bool digits =
        !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
    if (!digits || s.size() > 9)
      ATTNBENCH_BAD_INPUT("malformed " << option << " value '" << item
                                       << "' (expected e.g. 4k,16k,131072)");
    std::int64_t v = std::stoll(s) * mult;
    if (v < lo || v > hi)
      ATTNBENCH_BAD_INPUT(option << " value '" << item << "' is out of range [" << count_text(lo)
                                 << ", " << count_text(hi) << "]");
    out.push_back(v);
  }
  if (out.empty()) ATTNBENCH_BAD_INPUT("malformed " << option << " value '" << text << "'");
  drop_repeats(out);
  return out;
}

std::vector<std::int64_t> parse_lengths(const std::string& text) {
  return parse_counts(text, "--lengths", 64, std::int64_t{1} << 24);
}

std::vector<double> parse_depths(const std::string& text) {
  std::vector<double> out;
  if (text.find(':') != std::string::npos) {
    auto parts = split(text, ':');
    if (parts.size() < 3 || parts.size() > 4)
      ATTNBENCH_BAD_INPUT("malformed --depths '"
                          << text << "' (expected start:stop:count[:linear|:sigmoid])");
    auto start = parse_real(parts[0]), stop = parse_real(parts[1]), count = parse_real(parts[2]);
    std::string spacing = parts.size() == 4 ? parts[3] : "linear";
    if (!start || !stop || !count || *count < 1 || *count != std::floor(*count) || *count > 1000)
      ATTNBENCH_BAD_INPUT("malformed --depths '"
                          << text << "' (expected start:stop:count[:linear|:sigmoid])");
    if (spacing != "linear" && spacing != "sigmoid")
      ATTNBENCH_BAD_INPUT("--depths spacing '" << spacing << "' is not linear or sigmoid");
    const int n = static_cast<int>(*count);
    for (int i = 0; i < n; ++i) {
      double u = n == 1 ? 0.0 : static_cast<double>(i) / (n - 1);
      if (spacing == "sigmoid") {
        // Logistic spacing (as in the NIAH test's sigmoid depth schedule): uniform points on
        // [-6, 6] through a logistic, rescaled to [0, 1]: denser near the start and the end.
        auto f = [](double x) { return 1.0 / (1.0 + std::exp(-x)); };
        u = (f(-6.0 + 12.0 * u) - f(-6.0)) / (f(6.0) - f(-6.0));
      }
      out.push_back(std::round((*start + (*stop - *start) * u) * 1e6) / 1e6);
    }
  } else {
    for (const auto& item : split(text, ',')) {
      auto v = parse_real(item);
      if (!v) ATTNBENCH_BAD_INPUT("malformed --depths value '" << item << "'");
      out.push_back(*v);
    }
  }
  for (double d : out)
    if (d < 0 || d > 1) ATTNBENCH_BAD_INPUT("--depths value " << d << " is out of range [0, 1]");
  if (out.empty()) ATTNBENCH_BAD_INPUT("malformed --depths '" << text << "'");
  drop_repeats(out);
  return out;
}

int cli_main(int argc, char** argv) {
  std::vector<std::string> all(argv, argv + argc);
  try {
    if (argc < 2) {
      // No command: the default benchmark.
      return cmd_run({}, all);
    }
    std::string command = argv[1];
    std::vector<std::string> rest(all.begin() + 2, all.end());
    if (command == "--help" || command == "-h" || command == "help") {
      std::cout << k_usage;
      return 0;
    }
    if (command == "--version" || command == "version") {
      std::cout << version_line() << "\n";
      return 0;
    }
    if (command == "list") return cmd_list(rest);
    if (command == "run") return cmd_run(rest, all);
    if (command == "report") return cmd_report(rest);
    if (command == "compare") return cmd_compare(rest);
    if (command == "merge") return cmd_merge(rest);
    if (command == "plan") return cmd_plan(rest, all);
    if (command == "plan-sweep") return cmd_run(rest, all, run_command::plan_sweep);
    ATTNBENCH_BAD_INPUT("unknown command '"
                        << command
                        << "' (known: list, run, report, compare, merge, plan, plan-sweep)");
  } catch (const po::error& e) {
    std::cerr << "attnbench: " << e.what() << "\n";
    return 2;
  } catch (const error& e) {
    std::cerr << "attnbench: " << e.what() << "\n";
    return e.id() == error_id::bad_input ? 2 : 1;
  } catch (const std::exception& e) {
    std::cerr << "attnbench: " << e.what() << "\n";
    return 1;
  }
}

}  // namespace attnbench
