#include "app/plan_command.hpp"

#include <algorithm>
#include <filesystem>
#include <iostream>
#include <optional>
#include <set>

#include <boost/program_options.hpp>

#include "app/cli.hpp"
#include "app/runner.hpp"
#include "harness/error.hpp"
#include "reports/file_io.hpp"
#include "reports/json_report.hpp"
#include "reports/render_html.hpp"
#include "reports/schema_validator.hpp"
#include "suites/common/ops/cpu_ops.hpp"
#include "suites/common/ops/op_math.hpp"
#include "suites/common/timing/gbench_timing.hpp"
#include "suites/plan/plan_report.hpp"

namespace po = boost::program_options;

namespace attnbench {

namespace {

// Whole numbers of an option: "--tp 2", in [lo, hi].
std::int64_t bounded(std::int64_t v, std::int64_t lo, std::int64_t hi, const char* option) {
  if (v < lo || v > hi)
    ATTNBENCH_BAD_INPUT(option << " " << v << " is out of range [" << lo << ", " << hi << "]");
  return v;
}

// The latency suite's decode op of `method` on the GPU at the plan's per-GPU heads: one layer
// of `batch` sequences of `context` tokens, timed as the latency suite times it (median of 10
// samples, L2 flushed).
double probe_attention(const plan::memory_model& memory, std::int64_t batch, std::int64_t context) {
  const plan::plan_inputs& in = memory.inputs();
  const method_instance method = resolve_method(in.method.canonical, "cuda");
  op_shape shape;
  shape.phase = "decode";
  shape.batch = static_cast<int>(batch);
  shape.length = context;
  shape.q_heads = memory.q_heads_per_rank();
  shape.kv_heads = memory.kv_heads_per_rank();
  shape.head_dim = in.model.head_dim;
  shape.dtype = in.kv_dtype == "fp16" ? "fp16" : "bf16";
  exec_context exec;
  exec.backend = "cuda";
  std::unique_ptr<op_clock> clock = make_cuda_clock(true);
  exec.stream = clock->stream();
  auto op = make_timed_op(method, shape, exec, nullptr);
  timing_config timing;
  timing.repetitions = 10;
  timing.min_time_s = 0.01;
  timing.warmup_s = 0.05;
  return summarize(time_op("plan probe", *op, *clock, timing).samples_s).median;
}

}  // namespace

int cmd_plan(const std::vector<std::string>& args, const std::vector<std::string>& argv) {
  po::options_description desc(
      "attnbench plan --model M --gpu G [--method SPEC]... [options]\n\n"
      "Capacity planning (docs/planning.md): for a model preset on a GPU preset, per method,\n"
      "the largest batch per context (4K-1M) and what binds it, the largest context per batch,\n"
      "TPOT, TTFT and tokens/s from a roofline measured on the device (--calibration), and the\n"
      "lines vLLM / TensorRT-LLM / SGLang would print. Writes DIR/plan.json, plan.csv and\n"
      "plan.html. Presets: datasets/models/*.json, datasets/gpus/*.json, or a path.\n\n"
      "example: attnbench plan --model llama-3.1-8b --gpu h100-sxm-80gb --method dense "
      "--method kv_quant:bits=4");
  std::string model_name, gpu_name, dtype = "bf16", kv_dtype = "bf16", budget = "vllm:0.9";
  std::string contexts_text, batches_text, calibration, validate_path, out_dir = "attnbench-plan";
  std::vector<std::string> methods;
  std::int64_t tp = 1, page = -1, output_tokens = 0, max_batched = 8192;
  double slo_ms = 0;
  desc.add_options()("help,h", "show this help")("model", po::value(&model_name),
                                                 "model preset name or .json path (required)")(
      "gpu", po::value(&gpu_name), "GPU preset name or .json path, or measured:REPORT (required)")(
      "method", po::value(&methods)->composing(),
      "method spec (repeatable; default dense); needs a planning model (docs/planning.md)")(
      "dtype", po::value(&dtype), "weights: bf16 (default), fp16, fp8, int8, int4")(
      "kv-dtype", po::value(&kv_dtype),
      "full-precision KV elements: bf16 (default), fp16, fp8, fp32")(
      "context", po::value(&contexts_text), "context lengths, e.g. 8k,128k (default 4K..1M)")(
      "batch", po::value(&batches_text), "the heatmap's batches, e.g. 1,8,64 (default 1..1024)")(
      "tp", po::value(&tp), "tensor-parallel GPUs (default 1)")(
      "budget", po::value(&budget),
      "KV pool: vllm:F (default vllm:0.9), trtllm-free:F, sglang:F or bytes:N")(
      "page", po::value(&page), "tokens per KV page (default: the engine's: vLLM 16, TRT-LLM 32)")(
      "output-tokens", po::value(&output_tokens), "tokens generated per request (default 0)")(
      "max-batched-tokens", po::value(&max_batched),
      "prefill chunk the activation estimate is sized for (default 8192)")(
      "slo-tpot-ms", po::value(&slo_ms), "largest batch meeting this time per output token")(
      "calibration", po::value(&calibration),
      "latency report of the device (dense decode + prefill); default: the one shipped for the "
      "GPU preset (datasets/gpus/calibration), else the spec sheet; `spec`: the spec sheet")(
      "confirm", "confirm the SLO batch with up to 3 measured probes on this machine's GPU")(
      "validate", po::value(&validate_path),
      "compare the models with a report's latency (decode) and memory records, then exit")(
      "out", po::value(&out_dir), "output folder (default attnbench-plan)");
  po::variables_map vm;
  po::store(po::command_line_parser(args).options(desc).run(), vm);
  po::notify(vm);
  if (vm.count("help")) {
    std::cout << desc << "\n";
    return 0;
  }
  for (const char* option :
       {"model", "gpu", "calibration", "validate", "dtype", "kv-dtype", "budget", "out"})
    if (vm.count(option) && vm[option].as<std::string>().empty())
      ATTNBENCH_BAD_INPUT("--" << option << " is empty");

  std::optional<plan::device_curves> measured;
  if (!calibration.empty() && calibration != "spec")
    measured = plan::device_curves::from_report(read_report(calibration), calibration);
  if (!validate_path.empty()) {
    if (!measured) ATTNBENCH_BAD_INPUT("--validate needs --calibration REPORT (dense curves)");
    const auto rows = plan::validate(read_report(validate_path), *measured);
    std::cout << plan::validation_table(rows);
    return 0;
  }
  if (model_name.empty()) ATTNBENCH_BAD_INPUT("plan: --model is required (e.g. llama-3.1-8b)");
  if (gpu_name.empty()) ATTNBENCH_BAD_INPUT("plan: --gpu is required (e.g. h100-sxm-80gb)");
  if (out_dir.empty()) ATTNBENCH_BAD_INPUT("--out is empty");

  plan::plan_request request;
  plan::plan_inputs& in = request.base;
  in.model = plan::load_model(model_name);
  in.gpu = plan::load_gpu(gpu_name);
  plan::dtype_bytes(dtype, "--dtype");
  in.dtype = dtype;
  in.kv_dtype = kv_dtype;
  in.tp = static_cast<int>(bounded(tp, 1, 1024, "--tp"));
  in.budget = plan::parse_budget(budget);
  if (vm.count("page")) in.page_tokens = static_cast<int>(bounded(page, 1, 65536, "--page"));
  in.output_tokens = bounded(output_tokens, 0, std::int64_t{1} << 30, "--output-tokens");
  in.max_batched_tokens = bounded(max_batched, 1, 1 << 24, "--max-batched-tokens");
  if (methods.empty()) methods = {"dense"};
  std::set<std::string> seen;
  for (const std::string& spec : methods) {
    method_instance m = resolve_method(spec, "cpu");
    if (seen.insert(m.canonical).second) request.methods.push_back(std::move(m));
  }
  request.contexts = vm.count("context")
                         ? parse_counts(contexts_text, "--context", 1, std::int64_t{1} << 30)
                         : plan::default_contexts();
  request.batches = vm.count("batch") ? parse_counts(batches_text, "--batch", 1, 1 << 20)
                                      : plan::default_batches();
  // Rows and columns in increasing order, whatever order they were given in.
  std::sort(request.contexts.begin(), request.contexts.end());
  std::sort(request.batches.begin(), request.batches.end());
  if (vm.count("slo-tpot-ms")) {
    if (!(slo_ms > 0 && slo_ms <= 1e6))
      ATTNBENCH_BAD_INPUT("--slo-tpot-ms " << slo_ms << " is out of range (0, 1e6]");
    request.slo_tpot_s = slo_ms / 1e3;
  }
  if (vm.count("confirm")) {
    if (!request.slo_tpot_s) ATTNBENCH_BAD_INPUT("--confirm needs --slo-tpot-ms");
    if (query_device_memory().total_bytes == 0)
      ATTNBENCH_BAD_INPUT("--confirm needs a GPU and the CUDA backend");
    request.probe = probe_attention;
  }
  // The speed model's curves: --calibration, else the calibration measured on this GPU preset
  // that ships with attnbench, else the spec sheet (`--calibration spec` asks for it).
  if (!measured && calibration != "spec") {
    if (std::optional<std::string> text = plan::builtin_calibration(in.gpu.name)) {
      const std::string origin = "datasets/gpus/calibration/" + in.gpu.name + ".json";
      measured =
          plan::device_curves::from_report(report_from_json(nlohmann::json::parse(*text)), origin);
    }
  }
  const plan::device_curves curves = measured ? *measured : plan::device_curves::from_spec(in.gpu);
  // run_plan builds every method's model (bad input throws) before anything is printed or written.
  plan::plan_result result = plan::run_plan(request, curves);
  run_config meta_config;
  meta_config.argv = argv;
  result.doc.meta = make_meta(meta_config, utc_now());
  result.doc.meta["plan"] = {{"model", in.model.name},
                             {"model_source", in.model.source},
                             {"gpu", in.gpu.name},
                             {"gpu_source", in.gpu.source},
                             {"speed_source", curves.source()},
                             {"calibration", calibration}};
  const std::vector<std::string> problems = validate_report_json(to_json(result.doc));
  if (!problems.empty())
    throw error(error_id::internal, "the plan report breaks the schema: " + problems.front());
  std::cout << result.table;
  const std::filesystem::path dir(out_dir);
  create_parent_folders(dir / "plan.json");
  write_report_atomic(result.doc, dir / "plan.json");
  write_file_atomic(plan::plan_csv(result.doc), dir / "plan.csv");
  write_file_atomic(render_html(result.doc, {"attnbench plan: " + in.model.display_name + " on " +
                                             in.gpu.display_name}),
                    dir / "plan.html");
  std::cout << "\nreport: " << (dir / "plan.json").string()
            << "\ncsv:    " << (dir / "plan.csv").string()
            << "\nhtml:   " << (dir / "plan.html").string() << "\n";
  return 0;
}

}  // namespace attnbench
