/// attnbench_cp: the driver of the `cp` suite (DESIGN §5; issue 21), context-parallel attention
/// across GPUs; the schemes are in suites/cp.
/// Run one process per GPU under mpirun (`mpirun -n 4 attnbench_cp --out DIR`; the NCCL unique id
/// goes through MPI) or, without an MPI, one thread per GPU (`attnbench_cp --gpus 4 --out DIR`).
/// Every case is measured with the single-GPU baseline in the same job, checked against an fp32
/// reference, and rank 0 rewrites DIR/report.json atomically after each case, so the cases done
/// survive a crash. The report is an attnbench report (suite "cp") that `attnbench report`,
/// `compare` and `gate` read.
#include <boost/program_options.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "app/cli.hpp"
#include "app/gpu_info.hpp"
#include "app/runner.hpp"
#include "harness/error.hpp"
#include "harness/record.hpp"
#include "reports/json_report.hpp"
#include "reports/stats.hpp"
#include "suites/cp/cp_comm.hpp"
#include "suites/cp/cp_schemes.hpp"

namespace po = boost::program_options;
using nlohmann::json;

namespace attnbench::cp {

namespace {

struct options {
  std::vector<std::string> schemes{"ring", "zigzag", "ulysses", "decode"};
  std::vector<std::string> scalings{"strong"};
  std::vector<std::int64_t> lengths{32768, 131072};
  std::vector<std::string> masks{"causal", "full"};
  std::vector<double> keeps{1.0, 0.125};
  int batch = 8, q_heads = 32, kv_heads = 8, head_dim = 128;
  int repetitions = 5, ref_tokens = 8, gpus = 1;
  std::uint64_t seed = 0;
  std::string out;
  std::vector<std::string> argv;
};

std::vector<std::string> split_list(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ','))
    if (!item.empty()) out.push_back(item);
  return out;
}

std::vector<std::string> checked_list(const std::string& text, const std::string& option,
                                      const std::vector<std::string>& allowed) {
  std::vector<std::string> out = split_list(text);
  ATTNBENCH_CHECK(!out.empty(), bad_input, "--" << option << ": empty list");
  for (const std::string& x : out)
    ATTNBENCH_CHECK(std::find(allowed.begin(), allowed.end(), x) != allowed.end(), bad_input,
                    "--" << option << ": unknown value '" << x << "'");
  return out;
}

options parse(int argc, char** argv) {
  options o;
  std::string schemes = "ring,zigzag,ulysses,decode", scalings = "strong", lengths = "32k,128k",
              masks = "causal,full", keeps = "1,0.125", seed = "0";
  po::options_description desc("attnbench_cp options");
  desc.add_options()("help,h", "this text")(
      "scheme", po::value(&schemes), "ring, zigzag (ring over zigzag shards), ulysses, decode")(
      "scaling", po::value(&scalings),
      "strong (--lengths are totals) and / or weak (--lengths are per GPU)")(
      "lengths", po::value(&lengths), "sequence lengths, e.g. 32k,128k,512k")(
      "mask", po::value(&masks), "causal and / or full (prefill schemes)")(
      "keep", po::value(&keeps), "decode: fractions of the cache kept (1 = all), e.g. 1,0.125")(
      "batch", po::value(&o.batch), "decode: sequences")(
      "q-heads", po::value(&o.q_heads), "query heads")("kv-heads", po::value(&o.kv_heads),
                                                       "KV heads")(
      "head-dim", po::value(&o.head_dim), "64 or 128")(
      "repetitions", po::value(&o.repetitions), "timed repetitions per case (median reported)")(
      "ref-tokens", po::value(&o.ref_tokens), "query positions checked against fp32 per case")(
      "gpus", po::value(&o.gpus), "without mpirun: GPUs (one thread each)")(
      "seed", po::value(&seed), "input seed")("out", po::value(&o.out), "report folder");
  po::variables_map vm;
  try {
    po::store(po::parse_command_line(argc, argv, desc), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    ATTNBENCH_BAD_INPUT(e.what());
  }
  if (vm.count("help")) {
    std::cout << desc << "\n";
    std::exit(0);
  }
  ATTNBENCH_CHECK(!o.out.empty(), bad_input, "--out DIR is required");
  o.schemes = checked_list(schemes, "scheme", {"ring", "zigzag", "ulysses", "decode"});
  o.scalings = checked_list(scalings, "scaling", {"strong", "weak"});
  o.masks = checked_list(masks, "mask", {"causal", "full"});
  o.lengths = parse_counts(lengths, "--lengths", 1, std::int64_t{1} << 30);
  o.keeps.clear();
  for (const std::string& x : split_list(keeps)) {
    char* end = nullptr;
    const double v = std::strtod(x.c_str(), &end);
    ATTNBENCH_CHECK(end && *end == '\0' && v > 0.0 && v <= 1.0, bad_input,
                    "--keep: '" << x << "' is not a fraction in (0, 1]");
    o.keeps.push_back(v);
  }
  ATTNBENCH_CHECK(o.repetitions >= 1 && o.repetitions <= 1000, bad_input,
                  "--repetitions must be in [1, 1000], not " << o.repetitions);
  ATTNBENCH_CHECK(o.ref_tokens >= 1 && o.ref_tokens <= 64, bad_input,
                  "--ref-tokens must be in [1, 64], not " << o.ref_tokens);
  ATTNBENCH_CHECK(o.batch >= 1 && o.batch <= 1024, bad_input,
                  "--batch must be in [1, 1024], not " << o.batch);
  ATTNBENCH_CHECK(o.head_dim == 64 || o.head_dim == 128, bad_input,
                  "--head-dim must be 64 or 128, not " << o.head_dim);
  ATTNBENCH_CHECK(o.q_heads >= 1 && o.kv_heads >= 1 && o.q_heads % o.kv_heads == 0, bad_input,
                  "--q-heads (" << o.q_heads << ") must be a multiple of --kv-heads ("
                                << o.kv_heads << ")");
  o.seed = parse_seed(seed);
  for (int i = 0; i < argc; ++i) o.argv.emplace_back(argv[i]);
  return o;
}

// The per-repetition time of the group: the slowest rank's, repetition by repetition.
std::vector<double> group_times(process_group& g, const std::vector<double>& mine) {
  std::vector<double> out;
  for (double x : mine) out.push_back(g.max(x));
  return out;
}

// Query positions checked against the reference: evenly spread, the last one included.
std::vector<int> ref_positions(int tokens, int count) {
  std::vector<int> out;
  for (int i = 0; i < count; ++i)
    out.push_back(static_cast<int>((static_cast<std::int64_t>(2 * i + 1) * tokens) / (2 * count)));
  out.back() = tokens - 1;
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

std::string run_command(const char* cmd) {
  std::string out;
  if (FILE* p = popen(cmd, "r")) {
    char buf[4096];
    std::size_t n = 0;
    while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
    pclose(p);
  }
  return out;
}

json make_cp_meta(const options& o, process_group& g, const std::string& start) {
  json meta;
  meta["tool"] = "attnbench_cp";
  meta["schema_version"] = k_schema_version;
  meta["argv"] = o.argv;
  meta["start_time"] = start;
  meta["process_group"] = {{"kind", g.kind()}, {"ranks", g.size()}};
  meta["nccl_version"] = cp_device::nccl_version();
  const char* nvls = std::getenv("NCCL_NVLS_ENABLE");
  meta["NCCL_NVLS_ENABLE"] = nvls ? nvls : "";
  meta["nvidia_smi_topo"] = run_command("nvidia-smi topo -m 2>&1");
  const cuda_info info = query_cuda();
  json gpus = json::array();
  for (const gpu_info& x : info.gpus)
    gpus.push_back({{"index", x.index}, {"name", x.name}, {"memory_bytes", x.memory_bytes},
                    {"multiprocessors", x.multiprocessors}});
  meta["gpus"] = gpus;
  meta["cuda_runtime"] = info.runtime_version;
  meta["cuda_driver"] = info.driver_version;
  meta["shape"] = {{"q_heads", o.q_heads}, {"kv_heads", o.kv_heads}, {"head_dim", o.head_dim},
                   {"dtype", "bf16"}};
  return meta;
}

std::map<std::string, metric_info> cp_metrics() {
  return {
      {"time_ms", {"ms", false, "median over repetitions of the slowest rank's forward time"}},
      {"baseline_ms", {"ms", false, "one GPU, same job: the whole sequence (strong) or one GPU's length (weak)"}},
      {"tflops_per_gpu", {"TFLOP/s", true, "attention FLOPs (4 x head_dim per score and query head) / time / GPUs"}},
      {"efficiency", {"fraction", true, "strong: T1 / (P x TP); weak: per-GPU throughput / one GPU's"}},
      {"compute_ms", {"ms", false, "the busiest rank's attention (and merge) time, last repetition"}},
      {"comm_ms", {"ms", false, "the busiest rank's transfer time (NCCL), last repetition"}},
      {"exposed_comm_ms", {"ms", false, "time_ms - compute_ms: communication and waiting not hidden behind compute"}},
      {"rel_l2", {"ratio", false, "relative L2 error against the fp32 reference, checked rows"}},
      {"rel_l2_single_gpu", {"ratio", false, "the same for the one-GPU bf16 baseline"}},
      {"error_gate", {"bool", true, "1 when rel_l2 <= 2 x rel_l2_single_gpu (issue 21's gate)"}},
  };
}

struct case_def {
  std::string scheme, scaling, mask;
  std::int64_t length = 0;  // as given: total (strong) or per GPU (weak)
  double keep = 1.0;
};

std::vector<case_def> plan_cases(const options& o) {
  std::vector<case_def> out;
  for (const std::string& scheme : o.schemes)
    for (const std::string& scaling : o.scalings)
      for (std::int64_t length : o.lengths) {
        if (scheme == "decode") {
          for (double keep : o.keeps) out.push_back({scheme, scaling, "", length, keep});
        } else {
          for (const std::string& mask : o.masks) out.push_back({scheme, scaling, mask, length, 1.0});
        }
      }
  return out;
}

// Attention FLOPs of a prefill over s.tokens tokens (context_parallel.hpp's count).
double prefill_flops(const cp_shape& s) {
  return static_cast<double>(attention_flops(pair_scores(0, s.tokens, 0, s.tokens, s.causal),
                                             s.q_heads, s.head_dim));
}

// A case's identity: suite, method, axes and canonical name, whatever its outcome.
record case_identity(const options& o, const case_def& c, int P) {
  record rec;
  rec.suite = "cp";
  rec.method = rec.method_spec = "dense";
  rec.backend = "cuda";
  rec.mode = c.scheme == "decode" ? "decode" : "prefill";
  rec.seed = o.seed;
  const std::int64_t total = c.scaling == "strong" ? c.length : c.length * P;
  rec.axes = {{"scheme", c.scheme}, {"gpus", P}, {"length", total},
              {"length_per_gpu", total / P}, {"scaling", c.scaling}};
  if (c.scheme == "decode") {
    rec.axes["batch"] = o.batch;
    rec.axes["keep"] = c.keep;
  } else {
    rec.axes["mask"] = c.mask;
  }
  std::ostringstream name;
  name << "cp(";
  bool first = true;
  for (auto it = rec.axes.begin(); it != rec.axes.end(); ++it) {
    name << (first ? "" : ",") << it.key() << "="
         << (it->is_string() ? it->get<std::string>() : it->dump());
    first = false;
  }
  name << ")";
  rec.case_name = name.str();
  rec.case_id = case_id_of(rec, json::object());
  return rec;
}

record run_case(const options& o, const case_def& c, process_group& g, cp_device& dev) {
  const int P = g.size();
  record rec = case_identity(o, c, P);
  const std::int64_t total = rec.axes["length"].get<std::int64_t>();
  ATTNBENCH_CHECK(total <= (std::int64_t{1} << 30), bad_input,
                  "cp: total length " << total << " is over 2^30");

  cp_shape s;
  s.q_heads = o.q_heads;
  s.kv_heads = o.kv_heads;
  s.head_dim = o.head_dim;
  s.tokens = static_cast<int>(total);
  s.causal = c.mask != "full";
  s.batch = o.batch;
  s.keep = c.keep;
  s.seed = static_cast<std::uint32_t>(o.seed);
  const std::vector<int> refs = ref_positions(s.tokens, o.ref_tokens);

  // Out of memory: the schemes allocate before any transfer and agree (allocate_together), so
  // every rank gets here together; a rank that runs out later (its reference check, after the
  // transfers) says so below, and every rank records the case as `oom`.
  cp_measure m;
  std::string oom;
  try {
    if (c.scheme == "ring") m = run_ring(dev, s, layout::contiguous, o.repetitions, refs);
    if (c.scheme == "zigzag") m = run_ring(dev, s, layout::zigzag, o.repetitions, refs);
    if (c.scheme == "ulysses") m = run_ulysses(dev, s, o.repetitions, refs);
    if (c.scheme == "decode") m = run_sharded_decode(dev, s, o.repetitions);
  } catch (const error& e) {
    if (e.id() != error_id::out_of_memory) throw;
    oom = e.what();
  }
  const bool any_oom = g.max(oom.empty() ? 0.0 : 1.0) > 0;
  ATTNBENCH_CHECK(!any_oom, out_of_memory,
                  (oom.empty() ? std::string("cp: another rank ran out of GPU memory") : oom));
  const double time_ms = sample_median(group_times(g, m.ms));
  double compute = 0, comm = 0;
  for (double x : m.compute_ms) compute += x;
  for (double x : m.comm_ms) comm += x;
  compute = g.max(compute);
  comm = g.max(comm);
  const double num = g.sum(m.err_num), den = g.sum(m.err_den);
  // Per-rank, per-step timings for the report (rank 0 gathers them).
  json steps = {{"compute_ms", m.compute_ms}, {"comm_ms", m.comm_ms}};
  const std::vector<std::string> all = g.gather(steps.dump());

  // The single-GPU baseline, on rank 0 while the others wait.
  cp_shape base = s;
  if (c.scaling == "weak") base.tokens = static_cast<int>(c.length);
  cp_measure single;
  std::string single_oom;
  if (g.rank() == 0) {
    try {
      single = run_single_gpu(base, rec.mode, c.scaling == "weak" ? 1 : P, o.repetitions,
                              ref_positions(base.tokens, o.ref_tokens));
    } catch (const error& e) {
      if (e.id() != error_id::out_of_memory) throw;
      single_oom = e.what();
    }
  }
  g.barrier();
  if (g.rank() != 0) return rec;
  if (!single_oom.empty()) {
    // The scheme ran; the one-GPU baseline does not fit (the case context parallelism is for).
    rec.status = record_status::oom;
    rec.reason = "the one-GPU baseline: " + single_oom;
    rec.metrics["time_ms"] = time_ms;
    return rec;
  }

  const double t1 = sample_median(single.ms);
  const double err = den > 0 ? std::sqrt(num / den) : 0.0;
  const double err1 = single.err_den > 0 ? std::sqrt(single.err_num / single.err_den) : 0.0;
  rec.metrics["time_ms"] = time_ms;
  rec.metrics["baseline_ms"] = t1;
  rec.metrics["compute_ms"] = compute;
  rec.metrics["comm_ms"] = comm;
  rec.metrics["exposed_comm_ms"] = std::max(0.0, time_ms - compute);
  rec.metrics["rel_l2"] = err;
  rec.metrics["rel_l2_single_gpu"] = err1;
  rec.metrics["error_gate"] = err <= 2.0 * err1 + 1e-12 ? 1.0 : 0.0;
  if (c.scheme != "decode") {
    const double flops = prefill_flops(s);
    rec.metrics["tflops_per_gpu"] = flops / (time_ms * 1e-3) / P / 1e12;
    if (c.scaling == "strong") {
      rec.metrics["efficiency"] = t1 / (P * time_ms);
    } else {
      const double f1 = prefill_flops(base);
      rec.metrics["efficiency"] = (flops / (P * time_ms)) / (f1 / t1);
    }
  } else {
    // Decode: every GPU reads 1/P of the cache; weak scaling keeps the per-GPU share.
    rec.metrics["efficiency"] =
        c.scaling == "strong" ? t1 / (P * time_ms) : t1 / time_ms;
  }
  json per_rank = json::array();
  for (const std::string& x : all) per_rank.push_back(json::parse(x));
  rec.extra["per_rank"] = per_rank;
  if (c.scheme == "ulysses") {
    const ulysses_plan plan = plan_ulysses(o.q_heads, o.kv_heads, P);
    rec.extra["ulysses"] = {{"kv_replication", plan.kv_replication()}, {"even", plan.even()}};
  }
  if (c.scheme == "decode" && c.keep < 1.0)
    rec.extra["selection"] = "KNorm (smallest key norms) per shard, budget split by shard length";
  return rec;
}

int run_rank(const options& o, process_group& g) {
  const std::string start = utc_now();
  cp_device dev(g);
  report rep;
  if (g.rank() == 0) {
    rep.meta = make_cp_meta(o, g, start);
    rep.metrics = cp_metrics();
  }
  const std::filesystem::path path = std::filesystem::path(o.out) / "report.json";
  int status = 0;
  for (const case_def& c : plan_cases(o)) {
    record rec;
    try {
      rec = run_case(o, c, g, dev);
    } catch (const error& e) {
      // Shape errors are the same on every rank (checked before any transfer) and running out
      // of memory is agreed on (above), so every rank records the case and goes on together.
      if (e.id() != error_id::unsupported && e.id() != error_id::bad_input &&
          e.id() != error_id::out_of_memory)
        throw;
      rec = case_identity(o, c, g.size());
      rec.status =
          e.id() == error_id::out_of_memory ? record_status::oom : record_status::skipped;
      rec.reason = e.what();
      g.barrier();
    }
    if (g.rank() == 0) {
      rep.records.push_back(rec);
      rep.meta["end_time"] = utc_now();
      write_report_atomic(rep, path);
      std::cout << rec.case_name << ": "
                << (rec.status == record_status::ok
                        ? "time " + std::to_string(rec.metrics["time_ms"]) + " ms, efficiency " +
                              std::to_string(rec.metrics.count("efficiency") ? rec.metrics["efficiency"] : 0.0) +
                              ", rel_l2 " + std::to_string(rec.metrics["rel_l2"]) + " (1 GPU " +
                              std::to_string(rec.metrics["rel_l2_single_gpu"]) + ")"
                        : std::string(status_name(rec.status)) + ": " + rec.reason)
                << std::endl;
      if (rec.status == record_status::ok && rec.metrics["error_gate"] < 1.0) status = 1;
    }
  }
  return status;
}

}  // namespace

}  // namespace attnbench::cp

int main(int argc, char** argv) {
  using namespace attnbench;
  try {
    // NCCL's NVLink multicast (NVLS) stays off unless the caller says otherwise (issue 21).
    setenv("NCCL_NVLS_ENABLE", "0", 0);
    const cp::options o = cp::parse(argc, argv);
    auto body = [&](cp::process_group& g) { return cp::run_rank(o, g); };
    if (cp::launched_by_mpi()) return cp::run_mpi_ranks(argc, argv, body);
    return cp::run_thread_ranks(o.gpus, body);
  } catch (const error& e) {
    std::cerr << "attnbench_cp: " << e.what() << "\n";
    return e.id() == error_id::bad_input ? 2 : 1;
  } catch (const std::exception& e) {
    std::cerr << "attnbench_cp: " << e.what() << "\n";
    return 1;
  }
}
