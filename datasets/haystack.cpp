#include "datasets/haystack.hpp"

#include <algorithm>
#include <cmath>

#include "harness/error.hpp"

namespace attnbench {

haystack_kind parse_haystack_kind(const std::string& s) {
  if (s == "noise") return haystack_kind::noise;
  if (s == "essay") return haystack_kind::essay;
  if (s == "needle") return haystack_kind::needle;
  ATTNBENCH_BAD_INPUT("unknown haystack '" << s << "' (known: noise, essay, needle)");
}

value_kind parse_value_kind(const std::string& s) {
  if (s == "number" || s == "numbers") return value_kind::number;
  if (s == "word" || s == "words") return value_kind::word;
  if (s == "uuid" || s == "uuids") return value_kind::uuid;
  ATTNBENCH_BAD_INPUT("unknown needle value kind '" << s << "' (known: number, word, uuid)");
}

const char* name_of(haystack_kind k) {
  switch (k) {
    case haystack_kind::noise:
      return "noise";
    case haystack_kind::essay:
      return "essay";
    case haystack_kind::needle:
      return "needle";
  }
  return "?";
}

const char* name_of(value_kind k) {
  switch (k) {
    case value_kind::number:
      return "number";
    case value_kind::word:
      return "word";
    case value_kind::uuid:
      return "uuid";
  }
  return "?";
}

namespace {

// Zipf-like sampler over a ranked list: P(rank r) proportional to 1 / (r + offset).
class zipf_table {
 public:
  zipf_table(std::size_t n, double offset) : m_cdf(n) {
    double sum = 0;
    for (std::size_t r = 0; r < n; ++r)
      m_cdf[r] = (sum += 1.0 / (static_cast<double>(r) + 1.0 + offset));
    for (auto& c : m_cdf) c /= sum;
  }
  std::size_t sample(rng& gen) const {
    double u = gen.uniform();
    auto it = std::upper_bound(m_cdf.begin(), m_cdf.end(), u);
    return std::min<std::size_t>(static_cast<std::size_t>(it - m_cdf.begin()), m_cdf.size() - 1);
  }

 private:
  std::vector<double> m_cdf;
};

// One essay sentence: 6 to 18 words mixing function words (about 45%, as in English prose) and
// filler words, both Zipf-distributed, with an occasional comma.
void essay_sentence(std::vector<int>& out, rng& gen) {
  static const zipf_table function_zipf(vocab().function_words().size(), 0.0);
  static const zipf_table filler_zipf(vocab().fillers().size(), 10.0);
  static const int comma = vocab().id(",");
  static const int period = vocab().id(".");
  int words = 6 + static_cast<int>(gen.below(13));
  for (int w = 0; w < words; ++w) {
    if (gen.uniform() < 0.45)
      out.push_back(vocab().function_words()[function_zipf.sample(gen)]);
    else
      out.push_back(vocab().fillers()[filler_zipf.sample(gen)]);
    if (w > 2 && w + 2 < words && gen.uniform() < 0.06) out.push_back(comma);
  }
  out.push_back(period);
}

const char* value_noun(value_kind kind, bool plural) {
  switch (kind) {
    case value_kind::number:
      return plural ? "numbers" : "number";
    case value_kind::word:
      return plural ? "words" : "word";
    case value_kind::uuid:
      return plural ? "uuids" : "uuid";
  }
  return "?";
}

}  // namespace

haystack make_haystack(haystack_kind kind, std::int64_t tokens, value_kind distractor_values,
                       const std::vector<int>& exclude_keys, rng& gen) {
  ATTNBENCH_CHECK(tokens >= 0, bad_input, "haystack length must be >= 0, got " << tokens);
  haystack h;
  h.boundaries.push_back(0);
  static const std::vector<std::vector<int>> noise_sentences = {
      vocab().tokenize("The grass is green."), vocab().tokenize("The sky is blue."),
      vocab().tokenize("The sun is yellow."), vocab().tokenize("Here we go."),
      vocab().tokenize("There and back again.")};
  std::size_t noise_next = 0;
  const auto& keys = vocab().keys();
  while (static_cast<std::int64_t>(h.tokens.size()) < tokens) {
    switch (kind) {
      case haystack_kind::noise:
        append_tokens(h.tokens, noise_sentences[noise_next++ % noise_sentences.size()]);
        break;
      case haystack_kind::essay:
        essay_sentence(h.tokens, gen);
        break;
      case haystack_kind::needle: {
        int key;
        do key = keys[gen.below(keys.size())];
        while (std::find(exclude_keys.begin(), exclude_keys.end(), key) != exclude_keys.end());
        append_tokens(h.tokens, needle_sentence(key, distractor_values,
                                                make_value(distractor_values, gen).tokens));
        break;
      }
    }
    h.boundaries.push_back(static_cast<std::int64_t>(h.tokens.size()));
  }
  // Cut to the exact length; the last (possibly partial) sentence ends the haystack.
  h.tokens.resize(static_cast<std::size_t>(tokens));
  while (!h.boundaries.empty() && h.boundaries.back() >= tokens) h.boundaries.pop_back();
  h.boundaries.push_back(tokens);
  return h;
}

needle_value make_value(value_kind kind, rng& gen) {
  needle_value v;
  switch (kind) {
    case value_kind::number: {
      // A 7-digit number, as RULER's type_needle_v=numbers.
      v.text = std::to_string(1000000 + gen.below(9000000));
      break;
    }
    case value_kind::word: {
      v.text = vocab().text(vocab().keys()[gen.below(vocab().keys().size())]);
      break;
    }
    case value_kind::uuid: {
      // A version-4-looking UUID; redrawn when a group happens to spell a vocabulary word
      // (it would tokenize as that word instead of hex chunks).
      const char* hex = "0123456789abcdef";
      const int groups[] = {8, 4, 4, 4, 12};
      bool clash;
      do {
        clash = false;
        v.text.clear();
        for (int g = 0; g < 5; ++g) {
          std::string group;
          for (int i = 0; i < groups[g]; ++i) group += hex[gen.below(16)];
          int w = vocab().find(group);
          clash = clash || (w >= 0 && vocab().cls(w) != token_class::hex &&
                            vocab().cls(w) != token_class::number);
          v.text += (g ? "-" : "") + group;
        }
      } while (clash);
      break;
    }
  }
  v.tokens = vocab().tokenize(v.text);
  return v;
}

std::vector<int> needle_sentence(int key, value_kind kind, const std::vector<int>& value_tokens) {
  std::vector<int> out =
      vocab().tokenize(std::string("one of the special magic ") + value_noun(kind, true) + " for");
  out.push_back(key);
  append_tokens(out, vocab().tokenize("is:"));
  append_tokens(out, value_tokens);
  out.push_back(vocab().id("."));
  return out;
}

std::vector<int> niah_question(int key, value_kind kind) {
  std::vector<int> out = vocab().tokenize(std::string("what is the special magic ") +
                                          value_noun(kind, false) + " for");
  out.push_back(key);
  append_tokens(out, vocab().tokenize("mentioned in the provided text? answer: the special magic"));
  append_tokens(out, vocab().tokenize(std::string(value_noun(kind, false)) + " for"));
  out.push_back(key);
  append_tokens(out, vocab().tokenize("is:"));
  return out;
}

niah_sample make_niah(std::int64_t length, double depth, haystack_kind haystack_type,
                      value_kind value_type, std::uint64_t seed, bool close_cut_sentence) {
  ATTNBENCH_CHECK(depth >= 0 && depth <= 1, bad_input, "depth must be in [0, 1], got " << depth);
  rng gen(seed);
  const auto& keys = vocab().keys();
  int key = keys[gen.below(keys.size())];
  needle_value value = make_value(value_type, gen);
  std::vector<int> needle = needle_sentence(key, value_type, value.tokens);

  niah_sample s;
  s.question = niah_question(key, value_type);
  std::int64_t fixed = 1 + static_cast<std::int64_t>(needle.size() + s.question.size());
  ATTNBENCH_CHECK(length >= fixed, bad_input,
                  "length " << length << " is too short for a needle prompt (needs at least "
                            << fixed << " tokens)");
  haystack h = make_haystack(haystack_type, length - fixed, value_type, {key}, gen);

  // The sentence boundary closest to the requested depth.
  auto target = depth * static_cast<double>(h.tokens.size());
  std::int64_t at = h.boundaries.front();
  for (auto b : h.boundaries)
    if (std::abs(static_cast<double>(b) - target) < std::abs(static_cast<double>(at) - target))
      at = b;

  static const int period = vocab().id(".");
  if (close_cut_sentence && at == static_cast<std::int64_t>(h.tokens.size()) && !h.tokens.empty() &&
      h.tokens.back() != period)
    h.tokens.back() = period;

  s.context.reserve(
      static_cast<std::size_t>(length - static_cast<std::int64_t>(s.question.size())));
  s.context.push_back(vocab().bos());
  s.context.insert(s.context.end(), h.tokens.begin(), h.tokens.begin() + at);
  s.needle_begin = static_cast<std::int64_t>(s.context.size());
  s.value_begin =
      s.needle_begin + static_cast<std::int64_t>(needle.size() - value.tokens.size() - 1);
  append_tokens(s.context, needle);
  s.context.insert(s.context.end(), h.tokens.begin() + at, h.tokens.end());
  s.answers = {value.text};
  s.answer_tokens = static_cast<int>(value.tokens.size());
  s.actual_depth =
      h.tokens.empty() ? 0.0 : static_cast<double>(at) / static_cast<double>(h.tokens.size());
  return s;
}

}  // namespace attnbench
