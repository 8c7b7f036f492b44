cmake_minimum_required(VERSION 3.20)
# Fails when a library folder includes a folder above it in the layering (run by ctest as
# `layering`): harness/ holds the contracts and includes only itself; datasets/ builds on
# harness/, reports/ on both; adapters/ never include suites/ or reports/; nothing includes app/.
# So the folders form no cycle. -DROOT=<source dir>.
set(allowed_harness harness)
set(allowed_datasets harness datasets)
set(allowed_reports harness datasets reports)
set(allowed_adapters harness datasets adapters)
set(allowed_suites harness datasets adapters suites reports)
set(failures "")
foreach(folder harness datasets reports adapters suites)
  file(GLOB_RECURSE sources RELATIVE ${ROOT}
       ${ROOT}/${folder}/*.hpp ${ROOT}/${folder}/*.cpp ${ROOT}/${folder}/*.cuh ${ROOT}/${folder}/*.cu)
  foreach(source ${sources})
    file(STRINGS ${ROOT}/${source} lines REGEX "^#include \"[a-z_]+/")
    foreach(line ${lines})
      string(REGEX REPLACE "^#include \"([a-z_]+)/.*" "\\1" top "${line}")
      if(NOT top IN_LIST allowed_${folder})
        string(APPEND failures "  ${source}: ${line}\n")
      endif()
    endforeach()
  endforeach()
endforeach()
if(failures)
  message(FATAL_ERROR "layering: includes against the folder order "
                      "(harness < datasets < reports, adapters < suites < app):\n${failures}")
endif()
message(STATUS "layering: every include follows the folder order")
