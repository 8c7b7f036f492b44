// The adapter conformance table: one row per registered CPU method, and the checks every method
// shares run over every row. A row states
//   (a) the specs whose budget covers the context, which must equal dense (outputs within the
//       float32 tolerance, and the stats the method keeps equal to dense's);
//   (b) its budget semantics: how `budget` / `keep` resolve to stats().budget_tokens and what
//       each KV head holds after prefill;
//   (c) the runs that must be identical at any thread count;
//   (d) the specs parameter validation rejects (with the message) and canonical spellings.
// Hooks (a calibration, a layer, an edit of the random Q/K/V) let a row set up what its method
// needs; hand-built, paper-specific cases stay in the method's own test_<method>.cpp. A
// registered CPU method without a row fails "every registered CPU method has a conformance row".
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <functional>
#include <memory>
#include <numeric>
#include <string>
#include <tuple>
#include <vector>

#include "harness/method.hpp"
#include "tests/adapters/calibration_fixture.hpp"
#include "tests/adapters/method_run.hpp"
#include "tests/adapters/reference.hpp"

using namespace attnbench;
using test::budget_case;
using test::budget_setup;
using test::dense_stats;

namespace {

/// What a case hands prepare beside the shape: a layer index and calibration data.
struct problem_setup {
  int layer = 0;
  /// Calibration of the case's shape (duo, tca, loki), or none.
  std::function<std::shared_ptr<const calibration_source>(const model_shape&)> maybe_calibration;
  /// attention_problem::question_tokens: the prompt's last tokens are a question (finch).
  std::int64_t question_tokens = 0;
  bool rope = false;  // give the problem a RoPE over every dim (base 10000): key_rerotation
};

/// A problem_setup with a RoPE.
problem_setup with_rope() { return {.rope = true}; }

/// Random calibration (test::random_calibration) of `layers` layers, 64 tokens, answers from 60.
problem_setup with_random_calibration(int layers, std::uint64_t seed, int layer = 0) {
  return {layer, [layers, seed](const model_shape& shape) {
            return std::make_shared<const test::fake_calibration>(
                test::random_calibration(shape, layers, 64, 60, seed));
          }};
}

/// A hand-built calibration of calibration_fixture.hpp.
problem_setup with_calibration(test::fake_calibration (*make)(const model_shape&), int layer = 0) {
  return {layer, [make](const model_shape& shape) {
            return std::make_shared<const test::fake_calibration>(make(shape));
          }};
}

/// Decode steps of an equal-to-dense case.
enum class decode_steps {
  within_budget,  // test::decode_steps_within_budget(spec): none for keep=1 (it covers the prompt)
  fixed,          // {1, 2, 1}: the method never evicts while decoding
};

/// (a) Specs that equal dense, run for every (q_heads, kv_heads) of `heads` and every context:
/// seeded random Q/K/V (qkv_seed) of head_dim 64, `context` prompt tokens, then the decode steps.
struct dense_group {
  std::vector<std::string> specs;
  dense_stats same;
  decode_steps steps = decode_steps::within_budget;
  std::vector<std::tuple<int, int>> heads = {{8, 2}, {4, 4}};
  std::vector<int> contexts = {1, 50, 300};
  int layers = 1;
  std::uint64_t qkv_seed = 3;
  problem_setup setup = {};
  std::function<void(test::qkv&)> maybe_edit_qkv = {};
};

/// (b) What a KV head holds after prefill, given budget_case::resident.
enum class resident_rule {
  every_head,       // every KV head holds `resident` (test::check_budget_resolution)
  shared_by_heads,  // the heads hold kv_heads x `resident` together (per-head budgets, adakv)
  streaming_heads,  // two KV heads: a streaming head holds `resident`, a retrieval head the context
};

/// (b) Budget / keep resolution cases on one shape.
struct budget_group {
  model_shape shape;
  std::vector<budget_case> cases;
  budget_setup setup = {};
  resident_rule rule = resident_rule::every_head;
  problem_setup problem = {};
};

/// (c) A run that must be identical at 1 and `threads` threads: seeded random Q/K/V (qkv_seed),
/// `context` prompt tokens, then the decode steps. The defaults are the decode-eviction case of
/// test::check_same_at_thread_counts.
struct thread_case {
  std::string spec;
  model_shape shape = {"test", 1, 8, 4, 32};
  int context = 200;
  std::vector<int> steps = std::vector<int>(50, 2);
  std::uint64_t qkv_seed = 12;
  int threads = 2;
  std::uint64_t seed = 0;  // exec_context::seed
  problem_setup setup = {};
};

/// (d) A spec resolve_method rejects, and a piece of its message.
struct bad_input_case {
  std::string spec;
  std::string message;
};

/// (d) A spec and its canonical form.
struct canonical_case {
  std::string spec;
  std::string canonical;
};

struct conformance_row {
  std::string name;
  std::vector<dense_group> dense;
  std::vector<budget_group> budgets;
  std::vector<thread_case> threads;
  std::vector<bad_input_case> bad_inputs;
  std::vector<canonical_case> canonical = {};
};

// Shapes of the budget tables: {layers, q_heads, kv_heads, head_dim}.
const model_shape gqa_2x1_d8{"test", 1, 2, 1, 8};
const model_shape gqa_4x2_d8{"test", 1, 4, 2, 8};
const model_shape gqa_6x3_d16{"test", 1, 6, 3, 16};

std::vector<conformance_row> conformance_table() {
  using s = decode_steps;
  using r = resident_rule;
  std::vector<conformance_row> rows;
  // Eviction and prompt-compression methods.
  rows.push_back({
      "dense",
      {{{"dense"}, dense_stats::all}},
      {},
      {},
      {{"dense:window=4", "unknown parameter 'window'"}},
      {{"dense", "dense"}},
  });
  rows.push_back({
      "sliding_window",
      {{{"sliding_window:window=400", "sliding_window:keep=1"}, dense_stats::reads}},
      {{gqa_2x1_d8,
        {{"sliding_window", 2000, 1024, 1024},
         {"sliding_window:window=10", 100, 10, 10},
         {"sliding_window:budget=12", 100, 12, 12},
         {"sliding_window:window=10,budget=12", 100, 12, 12},
         {"sliding_window:keep=0.25", 100, 25, 25},
         {"sliding_window:keep=0.25,budget=3", 100, 25, 25}},
        {.queries = false}}},
      {},
      {{"sliding_window:window=0", "parameter 'window' = 0 is out of range"},
       {"sliding_window:budget=0", "parameter 'budget' = 0 is out of range"},
       {"sliding_window:keep=1.5", "parameter 'keep' = 1.5 is out of range"},
       {"sliding_window:keep=0", "parameter 'keep' = 0 is out of range"},
       {"sliding_window:window=abc", "parameter 'window' expects an integer, got 'abc'"},
       {"sliding_window:sinks=4", "unknown parameter 'sinks' (known: window, budget, keep)"}},
      {{"sliding_window", "sliding_window:window=1024"}},
  });
  rows.push_back({
      "streaming_llm",
      {{{"streaming_llm:sinks=4,window=400", "streaming_llm:sinks=0,budget=400",
         "streaming_llm:sinks=100,window=300"},
        dense_stats::reads}},
      {{gqa_2x1_d8,
        {{"streaming_llm", 2000, 1028, 1028},
         {"streaming_llm:sinks=4,window=10", 100, 14, 14},
         {"streaming_llm:sinks=4,budget=10", 100, 10, 10},
         {"streaming_llm:keep=0.1", 100, 10, 10},
         {"streaming_llm:sinks=8,budget=5", 100, 9, 9},
         {"streaming_llm:sinks=4,window=10", 8, 14, 8}},
        {.queries = false}}},
      {},
      {{"streaming_llm:sinks=-1", "parameter 'sinks' = -1 is out of range"},
       {"streaming_llm:window=0", "parameter 'window' = 0 is out of range"},
       {"streaming_llm:windw=3", "unknown parameter 'windw' (known: sinks, window, budget, keep)"}},
      {{"streaming_llm", "streaming_llm:sinks=4,window=1024"},
       {"streaming_llm:window=2k", "streaming_llm:sinks=4,window=2048"}},
  });
  rows.push_back({
      "h2o",
      // protocol=kvpress never evicts while decoding: a budget covering the prompt is enough.
      {{{"h2o:budget=400", "h2o:keep=1", "h2o:budget=304,recent_ratio=0,chunk=7",
         "h2o:protocol=h2o,budget=400", "h2o:protocol=kvpress,budget=300",
         "h2o:protocol=kvpress,keep=1"},
        dense_stats::reads}},
      {{gqa_4x2_d8,
        {{"h2o", 2000, 1024, 1024},
         {"h2o:budget=12", 100, 12, 12},
         {"h2o:keep=0.25", 100, 25, 25},
         {"h2o:keep=0.25,budget=3", 100, 25, 25},
         {"h2o:keep=0.001", 100, 1, 1},
         {"h2o:budget=12", 8, 12, 8},
         {"h2o:protocol=kvpress,budget=12", 100, 12, 12},
         {"h2o:protocol=kvpress,keep=0.25", 100, 25, 25},
         {"h2o:protocol=kvpress,budget=12", 8, 12, 8}},
        {.decode_room = 1}}},
      {{"h2o:budget=64,chunk=16"}, {"h2o:protocol=kvpress,budget=64"}},
      {{"h2o:budget=0", "parameter 'budget' = 0 is out of range"},
       {"h2o:keep=0", "parameter 'keep' = 0 is out of range"},
       {"h2o:keep=1.5", "parameter 'keep' = 1.5 is out of range"},
       {"h2o:recent_ratio=1.5", "parameter 'recent_ratio' = 1.5 is out of range"},
       {"h2o:recent_ratio=-0.1", "parameter 'recent_ratio' = -0.1 is out of range"},
       {"h2o:chunk=0", "parameter 'chunk' = 0 is out of range"},
       {"h2o:chunk=x", "parameter 'chunk' expects an integer, got 'x'"},
       {"h2o:recent=3",
        "unknown parameter 'recent' (known: budget, keep, protocol, recent_ratio, chunk)"},
       {"h2o:protocol=snapkv", "parameter 'protocol' = 'snapkv' is not one of: h2o, kvpress"}},
      // protocol is unset unless given, so specs written before it keep their canonical form.
      {{"h2o:budget=2k", "h2o:budget=2048,chunk=64,recent_ratio=0.5"},
       {"h2o:protocol=kvpress,budget=2k",
        "h2o:budget=2048,chunk=64,protocol=kvpress,recent_ratio=0.5"}},
  });
  rows.push_back({
      "tova",
      {{{"tova:budget=400", "tova:keep=1"}, dense_stats::resident}},
      {{gqa_4x2_d8,
        {{"tova", 2000, 1024, 1024},
         {"tova:budget=12", 100, 12, 12},
         {"tova:keep=0.25", 100, 25, 25},
         {"tova:keep=0.25,budget=3", 100, 25, 25},
         {"tova:budget=12", 8, 12, 8}}}},
      {{"tova:budget=64"}},
      {{"tova:budget=0", "parameter 'budget' = 0 is out of range"},
       {"tova:keep=0", "parameter 'keep' = 0 is out of range"},
       {"tova:keep=2", "parameter 'keep' = 2 is out of range"},
       {"tova:budget=many", "parameter 'budget' expects an integer, got 'many'"},
       {"tova:window=8", "unknown parameter 'window' (known: budget, keep)"}},
      {{"tova:keep=0.5", "tova:budget=1024,keep=0.5"}},
  });
  rows.push_back({
      "lazy_eviction",
      {{{"lazy_eviction:budget=400", "lazy_eviction:keep=1", "lazy_eviction:budget=304,window=1"},
        dense_stats::resident}},
      // Resident after prefill: evictions go to budget - window every window + 1 tokens.
      {{gqa_4x2_d8,
        {{"lazy_eviction", 2000, 1024, 960},                 // evicted at the last token (1999)
         {"lazy_eviction:budget=12", 100, 12, 9},            // window 6: last eviction at 96
         {"lazy_eviction:keep=0.25", 100, 25, 22},           // window 12: last eviction at 90
         {"lazy_eviction:keep=0.25,budget=3", 100, 25, 22},  // keep wins
         {"lazy_eviction:budget=12,window=1", 100, 12, 12},  // evicts every other token
         {"lazy_eviction:budget=12", 8, 12, 8}},
        {.decode_room = 1}}},
      {{"lazy_eviction:budget=64,window=8"}},
      {{"lazy_eviction:budget=0", "parameter 'budget' = 0 is out of range"},
       {"lazy_eviction:keep=0", "parameter 'keep' = 0 is out of range"},
       {"lazy_eviction:window=0", "parameter 'window' = 0 is out of range"},
       {"lazy_eviction:threshold=0", "parameter 'threshold' = 0 is out of range"},
       {"lazy_eviction:threshold=1.5", "parameter 'threshold' = 1.5 is out of range"},
       {"lazy_eviction:threshold=high", "parameter 'threshold' expects a number, got 'high'"},
       {"lazy_eviction:mri=3", "unknown parameter 'mri' (known: budget, keep, window, threshold)"}},
      {{"lazy_eviction:window=32", "lazy_eviction:budget=1024,threshold=0.0001,window=32"}},
  });
  rows.push_back({
      "token_retention",
      {{{"token_retention:budget=400", "token_retention:keep=1",
         "token_retention:budget=304,probe=1,chunk=7"},
        dense_stats::resident}},
      {{gqa_4x2_d8,
        {{"token_retention", 2000, 1024, 1024},
         {"token_retention:budget=12", 100, 12, 12},
         {"token_retention:budget=1,probe=5", 100, 1, 1},
         {"token_retention:keep=0.25", 100, 25, 25},
         {"token_retention:keep=0.25,budget=3", 100, 25, 25},
         {"token_retention:budget=12", 8, 12, 8}},
        {.decode_room = 1}}},
      {{"token_retention:budget=64,probe=4,chunk=16"}},
      {{"token_retention:budget=0", "parameter 'budget' = 0 is out of range"},
       {"token_retention:keep=0", "parameter 'keep' = 0 is out of range"},
       {"token_retention:probe=0", "parameter 'probe' = 0 is out of range"},
       {"token_retention:chunk=0", "parameter 'chunk' = 0 is out of range"},
       {"token_retention:beta=0.9",
        "unknown parameter 'beta' (known: budget, keep, probe, chunk)"}},
      {{"token_retention:probe=4", "token_retention:budget=1024,chunk=64,probe=4"}},
  });
  rows.push_back({
      "snapkv",
      // Prompt compression only: decode tokens are appended, never evicted.
      {{{"snapkv:budget=400", "snapkv:keep=1", "snapkv:budget=300,window=8,kernel=3,pooling=avg"},
        dense_stats::resident,
        s::fixed}},
      {{{"test", 1, 4, 2, 16},
        {{"snapkv", 2000, 1024, 1024},
         {"snapkv:budget=40", 100, 40, 40},
         {"snapkv:keep=0.25", 100, 25, 25},
         {"snapkv:keep=0.25,budget=3", 100, 25, 25},
         {"snapkv:keep=0.001", 100, 1, 1},
         {"snapkv:budget=10", 100, 10, 10},
         {"snapkv:budget=500", 100, 500, 100}}}},
      {{.spec = "snapkv:budget=100,window=16",
        .shape = {"test", 1, 8, 4, 64},
        .context = 300,
        .steps = {1, 1, 1},
        .qkv_seed = 21}},
      {{"snapkv:kernel=4", "parameter 'kernel' = '4' is not one of: 1, 3, 5"},
       {"snapkv:kernel=33", "parameter 'kernel' = '33' is not one of"},
       {"snapkv:pooling=mean", "parameter 'pooling' = 'mean' is not one of: max, avg"},
       {"snapkv:window=0", "parameter 'window' = 0 is out of range"},
       {"snapkv:budget=0", "parameter 'budget' = 0 is out of range"},
       {"snapkv:keep=0", "parameter 'keep' = 0 is out of range"},
       {"snapkv:keep=1.5", "parameter 'keep' = 1.5 is out of range"},
       {"snapkv:windw=3",
        "unknown parameter 'windw' (known: budget, keep, window, kernel, pooling)"}},
      {{"snapkv", "snapkv:budget=1024,kernel=7,pooling=max,window=32"}},
  });
  {
    // budget=80 at layer 0 of 2 over 100 tokens: the capped bottom layer keeps all 100.
    auto layer = [](std::string spec, int l) {
      return dense_group{.specs = {std::move(spec)},
                         .same = dense_stats::prompt_resident,
                         .steps = s::fixed,
                         .contexts = {100},
                         .layers = 2,
                         .setup = {l, {}}};
    };
    // keep=0.4 of 200 = 80: b = 72, top 18, bottom 126, step 54.
    auto at = [](int l, std::vector<budget_case> cases) {
      return budget_group{{"test", 3, 2, 1, 64}, std::move(cases), {.layer = l, .seed = 2}};
    };
    rows.push_back({
        "pyramidkv",
        {layer("pyramidkv:budget=400", 1), layer("pyramidkv:keep=1", 0),
         layer("pyramidkv:budget=80,window=8", 0)},
        {at(0, {{"pyramidkv:keep=0.4,window=8,beta=4", 200, 134, 134},
                {"pyramidkv:budget=20,window=32", 200, 20, 20}}),
         at(1, {{"pyramidkv:keep=0.4,window=8,beta=4", 200, 80, 80}}),
         at(2, {{"pyramidkv:keep=0.4,window=8,beta=4", 200, 26, 26},
                {"pyramidkv:budget=1000", 200, 1000, 200}})},
        {},
        {{"pyramidkv:beta=0", "parameter 'beta' = 0 is out of range"},
         {"pyramidkv:beta=2.5", "parameter 'beta' expects an integer, got '2.5'"},
         {"pyramidkv:kernel=2", "parameter 'kernel' = '2' is not one of"},
         {"pyramidkv:budget=0", "parameter 'budget' = 0 is out of range"},
         {"pyramidkv:alpha=1",
          "unknown parameter 'alpha' (known: budget, keep, window, kernel, pooling, beta)"}},
        {{"pyramidkv", "pyramidkv:beta=20,budget=1024,kernel=7,pooling=max,window=32"}},
    });
  }
  rows.push_back({
      "knorm",
      {{{"knorm:budget=400", "knorm:keep=1"}, dense_stats::resident, s::fixed}},
      // knorm needs no queries.
      {{gqa_6x3_d16,
        {{"knorm", 2000, 1024, 1024},
         {"knorm:budget=40", 100, 40, 40},
         {"knorm:keep=0.25", 100, 25, 25},
         {"knorm:keep=0.25,budget=3", 100, 25, 25},
         {"knorm:budget=500", 100, 500, 100}},
        {.queries = false}}},
      {},
      {{"knorm:budget=0", "parameter 'budget' = 0 is out of range"},
       {"knorm:keep=2", "parameter 'keep' = 2 is out of range"},
       {"knorm:window=8", "unknown parameter 'window' (known: budget, keep)"}},
      {{"knorm", "knorm:budget=1024"}},
  });
  rows.push_back({
      "random",
      {{{"random:budget=400", "random:keep=1"}, dense_stats::resident, s::fixed}},
      {{{"test", 1, 2, 2, 16},
        {{"random", 2000, 1024, 1024},
         {"random:budget=40", 100, 40, 40},
         {"random:keep=0.25", 100, 25, 25},
         {"random:keep=0.25,budget=3", 100, 25, 25},
         {"random:budget=500", 100, 500, 100}},
        {.queries = false}}},
      // A seeded method repeats for its seed.
      {{.spec = "random:keep=0.3", .context = 200, .steps = {1, 1, 1}, .qkv_seed = 9, .seed = 42}},
      {{"random:budget=-1", "parameter 'budget' = -1 is out of range"},
       {"random:keep=0", "parameter 'keep' = 0 is out of range"},
       {"random:seed=1", "unknown parameter 'seed' (known: budget, keep)"}},
  });
  {
    std::vector<std::string> specs;
    for (const char* scorer : {"snapkv", "pyramidkv", "knorm", "random", "tova"})
      for (const char* budget : {"budget=400", "keep=1"})
        specs.push_back(std::string("adakv:scorer=") + scorer + "," + budget);
    rows.push_back({
        "adakv",
        {{.specs = specs,
          .same = dense_stats::resident,
          .steps = s::fixed,
          .contexts = {1, 120},
          .layers = 2}},
        // The budget is the mean tokens per head.
        {{{"test", 1, 8, 4, 16},
          {{"adakv", 2000, 1024, 1024},
           {"adakv:budget=40", 100, 40, 40},
           {"adakv:keep=0.25", 100, 25, 25},
           {"adakv:keep=0.25,budget=3,scorer=random", 100, 25, 25},
           {"adakv:budget=10", 100, 10, 10},
           {"adakv:budget=20,scorer=knorm", 100, 20, 20}},
          {},
          r::shared_by_heads}},
        {{.spec = "adakv:budget=60,window=16",
          .shape = {"test", 1, 8, 4, 64},
          .context = 300,
          .steps = {1, 1, 1},
          .qkv_seed = 37}},
        {{"adakv:scorer=h2o",
          "parameter 'scorer' = 'h2o' is not one of: snapkv, pyramidkv, knorm, random, tova"},
         {"adakv:alpha=1.5", "parameter 'alpha' = 1.5 is out of range"},
         {"adakv:alpha=-0.1", "parameter 'alpha' = -0.1 is out of range"},
         {"adakv:kernel=2", "parameter 'kernel' = '2' is not one of"},
         {"adakv:beta=0", "parameter 'beta' = 0 is out of range"},
         {"adakv:budget=0", "parameter 'budget' = 0 is out of range"},
         {"adakv:floor=0.2",
          "unknown parameter 'floor' (known: budget, keep, scorer, alpha, window, kernel, "
          "pooling, beta)"}},
        {{"adakv",
          "adakv:alpha=0.2,beta=20,budget=1024,kernel=7,pooling=max,scorer=snapkv,window=32"}},
    });
  }
  rows.push_back({
      "duo",
      {{.specs = {"duo:window=400", "duo:sinks=0,budget=304",
                  "duo:retrieval_ratio=1,sinks=2,window=8", "duo:retrieval_ratio=0,window=304"},
        .same = dense_stats::reads,
        .steps = s::fixed,
        .layers = 2,
        .setup = with_random_calibration(2, 11, 1)}},
      // Retrieval ratio 0.5 of two heads: one full head, one streaming head (which one depends
      // on the random calibration). The budget is the streaming heads' sinks + window.
      {{{"test", 1, 2, 2, 8},
        {{"duo", 2000, 320, 320},
         {"duo:sinks=4,window=10", 100, 14, 14},
         {"duo:sinks=4,budget=10", 100, 10, 10},
         {"duo:sinks=4,window=50,budget=10", 100, 10, 10},
         {"duo:sinks=4,keep=0.1", 100, 10, 10},
         {"duo:sinks=4,keep=0.1,budget=50", 100, 10, 10},
         {"duo:sinks=8,budget=5", 100, 9, 9},  // at least one recent token beside the sinks
         {"duo:sinks=4,window=10", 8, 14, 8}},
        {},
        r::streaming_heads,
        with_random_calibration(1, 2)}},
      {{.spec = "duo:sinks=4,window=16,retrieval_ratio=0.25",
        .shape = {"test", 2, 4, 2, 16},
        .context = 300,
        .steps = {1, 2, 3},
        .qkv_seed = 9,
        .threads = 4,
        .setup = with_calibration(test::ranked_calibration, 1)}},
      {{"duo:retrieval_ratio=1.5", "parameter 'retrieval_ratio' = 1.5 is out of range"},
       {"duo:retrieval_ratio=-0.1", "parameter 'retrieval_ratio' = -0.1 is out of range"},
       {"duo:sinks=-1", "parameter 'sinks' = -1 is out of range"},
       {"duo:window=0", "parameter 'window' = 0 is out of range"},
       {"duo:budget=0", "parameter 'budget' = 0 is out of range"},
       {"duo:keep=0", "parameter 'keep' = 0 is out of range"},
       {"duo:ratio=0.5",
        "unknown parameter 'ratio' (known: retrieval_ratio, sinks, window, budget, keep)"}},
      {{"duo", "duo:retrieval_ratio=0.5,sinks=64,window=256"}},
  });
  rows.push_back({
      "tca",
      {{.specs = {"tca:budget=304", "tca:budget=304,floor=0",
                  "tca:budget=400,redundancy=0.5,kernel=1,window=1"},
        .same = dense_stats::reads,
        .steps = s::fixed,
        .setup = with_random_calibration(1, 11)},
       // keep=1 covers the prompt only, so it runs without decode steps.
       {.specs = {"tca:keep=1"},
        .same = dense_stats::resident,
        .qkv_seed = 4,
        .setup = with_random_calibration(1, 11)}},
      {},
      {{.spec = "tca:budget=40",
        .shape = {"test", 1, 6, 3, 16},
        .context = 200,
        .steps = {1, 2, 3},
        .qkv_seed = 9,
        .threads = 4,
        .setup = with_calibration(test::need_calibration)}},
      {{"tca:budget=0", "parameter 'budget' = 0 is out of range"},
       {"tca:keep=0", "parameter 'keep' = 0 is out of range"},
       {"tca:coverage=0", "parameter 'coverage' = 0 is out of range"},
       {"tca:coverage=1.5", "parameter 'coverage' = 1.5 is out of range"},
       {"tca:window=0", "parameter 'window' = 0 is out of range"},
       {"tca:kernel=4", "kernel"},
       {"tca:redundancy=1.5", "parameter 'redundancy' = 1.5 is out of range"},
       {"tca:floor=-0.1", "parameter 'floor' = -0.1 is out of range"},
       {"tca:tau=0.9",
        "unknown parameter 'tau' (known: budget, keep, coverage, window, kernel, redundancy, "
        "floor)"}},
      {{"tca", "tca:budget=1024,coverage=0.9,floor=0.2,kernel=7,redundancy=0.95,window=32"}},
  });
  // Methods that shrink every token instead of dropping tokens: no budget.
  {
    // mqa pools nothing only when there is one KV head.
    auto pooled = [](std::vector<std::string> specs, std::vector<std::tuple<int, int>> heads) {
      return dense_group{.specs = std::move(specs),
                         .same = dense_stats::all,
                         .steps = s::fixed,
                         .heads = std::move(heads),
                         .qkv_seed = 5,
                         .maybe_edit_qkv = test::spread_key_norms};
    };
    const thread_case pooled_threads{.spec = "gqa:groups=2,pool=norm",
                                     .shape = {"test", 1, 8, 4, 64},
                                     .context = 1024,
                                     .steps = {1, 5},
                                     .qkv_seed = 8};
    rows.push_back({
        "gqa",
        {pooled({"gqa:reduce=1", "gqa:reduce=1,pool=norm"}, {{8, 2}, {4, 4}, {4, 1}})},
        {},
        {pooled_threads},
        {{"gqa:groups=0", "parameter 'groups' = 0 is out of range"},
         {"gqa:reduce=0", "parameter 'reduce' = 0 is out of range"},
         {"gqa:groups=two", "parameter 'groups' expects an integer, got 'two'"},
         {"gqa:pool=max", "parameter 'pool' = 'max' is not one of: mean, norm"},
         {"gqa:budget=64", "unknown parameter 'budget' (known: groups, reduce, pool)"}},
        {{"gqa", "gqa:pool=mean,reduce=4"},
         {"gqa:groups=2,pool=norm", "gqa:groups=2,pool=norm,reduce=4"}},
    });
    rows.push_back({
        "mqa",
        {pooled({"mqa", "mqa:pool=norm"}, {{4, 1}})},
        {},
        {},
        {{"mqa:groups=2", "unknown parameter 'groups' (known: pool)"},
         {"mqa:pool=sum", "parameter 'pool' = 'sum' is not one of: mean, norm"}},
        {{"mqa", "mqa:pool=mean"}},
    });
  }
  rows.push_back({
      "kv_quant",
      {{{"kv_quant:residual=1000", "kv_quant:bits=4,residual=304", "kv_quant:bits=2,residual=304",
         "kv_quant:bits=2,key_residual=512,value_residual=400", "kv_quant:residual=304,scales=fp32",
         "kv_quant:residual=304,value_group=32"},
        dense_stats::all,
        s::fixed}},
      {},
      {{.spec = "kv_quant:bits=4",
        .shape = {"test", 1, 8, 4, 64},
        .context = 1024,
        .steps = {1, 5},
        .qkv_seed = 8},
       {.spec = "kv_quant:bits=2,group=8,key_residual=16,value_residual=5,value_group=16",
        .shape = {"test", 1, 8, 4, 64},
        .context = 1024,
        .steps = {1, 5, 20},
        .qkv_seed = 8}},
      {{"kv_quant:bits=3", "parameter 'bits' = '3' is not one of: 8, 4, 2, fp8"},
       {"kv_quant:group=0", "parameter 'group' = 0 is out of range"},
       {"kv_quant:residual=-1", "parameter 'residual' = -1 is out of range"},
       {"kv_quant:residual=x", "parameter 'residual' expects an integer, got 'x'"},
       {"kv_quant:key_residual=0", "parameter 'key_residual' = 0 is out of range"},
       {"kv_quant:value_residual=-1", "parameter 'value_residual' = -1 is out of range"},
       {"kv_quant:key_residual=48", "key_residual = 48 is not a multiple of group = 32"},
       {"kv_quant:scales=bf16", "parameter 'scales' = 'bf16' is not one of: fp16, fp32"},
       {"kv_quant:value_group=0", "parameter 'value_group' = 0 is out of range"},
       {"kv_quant:budget=64",
        "unknown parameter 'budget' (known: bits, group, residual, key_residual, value_residual, "
        "value_group, scales)"}},
      // key_residual, value_residual and value_group are unset unless given.
      {{"kv_quant", "kv_quant:bits=8,group=32,residual=128,scales=fp16"},
       {"kv_quant:bits=2,key_residual=128,value_residual=128",
        "kv_quant:bits=2,group=32,key_residual=128,residual=128,scales=fp16,value_residual=128"}},
  });
  // Query-aware sparse methods: they keep every row and read a budget of them per query.
  rows.push_back({
      "topk_oracle",
      {{{"topk_oracle:budget=400", "topk_oracle:keep=1"}, dense_stats::sparse}},
      {{gqa_2x1_d8,
        {{"topk_oracle", 2000, 1024, 2000},
         {"topk_oracle:budget=10", 100, 10, 100},
         {"topk_oracle:keep=0.25", 100, 25, 100},
         {"topk_oracle:keep=0.25,budget=3", 100, 25, 100}}}},
      {{"topk_oracle:budget=40"}},
      {{"topk_oracle:budget=0", "parameter 'budget' = 0 is out of range"},
       {"topk_oracle:keep=1.5", "parameter 'keep' = 1.5 is out of range"},
       {"topk_oracle:page=4", "unknown parameter 'page' (known: budget, keep)"}},
  });
  rows.push_back({
      "block_oracle",
      {{{"block_oracle:budget=400", "block_oracle:block=7,budget=400", "block_oracle:keep=1"},
        dense_stats::sparse}},
      {{gqa_2x1_d8,
        {{"block_oracle", 2000, 1024, 2000},
         {"block_oracle:budget=10", 100, 10, 100},
         {"block_oracle:keep=0.25", 100, 25, 100}}}},
      {{"block_oracle:block=8,budget=40"}},
      {{"block_oracle:block=0", "parameter 'block' = 0 is out of range"},
       {"block_oracle:keep=2", "parameter 'keep' = 2 is out of range"},
       {"block_oracle:page=4", "unknown parameter 'page' (known: block, budget, keep)"}},
  });
  rows.push_back({
      "quest",
      {{{"quest:budget=400", "quest:page=7,budget=400", "quest:keep=1"}, dense_stats::sparse}},
      {{gqa_2x1_d8,
        {{"quest", 2000, 1024, 2000},
         {"quest:budget=10", 100, 10, 100},
         {"quest:keep=0.25", 100, 25, 100},
         {"quest:page=8,keep=0.5,budget=3", 100, 50, 100}}}},
      {{"quest:page=4,budget=40"}},
      {{"quest:page=0", "parameter 'page' = 0 is out of range"},
       {"quest:budget=0", "parameter 'budget' = 0 is out of range"},
       {"quest:keep=0", "parameter 'keep' = 0 is out of range"},
       {"quest:pages=4", "unknown parameter 'pages' (known: page, budget, keep)"}},
  });
  rows.push_back({
      "landmark",
      {{{"landmark:budget=400", "landmark:block=7,window=0,budget=400", "landmark:keep=1"},
        dense_stats::sparse}},
      {{gqa_2x1_d8,
        {{"landmark", 2000, 1024, 2000},
         {"landmark:budget=10", 100, 10, 100},
         {"landmark:keep=0.25", 100, 25, 100}}}},
      {{"landmark:block=8,window=16,budget=40"}},
      {{"landmark:block=0", "parameter 'block' = 0 is out of range"},
       {"landmark:window=-1", "parameter 'window' = -1 is out of range"},
       {"landmark:budget=0", "parameter 'budget' = 0 is out of range"},
       {"landmark:win=3", "unknown parameter 'win' (known: block, window, budget, keep)"}},
  });
  rows.push_back({
      "rectified",
      {{{"rectified:budget=400", "rectified:base=landmark,budget=400",
         "rectified:base=topk_oracle,pool=7,budget=400", "rectified:base=block_oracle,keep=1"},
        dense_stats::sparse}},
      {{gqa_2x1_d8,
        {{"rectified", 2000, 1024, 2000},
         {"rectified:base=landmark,budget=10", 100, 10, 100},
         {"rectified:keep=0.25", 100, 25, 100}}}},
      {{"rectified:page=4,budget=40"},
       {"rectified:base=landmark,block=8,window=8,budget=40"},
       {"rectified:base=topk_oracle,pool=16,budget=40"},
       {"rectified:base=block_oracle,block=8,budget=40"}},
      {{"rectified:base=h2o",
        "parameter 'base' = 'h2o' is not one of: quest, landmark, topk_oracle, block_oracle"},
       {"rectified:pool=0", "parameter 'pool' = 0 is out of range"},
       {"rectified:page=0", "parameter 'page' = 0 is out of range"},
       {"rectified:budget=0", "parameter 'budget' = 0 is out of range"}},
  });
  rows.push_back({
      "hip",
      {{{"hip:budget=400", "hip:keep=1"}, dense_stats::reads}},
      {{gqa_6x3_d16,
        {{"hip", 2000, 1024, 2000},
         {"hip:budget=40", 100, 40, 100},
         {"hip:keep=0.25", 100, 25, 100},
         {"hip:keep=0.25,budget=3", 100, 25, 100}}}},
      {{"hip:budget=64,block=8"}, {"hip:budget=50,block=64"}},
      {{"hip:block=0", "block"},
       {"hip:budget=0", "budget"},
       {"hip:keep=1.5", "keep"},
       {"hip:sinks=-1", "sinks"},
       {"hip:window=-1", "window"},
       {"hip:leaf=4", "leaf"}},
  });
  rows.push_back({
      "nsa",
      {{{"nsa:budget=400", "nsa:keep=1"}, dense_stats::reads}},
      {{gqa_6x3_d16,
        {{"nsa", 2000, 1024, 2000},
         {"nsa:budget=40", 100, 40, 100},
         {"nsa:keep=0.25", 100, 25, 100}}}},
      {{"nsa:budget=100,window=20,block=16,compress=8,stride=4"}, {"nsa:budget=30"}},
      {{"nsa:window=0", "window"},
       {"nsa:block=0", "block"},
       {"nsa:compress=0", "compress"},
       {"nsa:stride=0", "stride"},
       {"nsa:keep=0", "keep"}},
  });
  rows.push_back({
      "longheads",
      {{{"longheads:budget=400", "longheads:keep=1"}, dense_stats::reads}},
      {{gqa_6x3_d16,
        {{"longheads", 2000, 1024, 2000},
         {"longheads:budget=40", 100, 40, 100},
         {"longheads:keep=0.25", 100, 25, 100}}}},
      {{"longheads:budget=64,chunk=8"}, {"longheads:budget=20,chunk=32"}},
      {{"longheads:chunk=0", "chunk"},
       {"longheads:budget=-3", "budget"},
       {"longheads:chunks=4", "chunks"}},
  });
  rows.push_back({
      "dhsa",
      {{{"dhsa:budget=400", "dhsa:keep=1"}, dense_stats::reads}},
      {{gqa_6x3_d16,
        {{"dhsa", 2000, 1024, 2000},
         {"dhsa:budget=40", 100, 40, 100},
         {"dhsa:keep=0.25", 100, 25, 100}}}},
      {{"dhsa:budget=64"}, {"dhsa:budget=30,threshold=-0.2,min_chunk=2,max_chunk=9"}},
      {{"dhsa:threshold=1.5", "threshold"},
       {"dhsa:min_chunk=0", "min_chunk"},
       {"dhsa:max_chunk=0", "max_chunk"},
       {"dhsa:keep=2", "keep"}},
  });
  rows.push_back({
      "ltri",
      {{{"ltri:budget=400", "ltri:keep=1"}, dense_stats::reads}},
      {{gqa_6x3_d16,
        {{"ltri", 2000, 1024, 2000},
         {"ltri:budget=40", 100, 40, 100},
         {"ltri:keep=0.25", 100, 25, 100}}}},
      {{"ltri:budget=64"}, {"ltri:budget=40,sinks=2,window=8,span_min=2,span_max=9"}},
      {{"ltri:mass=1.5", "mass"},
       {"ltri:span_min=0", "span_min"},
       {"ltri:span_max=0", "span_max"},
       {"ltri:vectors=0", "vectors"},
       {"ltri:keep=2", "keep"}},
  });
  rows.push_back({
      "bilevel",
      {{{"bilevel:budget=400", "bilevel:keep=1"}, dense_stats::reads}},
      {{gqa_6x3_d16,
        {{"bilevel", 2000, 1024, 2000},
         {"bilevel:budget=40", 100, 40, 100},
         {"bilevel:keep=0.25", 100, 25, 100}}}},
      {{"bilevel:budget=64,region=8"}, {"bilevel:budget=20,region=32"}},
      {{"bilevel:region=0", "region"}, {"bilevel:keep=0", "keep"}, {"bilevel:topk=3", "topk"}},
  });
  rows.push_back({
      "loki",
      {{.specs = {"loki:budget=104", "loki:budget=4096,rank=8"},
        .same = dense_stats::reads,
        .steps = s::fixed,
        .contexts = {100},
        .setup = with_random_calibration(1, 4)}},
      {},
      {{.spec = "loki:budget=40", .setup = with_random_calibration(1, 2)}},
      {{"loki:rank=-1", "rank"},
       {"loki:budget=0", "budget"},
       {"loki:keep=1.5", "keep"},
       {"loki:ranks=4", "ranks"}},
  });
  rows.push_back({
      "recycled",
      {{{"recycled:budget=104", "recycled:budget=500,stride=1,window=0"},
        dense_stats::reads,
        s::fixed,
        {{8, 2}, {4, 4}},
        {100}}},
      {},
      {{"recycled:budget=40,stride=3,window=8"}},
      {{"recycled:stride=0", "stride"},
       {"recycled:window=-1", "window"},
       {"recycled:switch_threshold=1.5", "switch_threshold"},
       {"recycled:budget=0", "budget"}},
  });
  rows.push_back({
      "routing",
      {{{"routing:budget=104", "routing:budget=1000,clusters=3"},
        dense_stats::reads,
        s::fixed,
        {{8, 2}, {4, 4}},
        {100}}},
      {},
      {{"routing:budget=40,clusters=8,window=8"}},
      {{"routing:clusters=0", "clusters"},
       {"routing:iterations=0", "iterations"},
       {"routing:window=-1", "window"},
       {"routing:keep=0", "keep"}},
  });
  rows.push_back({
      "hyperattention",
      {{{"hyperattention:budget=104", "hyperattention:budget=1000,samples=0"},
        dense_stats::reads,
        s::fixed,
        {{8, 2}, {4, 4}},
        {100}}},
      {},
      {{"hyperattention:budget=40,samples=8,hashes=4"}},
      {{"hyperattention:hashes=0", "hashes"},
       {"hyperattention:hashes=17", "hashes"},
       {"hyperattention:samples=-1", "samples"},
       {"hyperattention:budget=0", "budget"}},
  });
  rows.push_back({
      "power",
      {{{"power", "power:sinks=0,budget=304", "power:keep=1"}, dense_stats::reads}},
      {{gqa_4x2_d8,
        {{"power", 2000, 1024, 2000},
         {"power:budget=12", 100, 12, 100},
         {"power:keep=0.25", 100, 25, 100},
         {"power:keep=0.25,budget=3", 100, 25, 100}}}},
      {{"power:budget=40"}},
      {{"power:budget=0", "parameter 'budget' = 0 is out of range"},
       {"power:keep=2", "parameter 'keep' = 2 is out of range"},
       {"power:sinks=-1", "parameter 'sinks' = -1 is out of range"},
       {"power:window=4", "unknown parameter 'window' (known: sinks, budget, keep)"}},
  });
  rows.push_back({
      "neighborhood",
      {{{"neighborhood", "neighborhood:budget=304", "neighborhood:budget=304,dilation=3",
         "neighborhood:keep=1"},
        dense_stats::reads}},
      {{gqa_4x2_d8,
        {{"neighborhood", 2000, 1024, 2000},
         {"neighborhood:budget=12", 100, 12, 100},
         {"neighborhood:keep=0.1,dilation=4", 100, 10, 100}}}},
      {{"neighborhood:budget=40,dilation=2"}},
      {{"neighborhood:dilation=0", "parameter 'dilation' = 0 is out of range"},
       {"neighborhood:budget=0", "parameter 'budget' = 0 is out of range"},
       {"neighborhood:keep=0", "parameter 'keep' = 0 is out of range"},
       {"neighborhood:window=8", "unknown parameter 'window' (known: budget, keep, dilation)"}},
  });
  rows.push_back({
      "parallel_context",
      {{{"parallel_context:piece=300", "parallel_context:pieces=1",
         "parallel_context:sinks=0,pieces=1,budget=304"},
        dense_stats::reads}},
      {{gqa_4x2_d8,
        {{"parallel_context", 2000, 1024, 2000},
         {"parallel_context:budget=12,pieces=3", 100, 12, 100},
         {"parallel_context:keep=0.25", 100, 25, 100}}}},
      {{"parallel_context:piece=16,budget=60"}},
      {{"parallel_context:piece=0", "parameter 'piece' = 0 is out of range"},
       {"parallel_context:pieces=-2", "parameter 'pieces' = -2 is out of range"},
       {"parallel_context:select=-1", "parameter 'select' = -1 is out of range"},
       {"parallel_context:budget=0", "parameter 'budget' = 0 is out of range"},
       {"parallel_context:peice=3",
        "unknown parameter 'peice' (known: sinks, piece, pieces, select, budget, keep)"}},
  });
  rows.push_back({
      "adaptive_head",
      {{{"adaptive_head", "adaptive_head:keep=1", "adaptive_head:sinks=0,budget=304,threshold=1"},
        dense_stats::reads}},
      {{{"test", 1, 4, 2, 8},
        {{"adaptive_head", 2000, 1024, 2000},
         {"adaptive_head:budget=12", 100, 12, 100},
         {"adaptive_head:keep=0.25", 100, 25, 100}}}},
      {{"adaptive_head:budget=40"}},
      {{"adaptive_head:threshold=1.5", "parameter 'threshold' = 1.5 is out of range"},
       {"adaptive_head:threshold=-0.1", "parameter 'threshold' = -0.1 is out of range"},
       {"adaptive_head:sinks=-1", "parameter 'sinks' = -1 is out of range"},
       {"adaptive_head:budget=0", "parameter 'budget' = 0 is out of range"},
       {"adaptive_head:window=3",
        "unknown parameter 'window' (known: sinks, budget, keep, threshold)"}},
  });
  rows.push_back({
      "strided_heads",
      // A budget covering the prompt is stride 1: every head reads every row.
      {{{"strided_heads:budget=400", "strided_heads:keep=1"}, dense_stats::sparse}},
      {{gqa_4x2_d8,
        {{"strided_heads", 2000, 1024, 2000},
         {"strided_heads:budget=12", 100, 12, 100},
         {"strided_heads:keep=0.25", 100, 25, 100},
         {"strided_heads:keep=0.25,budget=3", 100, 25, 100}}}},
      {{"strided_heads:budget=40"}, {"strided_heads:budget=7"}},
      {{"strided_heads:budget=0", "parameter 'budget' = 0 is out of range"},
       {"strided_heads:keep=0", "parameter 'keep' = 0 is out of range"},
       {"strided_heads:stride=4", "unknown parameter 'stride' (known: budget, keep)"}},
      {{"strided_heads", "strided_heads:budget=1024"}},
  });
  rows.push_back({
      "shifted_groups",
      {{{"shifted_groups:budget=400", "shifted_groups:keep=1", "shifted_groups:sinks=0,budget=304"},
        dense_stats::sparse}},
      // The budget is sinks + group, the group at least one token.
      {{gqa_4x2_d8,
        {{"shifted_groups", 2000, 1024, 2000},
         {"shifted_groups:budget=12", 100, 12, 100},
         {"shifted_groups:keep=0.25", 100, 25, 100},
         {"shifted_groups:sinks=8,budget=5", 100, 9, 100}}}},
      {{"shifted_groups:budget=40"}, {"shifted_groups:budget=9,sinks=2"}},
      {{"shifted_groups:budget=0", "parameter 'budget' = 0 is out of range"},
       {"shifted_groups:sinks=-1", "parameter 'sinks' = -1 is out of range"},
       {"shifted_groups:keep=2", "parameter 'keep' = 2 is out of range"},
       {"shifted_groups:group=8", "unknown parameter 'group' (known: budget, keep, sinks)"}},
      {{"shifted_groups", "shifted_groups:budget=1024,sinks=4"}},
  });
  {
    // Operator variants: no parameter makes them softmax attention. sigmoid equals dense where
    // its weights are equal and normalized (q = 0: every logit 0, both output the mean value);
    // gated equals dense when every gate is 1 (alpha 0, beta 100: sigmoid(100) is 1 in float32).
    auto zero_queries = [](test::qkv& t) {
      for (std::size_t i = 0; i < t.q.size(); ++i) t.q.data()[i] = 0.0f;
    };
    rows.push_back({
        "sigmoid",
        {{.specs = {"sigmoid:normalize=true", "sigmoid:normalize=true,bias=3"},
          .same = dense_stats::all,
          .steps = s::fixed,
          .maybe_edit_qkv = zero_queries}},
        {},
        {{"sigmoid"}, {"sigmoid:bias=-2,normalize=true"}},
        {{"sigmoid:bias=x", "parameter 'bias' expects a number, got 'x'"},
         {"sigmoid:bias=1e7", "parameter 'bias' = 1e7 is out of range"},
         {"sigmoid:normalize=maybe", "normalize"},
         {"sigmoid:budget=4", "unknown parameter 'budget' (known: bias, normalize)"}},
        {{"sigmoid", "sigmoid:normalize=false"}},
    });
  }
  rows.push_back({
      "gated",
      {{{"gated:alpha=0,beta=100"}, dense_stats::all, s::fixed}},
      {},
      {{"gated"}, {"gated:alpha=-3,beta=0.5"}},
      {{"gated:alpha=x", "parameter 'alpha' expects a number, got 'x'"},
       {"gated:beta=-2e6", "parameter 'beta' = -2e6 is out of range"},
       {"gated:gate=1", "unknown parameter 'gate' (known: alpha, beta)"}},
      {{"gated", "gated:alpha=1,beta=0"}},
  });
  rows.push_back({
      "anchor",
      // A threshold above every logit gap keeps every key: dense, in prefill and decode.
      {{{"anchor:theta=1e6", "anchor:block=16,theta=1e6,decode=true", "anchor:block=1,theta=1e6"},
        dense_stats::all,
        s::fixed}},
      {},
      {{.spec = "anchor:block=16,theta=2,decode=true", .context = 100, .steps = {1, 2, 3}}},
      {{"anchor:block=0", "parameter 'block' = 0 is out of range"},
       {"anchor:theta=-1", "parameter 'theta' = -1 is out of range"},
       {"anchor:budget=64", "unknown parameter 'budget' (known: block, theta, decode)"}},
      {{"anchor", "anchor:block=128,decode=false,theta=12"}},
  });
  rows.push_back({
      "infinite_hip",
      // Resident counts the device cache: the budget group's last case holds 30 of 100 rows.
      {{{"infinite_hip:budget=400", "infinite_hip:keep=1",
         "infinite_hip:budget=304,sinks=0,window=0"},
        dense_stats::sparse}},
      {{gqa_6x3_d16,
        {{"infinite_hip", 2000, 1024, 2000},
         {"infinite_hip:budget=40", 100, 40, 100},
         {"infinite_hip:keep=0.25", 100, 25, 100},
         {"infinite_hip:budget=40,device=30", 100, 40, 30}}}},
      {{"infinite_hip:budget=64,chunk=2,refresh=2"}, {"infinite_hip:budget=40,device=50"}},
      {{"infinite_hip:chunk=0", "parameter 'chunk' = 0 is out of range"},
       {"infinite_hip:refresh=0", "parameter 'refresh' = 0 is out of range"},
       {"infinite_hip:device=0", "parameter 'device' = 0 is out of range"},
       {"infinite_hip:sinks=-1", "parameter 'sinks' = -1 is out of range"},
       {"infinite_hip:stages=2",
        "unknown parameter 'stages' (known: budget, keep, sinks, window, chunk, refresh, device)"}},
      {{"infinite_hip",
        "infinite_hip:budget=1024,chunk=8,device=4096,refresh=8,sinks=4,window=64"}},
  });
  rows.push_back({
      "block_sparse_icl",
      // The prefill pattern is independent of the budget: enough neighbors make it dense.
      {{{"block_sparse_icl:budget=400,neighbors=1000", "block_sparse_icl:keep=1,neighbors=1000",
         "block_sparse_icl:budget=304,group=1,neighbors=400,window=0"},
        dense_stats::sparse}},
      {{gqa_4x2_d8,
        {{"block_sparse_icl", 2000, 1024, 2000},
         {"block_sparse_icl:budget=40", 100, 40, 100},
         {"block_sparse_icl:keep=0.25", 100, 25, 100},
         {"block_sparse_icl:keep=0.25,budget=3", 100, 25, 100}}}},
      {{"block_sparse_icl:budget=40,group=8,window=8"}, {"block_sparse_icl:budget=30,group=64"}},
      {{"block_sparse_icl:group=0", "parameter 'group' = 0 is out of range"},
       {"block_sparse_icl:neighbors=-1", "parameter 'neighbors' = -1 is out of range"},
       {"block_sparse_icl:window=-1", "parameter 'window' = -1 is out of range"},
       {"block_sparse_icl:demos=4",
        "unknown parameter 'demos' (known: budget, keep, group, neighbors, window)"}},
      {{"block_sparse_icl", "block_sparse_icl:budget=1024,group=128,neighbors=1,window=64"}},
  });
  rows.push_back({
      "keydiff",
      {{{"keydiff:budget=400", "keydiff:keep=1"}, dense_stats::resident, decode_steps::fixed}},
      // keydiff needs no queries.
      {{gqa_6x3_d16,
        {{"keydiff", 2000, 1024, 1024},
         {"keydiff:budget=40", 100, 40, 40},
         {"keydiff:keep=0.25", 100, 25, 25},
         {"keydiff:keep=0.25,budget=3", 100, 25, 25},
         {"keydiff:budget=500", 100, 500, 100}},
        {.queries = false}}},
      {{.spec = "keydiff:keep=0.3", .context = 200, .steps = {1, 1, 1}}},
      {{"keydiff:budget=0", "parameter 'budget' = 0 is out of range"},
       {"keydiff:keep=2", "parameter 'keep' = 2 is out of range"},
       {"keydiff:window=8", "unknown parameter 'window' (known: budget, keep)"}},
      {{"keydiff", "keydiff:budget=1024"}},
  });
  rows.push_back({
      "lagkv",
      {{{"lagkv:budget=400", "lagkv:keep=1", "lagkv:budget=300,sinks=0,lag=8"},
        dense_stats::resident,
        decode_steps::fixed}},
      // lagkv needs no queries; sinks + tail above the budget keep the last budget tokens.
      {{gqa_6x3_d16,
        {{"lagkv", 2000, 1024, 1024},
         {"lagkv:budget=40,lag=8", 100, 40, 40},
         {"lagkv:keep=0.25,lag=16", 100, 25, 25},
         {"lagkv:keep=0.25,budget=3", 100, 25, 25},
         {"lagkv:budget=10,lag=32", 100, 10, 10},
         {"lagkv:budget=500", 100, 500, 100}},
        {.queries = false}}},
      {{.spec = "lagkv:keep=0.3,lag=16", .context = 200, .steps = {1, 1, 1}}},
      {{"lagkv:budget=0", "parameter 'budget' = 0 is out of range"},
       {"lagkv:lag=0", "parameter 'lag' = 0 is out of range"},
       {"lagkv:sinks=-1", "parameter 'sinks' = -1 is out of range"},
       {"lagkv:lag_size=8", "unknown parameter 'lag_size' (known: budget, keep, sinks, lag)"}},
      {{"lagkv", "lagkv:budget=1024,lag=128,sinks=4"}},
  });
  rows.push_back({
      "qfilter",
      {{.specs = {"qfilter:budget=400", "qfilter:keep=1"},
        .same = dense_stats::resident,
        .steps = decode_steps::fixed,
        .setup = with_random_calibration(1, 11)}},
      // qfilter needs no prompt queries: its filters come from the calibration.
      {{gqa_6x3_d16,
        {{"qfilter", 2000, 1024, 1024},
         {"qfilter:budget=40", 100, 40, 40},
         {"qfilter:keep=0.25", 100, 25, 25},
         {"qfilter:keep=0.25,budget=3", 100, 25, 25},
         {"qfilter:budget=500", 100, 500, 100}},
        {.queries = false},
        resident_rule::every_head,
        with_random_calibration(1, 4)}},
      {{.spec = "qfilter:keep=0.3",
        .context = 200,
        .steps = {1, 1, 1},
        .threads = 4,
        .setup = with_random_calibration(1, 6)}},
      {{"qfilter:budget=0", "parameter 'budget' = 0 is out of range"},
       {"qfilter:keep=1.5", "parameter 'keep' = 1.5 is out of range"},
       {"qfilter:rank=1", "unknown parameter 'rank' (known: budget, keep)"}},
      {{"qfilter", "qfilter:budget=1024"}},
  });
  rows.push_back({
      "expected_attention",
      {{{"expected_attention:budget=400", "expected_attention:keep=1",
         "expected_attention:budget=300,sinks=0,covariance=false,vnorm=false",
         "expected_attention:budget=300,window=20"},
        dense_stats::resident,
        decode_steps::fixed}},
      {{gqa_6x3_d16,
        {{"expected_attention", 2000, 1024, 1024},
         {"expected_attention:budget=40", 100, 40, 40},
         {"expected_attention:keep=0.25", 100, 25, 25},
         {"expected_attention:keep=0.25,budget=3", 100, 25, 25},
         {"expected_attention:budget=2,sinks=4", 100, 2, 2},
         {"expected_attention:budget=500", 100, 500, 100}}}},
      {{.spec = "expected_attention:keep=0.3", .context = 200, .steps = {1, 1, 1}, .threads = 3}},
      {{"expected_attention:budget=0", "parameter 'budget' = 0 is out of range"},
       {"expected_attention:sinks=-1", "parameter 'sinks' = -1 is out of range"},
       {"expected_attention:window=-2", "parameter 'window' = -2 is out of range"},
       {"expected_attention:covariance=maybe", "parameter 'covariance'"},
       {"expected_attention:n_future_positions=512",
        "unknown parameter 'n_future_positions' (known: budget, keep, sinks, window, covariance, "
        "vnorm, future)"},
       {"expected_attention:future=0", "parameter 'future' = 0 is out of range"}},
      {{"expected_attention",
        "expected_attention:budget=1024,covariance=true,future=512,sinks=4,vnorm=true,window=0"}},
  });
  rows.push_back({
      "compactor",
      {{{"compactor:budget=400", "compactor:keep=1",
         "compactor:budget=300,sinks=0,recent=0,chunk=7,sketch=4,blending=2"},
        dense_stats::resident,
        decode_steps::fixed}},
      {{gqa_6x3_d16,
        {{"compactor", 2000, 1024, 1024},
         {"compactor:budget=40", 100, 40, 40},
         {"compactor:keep=0.25", 100, 25, 25},
         {"compactor:keep=0.25,budget=3", 100, 25, 25},
         {"compactor:budget=3", 100, 3, 3},
         {"compactor:budget=500", 100, 500, 100}}}},
      {{.spec = "compactor:keep=0.3,chunk=32",
        .context = 200,
        .steps = {1, 1, 1},
        .threads = 3,
        .seed = 5}},
      {{"compactor:budget=0", "parameter 'budget' = 0 is out of range"},
       {"compactor:chunk=0", "parameter 'chunk' = 0 is out of range"},
       {"compactor:sketch=0", "parameter 'sketch' = 0 is out of range"},
       {"compactor:blending=-1", "parameter 'blending' = -1 is out of range"},
       {"compactor:recent=-1", "parameter 'recent' = -1 is out of range"},
       {"compactor:window=4",
        "unknown parameter 'window' (known: budget, keep, sinks, recent, chunk, sketch, "
        "blending)"}},
      {{"compactor", "compactor:budget=1024,chunk=256,recent=4,sinks=8,sketch=48"}},
  });
  rows.push_back({
      "kvzip",
      {{{"kvzip:budget=400", "kvzip:keep=1", "kvzip:budget=300,sinks=0,chunk=16"},
        dense_stats::resident,
        decode_steps::fixed}},
      // The budget is the mean tokens per head.
      {{{"test", 1, 8, 4, 16},
        {{"kvzip", 2000, 1024, 1024},
         {"kvzip:budget=40", 100, 40, 40},
         {"kvzip:keep=0.25,chunk=32", 100, 25, 25},
         {"kvzip:keep=0.25,budget=3", 100, 25, 25},
         {"kvzip:budget=2", 100, 2, 2},
         {"kvzip:budget=500", 100, 500, 100}},
        {},
        resident_rule::shared_by_heads}},
      {{.spec = "kvzip:keep=0.3,chunk=64", .context = 200, .steps = {1, 1, 1}, .threads = 3}},
      {{"kvzip:budget=0", "parameter 'budget' = 0 is out of range"},
       {"kvzip:chunk=0", "parameter 'chunk' = 0 is out of range"},
       {"kvzip:sinks=-1", "parameter 'sinks' = -1 is out of range"},
       {"kvzip:layerwise=1", "unknown parameter 'layerwise' (known: budget, keep, sinks, chunk)"}},
      {{"kvzip", "kvzip:budget=1024,chunk=2048,sinks=4"}},
  });
  {
    std::vector<std::string> specs;
    for (const char* scorer : {"snapkv", "pyramidkv", "knorm", "random"})
      for (const char* budget : {"budget=400", "keep=1"})
        specs.push_back(std::string("chunkkv:scorer=") + scorer + "," + budget);
    specs.push_back("chunkkv:chunk=1,budget=400");
    rows.push_back({
        "chunkkv",
        {{.specs = specs,
          .same = dense_stats::resident,
          .steps = s::fixed,
          .contexts = {1, 120},
          .layers = 2}},
        {{{"test", 1, 4, 2, 16},
          {{"chunkkv", 2000, 1024, 1024},
           {"chunkkv:budget=40", 100, 40, 40},
           {"chunkkv:budget=45,chunk=7", 100, 45, 45},
           {"chunkkv:keep=0.25", 100, 25, 25},
           {"chunkkv:keep=0.25,budget=3", 100, 25, 25},
           {"chunkkv:budget=10", 100, 10, 10},
           {"chunkkv:budget=33,scorer=knorm", 100, 33, 33},
           {"chunkkv:budget=500", 100, 500, 100}}}},
        {{.spec = "chunkkv:budget=100,window=16,chunk=8",
          .shape = {"test", 1, 8, 4, 64},
          .context = 300,
          .steps = {1, 1, 1},
          .qkv_seed = 41}},
        {{"chunkkv:chunk=0", "parameter 'chunk' = 0 is out of range"},
         {"chunkkv:chunk=2.5", "parameter 'chunk' expects an integer, got '2.5'"},
         {"chunkkv:scorer=tova",
          "parameter 'scorer' = 'tova' is not one of: snapkv, pyramidkv, knorm, random"},
         {"chunkkv:budget=0", "parameter 'budget' = 0 is out of range"},
         {"chunkkv:keep=1.5", "parameter 'keep' = 1.5 is out of range"},
         {"chunkkv:size=10",
          "unknown parameter 'size' (known: budget, keep, scorer, chunk, window, kernel, "
          "pooling, beta)"}},
        {{"chunkkv",
          "chunkkv:beta=20,budget=1024,chunk=10,kernel=7,pooling=max,scorer=snapkv,window=32"}},
    });
  }
  rows.push_back({
      "criticalkv",
      {{.specs = {"criticalkv:budget=400", "criticalkv:keep=1",
                  "criticalkv:scorer=pyramidkv,keep=1", "criticalkv:scorer=pyramidkv,budget=400",
                  "criticalkv:first_stage=0,budget=400", "criticalkv:adaptive=true,budget=400",
                  "criticalkv:adaptive=true,keep=1"},
        .same = dense_stats::resident,
        .steps = s::fixed,
        .contexts = {1, 120},
        .layers = 2}},
      {{{"test", 1, 4, 2, 16},
        {{"criticalkv", 2000, 1024, 1024},
         {"criticalkv:budget=40", 100, 40, 40},
         {"criticalkv:budget=45,first_stage=0", 100, 45, 45},
         {"criticalkv:keep=0.25", 100, 25, 25},
         {"criticalkv:keep=0.25,budget=3", 100, 25, 25},
         {"criticalkv:budget=10", 100, 10, 10},
         {"criticalkv:budget=500", 100, 500, 100}}},
       // adaptive: the layer holds kv_heads x budget, shared unevenly.
       {{"test", 1, 8, 4, 16},
        {{"criticalkv:adaptive=true,budget=40", 100, 40, 40},
         {"criticalkv:adaptive=true,keep=0.25", 100, 25, 25},
         {"criticalkv:adaptive=true,budget=10", 100, 10, 10}},
        {},
        r::shared_by_heads}},
      {{.spec = "criticalkv:budget=100,window=16",
        .shape = {"test", 1, 8, 4, 64},
        .context = 300,
        .steps = {1, 1, 1},
        .qkv_seed = 43},
       {.spec = "criticalkv:adaptive=true,budget=60,window=16",
        .shape = {"test", 1, 8, 4, 64},
        .context = 300,
        .steps = {1, 1, 1},
        .qkv_seed = 43}},
      {{"criticalkv:first_stage=1.5", "parameter 'first_stage' = 1.5 is out of range"},
       {"criticalkv:epsilon=-1", "parameter 'epsilon' = -1 is out of range"},
       {"criticalkv:scorer=knorm", "parameter 'scorer' = 'knorm' is not one of: snapkv, pyramidkv"},
       {"criticalkv:budget=0", "parameter 'budget' = 0 is out of range"},
       {"criticalkv:gamma=0.2",
        "unknown parameter 'gamma' (known: budget, keep, scorer, first_stage, epsilon, adaptive, "
        "alpha, window, kernel, pooling, beta)"},
       {"criticalkv:adaptive=maybe", "parameter 'adaptive'"},
       {"criticalkv:alpha=2", "parameter 'alpha' = 2 is out of range"}},
      {{"criticalkv",
        "criticalkv:adaptive=false,alpha=0.2,beta=20,budget=1024,epsilon=0.0001,"
        "first_stage=0.5,kernel=7,"
        "pooling=max,scorer=snapkv,window=32"}},
  });
  rows.push_back({
      "simlayerkv",
      // threshold=0 makes every layer lazy; a budget covering the sequence still equals dense.
      {{{"simlayerkv:budget=400", "simlayerkv:keep=1", "simlayerkv:budget=400,threshold=0",
         "simlayerkv:sinks=0,budget=400,threshold=0,last=8"},
        dense_stats::resident}},
      {{gqa_4x2_d8,
        {{"simlayerkv:threshold=0", 2000, 1028, 1028},
         {"simlayerkv:threshold=0,budget=40", 100, 40, 40},
         {"simlayerkv:threshold=0,keep=0.25", 100, 25, 25},
         {"simlayerkv:threshold=0,keep=0.25,budget=3", 100, 25, 25},
         {"simlayerkv:threshold=0,sinks=8,budget=5", 100, 9, 9},
         {"simlayerkv:threshold=0,budget=40", 8, 40, 8},
         {"simlayerkv:threshold=1,budget=40", 100, 40, 100}},
        {.decode_room = 1}}},
      {{.spec = "simlayerkv:budget=64,threshold=0"}, {.spec = "simlayerkv:budget=64,threshold=1"}},
      {{"simlayerkv:threshold=1.5", "parameter 'threshold' = 1.5 is out of range"},
       {"simlayerkv:sinks=-1", "parameter 'sinks' = -1 is out of range"},
       {"simlayerkv:last=0", "parameter 'last' = 0 is out of range"},
       {"simlayerkv:budget=0", "parameter 'budget' = 0 is out of range"},
       {"simlayerkv:window=8",
        "unknown parameter 'window' (known: budget, keep, sinks, threshold, last)"}},
      {{"simlayerkv", "simlayerkv:budget=1028,last=1,sinks=4,threshold=0.9"}},
  });
  rows.push_back({
      "think",
      // Nothing pruned (ratio 0, or a recent window covering the prompt): dense, bytes included.
      {{{"think:ratio=0", "think:recent=1000", "think:ratio=0.9,recent=300"},
        dense_stats::all,
        s::fixed}},
      {},
      {{.spec = "think:ratio=0.4,window=16",
        .shape = {"test", 1, 8, 4, 64},
        .context = 300,
        .steps = {1, 5},
        .qkv_seed = 8}},
      {{"think:ratio=1.5", "parameter 'ratio' = 1.5 is out of range"},
       {"think:ratio=-0.1", "parameter 'ratio' = -0.1 is out of range"},
       {"think:window=0", "parameter 'window' = 0 is out of range"},
       {"think:recent=-1", "parameter 'recent' = -1 is out of range"},
       {"think:budget=64", "unknown parameter 'budget' (known: ratio, window, recent)"}},
      {{"think", "think:ratio=0.4,recent=32,window=32"}},
  });
  rows.push_back({
      "cake",
      // cake keeps its budget while decoding: keep=1 runs no decode step.
      {{.specs = {"cake:budget=400", "cake:keep=1", "cake:budget=400,gamma=0"},
        .same = dense_stats::resident,
        .contexts = {1, 120},
        .layers = 2,
        .setup = with_random_calibration(2, 5, 1)}},
      // One calibration layer: the layer's share is the whole budget.
      {{{"test", 1, 4, 2, 16},
        {{"cake", 2000, 1024, 1024},
         {"cake:budget=40", 100, 40, 40},
         {"cake:keep=0.25", 100, 25, 25},
         {"cake:keep=0.25,budget=3", 100, 25, 25},
         {"cake:budget=10", 100, 10, 10},
         {"cake:budget=500", 100, 500, 100}},
        {},
        r::every_head,
        with_random_calibration(1, 3)}},
      {{.spec = "cake:budget=60,window=16",
        .shape = {"test", 1, 8, 4, 64},
        .context = 300,
        .steps = {1, 1, 1},
        .qkv_seed = 47,
        .setup = with_random_calibration(1, 9)}},
      {{"cake:gamma=-1", "parameter 'gamma' = -1 is out of range"},
       {"cake:tau1=0", "parameter 'tau1' = 0 is out of range"},
       {"cake:window=0", "parameter 'window' = 0 is out of range"},
       {"cake:budget=0", "parameter 'budget' = 0 is out of range"},
       {"cake:kernel=5",
        "unknown parameter 'kernel' (known: budget, keep, window, gamma, tau1, tau2)"}},
      {{"cake", "cake:budget=1024,gamma=200,tau1=1.6,tau2=0.4,window=32"}},
  });
  {
    // A prompt whose last 4 tokens are the question (query-aware mode).
    const problem_setup question{.layer = 0, .maybe_calibration = {}, .question_tokens = 4};
    rows.push_back({
        "finch",
        {{.specs = {"finch:budget=400", "finch:keep=1", "finch:budget=304,chunk=7",
                    "finch:budget=304,chunk=0"},
          .same = dense_stats::resident,
          .steps = s::fixed,
          .setup = question}},
        {{{"test", 1, 4, 2, 16},
          {{"finch", 2000, 1024, 1024},
           {"finch:budget=40", 100, 40, 40},
           {"finch:budget=40,chunk=7", 100, 40, 40},
           {"finch:keep=0.25", 100, 25, 25},
           {"finch:keep=0.25,budget=3", 100, 25, 25},
           {"finch:budget=3", 100, 3, 3},
           {"finch:budget=500", 100, 500, 100}},
          {},
          r::every_head,
          question}},
        {{.spec = "finch:budget=60,chunk=50",
          .shape = {"test", 1, 8, 4, 64},
          .context = 300,
          .steps = {1, 1, 1},
          .qkv_seed = 53,
          .setup = question}},
        {{"finch:chunk=-1", "parameter 'chunk' = -1 is out of range"},
         {"finch:budget=0", "parameter 'budget' = 0 is out of range"},
         {"finch:keep=2", "parameter 'keep' = 2 is out of range"},
         {"finch:window=8", "unknown parameter 'window' (known: budget, keep, chunk)"}},
        {{"finch", "finch:budget=1024,chunk=3072"}},
    });
  }
  // Wrappers (kvpress presses around a prompt scorer): the budget is the inner method's, except
  // per_layer (one per layer) and decoding (its own target).
  rows.push_back({
      "chunk",
      {{{"chunk(snapkv:budget=400)", "chunk(knorm:keep=1):chunk=7", "chunk(pyramidkv:budget=400)",
         "chunk(random:budget=300):chunk=16", "chunk(tova:budget=400)",
         "chunk(adakv:budget=400):chunk=32", "chunk(per_layer(knorm):budgets=400):chunk=16"},
        dense_stats::resident,
        s::fixed}},
      {{gqa_6x3_d16,
        {{"chunk(knorm)", 2000, 1024, 1024},
         {"chunk(knorm:budget=40):chunk=16", 100, 40, 40},
         {"chunk(knorm:keep=0.25):chunk=7", 100, 25, 25},
         {"chunk(snapkv:budget=500)", 100, 500, 100}}}},
      {{.spec = "chunk(snapkv:budget=100,window=16):chunk=64",
        .shape = {"test", 1, 8, 4, 64},
        .context = 300,
        .steps = {1, 1, 1},
        .qkv_seed = 21}},
      {{"chunk", "chunk wraps a method: write chunk(METHOD)"},
       {"chunk:chunk=16", "chunk wraps a method"},
       {"chunk(h2o)",
        "chunk: cannot wrap 'h2o': it does not compress the prompt by scores (wrappable: adakv, "
        "cake, chunkkv, compactor, criticalkv, expected_attention, keydiff, knorm, kvzip, lagkv, "
        "pyramidkv, qfilter, random, snapkv, tova, and wrappers of them)"},
       {"chunk(chunk(snapkv))", "chunk: cannot wrap 'chunk(snapkv)': it is chunked already"},
       {"chunk(decoding(snapkv))", "decoding keeps the prompt whole"},
       {"chunk(snapkv):chunk=0", "chunk: parameter 'chunk' = 0 is out of range"},
       {"chunk(snapkv:windw=3)", "snapkv: unknown parameter 'windw'"},
       {"chunk(snapkv", "unbalanced '(' after 'chunk'"},
       {"chunk()", "empty parentheses"},
       {"chunk(snapkv)x", "expected ':' or the end after ')'"},
       {"snapkv(knorm)", "snapkv does not wrap a method"},
       {"chunk(snapkv):budget=5", "unknown parameter 'budget' (known: chunk)"}},
      {{"chunk(knorm:keep=0.5):chunk=2k", "chunk(knorm:budget=1024,keep=0.5):chunk=2048"},
       {"chunk(snapkv)", "chunk(snapkv:budget=1024,kernel=7,pooling=max,window=32):chunk=1024"}},
  });
  rows.push_back({
      "per_layer",
      {{{"per_layer(snapkv):budgets=400", "per_layer(knorm):keeps=1",
         "per_layer(adakv):budgets=400"},
        dense_stats::resident,
        s::fixed},
       {.specs = {"per_layer(pyramidkv):budgets=10/400"},
        .same = dense_stats::resident,
        .steps = s::fixed,
        .layers = 2,
        .setup = {1, {}}}},
      {{{"test", 2, 4, 2, 16},
        {{"per_layer(knorm):budgets=12/40", 100, 12, 12},
         {"per_layer(knorm:budget=3):keeps=0.25/0.5", 100, 25, 25},
         {"per_layer(snapkv):budgets=500/7", 100, 500, 100}}},
       {{"test", 2, 4, 2, 16},
        {{"per_layer(knorm):budgets=12/40", 100, 40, 40},
         {"per_layer(knorm):keeps=0.25/0.5", 100, 50, 50}},
        {.layer = 1}}},
      {{.spec = "per_layer(snapkv:window=16):budgets=100",
        .shape = {"test", 1, 8, 4, 64},
        .context = 300,
        .steps = {1, 1, 1},
        .qkv_seed = 21}},
      {{"per_layer(snapkv)", "per_layer: give exactly one of budgets=B0/B1/... and keeps"},
       {"per_layer(snapkv):budgets=4/8,keeps=0.5/0.5", "give exactly one of"},
       {"per_layer(snapkv):budgets=4//8", "parameter 'budgets' = '4//8' has an empty item"},
       {"per_layer(snapkv):budgets=4/0", "parameter 'budgets[1]' = 0 is out of range"},
       {"per_layer(snapkv):keeps=0.5/1.5", "parameter 'keeps[1]' = 1.5 is out of range"},
       {"per_layer(snapkv):budgets=4/x", "parameter 'budgets[1]' expects an integer, got 'x'"},
       {"per_layer(h2o):budgets=4", "per_layer: cannot wrap 'h2o'"},
       {"per_layer(per_layer(knorm):budgets=4):budgets=4", "its layers have budgets already"}},
      {{"per_layer(knorm:budget=9):budgets=1k/2k", "per_layer(knorm:budget=9):budgets=1024/2048"},
       {"per_layer(knorm):keeps=.5/0.25", "per_layer(knorm:budget=1024):keeps=0.5/0.25"}},
  });
  rows.push_back({
      "decoding",
      // The default interval (512) never comes within these runs; interval=1 with a budget
      // covering the sequence compresses every step and keeps everything.
      {{{"decoding(knorm)", "decoding(snapkv):budget=400,interval=1",
         "decoding(tova):budget=400,interval=1", "decoding(random):budget=400,interval=2"},
        dense_stats::resident,
        s::fixed}},
      {{gqa_4x2_d8,
        {{"decoding(knorm)", 2000, 2048, 2000},
         {"decoding(knorm):budget=12", 100, 12, 100},
         {"decoding(snapkv:budget=3):keep=0.25", 100, 25, 100}}}},
      {{.spec = "decoding(snapkv:window=8):budget=150,interval=4,buffer=16",
        .shape = {"test", 1, 8, 4, 64},
        .context = 200,
        .steps = std::vector<int>(20, 1),
        .qkv_seed = 21}},
      {{"decoding(snapkv):interval=0", "parameter 'interval' = 0 is out of range"},
       {"decoding(snapkv):buffer=0", "parameter 'buffer' = 0 is out of range"},
       {"decoding(snapkv):budget=0", "parameter 'budget' = 0 is out of range"},
       {"decoding(lazy_eviction)", "decoding: cannot wrap 'lazy_eviction'"},
       {"decoding", "decoding wraps a method"},
       {"decoding(adakv)", "decoding takes a method with one budget for every KV head"},
       {"decoding(chunk(snapkv))", "decoding takes a method without other wrappers"}},
      {{"decoding(knorm)", "decoding(knorm:budget=1024):budget=2048,buffer=256,interval=512"}},
  });
  rows.push_back({
      "key_rerotation",
      {{.specs = {"key_rerotation(snapkv:budget=400)", "key_rerotation(knorm:keep=1)",
                  "key_rerotation(chunk(snapkv:budget=400):chunk=64)",
                  "key_rerotation(adakv:budget=400)"},
        .same = dense_stats::resident,
        .steps = s::fixed,
        .setup = with_rope()}},
      {{gqa_6x3_d16,
        {{"key_rerotation(knorm:budget=40)", 100, 40, 40},
         {"key_rerotation(knorm:keep=0.25)", 100, 25, 25}},
        {},
        r::every_head,
        with_rope()}},
      {{.spec = "key_rerotation(snapkv:budget=100,window=16)",
        .shape = {"test", 1, 8, 4, 64},
        .context = 300,
        .steps = {1, 1, 1},
        .qkv_seed = 21,
        .setup = with_rope()}},
      {{"key_rerotation", "key_rerotation wraps a method"},
       {"key_rerotation(knorm):budget=3", "unknown parameter 'budget' (known: none)"},
       {"key_rerotation(streaming_llm)", "key_rerotation: cannot wrap 'streaming_llm'"},
       {"key_rerotation(key_rerotation(knorm))", "its keys are re-rotated already"}},
      {{"key_rerotation(knorm)", "key_rerotation(knorm:budget=1024)"},
       {"key_rerotation(chunk(knorm:keep=0.5):chunk=2k)",
        "key_rerotation(chunk(knorm:budget=1024,keep=0.5):chunk=2048)"}},
  });
  {
    // kvquant calibrates on the layer's calibration pass and un-rotates keys with the RoPE.
    const problem_setup calibrated{
        .layer = 0, .maybe_calibration = with_random_calibration(1, 3).maybe_calibration, .rope = true};
    rows.push_back({
        "kvquant",
        // Every element an outlier: the cache holds every K/V exactly (up to the RoPE round trip).
        {{.specs = {"kvquant:outliers=1", "kvquant:bits=2,outliers=1"},
          .same = dense_stats::resident,
          .steps = s::fixed,
          .setup = calibrated}},
        {},
        {{.spec = "kvquant",
          .shape = {"test", 1, 8, 4, 64},
          .context = 300,
          .steps = {1, 5},
          .qkv_seed = 8,
          .setup = calibrated}},
        {{"kvquant:bits=8", "parameter 'bits' = '8' is not one of: 2, 3, 4"},
         {"kvquant:outliers=1.5", "parameter 'outliers' = 1.5 is out of range"},
         {"kvquant:outliers=-0.1", "parameter 'outliers' = -0.1 is out of range"},
         {"kvquant:budget=64", "unknown parameter 'budget' (known: bits, outliers)"}},
        {{"kvquant", "kvquant:bits=3,outliers=0.01"}},
    });
  }
  rows.push_back({
      "found_in_the_middle",
      // One bucket has nothing to calibrate against (its share is the whole region), and with
      // layers=0 no layer is calibrated: both are dense. Random Q/K/V of 300 tokens in 20
      // buckets run the calibration at 1 and 2 threads.
      {{{"found_in_the_middle:buckets=1", "found_in_the_middle:layers=0",
         "found_in_the_middle:buckets=1,sinks=0,temperature=0.01"},
        dense_stats::all,
        s::fixed}},
      {},
      {{.spec = "found_in_the_middle", .context = 300},
       {.spec = "found_in_the_middle:buckets=7,sinks=0,temperature=0.1", .context = 100}},
      {{"found_in_the_middle:buckets=0", "parameter 'buckets' = 0 is out of range"},
       {"found_in_the_middle:sinks=-1", "parameter 'sinks' = -1 is out of range"},
       {"found_in_the_middle:temperature=0", "parameter 'temperature' = 0 is out of range"},
       {"found_in_the_middle:layers=1.5", "parameter 'layers' = 1.5 is out of range"},
       {"found_in_the_middle:budget=64",
        "unknown parameter 'budget' (known: buckets, sinks, temperature, layers)"}},
      {{"found_in_the_middle",
        "found_in_the_middle:buckets=20,layers=0.5,sinks=4,temperature=0.5"}},
  });
  return rows;
}

const std::vector<conformance_row>& rows() {
  static const std::vector<conformance_row> table = conformance_table();
  return table;
}

/// Points `problem` at the setup's layer and calibration; returns the calibration to keep alive.
std::shared_ptr<const calibration_source> apply(const problem_setup& setup,
                                                attention_problem& problem) {
  problem.layer = setup.layer;
  problem.question_tokens = setup.question_tokens;
  if (setup.rope) {
    rotary_embedding rope{problem.shape.head_dim, {}};
    for (int i = 0; i < rope.rotary_dims / 2; ++i)
      rope.inv_freq.push_back(std::pow(10000.0, -2.0 * i / rope.rotary_dims));
    problem.rope = rope;
  }
  if (!setup.maybe_calibration) return nullptr;
  auto calibration = setup.maybe_calibration(problem.shape);
  problem.calibration = calibration.get();
  return calibration;
}

void check_dense_group(const dense_group& g) {
  for (const auto& spec : g.specs)
    for (const auto& heads : g.heads)
      for (const int context : g.contexts) {
        const model_shape shape = test::dense_case_shape(heads, g.layers);
        const std::vector<int> steps = g.steps == decode_steps::fixed
                                           ? std::vector<int>{1, 2, 1}
                                           : test::decode_steps_within_budget(spec);
        const int tokens = context + std::accumulate(steps.begin(), steps.end(), 0);
        auto t = test::random_qkv(shape, tokens, g.qkv_seed);
        if (g.maybe_edit_qkv) g.maybe_edit_qkv(t);
        auto problem = test::make_problem(shape, context, tokens);
        const auto calibration = apply(g.setup, problem);
        test::check_equals_dense(spec, t, problem, steps, g.same);
      }
}

void check_budget_group(const budget_group& g) {
  const model_shape& shape = g.shape;
  const auto token_bytes = static_cast<std::uint64_t>(2 * shape.head_dim * 4);
  for (const auto& c : g.cases) {
    if (g.rule == resident_rule::every_head && !g.problem.maybe_calibration &&
        g.problem.question_tokens == 0 && !g.problem.rope) {
      test::check_budget_resolution(c, shape, g.setup);
      continue;
    }
    CAPTURE(c.spec, c.context);
    auto problem = test::make_problem(shape, c.context, c.context + g.setup.decode_room);
    const auto calibration = apply(g.problem, problem);
    problem.layer = g.setup.layer;
    const auto s = test::prefill_stats(c.spec, problem, g.setup.queries, g.setup.seed);
    CHECK(s.budget_tokens == c.budget);
    const auto& held = s.resident_tokens;
    if (g.rule == resident_rule::streaming_heads) {
      REQUIRE(held.size() == 2);
      CHECK(std::min(held[0], held[1]) == c.resident);
      CHECK(std::max(held[0], held[1]) == c.context);
      CHECK(s.resident_bytes == static_cast<std::uint64_t>(c.resident + c.context) * token_bytes);
      continue;
    }
    const std::int64_t total = shape.kv_heads * c.resident;
    if (g.rule == resident_rule::shared_by_heads)
      CHECK(std::accumulate(held.begin(), held.end(), std::int64_t{0}) == total);
    else
      CHECK(held ==
            std::vector<std::int64_t>(static_cast<std::size_t>(shape.kv_heads), c.resident));
    CHECK(s.resident_bytes == static_cast<std::uint64_t>(total) * token_bytes);
    CHECK_FALSE(s.simulated);
  }
}

void check_thread_case(const thread_case& c) {
  const int tokens = c.context + std::accumulate(c.steps.begin(), c.steps.end(), 0);
  auto t = test::random_qkv(c.shape, tokens, c.qkv_seed);
  auto problem = test::make_problem(c.shape, c.context, tokens);
  const auto calibration = apply(c.setup, problem);
  test::check_same_at_thread_counts(c.spec, t, problem, c.steps, c.threads, c.seed);
}

}  // namespace

TEST_CASE("every registered CPU method has a conformance row", "[adapters][conformance]") {
  for (const method_info* info : method_registry::instance().all()) {
    if (info->backend != "cpu") continue;
    CAPTURE(info->name);
    CHECK(std::count_if(rows().begin(), rows().end(),
                        [&](const conformance_row& r) { return r.name == info->name; }) == 1);
  }
  for (const auto& row : rows()) {
    CAPTURE(row.name);
    CHECK(method_registry::instance().find(row.name, "cpu") != nullptr);
    CHECK_FALSE(row.dense.empty());
    CHECK_FALSE(row.bad_inputs.empty());
  }
}

TEST_CASE("every registered method documents itself", "[adapters][conformance][registry]") {
  for (const method_info* info : method_registry::instance().all()) {
    CAPTURE(info->name, info->backend);
    CHECK_FALSE(info->summary.empty());
    CHECK(static_cast<bool>(info->factory) != info->is_wrapper());
    if (info->backend != "cpu") continue;
    CHECK_FALSE(info->simplified.empty());
    CHECK((info->name == "dense") == info->paper.empty());
    CHECK((info->name == "dense" || info->is_wrapper() || !info->params.empty()));
    for (const auto& p : info->params) CHECK_FALSE(p.doc.empty());
  }
}

TEST_CASE("(a) every method equals dense when its budget covers the context",
          "[adapters][conformance]") {
  for (const auto& row : rows()) DYNAMIC_SECTION(row.name) {
      for (const auto& group : row.dense) check_dense_group(group);
    }
}

TEST_CASE("(b) every method resolves budget and keep", "[adapters][conformance][params]") {
  for (const auto& row : rows()) DYNAMIC_SECTION(row.name) {
      for (const auto& group : row.budgets) check_budget_group(group);
    }
}

TEST_CASE("(c) every method runs identically at any thread count", "[adapters][conformance]") {
  for (const auto& row : rows()) DYNAMIC_SECTION(row.name) {
      for (const auto& c : row.threads) check_thread_case(c);
    }
}

TEST_CASE("(d) every method validates its parameters", "[adapters][conformance][params]") {
  for (const auto& row : rows()) DYNAMIC_SECTION(row.name) {
      for (const auto& c : row.bad_inputs) test::check_bad_input(c.spec, c.message);
      for (const auto& c : row.canonical) {
        CAPTURE(c.spec);
        CHECK(resolve_method(c.spec, "cpu").canonical == c.canonical);
      }
    }
}
