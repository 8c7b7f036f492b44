// jsonl_stream / read_stream (reports/jsonl_stream.cpp): one record per line with its checksum,
// header lines, concurrent writers, recovery of a stream cut short by a crash, and a stream read
// as a report.
#include <functional>
#include <set>
#include <thread>

#include <catch2/catch.hpp>

#include "harness/error.hpp"
#include "reports/json_report.hpp"
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

// The sample report as a run of schema 1.1 writes it: case ids, config hash, planned cases.
report identified_report() {
  report rep = test::sample_report();
  nlohmann::json planned = nlohmann::json::array();
  for (std::size_t i = 0; i < rep.records.size(); ++i) {
    record& r = rep.records[i];
    // A few sample records differ only in results; a seed of their own makes each a case.
    r.seed = 1000 + i;
    r.case_id = case_id_of(r, {{"version", 2}});
    r.config_hash = "0123456789abcdef";
    planned.push_back({{"case_id", r.case_id}, {"label", r.case_name}});
  }
  rep.meta["config_hash"] = "0123456789abcdef";
  rep.meta["planned_cases"] = planned;
  return rep;
}

TEST_CASE("case ids hash the canonical spec and nothing else", "[reports][jsonl]") {
  record r = test::sample_report().records.front();
  const nlohmann::json w = {{"version", 2}, {"retrieval_temp", 13.0}};
  const std::string id = case_id_of(r, w);
  CHECK(id.size() == 16);
  CHECK(id.find_first_not_of("0123456789abcdef") == std::string::npos);
  // Results and run facts do not move it.
  record same = r;
  same.metrics["accuracy"] = 1.0;
  same.status = record_status::error;
  same.extra["samples"] = "x";
  same.config_hash = "ffffffffffffffff";
  CHECK(case_id_of(same, w) == id);
  // Every part of the spec does.
  for (auto change : std::vector<std::function<void(record&)>>{
           [](record& x) { x.suite = "ruler"; }, [](record& x) { x.case_name += "x"; },
           [](record& x) { x.method_spec += ",k=1"; }, [](record& x) { x.mode = "query_agnostic"; },
           [](record& x) { x.backend = "cuda"; }, [](record& x) { x.seed += 1; }}) {
    record other = r;
    change(other);
    CHECK(case_id_of(other, w) != id);
  }
  CHECK(case_id_of(r, {{"version", 1}, {"retrieval_temp", 13.0}}) != id);
  // FNV-1a's published test vectors.
  CHECK(stable_hash_hex("") == "cbf29ce484222325");
  CHECK(stable_hash_hex("a") == "af63dc4c8601ec8c");
}

TEST_CASE("stream lines carry case id, config hash and a checksum", "[reports][jsonl]") {
  test::temp_dir dir;
  const report rep = identified_report();
  const fs::path path = dir / "report.jsonl";
  {
    jsonl_stream out(path, jsonl_stream::open_mode::append);
    out.write_header(rep);
    for (const record& r : rep.records) out.write(r);
  }
  const std::string text = slurp(path);
  const std::string first_record =
      text.substr(text.find('\n') + 1, text.find('\n', text.find('\n') + 1) - text.find('\n') - 1);
  CHECK_THAT(first_record, Catch::Contains("\"case_id\":\"" + rep.records[0].case_id + "\""));
  CHECK_THAT(first_record, Catch::Contains("\"config_hash\":\"0123456789abcdef\""));
  CHECK_THAT(first_record, Catch::Matches(".*,\"checksum\":\"[0-9a-f]{16}\"\\}"));

  const stream_contents s = read_stream(path);
  REQUIRE(s.headers.size() == 1);
  CHECK(s.headers[0].meta["config_hash"] == "0123456789abcdef");
  CHECK(s.headers[0].metrics.size() == rep.metrics.size());
  REQUIRE(s.records.size() == rep.records.size());
  for (std::size_t i = 0; i < s.records.size(); ++i) {
    test::require_same_record(s.records[i], rep.records[i]);
    CHECK(s.records[i].case_id == rep.records[i].case_id);
    CHECK(s.record_lines[i] == i + 2);
  }
  CHECK(s.dropped_line == 0);
  CHECK(s.good_bytes == text.size());
}

TEST_CASE("a damaged line is refused unless it is the last, which is dropped and cut",
          "[reports][jsonl]") {
  test::temp_dir dir;
  const report rep = identified_report();
  const fs::path path = dir / "report.jsonl";
  {
    jsonl_stream out(path);
    out.write_header(rep);
    for (int i = 0; i < 4; ++i) out.write(rep.records[static_cast<std::size_t>(i)]);
  }
  const std::string text = slurp(path);
  // One changed digit inside the metrics of record line 3: still valid JSON, wrong checksum.
  std::vector<std::size_t> starts = {0};
  for (std::size_t p = text.find('\n'); p != std::string::npos; p = text.find('\n', p + 1))
    starts.push_back(p + 1);
  const auto flip = [&](std::size_t line) {
    std::string t = text;
    const std::size_t at = t.find("\"metrics\":{", starts[line - 1]);
    const std::size_t digit = t.find_first_of("0123456789", at);
    t[digit] = t[digit] == '9' ? '8' : static_cast<char>(t[digit] + 1);
    return t;
  };
  test::spit(path, flip(3));
  CHECK(error_message([&] { read_stream(path); }, error_id::bad_input) ==
        path.string() + ":3: checksum does not match the line");

  // The same damage on the last line: what a crash leaves; it is dropped, and repairing the
  // tail cuts it so that appending starts on a clean line.
  test::spit(path, flip(5));
  stream_contents s = read_stream(path);
  CHECK(s.records.size() == 3);
  CHECK(s.dropped_line == 5);
  repair_stream_tail(path, s);
  CHECK(slurp(path) == text.substr(0, starts[4]));
  {
    jsonl_stream out(path, jsonl_stream::open_mode::append);
    out.write(rep.records[3]);
  }
  CHECK(slurp(path) == text);

  // A torn last line without its newline, and a good last line without one.
  test::spit(path, text.substr(0, text.size() - 40));
  s = read_stream(path);
  CHECK(s.records.size() == 3);
  repair_stream_tail(path, s);
  CHECK(slurp(path) == text.substr(0, starts[4]));
  test::spit(path, text.substr(0, text.size() - 1));
  s = read_stream(path);
  CHECK(s.records.size() == 4);
  CHECK_FALSE(s.ends_in_newline);
  repair_stream_tail(path, s);
  CHECK(slurp(path) == text);
}

TEST_CASE("a stream reads as a report: planned order, last record per case, partial",
          "[reports][jsonl]") {
  test::temp_dir dir;
  const report rep = identified_report();
  const fs::path path = dir / "run.jsonl";
  {
    jsonl_stream out(path);
    out.write_header(rep);
    // Finished out of order, the second case failed first and was rerun; the last is missing.
    record failed = rep.records[1];
    failed.status = record_status::error;
    failed.reason = "boom";
    failed.metrics.clear();
    out.write(failed);
    out.write(rep.records[2]);
    out.write(rep.records[0]);
    out.write(rep.records[1]);
  }
  for (const fs::path& name : {path, dir / "stream.txt"}) {
    if (name != path) fs::copy_file(path, name);
    const report back = read_report(name);
    REQUIRE(back.records.size() == 3);
    for (std::size_t i = 0; i < 3; ++i) test::require_same_record(back.records[i], rep.records[i]);
    CHECK(back.metrics.size() == rep.metrics.size());
    CHECK(back.meta["partial"] == (rep.records.size() > 3));
    CHECK(back.meta["stream"]["missing_cases"] == rep.records.size() - 3);
  }
}

}  // namespace
}  // namespace attnbench
