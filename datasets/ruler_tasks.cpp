#include "datasets/ruler_tasks.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "datasets/rng.hpp"
#include "datasets/ruler_names.hpp"
#include "harness/error.hpp"
#include "harness/params.hpp"

namespace attnbench {

namespace {

std::vector<int> tok(const std::string& text) { return vocab().tokenize(text); }

const char* plural(value_kind k) {
  switch (k) {
    case value_kind::number:
      return "numbers";
    case value_kind::word:
      return "words";
    case value_kind::uuid:
      return "uuids";
  }
  return "?";
}

template <class T>
void shuffle(std::vector<T>& v, rng& gen) {
  for (std::size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[gen.below(i)]);
}

// `n` distinct entries of `from` in random order (all of them when n exceeds its size).
std::vector<int> sample_distinct(std::vector<int> from, std::size_t n, rng& gen) {
  shuffle(from, gen);
  from.resize(std::min(n, from.size()));
  return from;
}

// Inserts `pieces` into haystack `h` on its boundaries and prepends BOS + `preface`. Essay
// haystacks use RULER's 40 evenly spaced depths (round(linspace(0, 100, 40)) percent, drawn
// without replacement while they last); line haystacks (noise, needle) a uniform random line
// boundary, as RULER's random.sample over lines. `groups[i]` > 0 keeps pieces of the same group
// in their given order (variable-tracking chains). Returns the context and each piece's start.
std::vector<int> insert_pieces(const haystack& h, haystack_kind kind,
                               const std::vector<std::vector<int>>& pieces,
                               const std::vector<int>& groups, const std::vector<int>& preface,
                               rng& gen, std::vector<std::int64_t>& starts) {
  const auto n = pieces.size();
  const auto size = static_cast<double>(h.tokens.size());
  std::vector<std::int64_t> at(n);
  std::vector<int> depths(40);
  for (int i = 0; i < 40; ++i)
    depths[static_cast<std::size_t>(i)] = static_cast<int>(std::lround(100.0 * i / 39.0));
  shuffle(depths, gen);
  for (std::size_t i = 0; i < n; ++i) {
    if (kind == haystack_kind::essay) {
      const double target = depths[i % depths.size()] / 100.0 * size;
      std::int64_t best = h.boundaries.front();
      for (auto b : h.boundaries)
        if (std::abs(static_cast<double>(b) - target) <
            std::abs(static_cast<double>(best) - target))
          best = b;
      at[i] = best;
    } else {
      at[i] = h.boundaries[gen.below(h.boundaries.size())];
    }
  }
  // Chains keep their statement order: sort each group's positions in place.
  const int last_group = groups.empty() ? 0 : *std::max_element(groups.begin(), groups.end());
  for (int g = 1; g <= last_group; ++g) {
    std::vector<std::size_t> idx;
    std::vector<std::int64_t> pos;
    for (std::size_t i = 0; i < n; ++i)
      if (groups[i] == g) {
        idx.push_back(i);
        pos.push_back(at[i]);
      }
    std::sort(pos.begin(), pos.end());
    for (std::size_t j = 0; j < idx.size(); ++j) at[idx[j]] = pos[j];
  }
  std::vector<std::size_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](std::size_t a, std::size_t b) { return at[a] < at[b]; });

  std::vector<int> context{vocab().bos()};
  append_tokens(context, preface);
  starts.assign(n, 0);
  std::int64_t done = 0;
  for (auto i : order) {
    context.insert(context.end(), h.tokens.begin() + done, h.tokens.begin() + at[i]);
    done = at[i];
    starts[i] = static_cast<std::int64_t>(context.size());
    append_tokens(context, pieces[i]);
  }
  context.insert(context.end(), h.tokens.begin() + done, h.tokens.end());
  return context;
}

// make_value, redrawn until the tokens detokenize back to the text: a UUID chunk that spells a
// word ("be") would otherwise read back as "79 be" and fail the string match.
needle_value clean_value(value_kind kind, rng& gen) {
  needle_value v = make_value(kind, gen);
  while (vocab().detokenize(v.tokens) != v.text) v = make_value(kind, gen);
  return v;
}

// RULER's needle: "One of the special magic {type_needle_v} for {key} is: {value}."
std::vector<int> needle(const std::vector<int>& key, value_kind v, const std::vector<int>& value) {
  std::vector<int> out = tok(std::string("one of the special magic ") + plural(v) + " for");
  append_tokens(out, key);
  append_tokens(out, tok("is:"));
  append_tokens(out, value);
  out.push_back(vocab().id("."));
  return out;
}

// The `needle` haystack for any key kind: every line a distractor key-value pair whose key text
// is none of `exclude`.
haystack needle_lines(std::int64_t tokens, value_kind k, value_kind v,
                      const std::vector<std::string>& exclude, rng& gen) {
  haystack h;
  h.boundaries.push_back(0);
  while (static_cast<std::int64_t>(h.tokens.size()) < tokens) {
    needle_value key = clean_value(k, gen);
    if (std::find(exclude.begin(), exclude.end(), key.text) != exclude.end()) continue;
    append_tokens(h.tokens, needle(key.tokens, v, clean_value(v, gen).tokens));
    h.boundaries.push_back(static_cast<std::int64_t>(h.tokens.size()));
  }
  h.tokens.resize(static_cast<std::size_t>(tokens));
  while (h.boundaries.back() >= tokens) h.boundaries.pop_back();
  h.boundaries.push_back(tokens);
  return h;
}

std::int64_t remaining(std::int64_t length, std::int64_t fixed, const std::string& task) {
  ATTNBENCH_CHECK(length >= fixed, bad_input,
                  "ruler: length " << length << " is too short for task " << task
                                   << " (needs at least " << fixed << " tokens)");
  return length - fixed;
}

ruler_sample make_niah_task(const ruler_task_config& c, std::int64_t length, rng& gen) {
  ruler_sample s;
  const int nk = std::max(c.num_needle_k, c.num_needle_q);
  const std::string noun = plural(c.type_needle_v);
  std::vector<needle_value> keys;
  std::vector<std::string> key_texts;
  while (static_cast<int>(keys.size()) < nk) {
    needle_value k = clean_value(c.type_needle_k, gen);
    if (std::find(key_texts.begin(), key_texts.end(), k.text) != key_texts.end()) continue;
    key_texts.push_back(k.text);
    keys.push_back(std::move(k));
  }
  // Values are distinct and start with distinct tokens, so that listing them (with inhibition
  // of return) is unambiguous by construction.
  std::vector<std::vector<needle_value>> values(static_cast<std::size_t>(nk));
  std::vector<int> first_tokens;
  std::vector<std::vector<int>> needles;
  for (int i = 0; i < nk; ++i)
    while (static_cast<int>(values[static_cast<std::size_t>(i)].size()) < c.num_needle_v) {
      needle_value v = clean_value(c.type_needle_v, gen);
      if (std::find(first_tokens.begin(), first_tokens.end(), v.tokens.front()) !=
              first_tokens.end() ||
          std::find(key_texts.begin(), key_texts.end(), v.text) != key_texts.end())
        continue;
      first_tokens.push_back(v.tokens.front());
      needles.push_back(
          needle(keys[static_cast<std::size_t>(i)].tokens, c.type_needle_v, v.tokens));
      values[static_cast<std::size_t>(i)].push_back(std::move(v));
    }
  // RULER shuffles the needles before inserting them.
  shuffle(needles, gen);

  std::vector<int> query_keys(static_cast<std::size_t>(nk));
  std::iota(query_keys.begin(), query_keys.end(), 0);
  query_keys = sample_distinct(query_keys, static_cast<std::size_t>(c.num_needle_q), gen);

  // The answer prefix repeats the needle's words before the value ("the special magic numbers
  // for KEY is:"), so the retrieval context of the question equals the needle's.
  auto prefix = [&](int key) {
    std::vector<int> out = tok("the special magic " + noun + " for");
    append_tokens(out, keys[static_cast<std::size_t>(key)].tokens);
    append_tokens(out, tok("is:"));
    return out;
  };
  s.question = tok("what are all the special magic " + noun + " for");
  for (std::size_t q = 0; q < query_keys.size(); ++q) {
    if (q > 0) append_tokens(s.question, tok(q + 1 == query_keys.size() ? "and" : ","));
    append_tokens(s.question, keys[static_cast<std::size_t>(query_keys[q])].tokens);
  }
  append_tokens(s.question, tok("mentioned in the provided text? answer:"));
  append_tokens(s.question, prefix(query_keys.front()));
  for (std::size_t q = 0; q < query_keys.size(); ++q) {
    const auto& vs = values[static_cast<std::size_t>(query_keys[q])];
    int span = 0;
    for (const auto& v : vs) span = std::max(span, static_cast<int>(v.tokens.size()));
    for (std::size_t j = 0; j < vs.size(); ++j) {
      ruler_item item;
      if (q > 0 || j > 0) {
        item.cue = tok(",");
        append_tokens(item.cue, prefix(query_keys[q]));
      }
      item.tokens = span;
      s.items.push_back(item);
      s.references.push_back(vs[j].text);
    }
  }
  s.inhibit_repeats = c.num_needle_v > 1;

  const std::vector<int> preface =
      tok("some special magic " + noun + " are hidden within the following text. memorize them.");
  std::int64_t fixed = 1 + static_cast<std::int64_t>(preface.size() + s.question.size());
  for (const auto& n : needles) fixed += static_cast<std::int64_t>(n.size());
  const std::int64_t size = remaining(length, fixed, c.name);
  haystack h;
  if (c.type_haystack == haystack_kind::needle)
    h = needle_lines(size, c.type_needle_k, c.type_needle_v, key_texts, gen);
  else
    h = make_haystack(c.type_haystack, size, c.type_needle_v, {}, gen);
  s.context = insert_pieces(h, c.type_haystack, needles, std::vector<int>(needles.size(), 0),
                            preface, gen, s.evidence);
  return s;
}

ruler_sample make_vt_task(const ruler_task_config& c, std::int64_t length, rng& gen) {
  ruler_sample s;
  const int per_chain = c.num_hops + 1;
  std::vector<int> names =
      sample_distinct(vocab().keys(), static_cast<std::size_t>(per_chain * c.num_chains), gen);
  std::vector<int> values;
  while (static_cast<int>(values.size()) < c.num_chains) {
    int v = vocab().id(std::to_string(100 + gen.below(900)));
    if (std::find(values.begin(), values.end(), v) == values.end()) values.push_back(v);
  }
  const int colon = vocab().id(":"), period = vocab().id(".");
  std::vector<std::vector<int>> statements;
  std::vector<int> groups;
  for (int ch = 0; ch < c.num_chains; ++ch)
    for (int j = 0; j < per_chain; ++j) {
      const int name = names[static_cast<std::size_t>(ch * per_chain + j)];
      const int from = j == 0 ? values[static_cast<std::size_t>(ch)]
                              : names[static_cast<std::size_t>(ch * per_chain + j - 1)];
      statements.push_back({name, colon, from, period});
      groups.push_back(ch + 1);
    }
  // The question ends on the value itself: the chain heads' query of that last token starts
  // the first hop (value -> first name), and each generated name queries the next hop.
  const std::string value = vocab().text(values.front());
  s.question = tok("what are all the words that are " + value + " in the text? answer: the words " +
                   "that are " + value);
  for (int j = 0; j < per_chain; ++j) {
    s.items.push_back({{}, 1});
    s.references.push_back(vocab().text(names[static_cast<std::size_t>(j)]));
  }
  const std::vector<int> preface = tok("memorize the words hidden within the following text.");
  std::int64_t fixed = 1 + static_cast<std::int64_t>(preface.size() + s.question.size()) +
                       4 * static_cast<std::int64_t>(statements.size());
  haystack h =
      make_haystack(c.type_haystack, remaining(length, fixed, c.name), value_kind::number, {}, gen);
  s.context = insert_pieces(h, c.type_haystack, statements, groups, preface, gen, s.evidence);
  return s;
}

// Tokens of one numbered list entry "i. word".
std::int64_t entry_tokens(std::int64_t i) {
  return static_cast<std::int64_t>(tok(std::to_string(i)).size()) + 2;
}

ruler_sample make_cwe_task(const ruler_task_config& c, std::int64_t length, rng& gen,
                           const std::vector<int>& pool) {
  ruler_sample s;
  ATTNBENCH_CHECK(
      c.freq_ucw < c.freq_cw, bad_input,
      "ruler: freq_ucw (" << c.freq_ucw << ") must be below freq_cw (" << c.freq_cw << ")");
  ATTNBENCH_CHECK(static_cast<int>(pool.size()) > c.num_cw, bad_input,
                  "ruler: num_cw " << c.num_cw << " needs more than the model's " << pool.size()
                                   << " aggregation words (cwe)");
  // RULER uses 6 and 1 repeats below 4096 tokens (its defaults do not fit there).
  const bool defaults = c.freq_cw == 30 && c.freq_ucw == 3;
  const int fcw = length < 4096 && defaults ? 6 : c.freq_cw;
  const int fucw = length < 4096 && defaults ? 1 : c.freq_ucw;
  const std::string n = std::to_string(c.num_cw);
  const std::vector<int> preface =
      tok("below are some words. memorize the ones that come more than the other ones.");
  s.question = tok("what are the " + n + " words that come more than the other ones in the " +
                   "text? answer: the " + n + " words are:");
  const std::int64_t available =
      remaining(length, 1 + static_cast<std::int64_t>(preface.size() + s.question.size()), c.name);

  std::vector<int> words = sample_distinct(pool, pool.size(), gen);
  // The largest number of uncommon words whose list fits, capped by the pool as RULER caps
  // num_words by its word list.
  auto list_tokens = [&](std::int64_t uncommon) {
    std::int64_t entries = static_cast<std::int64_t>(c.num_cw) * fcw + uncommon * fucw, t = 0;
    for (std::int64_t i = 1; i <= entries; ++i) t += entry_tokens(i);
    return t;
  };
  std::int64_t lo = 0, hi = static_cast<std::int64_t>(words.size()) - c.num_cw;
  ATTNBENCH_CHECK(list_tokens(0) <= available, bad_input,
                  "ruler: length " << length << " is too short for task " << c.name);
  while (lo < hi) {
    std::int64_t mid = (lo + hi + 1) / 2;
    if (list_tokens(mid) <= available)
      lo = mid;
    else
      hi = mid - 1;
  }
  std::vector<int> list;
  for (int i = 0; i < c.num_cw; ++i)
    for (int r = 0; r < fcw; ++r) list.push_back(words[static_cast<std::size_t>(i)]);
  for (std::int64_t i = 0; i < lo; ++i)
    for (int r = 0; r < fucw; ++r) list.push_back(words[static_cast<std::size_t>(c.num_cw + i)]);
  shuffle(list, gen);

  // The numbered list, then noise sentences for the rest of the length at random entry
  // boundaries (RULER leaves a capped list short; we keep every prompt at its length).
  haystack h;
  h.boundaries.push_back(0);
  for (std::size_t i = 0; i < list.size(); ++i) {
    append_tokens(h.tokens, tok(std::to_string(i + 1) + "."));
    h.tokens.push_back(list[i]);
    h.boundaries.push_back(static_cast<std::int64_t>(h.tokens.size()));
  }
  haystack pad =
      make_haystack(haystack_kind::noise, available - static_cast<std::int64_t>(h.tokens.size()),
                    value_kind::word, {}, gen);
  std::vector<std::vector<int>> pieces;
  for (std::size_t b = 0; b + 1 < pad.boundaries.size(); ++b)
    pieces.emplace_back(pad.tokens.begin() + pad.boundaries[b],
                        pad.tokens.begin() + pad.boundaries[b + 1]);
  std::vector<std::int64_t> pad_starts;
  s.context = insert_pieces(h, haystack_kind::noise, pieces, std::vector<int>(pieces.size(), 0),
                            preface, gen, pad_starts);
  for (int i = 0; i < c.num_cw; ++i) {
    const int w = words[static_cast<std::size_t>(i)];
    s.items.push_back({{}, 1});
    s.references.push_back(vocab().text(w));
    s.answer_tokens.push_back(w);
  }
  s.inhibit_repeats = true;
  return s;
}

// Riemann zeta(alpha) for alpha > 1: the first 10^5 terms plus the integral of the tail.
double zeta(double alpha) {
  double sum = 0;
  const int n = 100000;
  for (int k = n; k >= 1; --k) sum += std::pow(static_cast<double>(k), -alpha);
  return sum + std::pow(static_cast<double>(n), 1.0 - alpha) / (alpha - 1.0);
}

ruler_sample make_fwe_task(const ruler_task_config& c, std::int64_t length, rng& gen,
                           const std::vector<int>& pool) {
  ruler_sample s;
  const std::vector<int> preface =
      tok("memorize the words that come more than the other ones in the following text.");
  s.question =
      tok("what are the 3 words that come more than the other ones in the text? "
          "answer: the 3 words are:");
  const std::int64_t available =
      remaining(length, 1 + static_cast<std::int64_t>(preface.size() + s.question.size()), c.name);
  // RULER: a vocabulary of length / 50 coded words whose counts follow Zipf(alpha); rank 1 is
  // the noise "..." and ranks 2-4 are the answer.
  const auto vocab_size = static_cast<std::size_t>(
      std::clamp<std::int64_t>(length / 50, 5, static_cast<std::int64_t>(pool.size()) + 1));
  std::vector<int> words = sample_distinct(pool, vocab_size - 1, gen);
  const double z = zeta(c.alpha);
  auto counts = [&](std::int64_t n) {
    std::vector<std::int64_t> out(vocab_size);
    for (std::size_t k = 0; k < vocab_size; ++k)
      out[k] = static_cast<std::int64_t>(static_cast<double>(n) *
                                         std::pow(static_cast<double>(k + 1), -c.alpha) / z);
    return out;
  };
  auto tokens = [&](std::int64_t n) {
    auto cs = counts(n);
    return std::accumulate(cs.begin(), cs.end(), std::int64_t{0}) + 2 * cs[0];
  };
  std::int64_t lo = 0, hi = available;
  while (lo < hi) {
    std::int64_t mid = (lo + hi + 1) / 2;
    if (tokens(mid) <= available)
      lo = mid;
    else
      hi = mid - 1;
  }
  const auto cs = counts(lo);
  ATTNBENCH_CHECK(cs[3] > cs[4] && cs[3] > 0, bad_input,
                  "ruler: length " << length << " is too short for task " << c.name
                                   << " (the 3rd and 4th most frequent words tie)");
  const int period = vocab().id(".");
  std::vector<std::vector<int>> groups;
  for (std::int64_t r = 0; r < cs[0]; ++r) groups.push_back({period, period, period});
  for (std::size_t k = 1; k < vocab_size; ++k)
    for (std::int64_t r = 0; r < cs[k]; ++r) groups.push_back({words[k - 1]});
  shuffle(groups, gen);
  s.context = {vocab().bos()};
  append_tokens(s.context, preface);
  for (const auto& g : groups) append_tokens(s.context, g);
  s.context.resize(s.context.size() + static_cast<std::size_t>(available - tokens(lo)), period);
  for (int k = 0; k < 3; ++k) {
    s.items.push_back({{}, 1});
    s.references.push_back(vocab().text(words[static_cast<std::size_t>(k)]));
    s.answer_tokens.push_back(words[static_cast<std::size_t>(k)]);
  }
  s.inhibit_repeats = true;
  return s;
}

// One fact sentence: "the REL of ENTITY is : VALUE ."
std::vector<int> fact(int relation, int entity, const std::vector<int>& value) {
  std::vector<int> out = tok("the");
  out.push_back(relation);
  append_tokens(out, tok("of"));
  out.push_back(entity);
  append_tokens(out, tok("is :"));
  append_tokens(out, value);
  out.push_back(vocab().id("."));
  return out;
}

// A document: "title : TITLE ." and 40 to 160 tokens of essay sentences with `maybe_fact` on a
// random sentence boundary. `fact_at` receives the fact's offset in the document (or -1).
std::vector<int> document(int title, const std::vector<int>& maybe_fact, rng& gen,
                          std::int64_t& fact_at) {
  std::vector<int> out = tok("title :");
  out.push_back(title);
  out.push_back(vocab().id("."));
  haystack body =
      make_haystack(haystack_kind::essay, 40 + static_cast<std::int64_t>(gen.below(121)),
                    value_kind::word, {}, gen);
  const std::int64_t at = body.boundaries[gen.below(body.boundaries.size())];
  out.insert(out.end(), body.tokens.begin(), body.tokens.begin() + at);
  fact_at = maybe_fact.empty() ? -1 : static_cast<std::int64_t>(out.size());
  append_tokens(out, maybe_fact);
  out.insert(out.end(), body.tokens.begin() + at, body.tokens.end());
  return out;
}

ruler_sample make_qa_task(const ruler_task_config& c, std::int64_t length, rng& gen) {
  ruler_sample s;
  // Relations are filler nouns; entities and answers key words, each used once.
  std::vector<int> relations = sample_distinct(vocab().fillers(), 8, gen);
  std::vector<int> entities = sample_distinct(vocab().keys(), vocab().keys().size(), gen);
  std::size_t next = 0;
  auto fresh = [&]() { return next < entities.size() ? entities[next++] : -1; };
  const int e1 = fresh(), r1 = relations[0], r2 = relations[1];
  const std::vector<int> preface = tok("answer from the following text.");
  std::vector<std::vector<int>> gold;
  std::vector<std::int64_t> gold_fact;
  std::int64_t at = 0;
  // "<ask> REL1 of E1 ? answer: the REL1 of E1 is :": the question ends on the first hop's
  // phrase, and the answer prefix repeats it before the value (or the bridge entity).
  std::vector<int> r1_of_e1{r1};
  append_tokens(r1_of_e1, tok("of"));
  r1_of_e1.push_back(e1);
  auto question = [&](std::vector<int> ask) {
    append_tokens(ask, r1_of_e1);
    append_tokens(ask, tok("? answer: the"));
    append_tokens(ask, r1_of_e1);
    append_tokens(ask, tok("is :"));
    return ask;
  };
  if (!c.multi_hop) {
    // SQuAD-like: one gold paragraph, a two-word answer span.
    const int a1 = fresh(), a2 = fresh();
    gold.push_back(document(e1, fact(r1, e1, {a1, a2}), gen, at));
    gold_fact.push_back(at);
    s.question = question(tok("what is the"));
    s.items.push_back({{}, 2});
    s.references.push_back(vocab().text(a1) + " " + vocab().text(a2));
  } else {
    // HotpotQA-like bridge question: E1's REL1 is the bridge E2 (first gold paragraph), E2's
    // REL2 is the answer (second gold paragraph, titled E2). The model writes the bridge first;
    // the fixed cue "is :" after it asks the second hop.
    const int e2 = fresh(), answer = fresh();
    gold.push_back(document(e1, fact(r1, e1, {e2}), gen, at));
    gold_fact.push_back(at);
    gold.push_back(document(e2, fact(r2, e2, {answer}), gen, at));
    gold_fact.push_back(at);
    std::vector<int> ask = tok("what is the");
    ask.push_back(r2);
    append_tokens(ask, tok("of the"));
    s.question = question(ask);
    s.items.push_back({{}, 1});
    s.items.push_back({tok("is :"), 1});
    s.references.push_back(vocab().text(answer));
  }
  std::int64_t fixed = 1 + static_cast<std::int64_t>(preface.size() + s.question.size());
  for (const auto& g : gold) fixed += static_cast<std::int64_t>(g.size());
  const std::int64_t budget = remaining(length, fixed, c.name);

  // Distractor documents about other entities (no fact once the key words run out), the last
  // one cut to the exact length. Their values and titles never use a gold word, so the answer
  // is never followed by anything but its own continuation.
  const std::vector<int> gold_words(entities.begin(),
                                    entities.begin() + static_cast<std::ptrdiff_t>(next));
  auto other_word = [&]() {
    int w;
    do w = vocab().keys()[gen.below(vocab().keys().size())];
    while (std::find(gold_words.begin(), gold_words.end(), w) != gold_words.end());
    return w;
  };
  std::vector<std::vector<int>> docs;
  std::int64_t filled = 0;
  while (filled < budget) {
    const int e = fresh();
    std::int64_t unused = 0;
    const int title = e >= 0 ? e : other_word();
    std::vector<int> f;
    if (e >= 0) f = fact(relations[gen.below(relations.size())], e, {other_word()});
    docs.push_back(document(title, f, gen, unused));
    filled += static_cast<std::int64_t>(docs.back().size());
  }
  if (!docs.empty())
    docs.back().resize(docs.back().size() - static_cast<std::size_t>(filled - budget));
  // Gold documents go before the cut last document, at random places (RULER shuffles them in).
  std::vector<std::size_t> gold_at;
  for (std::size_t g = 0; g < gold.size(); ++g)
    gold_at.push_back(gen.below(docs.empty() ? 1 : docs.size()));
  s.context = {vocab().bos()};
  append_tokens(s.context, preface);
  s.evidence.resize(gold.size());
  for (std::size_t d = 0; d <= docs.size(); ++d) {
    for (std::size_t g = 0; g < gold.size(); ++g)
      if (gold_at[g] == d) {
        s.evidence[g] = static_cast<std::int64_t>(s.context.size()) + gold_fact[g];
        append_tokens(s.context, gold[g]);
      }
    if (d < docs.size()) append_tokens(s.context, docs[d]);
  }
  return s;
}

}  // namespace

const std::vector<std::string>& ruler_task_names() {
  static const std::vector<std::string> names(k_ruler_task_order.begin(), k_ruler_task_order.end());
  return names;
}

ruler_task_config ruler_task(const std::string& task) {
  ruler_task_config c;
  c.name = task;
  // Values from RULER's scripts/synthetic.yaml; tokens_to_generate from its constants.py.
  auto niah = [&](haystack_kind h, value_kind k, value_kind v, int nk, int nv, int nq) {
    c.kind = ruler_kind::niah;
    c.type_haystack = h;
    c.type_needle_k = k;
    c.type_needle_v = v;
    c.num_needle_k = nk;
    c.num_needle_v = nv;
    c.num_needle_q = nq;
    c.tokens_to_generate = 128;
  };
  using hk = haystack_kind;
  using vk = value_kind;
  if (task == "niah_single_1")
    niah(hk::noise, vk::word, vk::number, 1, 1, 1);
  else if (task == "niah_single_2")
    niah(hk::essay, vk::word, vk::number, 1, 1, 1);
  else if (task == "niah_single_3")
    niah(hk::essay, vk::word, vk::uuid, 1, 1, 1);
  else if (task == "niah_multikey_1")
    niah(hk::essay, vk::word, vk::number, 4, 1, 1);
  else if (task == "niah_multikey_2")
    niah(hk::needle, vk::word, vk::number, 1, 1, 1);
  else if (task == "niah_multikey_3")
    niah(hk::needle, vk::uuid, vk::uuid, 1, 1, 1);
  else if (task == "niah_multivalue")
    niah(hk::essay, vk::word, vk::number, 1, 4, 1);
  else if (task == "niah_multiquery")
    niah(hk::essay, vk::word, vk::number, 1, 1, 4);
  else if (task == "vt") {
    c.kind = ruler_kind::variable_tracking;
    c.type_haystack = hk::noise;
    c.tokens_to_generate = 30;
  } else if (task == "cwe") {
    c.kind = ruler_kind::common_words;
    c.tokens_to_generate = 120;
  } else if (task == "fwe") {
    c.kind = ruler_kind::frequent_words;
    c.tokens_to_generate = 50;
  } else if (task == "qa_1" || task == "qa_2") {
    c.kind = ruler_kind::qa;
    c.metric = ruler_metric::match_part;
    c.multi_hop = task == "qa_2";
    c.tokens_to_generate = 32;
  } else {
    std::string known;
    for (const auto& n : ruler_task_names()) known += (known.empty() ? "" : ", ") + n;
    ATTNBENCH_BAD_INPUT("ruler: unknown task '" << task << "' (known: " << known << ")");
  }
  return c;
}

const std::vector<std::string>& ruler_field_names() {
  static const std::vector<std::string> names = {"type_haystack", "type_needle_k", "type_needle_v",
                                                 "num_needle_k",  "num_needle_v",  "num_needle_q",
                                                 "num_chains",    "num_hops",      "freq_cw",
                                                 "freq_ucw",      "num_cw",        "alpha"};
  return names;
}

bool set_ruler_field(ruler_task_config& c, const std::string& field, const std::string& value) {
  auto integer = [&](int lo, int hi) {
    auto x = parse_real(value);
    if (!x || *x != std::floor(*x) || *x < lo || *x > hi)
      ATTNBENCH_BAD_INPUT("ruler." << field << ": expected an integer in [" << lo << ", " << hi
                                   << "], got '" << value << "'");
    return static_cast<int>(*x);
  };
  const bool niah = c.kind == ruler_kind::niah;
  // Parse errors name the field: "ruler.type_haystack: unknown haystack 'ocean' ...".
  auto named = [&](auto parse) {
    try {
      return parse(value);
    } catch (const error& e) {
      ATTNBENCH_BAD_INPUT("ruler." << field << ": " << e.what());
    }
  };
  if (field == "type_haystack") {
    haystack_kind h = named(parse_haystack_kind);
    if (!niah && c.kind != ruler_kind::variable_tracking) return false;
    if (c.kind == ruler_kind::variable_tracking && h == haystack_kind::needle)
      ATTNBENCH_BAD_INPUT("ruler.type_haystack: vt takes noise or essay, got '" << value << "'");
    c.type_haystack = h;
  } else if (field == "type_needle_k" || field == "type_needle_v") {
    value_kind v = named(parse_value_kind);
    if (!niah) return false;
    (field == "type_needle_k" ? c.type_needle_k : c.type_needle_v) = v;
  } else if (field == "num_needle_k" || field == "num_needle_v" || field == "num_needle_q") {
    // RULER's multi-needle tasks use 4; 64 keeps every value's first token distinct.
    int n = integer(1, 64);
    if (!niah) return false;
    (field == "num_needle_k"   ? c.num_needle_k
     : field == "num_needle_v" ? c.num_needle_v
                               : c.num_needle_q) = n;
  } else if (field == "num_chains" || field == "num_hops") {
    int n = integer(1, 50);
    if (c.kind != ruler_kind::variable_tracking) return false;
    (field == "num_chains" ? c.num_chains : c.num_hops) = n;
  } else if (field == "freq_cw" || field == "freq_ucw" || field == "num_cw") {
    int n = field == "num_cw" ? integer(1, 100) : integer(1, 10000);
    if (c.kind != ruler_kind::common_words) return false;
    (field == "freq_cw" ? c.freq_cw : field == "freq_ucw" ? c.freq_ucw : c.num_cw) = n;
  } else if (field == "alpha") {
    auto x = parse_real(value);
    if (!x || *x <= 1.0 || *x > 10.0)
      ATTNBENCH_BAD_INPUT("ruler.alpha: expected a number in (1, 10], got '" << value << "'");
    if (c.kind != ruler_kind::frequent_words) return false;
    c.alpha = *x;
  } else {
    ATTNBENCH_BAD_INPUT("ruler: unknown field '" << field << "'");
  }
  return true;
}

ruler_sample make_ruler_sample(const ruler_task_config& config, std::int64_t length,
                               std::uint64_t seed, const std::vector<int>& word_pool) {
  rng gen(seed);
  ruler_sample s;
  switch (config.kind) {
    case ruler_kind::niah:
      s = make_niah_task(config, length, gen);
      break;
    case ruler_kind::variable_tracking:
      s = make_vt_task(config, length, gen);
      break;
    case ruler_kind::common_words:
      s = make_cwe_task(config, length, gen, word_pool);
      break;
    case ruler_kind::frequent_words:
      s = make_fwe_task(config, length, gen, word_pool);
      break;
    case ruler_kind::qa:
      s = make_qa_task(config, length, gen);
      break;
  }
  s.metric = config.metric;
  ATTNBENCH_ASSERT(static_cast<std::int64_t>(s.context.size() + s.question.size()) == length);
  return s;
}

}  // namespace attnbench
