// `attnbench plan`: the memory model against hand-computed bytes, the engine budgets' formulas,
// monotone feasibility, tensor-parallel replication, the calibrated speed model's interpolation,
// and the plan report's shape.
#include <catch2/catch.hpp>

#include <cmath>
#include <random>

#include "harness/error.hpp"
#include "reports/schema_validator.hpp"
#include "suites/plan/plan_report.hpp"

using namespace attnbench;
using namespace attnbench::plan;

namespace {


plan_inputs inputs(const std::string& model, const std::string& method,
                   const std::string& budget = "bytes:80e9") {
  plan_inputs in;
  in.model = load_model(model);
  in.gpu = load_gpu("h100-sxm-80gb");
  in.method = resolve_method(method, "cpu");
  in.budget = parse_budget(budget);
  in.page_tokens = 1;
  return in;
}

// A latency report with dense bf16 decode records at two batches and prefill records, as the
// latency suite writes them.
report synthetic_latency_report() {
  report r;
  auto add = [&](const std::string& phase, int batch, std::int64_t length, double median,
                 double bytes, double tflops) {
    record rec;
    rec.suite = "latency";
    rec.method = "dense";
    rec.method_spec = "dense";
    rec.backend = "cuda";
    rec.axes = {{"phase", phase}, {"batch", batch},   {"length", length}, {"q_heads", 32},
                {"kv_heads", 8},  {"head_dim", 128}, {"dtype", "bf16"}};
    if (phase == "prefill") rec.axes["causal"] = true;
    rec.case_name = "latency(" + phase + "," + std::to_string(batch) + "," +
                    std::to_string(length) + ")";
    rec.metrics["median_s"] = median;
    rec.metrics["tflops"] = tflops;
    rec.extra["kv_bytes_per_call"] = bytes;
    r.records.push_back(rec);
  };
  // 4096 bytes per token of 8 KV heads x 128 x 2 (K, V) x 2 bytes.
  for (int batch : {1, 8})
    for (std::int64_t length : {4096, 16384, 65536}) {
      const double bytes = 4096.0 * static_cast<double>(length) * batch;
      add("decode", batch, length, 10e-6 + bytes / 3e12, bytes, 0);
    }
  add("prefill", 1, 4096, 1e-3, 0, 400);
  add("prefill", 1, 32768, 1e-2, 0, 600);
  r.meta["gpus"] = nlohmann::json::array({{{"name", "test GPU"}}});
  return r;
}

}  // namespace

TEST_CASE("plan: dense KV bytes per token match the hand-computed values", "[plan]") {
  // Llama-3.1-8B bf16: 2 (K, V) x 32 layers x 8 KV heads x 128 x 2 bytes.
  const memory_model llama(inputs("llama-3.1-8b", "dense"));
  CHECK(llama.dense_kv_bytes(1) == 131072);
  CHECK(llama.sequence(1000).kv_bytes == 131072.0 * 1000);
  CHECK(llama.dense_kv_bytes(4096) == 131072.0 * 4096);
  // MLA (DeepSeek-V2-Lite): (kv_lora_rank 512 + rope 64) x 2 bytes x 27 layers.
  const memory_model mla(inputs("deepseek-v2-lite", "dense"));
  CHECK(mla.dense_kv_bytes(1) == 576.0 * 2 * 27);
  CHECK(mla.sequence(8192).kv_bytes == 576.0 * 2 * 27 * 8192);
  // Gemma-2-9B: 21 local layers hold at most 4096 tokens, 21 global ones all; 2 x 8 x 256 x 2
  // bytes per token and layer.
  const memory_model gemma(inputs("gemma-2-9b", "dense"));
  const double per_layer = 2.0 * 8 * 256 * 2;
  CHECK(gemma.sequence(8192).kv_bytes == per_layer * (21 * 8192 + 21 * 4096));
  CHECK(gemma.sequence(2048).kv_bytes == per_layer * 42 * 2048);
  // fp8 KV halves it; fp32 doubles it.
  plan_inputs fp8 = inputs("llama-3.1-8b", "dense");
  fp8.kv_dtype = "fp8";
  CHECK(memory_model(fp8).dense_kv_bytes(1) == 65536);
}

TEST_CASE("plan: a method's KV bytes come from its footprint", "[plan]") {
  // snapkv keeps `budget` tokens per head of every layer.
  const memory_model snap(inputs("llama-3.1-8b", "snapkv:budget=2048"));
  CHECK(snap.sequence(131072).kv_bytes == 131072.0 * 2048);
  CHECK(snap.sequence(1024).kv_bytes == 131072.0 * 1024);
  // streaming_llm: sinks + window.
  const memory_model stream(inputs("llama-3.1-8b", "streaming_llm:sinks=4,window=1020"));
  CHECK(stream.sequence(65536).kv_bytes == 131072.0 * 1024);
  // Page rounding: 1000 tokens in pages of 16 hold 1008.
  plan_inputs paged = inputs("llama-3.1-8b", "dense");
  paged.page_tokens = 16;
  CHECK(memory_model(paged).sequence(1000).kv_bytes == 131072.0 * 1008);
  // A method without a planning model is bad input naming it.
  bool any_without = false;
  for (const method_info* m : method_registry::instance().all())
    if (m->backend == "cpu" && !m->footprint && !m->is_wrapper()) {
      any_without = true;
      plan_inputs in = inputs("llama-3.1-8b", "dense");
      in.method = resolve_method(m->name, "cpu");
      CHECK_THROWS_WITH(memory_model(in), Catch::Contains(m->name) &&
                                              Catch::Contains("no planning model"));
      break;
    }
  CHECK(any_without);
}

TEST_CASE("plan: tensor parallelism splits heads and replicates KV heads past their count",
          "[plan]") {
  plan_inputs in = inputs("llama-3.1-70b", "dense");  // 64 query heads, 8 KV heads
  in.tp = 4;
  const memory_model four(in);
  CHECK(four.kv_heads_per_rank() == 2);
  CHECK_FALSE(four.kv_replicated());
  CHECK(four.dense_kv_bytes(1) == 2.0 * 80 * 2 * 128 * 2);
  in.tp = 16;
  const memory_model sixteen(in);
  CHECK(sixteen.kv_heads_per_rank() == 1);
  CHECK(sixteen.kv_replicated());
  CHECK(sixteen.q_heads_per_rank() == 4);
  in.tp = 3;
  CHECK_THROWS_AS(memory_model(in), error);
  in.tp = 1;
  CHECK(memory_model(in).weight_bytes() == in.model.parameters * 2);
}

TEST_CASE("plan: engine budgets follow their published formulas", "[plan]") {
  const double total = 80 * k_gib;
  for (const char* text : {"vllm:0.9", "trtllm-free:0.9", "sglang:0.85", "bytes:1e10"}) {
    const memory_model m(inputs("llama-3.1-8b", "dense", text));
    const double w = m.weight_bytes(), a = m.activation_bytes(), rt = m.runtime_bytes();
    CHECK(m.total_bytes() == total);
    const std::string engine = text;
    if (engine == "vllm:0.9") CHECK(m.kv_pool_bytes() == Approx(0.9 * total - w - a - rt));
    if (engine == "trtllm-free:0.9")
      CHECK(m.kv_pool_bytes() == Approx(0.9 * (total - w - a - rt)));
    if (engine == "sglang:0.85") CHECK(m.kv_pool_bytes() == Approx(0.85 * total - w));
    if (engine == "bytes:1e10") CHECK(m.kv_pool_bytes() == 1e10);
    CHECK(m.max_batch(4096) ==
          static_cast<std::int64_t>(std::floor(m.kv_pool_bytes() / (131072.0 * 4096))));
  }
  // The weights of a 70B model in bf16 (141 GB) leave no pool on one 80 GB GPU.
  const memory_model big(inputs("llama-3.1-70b", "dense", "vllm:0.9"));
  CHECK(big.kv_pool_bytes() < 0);
  CHECK(big.max_batch(4096) == 0);
  for (const char* bad : {"vllm", "vllm:1.5", "vllm:0", "tgi:0.9", "bytes:-1", "bytes:x"})
    CHECK_THROWS_AS(parse_budget(bad), error);
}

TEST_CASE("plan: feasibility is monotone in batch and context", "[plan]") {
  // feasible(b, c) implies feasible(b', c') for every b' <= b, c' <= c, for every method with a
  // planning model, on random models, GPUs and budgets.
  std::mt19937_64 rng(7);
  const std::vector<std::string> models = {"llama-3.1-8b", "gemma-2-9b", "deepseek-v2-lite",
                                           "qwen2.5-7b", "mixtral-8x7b"};
  std::vector<std::string> methods;
  for (const method_info* m : method_registry::instance().all())
    if (m->backend == "cpu" && m->footprint) methods.push_back(m->name);
  REQUIRE(!methods.empty());
  for (int trial = 0; trial < 60; ++trial) {
    plan_inputs in = inputs(models[rng() % models.size()], methods[rng() % methods.size()],
                            "bytes:" + std::to_string(1e9 * (1 + rng() % 60)));
    in.page_tokens = 1 + static_cast<int>(rng() % 64);
    in.output_tokens = static_cast<std::int64_t>(rng() % 300);
    const memory_model m(in);
    std::vector<std::int64_t> contexts;
    for (int i = 0; i < 6; ++i) contexts.push_back(1 + static_cast<std::int64_t>(rng() % 300000));
    std::sort(contexts.begin(), contexts.end());
    std::int64_t previous = std::numeric_limits<std::int64_t>::max();
    for (std::int64_t c : contexts) {
      const std::int64_t b = m.max_batch(c);
      INFO(in.method.canonical << " on " << in.model.name << " at " << c);
      CHECK(b <= previous);  // a longer context never fits more sequences
      previous = b;
    }
  }
}

TEST_CASE("plan: the speed model reproduces its calibration points and interpolates", "[plan]") {
  const device_curves curves = device_curves::from_report(synthetic_latency_report(), "test");
  CHECK(curves.measured());
  CHECK(curves.bandwidth() == Approx(4096.0 * 65536 * 8 / (10e-6 + 4096.0 * 65536 * 8 / 3e12)));
  // At a measured point: the measured time.
  const double b = 4096.0 * 16384;
  CHECK(curves.decode_seconds(1, b) == Approx(10e-6 + b / 3e12));
  // Between two points: between their times, near the line through them.
  CHECK(curves.decode_seconds(1, 2 * b) > curves.decode_seconds(1, b));
  CHECK(curves.decode_seconds(1, 2 * b) < curves.decode_seconds(1, 4 * b));
  CHECK(curves.decode_seconds(1, 2 * b) == Approx(10e-6 + 2 * b / 3e12).epsilon(0.05));
  // Below the smallest point: down toward the latency floor the first two points extend to.
  CHECK(curves.decode_seconds(1, 1000) == Approx(10e-6 + 1000 / 3e12).epsilon(1e-6));
  // Past the largest: the last segment's bandwidth.
  CHECK(curves.decode_seconds(8, 1e12) == Approx(10e-6 + 1e12 / 3e12).epsilon(1e-6));
  // Between batches: the same total bytes cost about the same on this bandwidth-bound device.
  CHECK(curves.decode_seconds(4, 4 * b) == Approx(10e-6 + 4 * b / 3e12).epsilon(0.15));
  CHECK(curves.decode_seconds(4, 4 * b) > curves.decode_seconds(4, 2 * b));
  CHECK(curves.prefill_flops(4096, true) == Approx(400e12));
  CHECK(curves.prefill_flops(32768, true) == Approx(600e12));
  CHECK(curves.prefill_flops(11585, true) == Approx(500e12).epsilon(0.01));  // log midpoint
  report empty;
  CHECK_THROWS_AS(device_curves::from_report(empty, "empty.json"), error);
}

TEST_CASE("plan: validation predicts the calibration's own dense points exactly", "[plan]") {
  const report r = synthetic_latency_report();
  const device_curves curves = device_curves::from_report(r, "test");
  const std::vector<validation_row> rows = validate(r, curves);
  REQUIRE(rows.size() == 6);
  for (const validation_row& row : rows) CHECK(std::abs(row.error) < 1e-9);
  CHECK_THAT(validation_table(rows), Catch::Contains("median |error| 0.0%"));
}

TEST_CASE("plan: decode time grows with batch and context; sparse reads beat dense far out",
          "[plan]") {
  const device_curves curves = device_curves::from_report(synthetic_latency_report(), "test");
  const memory_model dense(inputs("llama-3.1-8b", "dense"));
  const speed_model dense_speed(dense, curves);
  CHECK(dense_speed.decode(8, 32768).total_s > dense_speed.decode(1, 32768).total_s);
  CHECK(dense_speed.decode(1, 131072).total_s > dense_speed.decode(1, 4096).total_s);
  CHECK(dense_speed.prefill(32768).total_s > dense_speed.prefill(4096).total_s);
  CHECK_FALSE(dense_speed.efficiency_length(1).has_value());  // dense never beats itself
  const memory_model snap(inputs("llama-3.1-8b", "snapkv:budget=2048"));
  const speed_model snap_speed(snap, curves);
  const auto eff = snap_speed.efficiency_length(1);
  REQUIRE(eff.has_value());
  CHECK(*eff > 2048);
  CHECK(*eff <= 4096);
  CHECK(snap_speed.decode(1, 131072).attention_s < dense_speed.decode(1, 131072).attention_s);
}

TEST_CASE("plan: the report is schema-valid with frontier rows and heatmap cells", "[plan]") {
  plan_request request;
  request.base = inputs("llama-3.1-8b", "dense", "vllm:0.9");
  request.base.page_tokens = -1;
  request.methods = {resolve_method("dense", "cpu"), resolve_method("snapkv:budget=2048", "cpu")};
  request.contexts = {4096, 131072, 1 << 20};
  request.batches = {1, 64, 1024};
  request.slo_tpot_s = 0.03;
  const device_curves curves = device_curves::from_spec(request.base.gpu);
  plan_result result = run_plan(request, curves);
  result.doc.meta = {{"tool_version", "test"}, {"git_sha", ""},   {"argv", nlohmann::json::array()},
                     {"start_time", "now"},    {"host", nlohmann::json::object()},
                     {"workload", nlohmann::json::object()}};
  CHECK(validate_report_json(to_json(result.doc)).empty());
  int cells = 0, rows = 0;
  for (const record& rec : result.doc.records) {
    CHECK(rec.suite == "plan");
    if (rec.axes.contains("context") && rec.axes.contains("batch")) ++cells;
    else if (rec.axes.contains("context")) ++rows;
  }
  CHECK(cells == 2 * 3 * 3);
  CHECK(rows == 2 * 3);
  CHECK_THAT(result.table, Catch::Contains("GPU KV cache size:") &&
                               Catch::Contains("Maximum concurrency for 131,072 tokens") &&
                               Catch::Contains("1M*"));
  const std::string csv = plan_csv(result.doc);
  CHECK(csv.rfind("method_spec,model,gpu,tp", 0) == 0);
}
