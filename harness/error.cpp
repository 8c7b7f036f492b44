#include "harness/error.hpp"

#include <cstdio>
#include <cstdlib>

namespace attnbench {

const char* error_id_name(error_id id) {
  switch (id) {
    case error_id::bad_input:
      return "bad_input";
    case error_id::io:
      return "io";
    case error_id::internal:
      return "internal";
    case error_id::out_of_memory:
      return "out_of_memory";
    case error_id::unsupported:
      return "unsupported";
  }
  return "internal";
}

void throw_error(error_id id, const std::string& message, const char* file, int line) {
  // Bad input and a method's reason to decline are shown to users verbatim; everything else
  // carries its origin.
  if (id == error_id::bad_input || id == error_id::unsupported) throw error(id, message);
  std::ostringstream os;
  os << message << " [" << file << ":" << line << "]";
  throw error(id, os.str());
}

void assertion_failed(const char* expr, const char* file, int line) {
  std::fprintf(stderr, "attnbench: assertion failed: %s at %s:%d\n", expr, file, line);
  std::abort();
}

}  // namespace attnbench
