// jsonl_stream / read_jsonl (reports/jsonl_stream.cpp): one record per line, concurrent
// writers, and recovery of a stream cut short by a crash.
#include <set>
#include <thread>

#include <catch2/catch.hpp>

#include "harness/error.hpp"
#include "reports/jsonl_stream.hpp"
#include "tests/reports/report_fixtures.hpp"

namespace attnbench {
namespace {

namespace fs = std::filesystem;
using test::append_text;
using test::error_message;
using test::slurp;

TEST_CASE("jsonl stream round trip, one line per record", "[reports][jsonl]") {
  test::temp_dir dir;
  const report rep = test::sample_report();
  const fs::path path = dir / "runs/stream.jsonl";
  {
    jsonl_stream out(path);
    for (const record& r : rep.records) out.write(r);
    CHECK(out.lines_written() == rep.records.size());
    // Written through before close: a crash now would keep every line.
    std::string text = slurp(path);
    CHECK(static_cast<std::size_t>(std::count(text.begin(), text.end(), '\n')) ==
          rep.records.size());
  }
  const std::vector<record> back = read_jsonl(path);
  REQUIRE(back.size() == rep.records.size());
  for (std::size_t i = 0; i < back.size(); ++i) test::require_same_record(back[i], rep.records[i]);
}

TEST_CASE("read_jsonl drops a truncated last line", "[reports][jsonl]") {
  test::temp_dir dir;
  const report rep = test::sample_report();
  const fs::path path = dir / "stream.jsonl";
  {
    jsonl_stream out(path);
    for (int i = 0; i < 3; ++i) out.write(rep.records[i]);
  }
  const std::string line = to_json(rep.records[3]).dump();
  // A crash mid-write at several points of the fourth line, from one byte to all but one.
  for (std::size_t cut : {std::size_t{1}, line.size() / 3, line.size() / 2, line.size() - 1}) {
    INFO("cut at " << cut);
    const fs::path copy = dir / ("cut" + std::to_string(cut) + ".jsonl");
    fs::copy_file(path, copy);
    append_text(copy, line.substr(0, cut));
    const std::vector<record> back = read_jsonl(copy);
    REQUIRE(back.size() == 3);
    test::require_same_record(back[2], rep.records[2]);
  }

  // A complete last line that merely lacks its newline is kept.
  append_text(path, line);
  CHECK(read_jsonl(path).size() == 4);
}

TEST_CASE("read_jsonl rejects garbage before the last line", "[reports][jsonl]") {
  test::temp_dir dir;
  const report rep = test::sample_report();
  const fs::path path = dir / "stream.jsonl";
  append_text(path, to_json(rep.records[0]).dump() + "\n");
  append_text(path, "\n");  // blank lines are fine
  append_text(path, "{\"suite\": \"niah\", \"case\n");
  append_text(path, to_json(rep.records[1]).dump() + "\n");
  std::string msg = error_message([&] { read_jsonl(path); }, error_id::bad_input);
  CHECK_THAT(msg, Catch::StartsWith(path.string() + ":3: not valid JSON"));

  // Valid JSON that is not a record is rejected even on the last line.
  const fs::path bad_record = dir / "bad_record.jsonl";
  append_text(bad_record, to_json(rep.records[0]).dump() + "\n{\"suite\": \"niah\"}\n");
  msg = error_message([&] { read_jsonl(bad_record); }, error_id::bad_input);
  CHECK(msg == bad_record.string() + ":2: record: missing field 'case'");

  CHECK_THAT(error_message([&] { read_jsonl(dir / "missing.jsonl"); }, error_id::bad_input),
             Catch::Contains("missing.jsonl"));
}

TEST_CASE("concurrent writers never interleave lines", "[reports][jsonl]") {
  test::temp_dir dir;
  const fs::path path = dir / "stream.jsonl";
  constexpr int k_threads = 8;
  constexpr int k_per_thread = 200;
  const record base = test::sample_report().records.front();
  {
    jsonl_stream out(path);
    std::vector<std::thread> threads;
    for (int t = 0; t < k_threads; ++t) {
      threads.emplace_back([&, t] {
        for (int i = 0; i < k_per_thread; ++i) {
          record r = base;
          r.seed = static_cast<std::uint64_t>(t * k_per_thread + i);
          // Long lines make a torn write far more likely if locking were wrong.
          r.extra["padding"] =
              std::string(static_cast<std::size_t>(500 + 37 * i), static_cast<char>('a' + t));
          out.write(r);
        }
      });
    }
    for (std::thread& th : threads) th.join();
    CHECK(out.lines_written() == std::size_t{k_threads * k_per_thread});
  }
  const std::vector<record> back = read_jsonl(path);
  REQUIRE(back.size() == std::size_t{k_threads * k_per_thread});
  std::set<std::uint64_t> seeds;
  for (const record& r : back) {
    seeds.insert(r.seed);
    const std::string pad = r.extra["padding"];
    const char expected = static_cast<char>('a' + r.seed / k_per_thread);
    CHECK(std::count(pad.begin(), pad.end(), expected) == static_cast<long>(pad.size()));
  }
  CHECK(seeds.size() == std::size_t{k_threads * k_per_thread});
}

TEST_CASE("jsonl stream open modes and closing", "[reports][jsonl]") {
  test::temp_dir dir;
  const report rep = test::sample_report();
  const fs::path path = dir / "stream.jsonl";
  {
    jsonl_stream out(path);
    out.write(rep.records[0]);
  }
  {
    jsonl_stream out(path, jsonl_stream::open_mode::append);
    out.write(rep.records[1]);
  }
  CHECK(read_jsonl(path).size() == 2);
  {
    jsonl_stream out(path);  // truncates
    out.write(rep.records[2]);
    out.close();
    CHECK_THAT(error_message([&] { out.write(rep.records[3]); }, error_id::io),
               Catch::Contains("stream is closed"));
  }
  CHECK(read_jsonl(path).size() == 1);

  fs::create_directories(dir / "folder.jsonl");
  CHECK_THAT(error_message([&] { jsonl_stream bad(dir / "folder.jsonl"); }, error_id::io),
             Catch::Contains("folder.jsonl"));
}

}  // namespace
}  // namespace attnbench
