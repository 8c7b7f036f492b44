# Writes the shipped model and GPU presets (datasets/models/*.json, datasets/gpus/*.json) and the
# GPUs' measured calibrations (datasets/gpus/calibration/*.json) into a C++ source, so `attnbench plan --model llama-3.1-8b` needs no data files at run time.
# Called with -DOUT=<file.cpp> -DDATA_DIR=<datasets dir>. Each table is sorted by file stem.
set(content "// Generated from datasets/models and datasets/gpus by suites/plan/embed_presets.cmake. Do not edit.\n")
string(APPEND content "#include \"suites/plan/embedded_presets.hpp\"\n\nnamespace attnbench::plan::detail {\n")
foreach(kind models gpus calibrations)
  set(dir "${DATA_DIR}/${kind}")
  if(kind STREQUAL "calibrations")
    set(dir "${DATA_DIR}/gpus/calibration")  # latency reports measured on a preset's GPU
  endif()
  file(GLOB files "${dir}/*.json")
  list(SORT files)
  string(APPEND content "\nconst std::vector<embedded_preset>& embedded_${kind}() {\n")
  string(APPEND content "  static const std::vector<embedded_preset> table = {\n")
  foreach(file IN LISTS files)
    # NAME_WLE keeps the dots of "llama-3.1-8b" (NAME_WE would stop at the first one).
    get_filename_component(stem "${file}" NAME_WLE)
    file(READ "${file}" text)
    string(FIND "${text}" ")preset\"" clash)
    if(NOT clash EQUAL -1)
      message(FATAL_ERROR "${file} contains the raw-string delimiter )preset\"")
    endif()
    string(APPEND content "      {\"${stem}\", R\"preset(${text})preset\"},\n")
  endforeach()
  string(APPEND content "  };\n  return table;\n}\n")
endforeach()
string(APPEND content "\n}  // namespace attnbench::plan::detail\n")
file(WRITE "${OUT}.tmp" "${content}")
file(COPY_FILE "${OUT}.tmp" "${OUT}" ONLY_IF_DIFFERENT)
