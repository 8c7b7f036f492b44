/// Haystacks and needles (DESIGN §4, RULER's vocabulary of task parameters): `noise` (one
/// repeated passage), `essay` (varied Zipf-like filler sentences) and `needle` (every line a
/// distractor key-value pair); needles are inserted at a relative depth on a sentence boundary.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "datasets/rng.hpp"
#include "datasets/vocabulary.hpp"

namespace attnbench {

enum class haystack_kind { noise, essay, needle };
enum class value_kind { number, word, uuid };

haystack_kind parse_haystack_kind(const std::string& s);  // throws bad_input
value_kind parse_value_kind(const std::string& s);        // throws bad_input
const char* name_of(haystack_kind k);
const char* name_of(value_kind k);

/// A haystack: tokens and the positions where a sentence starts (insertion points).
struct haystack {
  std::vector<int> tokens;
  std::vector<std::int64_t> boundaries;  // sorted, includes 0 and tokens.size()
};

/// Exactly `tokens` tokens of the given kind. `exclude_keys` are never used as distractor keys.
haystack make_haystack(haystack_kind kind, std::int64_t tokens, value_kind distractor_values,
                       const std::vector<int>& exclude_keys, rng& gen);

/// A value of the given kind as text ("4817263", "lantern", "9f0c...-...") and its tokens.
struct needle_value {
  std::string text;
  std::vector<int> tokens;
};
needle_value make_value(value_kind kind, rng& gen);

/// Key-value needle sentence: "one of the special magic numbers for KEY is: VALUE."
std::vector<int> needle_sentence(int key, value_kind kind, const std::vector<int>& value_tokens);
/// Question and answer prefix; decoding starts right after its last token.
/// "what is the special magic number for KEY mentioned in the provided text? answer: the special
/// magic number for KEY is:"
std::vector<int> niah_question(int key, value_kind kind);

/// One needle-in-a-haystack prompt. The prompt (BOS + context + question) is exactly
/// `length` tokens.
struct niah_sample {
  std::vector<int> context;          // BOS, haystack with the needle inserted
  std::vector<int> question;         // question and answer prefix
  std::vector<std::string> answers;  // references for string_match_all
  int answer_tokens = 0;             // tokens to decode
  std::int64_t needle_begin = 0;     // first token of the needle sentence in `context`
  std::int64_t value_begin = 0;      // first value token in `context`
  double actual_depth = 0;           // needle_begin / haystack length
};

/// With close_cut_sentence, a needle placed after the haystack's last sentence, which the cut to
/// the exact length may have left without its end, gets a period in place of that sentence's
/// last token, so that the needle starts a sentence of its own (workload v2's topics run to the
/// sentence's end: without the period the needle's sentence shares the cut one's key). Off for
/// workload version 1, whose prompts stay as they were.
niah_sample make_niah(std::int64_t length, double depth, haystack_kind haystack_type,
                      value_kind value_type, std::uint64_t seed, bool close_cut_sentence = false);

}  // namespace attnbench
