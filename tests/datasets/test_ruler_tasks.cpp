#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <map>

#include "datasets/retrieval_model.hpp"
#include "datasets/ruler_tasks.hpp"
#include "harness/error.hpp"

using namespace attnbench;

namespace {

// The aggregation pool of the small shape: the first 1024 key and filler words.
std::vector<int> pool() {
  std::vector<int> p = vocab().keys();
  p.insert(p.end(), vocab().fillers().begin(), vocab().fillers().end());
  p.resize(1024);
  return p;
}

std::string text(const std::vector<int>& tokens) { return vocab().detokenize(tokens); }

std::map<int, int> counts(const std::vector<int>& tokens) {
  std::map<int, int> c;
  for (int t : tokens) ++c[t];
  return c;
}

// Occurrences of `needle` as a token subsequence of `hay`.
int occurrences(const std::vector<int>& hay, const std::vector<int>& needle) {
  int n = 0;
  for (std::size_t i = 0; i + needle.size() <= hay.size(); ++i)
    n += std::equal(needle.begin(), needle.end(), hay.begin() + static_cast<std::ptrdiff_t>(i));
  return n;
}

}  // namespace

TEST_CASE("every RULER task makes a prompt of exactly the asked length", "[ruler]") {
  REQUIRE(ruler_task_names().size() == 13);
  for (const auto& name : ruler_task_names())
    for (std::int64_t length : {2048, 4096, 8192}) {
      INFO(name << " " << length);
      ruler_sample s = make_ruler_sample(ruler_task(name), length, 7, pool());
      CHECK(static_cast<std::int64_t>(s.context.size() + s.question.size()) == length);
      CHECK(s.context.front() == vocab().bos());
      CHECK(!s.items.empty());
      CHECK(!s.references.empty());
    }
}

TEST_CASE("the same seed gives the same RULER sample, another seed another", "[ruler]") {
  for (const auto& name : ruler_task_names()) {
    INFO(name);
    auto a = make_ruler_sample(ruler_task(name), 4096, 3, pool());
    auto b = make_ruler_sample(ruler_task(name), 4096, 3, pool());
    auto c = make_ruler_sample(ruler_task(name), 4096, 4, pool());
    CHECK(a.context == b.context);
    CHECK(a.references == b.references);
    CHECK(a.context != c.context);
  }
}

TEST_CASE("niah tasks hold the configured needles and ask for their values", "[ruler]") {
  struct expect {
    const char* task;
    std::size_t needles, answers;
  };
  // num_needle_k x num_needle_v needles (k = max(k, q)); num_needle_q x num_needle_v answers.
  for (auto e : {expect{"niah_single_1", 1, 1}, expect{"niah_single_3", 1, 1},
                 expect{"niah_multikey_1", 4, 1}, expect{"niah_multikey_3", 1, 1},
                 expect{"niah_multivalue", 4, 4}, expect{"niah_multiquery", 4, 4}}) {
    INFO(e.task);
    ruler_sample s = make_ruler_sample(ruler_task(e.task), 4096, 11, pool());
    CHECK(s.evidence.size() == e.needles);
    CHECK(s.references.size() == e.answers);
    CHECK(s.items.size() == e.answers);
    const std::string context = text(s.context);
    for (const auto& ref : s.references) {
      INFO(ref);
      // Values read back exactly as written (no UUID chunk that detokenizes as a word).
      CHECK(text(vocab().tokenize(ref)) == ref);
      // The value sits in a needle right after "is:" in the context, exactly once.
      CHECK(occurrences(s.context, vocab().tokenize("is: " + ref + ".")) == 1);
    }
    for (auto at : s.evidence)
      CHECK(std::equal(s.context.begin() + at, s.context.begin() + at + 4,
                       vocab().tokenize("one of the special").begin()));
  }
  // multivalue lists its 4 values with inhibition of return; every value starts differently.
  ruler_sample mv = make_ruler_sample(ruler_task("niah_multivalue"), 4096, 5, pool());
  CHECK(mv.inhibit_repeats);
  std::vector<int> firsts;
  for (const auto& ref : mv.references) firsts.push_back(vocab().tokenize(ref).front());
  std::sort(firsts.begin(), firsts.end());
  CHECK(std::adjacent_find(firsts.begin(), firsts.end()) == firsts.end());
  // The needle haystack: every line is a key-value pair (hundreds of distractors at 4K).
  ruler_sample mk = make_ruler_sample(ruler_task("niah_multikey_2"), 4096, 5, pool());
  CHECK(occurrences(mk.context, vocab().tokenize("one of the special magic numbers for")) > 100);
  // The noise haystack repeats RULER's five sentences.
  ruler_sample s1 = make_ruler_sample(ruler_task("niah_single_1"), 4096, 5, pool());
  CHECK(occurrences(s1.context, vocab().tokenize("the grass is green.")) > 100);
}

TEST_CASE("vt hides chains NEW : OLD in order and asks for the value's names", "[ruler]") {
  ruler_task_config cfg = ruler_task("vt");
  REQUIRE(set_ruler_field(cfg, "num_chains", "2"));
  ruler_sample s = make_ruler_sample(cfg, 4096, 9, pool());
  const int colon = vocab().id(":");
  REQUIRE(s.evidence.size() == 2 * 5);  // 2 chains x (num_hops 4 + 1) statements
  REQUIRE(s.references.size() == 5);
  // The first chain: its statements appear in order, each assigning the previous name.
  for (std::size_t j = 0; j < 5; ++j) {
    const auto at = static_cast<std::size_t>(s.evidence[j]);
    CHECK(vocab().text(s.context[at]) == s.references[j]);
    CHECK(s.context[at + 1] == colon);
    if (j > 0) {
      CHECK(s.evidence[j] > s.evidence[j - 1]);
      CHECK(vocab().text(s.context[at + 2]) == s.references[j - 1]);
    } else {
      // The chain starts at the value, which is the question's last token.
      CHECK(s.context[at + 2] == s.question.back());
      CHECK(vocab().cls(s.question.back()) == token_class::number);
    }
  }
  // Five answers, one token each, decoded hop by hop without cues.
  for (const auto& item : s.items) {
    CHECK(item.cue.empty());
    CHECK(item.tokens == 1);
  }
}

TEST_CASE("cwe repeats the common words freq_cw times and the others freq_ucw times", "[ruler]") {
  ruler_sample s = make_ruler_sample(ruler_task("cwe"), 8192, 2, pool());
  auto c = counts(s.context);
  REQUIRE(s.answer_tokens.size() == 10);
  for (int w : s.answer_tokens) CHECK(c[w] == 30);
  std::vector<int> p = pool();
  int uncommon = 0;
  for (int w : p)
    if (std::find(s.answer_tokens.begin(), s.answer_tokens.end(), w) == s.answer_tokens.end() &&
        c.count(w)) {
      CHECK(c[w] == 3);
      ++uncommon;
    }
  CHECK(uncommon > 300);
  CHECK(s.inhibit_repeats);
  // Below 4096 tokens RULER uses 6 and 1 repeats.
  ruler_sample small = make_ruler_sample(ruler_task("cwe"), 2048, 2, pool());
  auto cs = counts(small.context);
  for (int w : small.answer_tokens) CHECK(cs[w] == 6);
}

TEST_CASE("fwe's answers are its three most frequent words after the noise", "[ruler]") {
  ruler_sample s = make_ruler_sample(ruler_task("fwe"), 8192, 4, pool());
  auto c = counts(s.context);
  REQUIRE(s.answer_tokens.size() == 3);
  int least_answer = 1 << 30, most_other = 0;
  for (int w : pool()) {
    const bool answer =
        std::find(s.answer_tokens.begin(), s.answer_tokens.end(), w) != s.answer_tokens.end();
    if (answer)
      least_answer = std::min(least_answer, c[w]);
    else if (c.count(w))
      most_other = std::max(most_other, c[w]);
  }
  CHECK(least_answer > most_other);
  CHECK(most_other > 0);
  // Zipf(2): the top answer is about 4x as frequent as the 3rd (ranks 2 and 4 overall).
  const int top = c[s.answer_tokens[0]], third = c[s.answer_tokens[2]];
  CHECK(top >= 3 * third);
}

TEST_CASE("qa documents hold the gold facts the question asks about", "[ruler]") {
  ruler_sample q1 = make_ruler_sample(ruler_task("qa_1"), 4096, 8, pool());
  CHECK(q1.metric == ruler_metric::match_part);
  REQUIRE(q1.evidence.size() == 1);
  // The question ends "... the REL of ENTITY is :" and the gold fact reads the same, then the
  // answer span.
  const std::vector<int> ask(q1.question.end() - 6, q1.question.end());
  const auto at = static_cast<std::size_t>(q1.evidence[0]);
  CHECK(std::equal(ask.begin(), ask.end(), q1.context.begin() + static_cast<std::ptrdiff_t>(at)));
  CHECK(text({q1.context[at + 6], q1.context[at + 7]}) == q1.references[0]);
  CHECK(occurrences(q1.context, vocab().tokenize("title :")) > 10);

  ruler_sample q2 = make_ruler_sample(ruler_task("qa_2"), 4096, 8, pool());
  REQUIRE(q2.evidence.size() == 2);
  REQUIRE(q2.items.size() == 2);
  CHECK(q2.items[1].cue == vocab().tokenize("is :"));
  // Gold 1: "the REL1 of E1 is : E2 ." (E2 is the bridge), gold 2: "the REL2 of E2 is : ANSWER ."
  const auto a = static_cast<std::size_t>(q2.evidence[0]),
             b = static_cast<std::size_t>(q2.evidence[1]);
  const int bridge = q2.context[a + 6];
  CHECK(q2.context[b + 3] == bridge);
  CHECK(vocab().text(q2.context[b + 6]) == q2.references[0]);
}

TEST_CASE("ruler fields are validated by name", "[ruler]") {
  ruler_task_config c = ruler_task("niah_multikey_1");
  CHECK(c.num_needle_k == 4);
  CHECK(set_ruler_field(c, "num_needle_k", "2"));
  CHECK(c.num_needle_k == 2);
  CHECK_FALSE(set_ruler_field(c, "num_hops", "3"));  // a vt field: valid, not applied
  auto bad = [](const std::string& field, const std::string& value) {
    ruler_task_config x = ruler_task("cwe");
    try {
      set_ruler_field(x, field, value);
    } catch (const error& e) {
      CHECK(e.id() == error_id::bad_input);
      CHECK(std::string(e.what()).find(field) != std::string::npos);
      return true;
    }
    return false;
  };
  CHECK(bad("num_needle_k", "0"));
  CHECK(bad("num_needle_k", "2.5"));
  CHECK(bad("alpha", "1"));
  CHECK(bad("freq_cw", "abc"));
  CHECK(bad("type_haystack", "ocean") == true);
  CHECK(bad("colour", "red"));
  CHECK_THROWS_AS(ruler_task("niah_single_9"), error);
}

namespace {

// Exact causal attention of the last position over keys [first_key, end), all heads, one layer
// (first_key 1: BOS evicted): out [1, q_heads, head_dim].
host_tensor last_output(const retrieval_model& m, int layer, const std::vector<int>& tokens,
                        int first_key) {
  const model_shape& s = m.shape();
  const int n = static_cast<int>(tokens.size()), d = s.head_dim;
  host_tensor q(n, s.q_heads, d), k(n, s.kv_heads, d), v(n, s.kv_heads, d), out(1, s.q_heads, d);
  m.project(layer, tokens, 0, n, q.view(), k.view(), v.view());
  for (int h = 0; h < s.q_heads; ++h) {
    const int kh = h / s.group_size();
    std::vector<double> w(static_cast<std::size_t>(n));
    double mx = -1e300, z = 0;
    for (int t = first_key; t < n; ++t) {
      double dot = 0;
      for (int i = 0; i < d; ++i) dot += q.view().at(n - 1, h)[i] * k.view().at(t, kh)[i];
      w[static_cast<std::size_t>(t)] = dot / std::sqrt(static_cast<double>(d));
      mx = std::max(mx, w[static_cast<std::size_t>(t)]);
    }
    for (int t = first_key; t < n; ++t)
      z += (w[static_cast<std::size_t>(t)] = std::exp(w[static_cast<std::size_t>(t)] - mx));
    for (int i = 0; i < d; ++i) {
      double acc = 0;
      for (int t = first_key; t < n; ++t)
        acc += w[static_cast<std::size_t>(t)] * v.view().at(t, kh)[i];
      out.view().at(0, h)[i] = static_cast<float>(acc / z);
    }
  }
  return out;
}

std::vector<float> model_logits(const retrieval_model& m, const std::vector<int>& tokens,
                                const std::vector<int>& inhibited = {}, int first_key = 0) {
  std::vector<host_tensor> outs;
  std::vector<tensor_view> views;
  for (int l = 0; l < m.shape().layers; ++l) outs.push_back(last_output(m, l, tokens, first_key));
  for (auto& o : outs) views.push_back(o.view());
  return m.logits(views, inhibited);
}

int argmax(const std::vector<float>& v) {
  return static_cast<int>(std::max_element(v.begin(), v.end()) - v.begin());
}

}  // namespace

TEST_CASE("aggregation heads read out the counts of the resident words", "[ruler][workload]") {
  workload_config cfg;
  cfg.retrieval_heads = cfg.local_heads = cfg.noise_heads = 0;
  cfg.aggregation_heads = 1;
  const retrieval_model m(shape_preset("small"), cfg);
  // small: 2 layers x 8 query heads x 64 slots.
  REQUIRE(m.aggregation_words().size() == 1024);
  const auto& w = m.aggregation_words();
  // w[0] x5, w[17] x4, w[900] x3, then a word outside the pool and punctuation.
  std::vector<int> tokens{vocab().bos()};
  for (auto [word, n] : {std::pair<int, int>{w[0], 5}, {w[17], 4}, {w[900], 3}})
    for (int i = 0; i < n; ++i) tokens.insert(tokens.end(), {word, vocab().id(".")});
  tokens.push_back(vocab().id("the"));
  auto logits = model_logits(m, tokens);
  CHECK(argmax(logits) == w[0]);
  CHECK(logits[static_cast<std::size_t>(w[0])] == Approx(1.0).epsilon(1e-3));
  CHECK(logits[static_cast<std::size_t>(w[17])] == Approx(0.8).epsilon(1e-3));
  CHECK(logits[static_cast<std::size_t>(w[900])] == Approx(0.6).epsilon(1e-3));
  // Inhibition of return: the listed word is out, the next most frequent wins.
  logits = model_logits(m, tokens, {w[0]});
  CHECK(argmax(logits) == w[17]);
  // Without BOS (evicted sink) every bucket normalizes by itself: the counts are no longer
  // comparable (w[900] sits alone in its bucket and reads as 100%).
  logits = model_logits(m, tokens, {}, 1);
  CHECK(logits[static_cast<std::size_t>(w[900])] == Approx(1.0).epsilon(1e-3));
}

TEST_CASE("chain heads follow NEW : OLD backwards from a name to the next", "[ruler][workload]") {
  workload_config cfg;
  cfg.chain_heads = cfg.retrieval_heads;
  cfg.retrieval_heads = 0;
  const retrieval_model m(shape_preset("small"), cfg);
  const auto& keys = vocab().keys();
  const int a = keys[10], b = keys[20], c = keys[30];
  // "a : 123 . b : a . c : b ." then the query token a: the next hop is b; from b it is c.
  std::vector<int> tokens = vocab().tokenize("the grass is green.");
  tokens.insert(tokens.begin(), vocab().bos());
  for (auto [lhs, rhs] : {std::pair<int, int>{a, vocab().id("123")}, {b, a}, {c, b}}) {
    tokens.insert(tokens.end(), {lhs, vocab().id(":"), rhs, vocab().id(".")});
    for (int t : vocab().tokenize("the sky is blue.")) tokens.push_back(t);
  }
  std::vector<int> ask = tokens;
  ask.push_back(vocab().id("123"));
  CHECK(argmax(model_logits(m, ask)) == a);
  ask.push_back(a);
  CHECK(argmax(model_logits(m, ask)) == b);
  ask.push_back(b);
  CHECK(argmax(model_logits(m, ask)) == c);
}
