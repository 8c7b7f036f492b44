# Fails when the committed docs/methods.md differs from what the registry generates
# (`attnbench list methods --format md`), and prints the command that regenerates it.
# Arguments: -DATTNBENCH=<binary> -DPAGE=<docs/methods.md>.
execute_process(COMMAND ${ATTNBENCH} list methods --format md
                OUTPUT_VARIABLE generated RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "attnbench list methods --format md exited with ${rc}")
endif()
file(READ ${PAGE} committed)
if(NOT generated STREQUAL committed)
  message(FATAL_ERROR "docs/methods.md differs from the method registry; regenerate it with\n"
                      "  ${ATTNBENCH} list methods --format md > ${PAGE}")
endif()
