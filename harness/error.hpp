/// Errors: one exception type with a stable id, check macros that add file and line,
/// and an assertion for programmer errors that stays on in release builds.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>

namespace attnbench {

/// Stable error ids. `bad_input` maps to CLI exit code 2; the rest become `error`
/// (or `oom`) records when they happen inside one case of a sweep.
enum class error_id { bad_input, io, internal, out_of_memory, unsupported };

const char* error_id_name(error_id id);

class error : public std::runtime_error {
 public:
  error(error_id id, const std::string& message) : std::runtime_error(message), m_id(id) {}
  error_id id() const { return m_id; }

 private:
  error_id m_id;
};

[[noreturn]] void throw_error(error_id id, const std::string& message, const char* file, int line);
[[noreturn]] void assertion_failed(const char* expr, const char* file, int line);

}  // namespace attnbench

/// Throws attnbench::error(ID, message) when COND is false. MSG is a stream expression:
/// ATTNBENCH_CHECK(n > 0, bad_input, "length must be positive, got " << n).
#define ATTNBENCH_CHECK(COND, ID, MSG)                                                    \
  do {                                                                                    \
    if (!(COND)) {                                                                        \
      std::ostringstream attnbench_msg_;                                                  \
      attnbench_msg_ << MSG;                                                              \
      ::attnbench::throw_error(::attnbench::error_id::ID, attnbench_msg_.str(), __FILE__, \
                               __LINE__);                                                 \
    }                                                                                     \
  } while (0)

/// Bad user input: the message is shown as is (no file/line), the CLI exits 2.
#define ATTNBENCH_BAD_INPUT(MSG) ATTNBENCH_CHECK(false, bad_input, MSG)

/// Programmer error; stays on in release builds.
#define ATTNBENCH_ASSERT(COND) \
  ((COND) ? (void)0 : ::attnbench::assertion_failed(#COND, __FILE__, __LINE__))
