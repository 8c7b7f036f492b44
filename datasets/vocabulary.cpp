#include "datasets/vocabulary.hpp"

#include <algorithm>
#include <cctype>
#include <sstream>

#include "datasets/word_lists.hpp"
#include "harness/error.hpp"

namespace attnbench {

namespace {

std::vector<std::string> lines(const char* text) {
  std::vector<std::string> out;
  std::istringstream is(text);
  std::string line;
  while (std::getline(is, line))
    if (!line.empty()) out.push_back(line);
  return out;
}

// Words of the needle, question and noise templates (haystack.cpp). They count as function
// words: low retrieval salience, like the scaffolding text of a real prompt.
const char* const k_template_words[] = {
    "one",   "special",  "magic",     "number",   "numbers", "word",      "words",
    "uuid",  "uuids",    "mentioned", "provided", "text",    "answer",    "grass",
    "green", "sky",      "blue",      "sun",      "yellow",  "here",      "back",
    "again", "memorize", "below",     "hidden",   "within",  "following", "some",
    "are",   "ones",     "quiz",      "about",    "them",    "after",     "reading"};

bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_hex_letter(char c) { return c >= 'a' && c <= 'f'; }

}  // namespace

const vocabulary& vocabulary::instance() {
  static const vocabulary vocab;
  return vocab;
}

int vocabulary::add(const std::string& text, token_class cls) {
  auto it = m_index.find(text);
  if (it != m_index.end()) return it->second;
  int id = static_cast<int>(m_text.size());
  m_text.push_back(text);
  m_class.push_back(cls);
  m_index.emplace(text, id);
  return id;
}

vocabulary::vocabulary() {
  add("<bos>", token_class::special);
  for (const char* p : {".", ",", ":", "?", "-", "'"}) add(p, token_class::punctuation);
  for (const auto& w : lines(word_list_function_words()))
    m_function.push_back(add(w, token_class::function));
  for (const char* w : k_template_words) add(w, token_class::function);
  for (const auto& w : lines(word_list_keys())) m_keys.push_back(add(w, token_class::key));
  for (const auto& w : lines(word_list_filler())) m_fillers.push_back(add(w, token_class::filler));
  // Number chunks: every string of 1 to 3 digits ("7", "07", "007" are different tokens).
  for (int width = 1; width <= 3; ++width) {
    int count = width == 1 ? 10 : width == 2 ? 100 : 1000;
    for (int v = 0; v < count; ++v) {
      std::string s = std::to_string(v);
      s.insert(0, static_cast<std::size_t>(width) - s.size(), '0');
      add(s, token_class::number);
    }
  }
  // Hex chunks of 1 or 2 characters that are not already number chunks.
  const char* hex = "0123456789abcdef";
  for (int a = 0; a < 16; ++a) {
    add(std::string(1, hex[a]), token_class::hex);
    for (int b = 0; b < 16; ++b) add(std::string{hex[a], hex[b]}, token_class::hex);
  }
}

int vocabulary::find(std::string_view text) const {
  auto it = m_index.find(std::string(text));
  return it == m_index.end() ? -1 : it->second;
}

int vocabulary::id(std::string_view text) const {
  int t = find(text);
  ATTNBENCH_CHECK(t >= 0, internal, "token '" << text << "' is not in the vocabulary");
  return t;
}

std::vector<int> vocabulary::tokenize(std::string_view text) const {
  std::vector<int> out;
  std::size_t i = 0;
  while (i < text.size()) {
    char c = static_cast<char>(std::tolower(static_cast<unsigned char>(text[i])));
    if (std::isspace(static_cast<unsigned char>(c))) {
      ++i;
      continue;
    }
    if (!std::isalnum(static_cast<unsigned char>(c))) {
      out.push_back(id(std::string_view(&text[i], 1)));
      ++i;
      continue;
    }
    std::size_t j = i;
    std::string run;
    while (j < text.size() && std::isalnum(static_cast<unsigned char>(text[j])))
      run += static_cast<char>(std::tolower(static_cast<unsigned char>(text[j++])));
    i = j;
    bool all_digits = true, all_hex = true;
    for (char r : run) {
      all_digits = all_digits && is_digit(r);
      all_hex = all_hex && (is_digit(r) || is_hex_letter(r));
    }
    if (all_digits) {
      for (std::size_t k = 0; k < run.size(); k += 3) out.push_back(id(run.substr(k, 3)));
    } else if (int w = find(run); w >= 0) {
      out.push_back(w);
    } else if (all_hex) {
      for (std::size_t k = 0; k < run.size(); k += 2) out.push_back(id(run.substr(k, 2)));
    } else {
      ATTNBENCH_BAD_INPUT("tokenizer: word '" << run << "' is not in the vocabulary");
    }
  }
  return out;
}

std::string vocabulary::detokenize(const std::vector<int>& ids) const {
  std::string out;
  token_class prev = token_class::special;
  // A two-letter hex chunk that spells a word ("be", "ad") has the word's id: inside a run of
  // chunks (a chunk or '-' on both sides) it is a chunk, and so it is at the end of a hex run
  // (before punctuation or the end of the text: a UUID's last group may end in one), where the
  // run holds a hex chunk or '-' (after a plain number, "42 be", it stays a word).
  auto is_chunk = [&](std::size_t i) {
    const token_class k = cls(ids[i]);
    return k == token_class::number || k == token_class::hex || text(ids[i]) == "-";
  };
  auto hex_text = [](const std::string& s) {
    return !s.empty() && s.size() <= 2 &&
           std::all_of(s.begin(), s.end(), [](char x) { return is_digit(x) || is_hex_letter(x); });
  };
  // The chunks before i hold a hex chunk or '-' (not a plain number).
  auto hex_run_before = [&](std::size_t i) {
    for (std::size_t j = i; j > 0 && is_chunk(j - 1); --j)
      if (cls(ids[j - 1]) == token_class::hex || text(ids[j - 1]) == "-") return true;
    return false;
  };
  // What follows i keeps it a chunk: another chunk, or the end of a hex run.
  auto chunk_follows = [&](std::size_t i) {
    if (i + 1 < ids.size() && is_chunk(i + 1)) return true;
    const bool run_ends = i + 1 == ids.size() || cls(ids[i + 1]) == token_class::punctuation;
    return run_ends && hex_run_before(i);
  };
  for (std::size_t i = 0; i < ids.size(); ++i) {
    int t = ids[i];
    token_class c = cls(t);
    const std::string& s = text(t);
    if (c != token_class::number && c != token_class::hex && i > 0 && hex_text(s) &&
        is_chunk(i - 1) && chunk_follows(i))
      c = token_class::hex;
    bool chunk = c == token_class::number || c == token_class::hex;
    bool prev_chunk = prev == token_class::number || prev == token_class::hex;
    // Chunks continue a preceding chunk or '-' (UUID groups); punctuation sticks to the left.
    bool glue = i == 0 || c == token_class::punctuation ||
                (chunk && (prev_chunk || (i > 0 && text(ids[i - 1]) == "-")));
    if (!glue) out += ' ';
    out += s;
    prev = c;
  }
  return out;
}

}  // namespace attnbench
