/// The workload's vocabulary and tokenizer. Tokens are: BOS, punctuation, function and template
/// words, key words, filler words, number chunks and hex chunks. Values tokenize as a BPE
/// tokenizer would (DESIGN §4): digit runs in chunks of at most 3 digits (a 7-digit number is 3
/// tokens, as in Llama 3), hex runs in chunks of 2, words one token.
#pragma once

#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace attnbench {

enum class token_class { special, punctuation, function, key, filler, number, hex };

class vocabulary {
 public:
  /// Built from the shipped word lists; identical on every run.
  static const vocabulary& instance();

  int size() const { return static_cast<int>(m_text.size()); }
  int bos() const { return 0; }
  const std::string& text(int id) const { return m_text[static_cast<std::size_t>(id)]; }
  token_class cls(int id) const { return m_class[static_cast<std::size_t>(id)]; }
  /// Token id of an exact token text, or -1.
  int find(std::string_view text) const;
  /// Id of `text`; throws internal when missing (templates must be in the vocabulary).
  int id(std::string_view text) const;

  const std::vector<int>& keys() const { return m_keys; }
  const std::vector<int>& fillers() const { return m_fillers; }
  const std::vector<int>& function_words() const { return m_function; }

  /// Lower-cases, splits on white space and punctuation, chunks digit and hex runs.
  /// Throws bad_input on a word that is not in the vocabulary.
  std::vector<int> tokenize(std::string_view text) const;
  /// Inverse of tokenize up to spacing and case: words space-separated, chunks and
  /// punctuation glued to what precedes them.
  std::string detokenize(const std::vector<int>& ids) const;

 private:
  vocabulary();
  int add(const std::string& text, token_class cls);

  std::vector<std::string> m_text;
  std::vector<token_class> m_class;
  std::unordered_map<std::string, int> m_index;
  std::vector<int> m_keys, m_fillers, m_function;
};

/// The shipped vocabulary, vocabulary::instance(), for code that reads it on every line.
inline const vocabulary& vocab() { return vocabulary::instance(); }

/// Appends the token ids of `src` to `dst`.
inline void append_tokens(std::vector<int>& dst, const std::vector<int>& src) {
  dst.insert(dst.end(), src.begin(), src.end());
}

}  // namespace attnbench
