# Writes the shipped word lists into a C++ source so the binary needs no data files at run time.
# Called with -DOUT=<file.cpp> -DWORDS_DIR=<dir>.
set(content "// Generated from datasets/words/*.txt by datasets/embed_words.cmake. Do not edit.\n")
string(APPEND content "#include \"datasets/word_lists.hpp\"\n\nnamespace attnbench {\n\n")
foreach(list keys filler function_words)
  file(READ "${WORDS_DIR}/${list}.txt" text)
  string(APPEND content "const char* word_list_${list}() {\n  return R\"words(${text})words\";\n}\n\n")
endforeach()
string(APPEND content "}  // namespace attnbench\n")
file(WRITE "${OUT}.tmp" "${content}")
file(COPY_FILE "${OUT}.tmp" "${OUT}" ONLY_IF_DIFFERENT)
