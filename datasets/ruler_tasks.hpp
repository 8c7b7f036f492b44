/// RULER's 13 synthetic tasks ("RULER: What's the Real Context Size of Your Long-Context Language
/// Models?", Hsieh et al., 2024; NVIDIA/RULER scripts/synthetic.yaml and the prepare scripts)
/// as prompt generators over the workload's vocabulary (DESIGN §4): niah_single_1/2/3,
/// niah_multikey_1/2/3, niah_multivalue, niah_multiquery, vt (variable tracking), cwe and fwe
/// (common / frequent words extraction), qa_1 and qa_2 (question answering).
///
/// Every task keeps RULER's configuration fields and defaults (type_haystack, type_needle_k/v,
/// num_needle_k/v/q, num_chains, num_hops, freq_cw, freq_ucw, num_cw, alpha). What differs, and
/// why (the vocabulary is fixed and small, and the model is the closed-form retrieval model):
/// - Text uses the shipped word lists; templates are paraphrased with the words available.
/// - vt writes RULER's `VAR NEW = VAR OLD` as `NEW : OLD .` with one-word names, and its value
///   is a 3-digit number (one token) instead of 5 digits, so each link is one token.
/// - cwe draws its words from the model's aggregation pool (capped as RULER caps num_words by
///   its word list) and fills any remaining length with noise sentences, so prompts keep their
///   exact length.
/// - qa_1 / qa_2 do not ship SQuAD / HotpotQA: documents are generated (a title and essay
///   sentences, each holding one fact `the REL of ENTITY is : VALUE .`); qa_1 asks one gold
///   fact among distractor documents, qa_2 a two-hop question through a bridge entity.
/// - Keys and values are redrawn until they detokenize to their own text (a UUID chunk such as
///   "be" is also a word and would read back as "79 be"); multi-value lists start with distinct
///   tokens, so listing them with inhibition of return is unambiguous.
/// - Answers are decoded item by item; between items fixed cue tokens restate the question's
///   answer prefix for the next key (multi-query) or the same key (multi-value).
/// Each prompt (BOS + context + question) is exactly `length` tokens.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "datasets/haystack.hpp"

namespace attnbench {

enum class ruler_kind { niah, variable_tracking, common_words, frequent_words, qa };
enum class ruler_metric { match_all, match_part };  // RULER's string_match_all / _part

/// One task's configuration: RULER's fields with their synthetic.yaml defaults.
struct ruler_task_config {
  std::string name;
  ruler_kind kind = ruler_kind::niah;
  ruler_metric metric = ruler_metric::match_all;
  haystack_kind type_haystack = haystack_kind::essay;
  value_kind type_needle_k = value_kind::word;
  value_kind type_needle_v = value_kind::number;
  int num_needle_k = 1, num_needle_v = 1, num_needle_q = 1;
  int num_chains = 1, num_hops = 4;             // vt
  int freq_cw = 30, freq_ucw = 3, num_cw = 10;  // cwe
  double alpha = 2.0;                           // fwe: Zipf exponent of word counts
  bool multi_hop = false;                       // qa_2 (HotpotQA-like) instead of qa_1 (SQuAD-like)
  int tokens_to_generate = 0;                   // RULER's budget, for reference (we decode exactly)
};

/// The 13 task names in RULER's order.
const std::vector<std::string>& ruler_task_names();
/// RULER's configuration of `task`; throws bad_input naming an unknown task.
ruler_task_config ruler_task(const std::string& task);
/// Field names accepted by set_ruler_field.
const std::vector<std::string>& ruler_field_names();
/// Overrides one field from text where it applies to the task's kind (niah fields on niah
/// tasks, type_haystack on niah and vt, ...); throws bad_input naming the field and value when
/// the value is malformed or out of range. Returns false when the field does not apply.
bool set_ruler_field(ruler_task_config& config, const std::string& field, const std::string& value);

/// One answer item: `cue` tokens (fixed text, the same for every method and never taken from
/// the answer) are fed as decode steps, then `tokens` tokens are generated.
struct ruler_item {
  std::vector<int> cue;
  int tokens = 1;
};

/// One prompt with its answers.
struct ruler_sample {
  std::vector<int> context;   // BOS, then the task context
  std::vector<int> question;  // question and the answer prefix of the first item
  std::vector<ruler_item> items;
  // Inhibition of return: an item may not start with a token that started an earlier item
  // (multi-value and word-list answers), as a model lists each answer once.
  bool inhibit_repeats = false;
  std::vector<std::string> references;
  ruler_metric metric = ruler_metric::match_all;
  // Ground truth for tests and reports: the context positions of the inserted evidence (needles,
  // chain statements, gold facts), in insertion order; for cwe / fwe the answer words' tokens.
  std::vector<std::int64_t> evidence;
  std::vector<int> answer_tokens;
};

/// Generates one sample of `config` with exactly `length` prompt tokens. `word_pool` is the
/// word list cwe and fwe draw from (the model's aggregation words); other tasks ignore it.
/// Throws bad_input when `length` is too short for the task.
ruler_sample make_ruler_sample(const ruler_task_config& config, std::int64_t length,
                               std::uint64_t seed, const std::vector<int>& word_pool);

}  // namespace attnbench
