#include <catch2/catch.hpp>

#include "harness/error.hpp"
#include "harness/method.hpp"
#include "harness/suite.hpp"

using namespace attnbench;

TEST_CASE("methods and suites register themselves", "[registry]") {
  // Which methods: the adapters' conformance table (tests/adapters/conformance.cpp).
  CHECK_FALSE(method_registry::instance().all().empty());
  CHECK(suite_registry::instance().find("niah") != nullptr);
}

TEST_CASE("the methods of the third round are registered", "[registry]") {
  // kvpress's leaderboard presses, quantization, wrappers and the seed papers' training-free
  // methods (methods round 3); attention_sorting and attnrank are posir.reorder settings and
  // attention_buckets is not built (docs/methods.md).
  for (const char* name :
       {"expected_attention", "kvzip", "keydiff", "chunkkv", "lagkv", "think", "qfilter",
        "simlayerkv", "cake", "finch", "compactor", "criticalkv", "kv_quant", "kvquant",
        "per_layer", "decoding", "chunk", "key_rerotation", "anchor", "block_sparse_icl",
        "infinite_hip", "strided_heads", "shifted_groups", "found_in_the_middle", "sigmoid",
        "gated"}) {
    CAPTURE(name);
    CHECK(method_registry::instance().find(name, "cpu") != nullptr);
  }
}

TEST_CASE("resolve_method rejects unknown methods with the known list", "[registry]") {
  try {
    resolve_method("nosuch:budget=3", "cpu");
    FAIL("no exception");
  } catch (const error& e) {
    CHECK(e.id() == error_id::bad_input);
    CHECK(std::string(e.what()).find("unknown method 'nosuch'") != std::string::npos);
    CHECK(std::string(e.what()).find("dense") != std::string::npos);
  }
  auto inst = resolve_method("streaming_llm:window=64", "cpu");
  CHECK(inst.canonical == "streaming_llm:sinks=4,window=64");
}

TEST_CASE("with_budget sets a wrapper's own budget or its inner one", "[registry]") {
  // chunk's budget is the inner method's.
  auto chunk = with_budget(resolve_method("chunk(knorm:keep=0.5):chunk=64", "cpu"), 256);
  REQUIRE(chunk);
  CHECK(chunk->canonical == "chunk(knorm:budget=256):chunk=64");
  CHECK(chunk->create() != nullptr);
  // decoding has its own.
  auto decoding = with_budget(resolve_method("decoding(knorm):keep=0.5", "cpu"), 100);
  REQUIRE(decoding);
  CHECK(decoding->canonical == "decoding(knorm:budget=1024):budget=100,buffer=256,interval=512");
  // per_layer takes a list per layer, kv_quant no budget at all.
  CHECK_FALSE(with_budget(resolve_method("per_layer(knorm):budgets=4", "cpu"), 100));
  CHECK_FALSE(with_budget(resolve_method("kv_quant", "cpu"), 100));
  CHECK_THROWS_AS(with_budget(resolve_method("snapkv", "cpu"), 0), error);
}

TEST_CASE("shape presets", "[registry]") {
  auto s = shape_preset("llama3-8b");
  CHECK(s.q_heads == 32);
  CHECK(s.kv_heads == 8);
  CHECK(s.head_dim == 128);
  CHECK(s.group_size() == 4);
  CHECK_THROWS_AS(shape_preset("gpt5"), error);
}

TEST_CASE("case names are canonical", "[suite]") {
  CHECK(case_name("niah", {{"length", 4096}, {"depth", 0.5}, {"needle", "number"}}) ==
        "niah(length=4096,depth=0.5,needle=number)");
  CHECK(case_name("niah", {{"depth", 0.1}}) == "niah(depth=0.1)");
}
