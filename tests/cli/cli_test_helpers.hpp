// Helpers the command-line tests share: a scratch folder per test process, reading a file, a
// child process running the real binary, and a report's records without their timings.
#pragma once

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <chrono>
#include <filesystem>
#include <initializer_list>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

namespace attnbench::test {

/// A fresh folder under the temporary directory, named `prefix` and the process id, made once per
/// process (and emptied then).
inline std::filesystem::path scratch_dir(const std::string& prefix) {
  auto d = std::filesystem::temp_directory_path() / (prefix + std::to_string(::getpid()));
  std::filesystem::remove_all(d);
  std::filesystem::create_directories(d);
  return d;
}

/// The whole text of `p` ("" when it cannot be read).
inline std::string slurp(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A child running `attnbench ARGS`, its output in files under `log`.
struct child {
  pid_t pid = -1;
  std::filesystem::path log;

  int wait() {
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    pid = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }
  std::string err() const { return slurp(log.string() + ".err"); }
};

inline child spawn(std::vector<std::string> args, const std::filesystem::path& log) {
  args.insert(args.begin(), ATTNBENCH_BINARY);
  child c;
  c.log = log;
  c.pid = ::fork();
  REQUIRE(c.pid >= 0);
  if (c.pid == 0) {
    // Only async-signal-safe calls from here to exec: freopen is not one, open/dup2 are.
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    const std::string out = log.string() + ".out", err = log.string() + ".err";
    const int o = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    const int e = ::open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (o < 0 || e < 0 || ::dup2(o, 1) < 0 || ::dup2(e, 2) < 0) ::_exit(127);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  return c;
}

// Complete record lines in a stream so far (read while a run appends; headers left out).
/// Runs `attnbench ARGS` to its end, its output in files under `log`: the exit code, and its
/// standard error in `err` when given.
inline int run_to_end(std::vector<std::string> args, const std::filesystem::path& log,
                      std::string* err = nullptr) {
  child c = spawn(std::move(args), log);
  const int code = c.wait();
  if (err) *err = c.err();
  return code;
}

/// `args` followed by `more`.
inline std::vector<std::string> with(std::vector<std::string> args,
                                     std::initializer_list<std::string> more) {
  args.insert(args.end(), more);
  return args;
}

inline std::size_t stream_records(const std::filesystem::path& stream) {
  std::ifstream in(stream);
  std::size_t n = 0;
  for (std::string line; std::getline(in, line) && !in.eof();)
    n += line.rfind("{\"suite\":", 0) == 0;
  return n;
}

// Waits until the run has finished `n` cases (its stream holds them), at most a minute.
inline void wait_for_records(const std::filesystem::path& stream, std::size_t n) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (stream_records(stream) < n) {
    REQUIRE(std::chrono::steady_clock::now() < deadline);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

// A report's records without what measures the machine: metrics in units of time or rate.
// Everything else (status, metrics, predictions in extra, seeds, case ids) must be equal.
inline nlohmann::json comparable_records(const std::filesystem::path& report_file) {
  const nlohmann::json doc = nlohmann::json::parse(slurp(report_file));
  std::set<std::string> timed;
  for (const auto& [name, info] : doc.at("metric_info").items())
    if (info.at("unit") == "s" || info.at("unit") == "TFLOP/s" || info.at("unit") == "GB/s")
      timed.insert(name);
  nlohmann::json records = doc.at("records");
  for (nlohmann::json& r : records)
    for (const std::string& m : timed) r.at("metrics").erase(m);
  return records;
}

}  // namespace attnbench::test
