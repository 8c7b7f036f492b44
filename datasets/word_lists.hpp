/// The shipped word lists (datasets/words/*.txt), embedded at build time: one word a line.
#pragma once

namespace attnbench {

const char* word_list_keys();
const char* word_list_filler();
const char* word_list_function_words();

}  // namespace attnbench
