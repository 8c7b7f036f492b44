#include "app/runner.hpp"

#include <fcntl.h>
#include <omp.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <ctime>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <map>
#include <mutex>
#include <new>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include "app/gpu_info.hpp"
#include "app/progress.hpp"
#include "datasets/calibration.hpp"
#include "harness/error.hpp"
#include "reports/file_io.hpp"
#include "reports/json_report.hpp"
#include "reports/jsonl_stream.hpp"
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

// A job's record before it runs: what identifies it (case_id included), no results yet.
record job_record(const job& j, const run_config& config, const nlohmann::json& workload,
                  const std::string& config_hash) {
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
  rec.case_id = case_id_of(rec, workload);
  rec.config_hash = config_hash;
  return rec;
}

// Runs one job from its identity record; every failure becomes a record status, never an
// exception.
record run_job(const job& j, record rec, const run_context& ctx) {
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

// ---- Stop signals -----------------------------------------------------------------------

// The signal that asked the sweep to stop; 0 while none has.
volatile std::sig_atomic_t g_stop_signal = 0;

extern "C" void on_stop_signal(int sig) {
  if (g_stop_signal != 0) {
    // The second signal: the user does not want to wait for the cases in flight.
    ::signal(sig, SIG_DFL);
    ::raise(sig);
    return;
  }
  g_stop_signal = sig;
  static const char k_message[] =
      "\nattnbench: stopping: no new case starts; the cases in flight finish, then the partial "
      "report is written (signal again to stop at once)\n";
  // write(2) is async-signal-safe; a failed message changes nothing.
  if (::write(STDERR_FILENO, k_message, sizeof k_message - 1) < 0) return;
}

constexpr int k_stop_signals[] = {SIGINT, SIGTERM, SIGHUP};

const char* signal_name(int sig) {
  return sig == SIGINT ? "SIGINT" : sig == SIGTERM ? "SIGTERM" : sig == SIGHUP ? "SIGHUP" : "";
}

// Installs on_stop_signal for the life of a run, restoring the previous handlers after it.
class stop_signals {
 public:
  explicit stop_signals(bool install) : m_installed(install) {
    g_stop_signal = 0;
    if (!m_installed) return;
    struct sigaction action {};
    action.sa_handler = on_stop_signal;
    sigemptyset(&action.sa_mask);
    action.sa_flags = SA_RESTART;
    for (std::size_t i = 0; i < std::size(k_stop_signals); ++i)
      ::sigaction(k_stop_signals[i], &action, &m_previous[i]);
  }
  ~stop_signals() {
    if (!m_installed) return;
    for (std::size_t i = 0; i < std::size(k_stop_signals); ++i)
      ::sigaction(k_stop_signals[i], &m_previous[i], nullptr);
  }
  stop_signals(const stop_signals&) = delete;
  stop_signals& operator=(const stop_signals&) = delete;

 private:
  bool m_installed;
  struct sigaction m_previous[std::size(k_stop_signals)]{};
};

// ---- The output folder ------------------------------------------------------------------

// The output folder while a run writes into it: locked against a second run (flock on
// DIR/.lock, which holds the holder's pid; the kernel releases it when the process dies, so a
// kill -9 leaves no stale lock), and an earlier run's results refused, discarded or read back.
class output_folder {
 public:
  output_folder(const run_config& config, const std::string& config_hash) : m_dir(config.out_dir) {
    std::filesystem::create_directories(m_dir);
    lock();
    const auto stream = m_dir / "report.jsonl";
    const auto final_report = m_dir / "report.json";
    if (config.resume && std::filesystem::exists(stream)) {
      read_back(stream, config_hash);
      return;
    }
    if (config.resume && std::filesystem::exists(final_report) && !config.overwrite)
      ATTNBENCH_BAD_INPUT("--resume " << m_dir.string() << ": the folder holds report.json but no "
                                      << "report.jsonl to resume from; --overwrite discards it");
    if (!config.overwrite) refuse_earlier_results(stream, final_report);
    // Nothing of an earlier run may remain beside this run's stream.
    for (const char* name : {"report.jsonl", "report.json", "report.html"})
      std::filesystem::remove(m_dir / name);
  }
  ~output_folder() {
    if (m_lock_fd >= 0) ::close(m_lock_fd);
  }
  output_folder(const output_folder&) = delete;
  output_folder& operator=(const output_folder&) = delete;

  // Resumed: the stream's completed record of each case id (ok, skipped, oom).
  std::map<std::string, record> done;
  // What the resume found, for meta.resume; null when the run did not resume a stream.
  nlohmann::json resume_info;

 private:
  void lock() {
    const auto path = m_dir / ".lock";
    m_lock_fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    ATTNBENCH_CHECK(m_lock_fd >= 0, io,
                    "cannot open '" << path.string() << "': " << errno_text(errno));
    if (::flock(m_lock_fd, LOCK_EX | LOCK_NB) != 0) {
      const int err = errno;
      std::string holder = read_text_file(path, "lock file");
      holder = holder.substr(0, holder.find('\n'));
      ::close(m_lock_fd);
      m_lock_fd = -1;
      ATTNBENCH_CHECK(err == EWOULDBLOCK, io,
                      "cannot lock '" << path.string() << "': " << errno_text(err));
      ATTNBENCH_BAD_INPUT("output folder '"
                          << m_dir.string() << "' is in use by another attnbench run (pid "
                          << (holder.empty() ? "unknown" : holder) << ", " << path.string()
                          << "); wait for it or use another --out");
    }
    const std::string pid = std::to_string(::getpid()) + "\n";
    ATTNBENCH_CHECK(::ftruncate(m_lock_fd, 0) == 0, io,
                    "cannot write '" << path.string() << "': " << errno_text(errno));
    write_fully(m_lock_fd, pid, path);
  }

  // A folder holding completed cases (or a final report) of an earlier run is never emptied
  // without being asked: a crashed run's stream may be all that is left of its work.
  void refuse_earlier_results(const std::filesystem::path& stream,
                              const std::filesystem::path& final_report) {
    std::string held;
    if (std::filesystem::exists(stream)) {
      try {
        if (const auto n = read_stream(stream).records.size())
          held = std::to_string(n) + " completed case(s) in report.jsonl";
      } catch (const error&) {
        held = "a damaged report.jsonl";
      }
    }
    if (std::filesystem::exists(final_report))
      held += (held.empty() ? "" : " and ") + std::string("report.json");
    if (!held.empty())
      ATTNBENCH_BAD_INPUT("output folder '" << m_dir.string() << "' holds an earlier run (" << held
                                            << "); --resume " << m_dir.string()
                                            << " continues it, --overwrite discards it");
  }

  void read_back(const std::filesystem::path& stream, const std::string& config_hash) {
    const stream_contents s = read_stream(stream);
    const auto refuse = [&](std::size_t line, const std::string& theirs) {
      ATTNBENCH_BAD_INPUT("--resume " << m_dir.string() << ": " << stream.string() << ":" << line
                                      << " was written by another configuration (config hash "
                                      << theirs << ", this run's " << config_hash
                                      << "); rerun with that run's options or use another --out");
    };
    for (const auto& h : s.headers)
      if (h.meta.value("config_hash", std::string()) != config_hash)
        refuse(h.line, h.meta.value("config_hash", std::string("none")));
    std::size_t errors = 0;
    for (std::size_t i = 0; i < s.records.size(); ++i) {
      const record& r = s.records[i];
      if (r.case_id.empty())
        ATTNBENCH_BAD_INPUT("--resume " << m_dir.string() << ": " << stream.string() << ":"
                                        << s.record_lines[i]
                                        << " has no case_id (written before schema 1.1); it "
                                           "cannot be resumed, --overwrite discards it");
      if (r.config_hash != config_hash) refuse(s.record_lines[i], r.config_hash);
      // The last line of a case wins; an error record is run again.
      if (r.status == record_status::error) {
        done.erase(r.case_id);
        ++errors;
      } else {
        done.insert_or_assign(r.case_id, r);
      }
    }
    repair_stream_tail(stream, s);
    resume_info = {{"stream", stream.string()},
                   {"records_read", s.records.size()},
                   {"error_records", errors},
                   {"dropped_line", s.dropped_line}};
  }

  std::filesystem::path m_dir;
  int m_lock_fd = -1;
};

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
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

// The model shape as report meta and the config hash record it.
nlohmann::json shape_json(const model_shape& shape) {
  return {{"name", shape.name},
          {"layers", shape.layers},
          {"q_heads", shape.q_heads},
          {"kv_heads", shape.kv_heads},
          {"head_dim", shape.head_dim}};
}

nlohmann::json result_config(const run_config& config) {
  const auto& o = config.options;
  return {{"workload", config.workload.to_json()},
          {"shape", shape_json(o.shape)},
          {"samples", o.samples},
          {"params", o.params},
          {"trace", o.trace},
          {"quick", o.quick}};
}

int interrupted_exit_code(const report& rep) {
  const std::string by = rep.meta.value("interrupted_by", std::string());
  for (int sig : k_stop_signals)
    if (by == signal_name(sig)) return 128 + sig;
  return 0;
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
      {"shape", shape_json(o.shape)},
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

namespace {

// The jobs of a run, validated. Jobs point into `methods` and `cases`: built in place, never
// moved.
struct sweep {
  std::vector<const suite*> suites;
  std::vector<method_instance> methods;
  std::vector<std::vector<suite_case>> cases;
  std::vector<job> jobs;
  int threads = 1;
  nlohmann::json result;
  std::string config_hash;
  std::vector<record> records;  // each job's identity record
  std::vector<planned_case> plan;
  std::vector<int> shard_of;
  sweep() = default;
  sweep(const sweep&) = delete;
  sweep& operator=(const sweep&) = delete;
};

// Validates everything before anything is written and lists the jobs with their identities,
// costs and shards.
void prepare(const run_config& config, sweep& sw) {
  std::vector<const suite*>& suites = sw.suites;
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
  std::vector<method_instance>& methods = sw.methods;
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
  const int threads = sw.threads =
      config.threads > 0 ? config.threads
                         : std::max(1, static_cast<int>(std::thread::hardware_concurrency()));

  std::vector<std::vector<suite_case>>& cases = sw.cases;
  cases.resize(suites.size());
  std::vector<job>& jobs = sw.jobs;
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

  // Each job's identity: its case id hashes the canonical spec (suite, case, method spec,
  // mode, backend, seed, workload), the per-sample seeds derive from the run seed and the case
  // name (suites/common/suite_helpers.hpp), so neither depends on where the job sits in the list.
  const nlohmann::json workload = config.workload.to_json();
  sw.result = result_config(config);
  sw.config_hash = stable_hash_hex(sw.result.dump());
  sw.records.resize(jobs.size());
  sw.plan.resize(jobs.size());
  std::set<std::string> ids;
  for (std::size_t i = 0; i < jobs.size(); ++i) {
    const record& rec = sw.records[i] = job_record(jobs[i], config, workload, sw.config_hash);
    // Two jobs with one id would be one case counted twice: the spec has lost a distinction.
    ATTNBENCH_CHECK(
        ids.insert(rec.case_id).second, internal,
        "cases " << rec.case_name << " | " << rec.method_spec << " share case id " << rec.case_id);
    planned_case& p = sw.plan[i];
    p.case_id = rec.case_id;
    p.label = rec.case_name + " | " + rec.method_spec;
    if (config.case_costs.empty()) {
      p.cost = predicted_case_cost(*jobs[i].s, *jobs[i].c, *jobs[i].m, config.options);
    } else {
      const auto it = config.case_costs.find(p.case_id);
      if (it == config.case_costs.end())
        ATTNBENCH_BAD_INPUT("the manifest does not plan case " << p.label << " (case " << p.case_id
                                                               << ") of this configuration; "
                                                                  "was it written by another "
                                                                  "attnbench version?");
      p.cost = it->second;
    }
  }
  if (!config.case_costs.empty() && config.case_costs.size() != jobs.size())
    ATTNBENCH_BAD_INPUT("the manifest plans " << config.case_costs.size()
                                              << " cases, this configuration " << jobs.size()
                                              << "; was it written by another attnbench version?");
  if (!config.shard_costs.empty())
    apply_measured_costs(sw.plan, measured_case_seconds(read_report(config.shard_costs),
                                                        config.shard_costs.string()));
  sw.shard_of = assign_shards(sw.plan, config.shard.count);
}

}  // namespace

sweep_plan plan_sweep(const run_config& config) {
  sweep sw;
  prepare(config, sw);
  return {sw.plan, sw.shard_of, sw.config_hash};
}

report run_benchmark(const run_config& config, reporter& out) {
  sweep sw;
  prepare(config, sw);
  const std::vector<job>& jobs = sw.jobs;
  const std::vector<const suite*>& suites = sw.suites;
  std::vector<record>& records = sw.records;
  const std::string& config_hash = sw.config_hash;
  const int threads = sw.threads;
  const shard_choice shard = config.shard;
  // The cases of this shard; every case stays planned.
  std::vector<char> mine(jobs.size(), 1);
  nlohmann::json planned = nlohmann::json::array();
  std::map<std::string, std::size_t> job_of_case;
  std::size_t my_cases = 0;
  for (std::size_t i = 0; i < jobs.size(); ++i) {
    job_of_case.emplace(sw.plan[i].case_id, i);
    mine[i] = sw.shard_of[i] == shard.index;
    my_cases += mine[i];
    nlohmann::json p = {
        {"case_id", sw.plan[i].case_id}, {"label", sw.plan[i].label}, {"cost", sw.plan[i].cost}};
    if (shard.count > 1) p["shard"] = sw.shard_of[i];
    planned.push_back(std::move(p));
  }
  const shard_balance balance = balance_of(sw.plan, sw.shard_of, shard.count);
  if (shard.count > 1 && config.maybe_log)
    *config.maybe_log << "attnbench: shard " << shard.index << "/" << shard.count << ": "
                      << my_cases << " of " << jobs.size() << " cases; predicted makespan / "
                      << "(total / n) = " << std::fixed << std::setprecision(3) << balance.ratio()
                      << std::defaultfloat << "\n";

  // ---- Run. ----------------------------------------------------------------------------
  output_folder folder(config, config_hash);
  const stop_signals signals(config.handle_signals);
  std::vector<char> have(jobs.size(), 0);  // records[i] holds a result (resumed or run)
  std::size_t resumed = 0;
  for (std::size_t i = 0; i < jobs.size(); ++i)
    if (auto it = folder.done.find(records[i].case_id); mine[i] && it != folder.done.end()) {
      records[i] = it->second;
      have[i] = 1;
      ++resumed;
    }

  // Cases of this shard that another folder of the sweep holds finished are not run again.
  nlohmann::json held_elsewhere = nlohmann::json::array();
  for (const auto& path : config.sibling_streams) {
    if (!std::filesystem::exists(path)) continue;
    const stream_contents s = read_stream(path);
    std::map<std::string, record_status> last;
    for (std::size_t r = 0; r < s.records.size(); ++r) {
      if (s.records[r].config_hash != config_hash)
        ATTNBENCH_BAD_INPUT(path.string() << ":" << s.record_lines[r]
                                          << " was written by another configuration (config hash "
                                          << s.records[r].config_hash << ", this run's "
                                          << config_hash << "); it is not part of this sweep");
      last[s.records[r].case_id] = s.records[r].status;
    }
    for (std::size_t i = 0; i < jobs.size(); ++i) {
      const auto it = last.find(records[i].case_id);
      if (!mine[i] || have[i] || it == last.end() || it->second == record_status::error) continue;
      mine[i] = 0;
      --my_cases;
      held_elsewhere.push_back(records[i].case_id);
    }
  }

  retrieval_model model(config.options.shape, config.workload);
  const passkey_calibration calibration(model);
  report rep;
  const std::string start = utc_now();
  rep.meta = make_meta(config, start);
  rep.meta["config"] = sw.result;
  rep.meta["config_hash"] = config_hash;
  rep.meta["planned_cases"] = std::move(planned);
  rep.meta["partial"] = false;
  if (shard.count > 1)
    rep.meta["shard"] = {{"index", shard.index},
                         {"count", shard.count},
                         {"cases", my_cases},
                         {"predicted_makespan_ratio", balance.ratio()}};
  if (!held_elsewhere.empty()) rep.meta["shard"]["held_elsewhere"] = std::move(held_elsewhere);
  if (!folder.resume_info.is_null()) {
    folder.resume_info["records_kept"] = resumed;
    folder.resume_info["not_in_this_run"] =
        std::count_if(folder.done.begin(), folder.done.end(), [&](const auto& d) {
          const auto it = job_of_case.find(d.first);
          return it == job_of_case.end() || !mine[it->second];
        });
    rep.meta["resume"] = folder.resume_info;
  }
  for (const auto* s : suites)
    for (const auto& [k, v] : s->metrics()) rep.metrics[k] = v;

  out.start(rep, my_cases - resumed);
  std::vector<double> seconds(jobs.size(), 0.0);  // wall time of each case run here
  run_context ctx;
  ctx.options = &config.options;
  ctx.model = &model;
  ctx.calibration = &calibration;
  ctx.exec.backend = config.options.backend;
  ctx.exec.threads = 1;  // parallelism is over cases; each case is sequential and deterministic
  ctx.exec.seed = config.options.seed;

#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
  for (std::size_t i = 0; i < jobs.size(); ++i) {
    if (!mine[i] || have[i] || jobs[i].s->exclusive() || g_stop_signal) continue;
    const auto started = std::chrono::steady_clock::now();
    records[i] = run_job(jobs[i], std::move(records[i]), ctx);
    seconds[i] = seconds_since(started);
    have[i] = 1;
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
    if (!mine[i] || have[i] || !jobs[i].s->exclusive() || g_stop_signal) continue;
    const auto started = std::chrono::steady_clock::now();
    records[i] = run_job(jobs[i], std::move(records[i]), solo);
    seconds[i] = seconds_since(started);
    have[i] = 1;
    out.record_done(records[i]);
  }
  // In the jobs' order whatever finished first or came from the stream. After a stop signal,
  // the cases that never ran are left out and the report says why.
  // The wall time of each case run here, for `--shard-costs` of a later sweep.
  nlohmann::json case_seconds = nlohmann::json::object();
  for (std::size_t i = 0; i < jobs.size(); ++i)
    if (seconds[i] > 0) case_seconds[records[i].case_id] = seconds[i];
  rep.meta["case_seconds"] = std::move(case_seconds);
  for (std::size_t i = 0; i < jobs.size(); ++i)
    if (have[i]) rep.records.push_back(std::move(records[i]));
  if (const int sig = g_stop_signal) {
    rep.meta["partial"] = true;
    rep.meta["interrupted_by"] = signal_name(sig);
  }
  rep.meta["end_time"] = utc_now();
  out.finish(rep);
  return rep;
}

}  // namespace attnbench
