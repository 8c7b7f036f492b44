#include "app/runner.hpp"

#include <omp.h>
#include <unistd.h>

#include <chrono>
#include <ctime>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <mutex>
#include <new>
#include <regex>
#include <sstream>
#include <thread>

#include "app/gpu_info.hpp"
#include "app/progress.hpp"
#include "datasets/calibration.hpp"
#include "harness/error.hpp"
#include "reports/run_reporters.hpp"

#ifndef ATTNBENCH_BUILD_TYPE
#define ATTNBENCH_BUILD_TYPE "unknown"
#endif
#ifndef ATTNBENCH_VERSION
#define ATTNBENCH_VERSION "0.0.0"
#endif

namespace attnbench {

const std::vector<std::string>& quick_preset_methods() {
  static const std::vector<std::string> specs = {
      "dense",                       // the reference
      "topk_oracle:keep=0.25",       // ceiling of token selection at this budget
      "random:keep=0.25",            // floor
      "streaming_llm:keep=0.25",     // static sinks + window
      "h2o:keep=0.25",               // decode-time eviction (heavy hitters)
      "tova:keep=0.25",              // decode-time eviction (last query)
      "snapkv:keep=0.25",            // prefill-time scoring (observation window)
      "pyramidkv:keep=0.25",         // per-layer budgets
      "adakv:keep=0.25",             // per-head budgets
      "knorm:keep=0.25",             // query-free scoring (key norm)
      "expected_attention:keep=0.25",  // query-free scoring (expected attention)
      "duo:keep=0.25",               // retrieval / streaming head split
      "quest:keep=0.25",             // query-aware sparse reads (pages)
      "loki:keep=0.25",              // query-aware sparse reads (low-rank keys)
      "kv_quant:bits=2",             // quantization (KIVI-2)
  };
  return specs;
}

// The built commit, from cmake/git_sha.cmake (a file generated at every build).
const char* build_git_sha();

namespace {


std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("model name", 0) == 0) {
      auto colon = line.find(':');
      return colon == std::string::npos ? line : line.substr(colon + 2);
    }
  return "unknown";
}

std::uint64_t physical_memory_bytes() {
  long pages = sysconf(_SC_PHYS_PAGES);
  long page = sysconf(_SC_PAGE_SIZE);
  return pages > 0 && page > 0
             ? static_cast<std::uint64_t>(pages) * static_cast<std::uint64_t>(page)
             : 0;
}

struct job {
  const suite* s;
  const suite_case* c;
  const method_instance* m;
};

// Runs one job; every failure becomes a record status, never an exception.
record run_job(const job& j, const run_config& config, const run_context& ctx) {
  record rec;
  rec.suite = j.s->name();
  rec.case_name = j.c->name;
  rec.axes = j.c->axes;
  rec.method = j.m->info->name;
  rec.method_spec = j.m->canonical;
  // Parameters as typed JSON values, in the schema's types.
  for (const auto& def : j.m->info->params) {
    if (!j.m->params.has(def.name)) continue;
    switch (def.type) {
      case param_type::integer:
        rec.params[def.name] = j.m->params.get_int(def.name);
        break;
      case param_type::real:
        rec.params[def.name] = j.m->params.get_real(def.name);
        break;
      case param_type::boolean:
        rec.params[def.name] = j.m->params.get_bool(def.name);
        break;
      case param_type::choice:
        rec.params[def.name] = j.m->params.get_string(def.name);
        break;
      case param_type::list:
        rec.params[def.name] = j.m->params.get_list(def.name);
        break;
    }
  }
  // A wrapper's inner method, as its canonical spec (its parameters live there).
  if (j.m->inner) rec.params["inner"] = j.m->inner->canonical;
  rec.backend = config.options.backend;
  rec.mode = name_of(config.options.mode);
  rec.seed = config.options.seed;
  try {
    j.s->run(*j.c, *j.m, ctx, rec);
  } catch (const error& e) {
    rec.metrics.clear();
    rec.status = e.id() == error_id::unsupported     ? record_status::skipped
                 : e.id() == error_id::out_of_memory ? record_status::oom
                                                     : record_status::error;
    rec.reason = e.what();
  } catch (const std::bad_alloc&) {
    rec.metrics.clear();
    rec.status = record_status::oom;
    rec.reason = "out of host memory";
  } catch (const std::exception& e) {
    rec.metrics.clear();
    rec.status = record_status::error;
    rec.reason = e.what();
  }
  return rec;
}

}  // namespace

std::string utc_now() {
  auto t = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm tm{};
  gmtime_r(&t, &tm);
  std::ostringstream os;
  os << std::put_time(&tm, "%Y-%m-%dT%H:%M:%SZ");
  return os.str();
}

nlohmann::json make_meta(const run_config& config, const std::string& start_time) {
  char host[256] = {0};
  gethostname(host, sizeof(host) - 1);
  const auto& o = config.options;
  const cuda_info cuda = query_cuda();
  nlohmann::json gpus = nlohmann::json::array();
  for (const auto& g : cuda.gpus)
    gpus.push_back({{"index", g.index},
                    {"name", g.name},
                    {"memory_bytes", g.memory_bytes},
                    {"multiprocessors", g.multiprocessors},
                    {"compute_capability",
                     std::to_string(g.compute_major) + "." + std::to_string(g.compute_minor)},
                    {"l2_bytes", g.l2_bytes}});
  nlohmann::json options = {
      {"lengths", o.lengths},    {"depths", o.depths},        {"samples", o.samples},
      {"seed", o.seed},          {"mode", name_of(o.mode)},   {"backend", o.backend},
      {"filter", config.filter}, {"threads", config.threads}, {"needles", o.needles},
      {"haystack", o.haystack},  {"suites", config.suites},   {"methods", config.methods},
      {"tasks", o.tasks},        {"budgets", o.budgets},      {"trace", o.trace},
      {"params", o.params},      {"quick", o.quick}};
  return {
      {"tool", "attnbench"},
      {"tool_version", ATTNBENCH_VERSION},
      {"git_sha", build_git_sha()},
      {"build_type", ATTNBENCH_BUILD_TYPE},
      {"compiler", std::string("gcc ") + __VERSION__},
      {"argv", config.argv},
      {"start_time", start_time},
      {"host",
       {{"hostname", host},
        {"cpu", cpu_model()},
        {"cores", std::thread::hardware_concurrency()},
        {"memory_bytes", physical_memory_bytes()}}},
      {"gpus", gpus},
      {"cuda", cuda.built ? nlohmann::json{{"runtime_version", cuda.runtime_version},
                                           {"driver_version", cuda.driver_version}}
                          : nlohmann::json(nullptr)},
      {"options", options},
      {"shape",
       {{"name", o.shape.name},
        {"layers", o.shape.layers},
        {"q_heads", o.shape.q_heads},
        {"kv_heads", o.shape.kv_heads},
        {"head_dim", o.shape.head_dim}}},
      {"workload", config.workload.to_json()},
  };
}

std::string version_line() {
  const cuda_info cuda = query_cuda();
  std::ostringstream os;
  os << "attnbench " << ATTNBENCH_VERSION << " (git " << build_git_sha() << ", "
     << ATTNBENCH_BUILD_TYPE << ", gcc " << __VERSION__ << ", CUDA backend "
     << (cuda.built ? "built" : "not built") << ", OpenMP " << _OPENMP << ")";
  return os.str();
}

report run_benchmark(const run_config& config, std::ostream& progress) {
  jsonl_reporter stream(config.out_dir / "report.jsonl");
  json_file_reporter file(config.out_dir / "report.json");
  progress_reporter bar(progress);
  reporter_list out({&stream, &file, &bar});
  return run_benchmark(config, out);
}

report run_benchmark(const run_config& config, reporter& out) {
  // ---- Validate everything before anything is written. ---------------------------------
  std::vector<const suite*> suites;
  if (config.suites.empty()) suites = suite_registry::instance().all();
  for (const auto& name : config.suites) {
    const suite* s = suite_registry::instance().find(name);
    if (!s) {
      std::string known;
      for (const auto* x : suite_registry::instance().all())
        known += (known.empty() ? "" : ", ") + x->name();
      ATTNBENCH_BAD_INPUT("unknown suite '" << name << "' (known: " << known << ")");
    }
    suites.push_back(s);
  }
  // A trace replaces the workload only in suites that read one: with no --suite, those run;
  // naming another suite with --trace is bad input rather than a silently ignored trace.
  if (!config.options.trace.empty()) {
    std::string readers;
    for (const auto* x : suite_registry::instance().all())
      if (x->reads_traces()) readers += (readers.empty() ? "" : ", ") + x->name();
    if (config.suites.empty())
      std::erase_if(suites, [](const suite* s) { return !s->reads_traces(); });
    for (const auto* s : suites)
      if (!s->reads_traces())
        ATTNBENCH_BAD_INPUT("suite '" << s->name() << "' does not read --trace (suites that do: "
                                      << readers << ")");
  }
  std::vector<method_instance> methods;
  // No --method: every method of the backend with its defaults, or in the quick preset (CPU)
  // the representative specs of quick_preset_methods. `all` among the specs: every method.
  std::vector<std::string> specs = config.methods;
  if (specs.empty())
    specs = config.options.quick && config.options.backend == "cpu" ? quick_preset_methods()
                                                                    : std::vector<std::string>{"all"};
  std::vector<std::string> expanded;
  for (const auto& spec : specs) {
    if (spec != "all") {
      expanded.push_back(spec);
      continue;
    }
    for (const auto* info : method_registry::instance().all())
      // Wrappers need a method to wrap: they run only when a spec names one.
      if (info->backend == config.options.backend && !info->is_wrapper())
        expanded.push_back(info->name);
  }
  // Specs that resolve to the same parameters (`dense` and `dense`, or `snapkv` and
  // `snapkv:budget=1024`) run once, under the first spelling.
  for (const auto& spec : expanded) {
    method_instance m = resolve_method(spec, config.options.backend);
    if (std::none_of(methods.begin(), methods.end(),
                     [&](const method_instance& x) { return x.canonical == m.canonical; }))
      methods.push_back(std::move(m));
  }
  ATTNBENCH_CHECK(!methods.empty(), bad_input,
                  "no method registered for backend '" << config.options.backend << "'");

  for (const auto& [key, value] : config.options.params) {
    auto dot = key.find('.');
    const suite* owner = nullptr;
    for (const auto* s : suites)
      if (dot != std::string::npos && key.substr(0, dot) == s->name()) owner = s;
    std::string known;
    for (const auto* s : suites)
      for (const auto& n : s->param_names())
        known += (known.empty() ? "" : ", ") + s->name() + "." + n;
    const auto names = owner ? owner->param_names() : std::vector<std::string>{};
    if (!owner || std::find(names.begin(), names.end(), key.substr(dot + 1)) == names.end())
      ATTNBENCH_BAD_INPUT("unknown --param '" << key << "' for the selected suites (known: "
                                              << (known.empty() ? "none" : known) << ")");
  }
  // A shared option no selected suite has an axis for would be ignored: bad input instead.
  for (const auto& [option, axis] : shared_options()) {
    if (shared_option_values(config.options, axis).empty()) continue;
    const bool used = std::any_of(suites.begin(), suites.end(), [&](const suite* s) {
      const auto axes = s->axes();
      return std::any_of(axes.begin(), axes.end(),
                         [&](const axis_def& a) { return a.name == axis; });
    });
    if (!used)
      ATTNBENCH_BAD_INPUT(option << " is given but no selected suite has a '" << axis << "' axis");
  }
  // --axis values were typed against their suite's declaration (parse_axis); the suite must be
  // one that runs.
  for (const auto& [key, values] : config.options.axis_values) {
    const std::string suite_name = key.substr(0, key.find('.'));
    if (std::none_of(suites.begin(), suites.end(),
                     [&](const suite* s) { return s->name() == suite_name; }))
      ATTNBENCH_BAD_INPUT("--axis " << key << ": suite '" << suite_name << "' is not selected");
  }

  std::regex filter;
  try {
    filter = std::regex(config.filter.empty() ? ".*" : config.filter);
  } catch (const std::regex_error& e) {
    ATTNBENCH_BAD_INPUT("malformed --filter regex '" << config.filter << "': " << e.what());
  }
  const int threads = config.threads > 0
                          ? config.threads
                          : std::max(1, static_cast<int>(std::thread::hardware_concurrency()));

  std::vector<std::vector<suite_case>> cases(suites.size());
  std::vector<job> jobs;
  const std::uint64_t memory = physical_memory_bytes();
  for (std::size_t si = 0; si < suites.size(); ++si) {
    for (auto& c : suites[si]->cases(config.options))
      if (std::regex_search(c.name, filter)) cases[si].push_back(std::move(c));
    for (const auto& c : cases[si]) {
      // Cases run `threads` at a time: each must fit in its share of the machine's memory.
      std::uint64_t need = suites[si]->estimate_bytes(c, config.options);
      if (memory && need * static_cast<std::uint64_t>(
                               std::min<std::size_t>(threads, methods.size() * cases[si].size())) >
                        memory * 8 / 10)
        ATTNBENCH_BAD_INPUT(
            "case " << c.name << " needs about " << need / (1u << 20) << " MiB per thread ("
                    << threads << " threads), more than this machine's " << memory / (1u << 20)
                    << " MiB allows; use fewer --threads or a smaller --lengths/--shape");
      for (const auto& m : methods) jobs.push_back({suites[si], &c, &m});
    }
  }
  ATTNBENCH_CHECK(!jobs.empty(), bad_input, "no case matches --filter '" << config.filter << "'");

  // ---- Run. ----------------------------------------------------------------------------
  retrieval_model model(config.options.shape, config.workload);
  const passkey_calibration calibration(model);
  report rep;
  const std::string start = utc_now();
  rep.meta = make_meta(config, start);
  for (const auto* s : suites)
    for (const auto& [k, v] : s->metrics()) rep.metrics[k] = v;

  std::filesystem::create_directories(config.out_dir);
  out.start(rep, jobs.size());
  run_context ctx;
  ctx.options = &config.options;
  ctx.model = &model;
  ctx.calibration = &calibration;
  ctx.exec.backend = config.options.backend;
  ctx.exec.threads = 1;  // parallelism is over cases; each case is sequential and deterministic
  ctx.exec.seed = config.options.seed;

  std::vector<record> records(jobs.size());
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
  for (std::size_t i = 0; i < jobs.size(); ++i) {
    if (jobs[i].s->exclusive()) continue;
    records[i] = run_job(jobs[i], config, ctx);
    out.record_done(records[i]);
  }
  // Timing and memory suites measure the machine: their jobs run alone, one at a time, each
  // with every thread asked for (so a CPU kernel's threads are the user's --threads). The quick
  // preset, a smoke test and CI gate that often runs on shared machines, times one thread: on an
  // oversubscribed machine an OpenMP barrier waits whole scheduler ticks for a descheduled
  // thread, which turned 80 us decode steps into 12 ms ones between two identical runs.
  run_context solo = ctx;
  solo.exec.threads = config.options.quick ? 1 : threads;
  for (std::size_t i = 0; i < jobs.size(); ++i) {
    if (!jobs[i].s->exclusive()) continue;
    records[i] = run_job(jobs[i], config, solo);
    out.record_done(records[i]);
  }
  rep.records = std::move(records);
  rep.meta["end_time"] = utc_now();
  out.finish(rep);
  return rep;
}

}  // namespace attnbench
