# Fails when a committed generated docs page differs from what the registry generates
# (`attnbench list WHAT --format md`), and prints the command that regenerates it.
# Arguments: -DATTNBENCH=<binary> -DWHAT=<methods|suites> -DPAGE=<docs page>.
execute_process(COMMAND ${ATTNBENCH} list ${WHAT} --format md
                OUTPUT_VARIABLE generated RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "attnbench list ${WHAT} --format md exited with ${rc}")
endif()
file(READ ${PAGE} committed)
if(NOT generated STREQUAL committed)
  message(FATAL_ERROR "${PAGE} differs from the ${WHAT} registry; regenerate it with\n"
                      "  ${ATTNBENCH} list ${WHAT} --format md > ${PAGE}")
endif()
