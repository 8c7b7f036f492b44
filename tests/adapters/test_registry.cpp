// The adapters library registers every CPU method (its registrars survive linking) with a
// documented schema.
#include <catch2/catch.hpp>
#include <string>

#include "harness/method.hpp"

using namespace attnbench;

TEST_CASE("the registry holds the CPU methods", "[adapters][registry]") {
  for (const std::string name : {"dense",
                                 "sliding_window",
                                 "streaming_llm",
                                 "h2o",
                                 "tova",
                                 "snapkv",
                                 "pyramidkv",
                                 "knorm",
                                 "random",
                                 "adakv",
                                 "duo",
                                 "lazy_eviction",
                                 "token_retention",
                                 "tca",
                                 "gqa",
                                 "mqa",
                                 "kv_quant",
                                 "topk_oracle",
                                 "block_oracle",
                                 "quest",
                                 "landmark",
                                 "rectified",
                                 "hip",
                                 "nsa",
                                 "longheads",
                                 "ltri",
                                 "dhsa",
                                 "bilevel",
                                 "loki",
                                 "recycled",
                                 "routing",
                                 "hyperattention",
                                 "power",
                                 "neighborhood",
                                 "parallel_context",
                                 "adaptive_head"}) {
    CAPTURE(name);
    const method_info* info = method_registry::instance().find(name, "cpu");
    REQUIRE(info != nullptr);
    CHECK(info->backend == "cpu");
    CHECK_FALSE(info->summary.empty());
    CHECK(info->factory);
    CHECK((name == "dense") == info->paper.empty());
    CHECK((name == "dense" || !info->params.empty()));
    for (const auto& p : info->params) CHECK_FALSE(p.doc.empty());
  }
  CHECK(resolve_method("dense", "cpu").canonical == "dense");
  CHECK(resolve_method("sliding_window", "cpu").canonical == "sliding_window:window=1024");
  CHECK(resolve_method("streaming_llm", "cpu").canonical == "streaming_llm:sinks=4,window=1024");
}
