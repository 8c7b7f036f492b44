#include <catch2/catch.hpp>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <map>

#include <nlohmann/json.hpp>

#include "harness/error.hpp"
#include "harness/record.hpp"
#include "suites/plan/presets.hpp"

using namespace attnbench;
using namespace attnbench::plan;
using Catch::Matchers::Contains;
using nlohmann::json;

namespace {

namespace fs = std::filesystem;

fs::path scratch() {
  static const fs::path dir = [] {
    auto d = fs::temp_directory_path() / ("attnbench-plan-" + std::to_string(::getpid()));
    fs::create_directories(d);
    return d;
  }();
  return dir;
}

fs::path write_file(const std::string& name, const std::string& text) {
  const fs::path p = scratch() / name;
  std::ofstream(p) << text;
  return p;
}

/// The message of the bad_input error `f` throws; a marker string when it throws nothing or
/// another kind of error, so that a CHECK_THAT on the message fails with something readable.
std::string bad_input_message(const std::function<void()>& f) {
  try {
    f();
  } catch (const error& e) {
    if (e.id() == error_id::bad_input) return e.what();
    return std::string("<not bad_input: ") + e.what() + ">";
  }
  return "<no exception>";
}

// A valid model document to break one field at a time.
json small_model() {
  return {{"name", "tiny"},
          {"display_name", "Tiny"},
          {"source", "test"},
          {"layers", 4},
          {"hidden_size", 256},
          {"q_heads", 8},
          {"kv_heads", 2},
          {"head_dim", 32},
          {"intermediate_size", 512},
          {"vocab_size", 1000},
          {"max_position_embeddings", 4096},
          {"parameters", 3.5e6},
          {"tie_word_embeddings", true}};
}

json small_gpu() {
  return {{"name", "toy"},   {"display_name", "Toy GPU"}, {"source", "test"},
          {"memory_gb", 16}, {"bandwidth_tb_per_s", 1.5}, {"bf16_tflops", 100},
          {"fp8_tflops", 0}};
}

}  // namespace

TEST_CASE("every model preset loads and its bf16 KV bytes per token match the config", "[plan]") {
  // 2 (K and V) x kv_heads x head_dim x 2 bytes x layers, worked out by hand from each
  // config.json; MLA: (kv_lora_rank + qk_rope_head_dim) x 2 bytes x layers.
  const std::map<std::string, double> expected = {
      {"llama-3.1-8b", 131072},     // 2 * 8 * 128 * 2 * 32
      {"llama-3.1-70b", 327680},    // 2 * 8 * 128 * 2 * 80
      {"llama-3.2-1b", 32768},      // 2 * 8 * 64 * 2 * 16
      {"llama-3.2-3b", 114688},     // 2 * 8 * 128 * 2 * 28
      {"mistral-7b-v0.3", 131072},  // 2 * 8 * 128 * 2 * 32
      {"mixtral-8x7b", 131072},     // 2 * 8 * 128 * 2 * 32
      {"qwen2.5-7b", 57344},        // 2 * 4 * 128 * 2 * 28
      {"qwen2.5-32b", 262144},      // 2 * 8 * 128 * 2 * 64
      {"qwen2.5-72b", 327680},      // 2 * 8 * 128 * 2 * 80
      {"qwen3-8b", 147456},         // 2 * 8 * 128 * 2 * 36
      {"gemma-2-9b", 344064},       // 2 * 8 * 256 * 2 * 42
      {"deepseek-v2-lite", 31104},  // (512 + 64) * 2 * 27
  };
  std::vector<std::string> names;
  for (const auto& [name, bytes] : expected) names.push_back(name);
  CHECK(model_names() == names);  // a preset without a row here fails

  for (const auto& [name, bytes] : expected) {
    INFO(name);
    const model_preset m = load_model(name);
    CHECK(m.name == name);
    CHECK(m.kv_bytes_per_token_layer(2) * m.layers == bytes);
    CHECK(m.q_heads % m.kv_heads == 0);
    CHECK(m.parameters > 1e9);
    CHECK(m.source.rfind("https://huggingface.co/", 0) == 0);
  }
}

TEST_CASE("model presets carry the structure their configs publish", "[plan]") {
  const model_preset llama = load_model("Llama-3.1-8B");  // any case
  CHECK(llama.layers == 32);
  CHECK(llama.dense_kv_bytes(1000, 2) == 1000.0 * 131072);
  CHECK_FALSE(llama.mla);
  CHECK_FALSE(llama.moe);

  const model_preset qwen = load_model("qwen2.5-7b");
  CHECK(qwen.kv_heads == 4);
  CHECK(qwen.layers == 28);

  // Gemma-2: layers 0, 2, 4, ... attend a 4096-token window, 1, 3, 5, ... everything.
  const model_preset gemma = load_model("gemma-2-9b");
  CHECK(gemma.is_local_layer(0));
  CHECK_FALSE(gemma.is_local_layer(1));
  CHECK(gemma.is_local_layer(40));
  CHECK_FALSE(gemma.is_local_layer(41));
  CHECK(gemma.dense_kv_bytes(8192, 2) == (21.0 * 8192 + 21.0 * 4096) * (2 * 8 * 256 * 2));
  CHECK(gemma.dense_kv_bytes(2048, 2) == 42.0 * 2048 * (2 * 8 * 256 * 2));

  const model_preset ds = load_model("deepseek-v2-lite");
  REQUIRE(ds.mla);
  CHECK(ds.mla->kv_lora_rank == 512);
  CHECK(ds.mla->qk_rope_head_dim == 64);
  CHECK(ds.kv_heads == 1);
  CHECK(ds.head_dim == 192);
  REQUIRE(ds.moe);
  CHECK(ds.moe->experts == 64);
  CHECK(ds.moe->experts_per_token == 6);
  CHECK(ds.moe->shared_experts == 2);
  CHECK(ds.moe->expert_intermediate_size == 1408);
  CHECK(ds.moe->first_dense_layers == 1);
  CHECK(ds.dense_kv_bytes(4096, 2) == 4096.0 * (512 + 64) * 2 * 27);

  const model_preset mixtral = load_model("mixtral-8x7b");
  REQUIRE(mixtral.moe);
  CHECK(mixtral.moe->experts == 8);
  CHECK(mixtral.moe->experts_per_token == 2);
}

TEST_CASE("a sliding-window pattern of 1 makes every layer local", "[plan]") {
  json j = small_model();
  j["sliding_window"] = 100;
  j["sliding_window_pattern"] = 1;
  const model_preset m = parse_model(j.dump(), "test");
  for (int l = 0; l < m.layers; ++l) CHECK(m.is_local_layer(l));
  CHECK(m.dense_kv_bytes(1000, 1) == 4.0 * 100 * (2 * 2 * 32));
}

TEST_CASE("every GPU preset loads with positive numbers", "[plan]") {
  const std::vector<std::string> names = {"a100-80gb", "b200", "h100-sxm-80gb",
                                          "h200",      "l40s", "rtx-4090"};
  CHECK(gpu_names() == names);
  for (const auto& name : names) {
    INFO(name);
    const gpu_preset g = load_gpu(name);
    CHECK(g.name == name);
    CHECK(g.memory_bytes > 0);
    CHECK(g.bandwidth_bytes_per_s > 0);
    CHECK(g.bf16_flops > 0);
    CHECK(g.fp8_flops >= 0);
    CHECK_FALSE(g.measured);
  }
  // Datasheet capacities are binary; TB/s and TFLOP/s decimal.
  const gpu_preset h100 = load_gpu("H100-SXM-80GB");
  CHECK(h100.memory_bytes == 80.0 * 1024 * 1024 * 1024);
  CHECK(h100.bandwidth_bytes_per_s == Approx(3.35e12));
  CHECK(h100.bf16_flops == Approx(989e12));
  CHECK(h100.fp8_flops == Approx(1979e12));
  CHECK(load_gpu("a100-80gb").fp8_flops == 0);
}

TEST_CASE("bad model presets are bad input naming the field", "[plan]") {
  auto message_for = [](const json& j) {
    return bad_input_message([&] { parse_model(j.dump(), "tiny.json"); });
  };
  REQUIRE_NOTHROW(parse_model(small_model().dump(), "tiny.json"));

  json unknown = small_model();
  unknown["num_layers"] = 4;
  CHECK_THAT(message_for(unknown), Contains("tiny.json") && Contains("unknown field 'num_layers'"));

  json missing = small_model();
  missing.erase("head_dim");
  CHECK_THAT(message_for(missing), Contains("missing field 'head_dim'"));

  json negative = small_model();
  negative["layers"] = -3;
  CHECK_THAT(message_for(negative), Contains("'layers'") && Contains("-3"));

  json real_count = small_model();
  real_count["kv_heads"] = 2.0;
  CHECK_THAT(message_for(real_count), Contains("'kv_heads'") && Contains("integer"));

  json wrong_type = small_model();
  wrong_type["tie_word_embeddings"] = "yes";
  CHECK_THAT(message_for(wrong_type), Contains("'tie_word_embeddings'"));

  json zero_params = small_model();
  zero_params["parameters"] = 0;
  CHECK_THAT(message_for(zero_params), Contains("'parameters'"));

  json groups = small_model();
  groups["kv_heads"] = 3;
  CHECK_THAT(message_for(groups), Contains("'q_heads'") && Contains("'kv_heads'"));

  json half_window = small_model();
  half_window["sliding_window"] = 128;
  CHECK_THAT(message_for(half_window), Contains("'sliding_window_pattern'"));

  json mla = small_model();
  mla["mla"] = {{"kv_lora_rank", 64}, {"qk_rope_head_dim", 16}, {"qk_nope_head_dim", 16}};
  CHECK_THAT(message_for(mla), Contains("'mla'") && Contains("missing field 'v_head_dim'"));
  mla["mla"]["v_head_dim"] = 16;
  CHECK_THAT(message_for(mla), Contains("'kv_heads'"));  // MLA shares one latent

  json moe = small_model();
  moe["moe"] = {{"experts", 4},
                {"experts_per_token", 5},
                {"shared_experts", 0},
                {"expert_intermediate_size", 64},
                {"first_dense_layers", 0}};
  CHECK_THAT(message_for(moe), Contains("'experts_per_token'"));

  json upper = small_model();
  upper["name"] = "Tiny";
  CHECK_THAT(message_for(upper), Contains("'name'"));

  CHECK_THAT(bad_input_message([] { parse_model("{\"name\": ", "broken.json"); }),
             Contains("broken.json") && Contains("not valid JSON"));
  CHECK_THAT(bad_input_message([] { parse_model("[1, 2]", "array.json"); }),
             Contains("array.json") && Contains("object"));
}

TEST_CASE("preset files are read from a path and their name must be the stem", "[plan]") {
  json j = small_model();
  j["name"] = "my-model";
  const fs::path good = write_file("my-model.json", j.dump());
  const model_preset m = load_model(good.string());
  CHECK(m.name == "my-model");
  CHECK(m.kv_bytes_per_token_layer(2) == 2.0 * 2 * 32 * 2);

  const fs::path renamed = write_file("other-name.json", j.dump());
  CHECK_THAT(bad_input_message([&] { load_model(renamed.string()); }),
             Contains("'name'") && Contains("other-name"));

  json g = small_gpu();
  const fs::path gpu_file = write_file("toy.json", g.dump());
  const gpu_preset toy = load_gpu(gpu_file.string());
  CHECK(toy.memory_bytes == 16.0 * 1024 * 1024 * 1024);
  CHECK(toy.bandwidth_bytes_per_s == Approx(1.5e12));

  CHECK_THAT(bad_input_message([&] { load_model((scratch() / "absent.json").string()); }),
             Contains("absent.json"));
  const fs::path not_json = write_file("garbage.json", "layers = 32\n");
  CHECK_THAT(bad_input_message([&] { load_model(not_json.string()); }),
             Contains("garbage.json") && Contains("not valid JSON"));
}

TEST_CASE("bad GPU presets and unknown names are bad input", "[plan]") {
  auto message_for = [](const json& j) {
    return bad_input_message([&] { parse_gpu(j.dump(), "toy.json"); });
  };
  REQUIRE_NOTHROW(parse_gpu(small_gpu().dump(), "toy.json"));

  json unknown = small_gpu();
  unknown["tdp_w"] = 700;
  CHECK_THAT(message_for(unknown), Contains("unknown field 'tdp_w'"));
  json missing = small_gpu();
  missing.erase("bandwidth_tb_per_s");
  CHECK_THAT(message_for(missing), Contains("missing field 'bandwidth_tb_per_s'"));
  json negative = small_gpu();
  negative["memory_gb"] = -80;
  CHECK_THAT(message_for(negative), Contains("'memory_gb'"));
  json zero = small_gpu();
  zero["bf16_tflops"] = 0;
  CHECK_THAT(message_for(zero), Contains("'bf16_tflops'"));

  const std::string model_msg = bad_input_message([] { load_model("llama-9"); });
  CHECK_THAT(model_msg,
             Contains("'llama-9'") && Contains("llama-3.1-8b") && Contains("deepseek-v2-lite"));
  const std::string gpu_msg = bad_input_message([] { load_gpu("h300"); });
  CHECK_THAT(gpu_msg, Contains("'h300'") && Contains("h100-sxm-80gb") && Contains("measured:"));
}

namespace {

json latency_record(const std::string& method, const std::string& phase, const std::string& dtype,
                    const std::string& status, const std::string& metric, double value) {
  return {{"suite", "latency"},
          {"case", "latency/" + phase},
          {"axes", {{"backend", "cuda"}, {"phase", phase}, {"dtype", dtype}, {"length", 4096}}},
          {"method", method},
          {"method_spec", method},
          {"params", json::object()},
          {"backend", "cuda"},
          {"mode", "synthetic"},
          {"seed", 1},
          {"status", status},
          {"metrics", {{metric, value}}}};
}

json measured_report(json gpus, json records) {
  return {{"schema_version", k_schema_version},
          {"meta", {{"tool", "attnbench"}, {"gpus", std::move(gpus)}}},
          {"metric_info", json::object()},
          {"records", std::move(records)}};
}

}  // namespace

TEST_CASE("measured:REPORT takes the device from a latency report", "[plan]") {
  const json gpus = json::array(
      {{{"index", 0}, {"name", "NVIDIA H100 80GB HBM3"}, {"memory_bytes", 85028896768.0}}});
  const json records = json::array({
      latency_record("dense", "decode", "bf16", "ok", "kv_gbps", 2900),
      latency_record("dense", "decode", "bf16", "ok", "kv_gbps", 3100),
      latency_record("dense", "decode", "bf16", "error", "kv_gbps", 9000),  // not ok
      latency_record("quest", "decode", "bf16", "ok", "kv_gbps", 5000),     // not dense
      latency_record("dense", "prefill", "bf16", "ok", "tflops", 610),
      latency_record("dense", "prefill", "fp16", "ok", "tflops", 700),  // not bf16
  });
  const fs::path path = write_file("latency.json", measured_report(gpus, records).dump());

  const gpu_preset g = load_gpu("measured:" + path.string());
  CHECK(g.measured);
  CHECK(g.display_name == "NVIDIA H100 80GB HBM3 (measured)");
  CHECK(g.memory_bytes == 85028896768.0);
  CHECK(g.bandwidth_bytes_per_s == Approx(3100e9));
  CHECK(g.bf16_flops == Approx(610e12));
  CHECK(g.fp8_flops == 0);
  CHECK_THAT(g.source, Contains(path.string()));

  const fs::path cpu_only = write_file("cpu.json", measured_report(json::array(), records).dump());
  CHECK_THAT(bad_input_message([&] { load_gpu("measured:" + cpu_only.string()); }),
             Contains("cpu.json") && Contains("no GPU"));

  const fs::path decode_only = write_file(
      "decode.json",
      measured_report(
          gpus, json::array({latency_record("dense", "decode", "bf16", "ok", "kv_gbps", 3000)}))
          .dump());
  CHECK_THAT(bad_input_message([&] { load_gpu("measured:" + decode_only.string()); }),
             Contains("decode.json") && Contains("prefill"));

  const fs::path prefill_only = write_file(
      "prefill.json",
      measured_report(
          gpus, json::array({latency_record("dense", "prefill", "bf16", "ok", "tflops", 600)}))
          .dump());
  CHECK_THAT(bad_input_message([&] { load_gpu("measured:" + prefill_only.string()); }),
             Contains("prefill.json") && Contains("kv_gbps"));

  const fs::path not_report = write_file("not_report.json", "{\"records\": []}");
  CHECK_THAT(bad_input_message([&] { load_gpu("measured:" + not_report.string()); }),
             Contains("not_report.json") && Contains("schema_version"));
  CHECK_THAT(bad_input_message([] { load_gpu("measured:"); }), Contains("measured:"));
}
