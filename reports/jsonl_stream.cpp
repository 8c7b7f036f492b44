#include "reports/jsonl_stream.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <map>
#include <set>

#include "harness/error.hpp"
#include "reports/file_io.hpp"
#include "reports/json_layout.hpp"

namespace attnbench {

namespace {

using nlohmann::json;

constexpr std::string_view k_checksum_key = ",\"checksum\":\"";
// `,"checksum":"` + 16 hex digits + `"}`.
constexpr std::size_t k_checksum_tail = k_checksum_key.size() + 16 + 2;

// `object_text` (a JSON object, "{...}") with the checksum of its bytes up to the last '}'.
std::string with_checksum(const std::string& object_text) {
  const std::string body = object_text.substr(0, object_text.size() - 1);
  return body + std::string(k_checksum_key) + stable_hash_hex(body) + "\"}";
}

// Whether `line` ends in a checksum; when it does, whether the checksum matches.
enum class checksum_state { absent, good, bad };

checksum_state check_line(std::string_view line) {
  while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t'))
    line.remove_suffix(1);
  if (line.size() < k_checksum_tail) return checksum_state::absent;
  const std::string_view tail = line.substr(line.size() - k_checksum_tail);
  if (tail.substr(0, k_checksum_key.size()) != k_checksum_key ||
      tail.substr(tail.size() - 2) != "\"}")
    return checksum_state::absent;
  const std::string_view body = line.substr(0, line.size() - k_checksum_tail);
  return stable_hash_hex(body) == tail.substr(k_checksum_key.size(), 16) ? checksum_state::good
                                                                         : checksum_state::bad;
}

// A header's metric_info, through report_from_json's checks (a document with no records).
std::map<std::string, metric_info> metric_docs(const json& info) {
  return report_from_json({{"schema_version", k_schema_version},
                           {"meta", json::object()},
                           {"metric_info", info},
                           {"records", json::array()}})
      .metrics;
}

}  // namespace

jsonl_stream::jsonl_stream(const std::filesystem::path& path, open_mode mode) : m_path(path) {
  create_parent_folders(path);
  // O_APPEND makes each write(2) land at the current end even if another process appends too.
  const int flags =
      O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | (mode == open_mode::truncate ? O_TRUNC : 0);
  m_fd = ::open(path.c_str(), flags, 0644);
  ATTNBENCH_CHECK(m_fd >= 0, io, "cannot open '" << path.string() << "': " << errno_text(errno));
}

jsonl_stream::~jsonl_stream() {
  try {
    close();
  } catch (const error&) {
    // A destructor must not throw; callers that care call close() themselves.
  }
}

void jsonl_stream::write(const record& r) { write_line(stream_record_line(r) + '\n'); }

void jsonl_stream::write_header(const report& header) {
  write_line(stream_header_line(header) + '\n');
}

void jsonl_stream::write_line(const std::string& line) {
  std::lock_guard lock(m_mutex);
  ATTNBENCH_CHECK(m_fd >= 0, io, "cannot write '" << m_path.string() << "': stream is closed");
  write_fully(m_fd, line, m_path);
  // The case is done only once its line is on the disk: a resume trusts what the stream holds.
  ATTNBENCH_CHECK(::fdatasync(m_fd) == 0, io,
                  "cannot sync '" << m_path.string() << "': " << errno_text(errno));
  ++m_lines;
}

void jsonl_stream::close() {
  std::lock_guard lock(m_mutex);
  if (m_fd < 0) return;
  const int fd = m_fd;
  m_fd = -1;
  const bool synced = ::fsync(fd) == 0;
  const int sync_err = errno;
  const bool closed = ::close(fd) == 0;
  ATTNBENCH_CHECK(synced, io, "cannot fsync '" << m_path.string() << "': " << errno_text(sync_err));
  ATTNBENCH_CHECK(closed, io, "cannot close '" << m_path.string() << "': " << errno_text(errno));
}

std::size_t jsonl_stream::lines_written() const {
  std::lock_guard lock(m_mutex);
  return m_lines;
}

std::string stream_record_line(const record& r) { return with_checksum(record_line(r)); }

std::string stream_header_line(const report& header) {
  const json doc = to_json(report{header.meta, header.metrics, {}});
  const json line = {{"stream_header",
                      {{"schema_version", doc.at("schema_version")},
                       {"meta", doc.at("meta")},
                       {"metric_info", doc.at("metric_info")}}}};
  return with_checksum(line.dump(-1, ' ', false, json::error_handler_t::replace));
}

stream_contents read_stream(const std::filesystem::path& path) {
  const std::string text = read_text_file(path, "JSONL stream");
  stream_contents out;
  std::size_t begin = 0;
  for (std::size_t line_no = 1; begin < text.size(); ++line_no) {
    const std::size_t end = text.find('\n', begin);
    const bool complete = end != std::string::npos;
    const std::string_view line(text.data() + begin, (complete ? end : text.size()) - begin);
    const std::size_t next = complete ? end + 1 : text.size();
    const bool last =
        next >= text.size() || text.find_first_not_of(" \t\r\n", next) == std::string::npos;
    const auto keep = [&] {
      out.good_bytes = next;
      out.ends_in_newline = complete;
    };
    begin = next;
    if (line.find_first_not_of(" \t\r") == std::string_view::npos) {
      keep();
      continue;
    }

    // Damage (a line that does not parse, or whose checksum does not match) on the last line is
    // what a crash mid-write leaves; anywhere else the stream cannot be trusted.
    const checksum_state sum = check_line(line);
    json j;
    std::string damage;
    try {
      j = json::parse(line);
    } catch (const json::parse_error& e) {
      damage = std::string("not valid JSON: ") + e.what();
    }
    if (damage.empty() && sum == checksum_state::bad) damage = "checksum does not match the line";
    if (!damage.empty()) {
      if (last) {
        out.dropped_line = line_no;
        break;
      }
      ATTNBENCH_BAD_INPUT(path.string() << ":" << line_no << ": " << damage);
    }
    try {
      if (j.is_object() && j.contains("stream_header")) {
        const json& h = j.at("stream_header");
        if (!h.is_object() || !h.contains("meta") || !h.at("meta").is_object())
          ATTNBENCH_BAD_INPUT("stream header: field 'meta' must be an object");
        stream_contents::header head;
        head.line = line_no;
        head.meta = h.at("meta");
        if (h.contains("metric_info")) head.metrics = metric_docs(h.at("metric_info"));
        out.headers.push_back(std::move(head));
      } else {
        out.records.push_back(record_from_json(j));
        out.record_lines.push_back(line_no);
      }
    } catch (const error& e) {
      ATTNBENCH_BAD_INPUT(path.string() << ":" << line_no << ": " << e.what());
    }
    keep();
  }
  return out;
}

std::vector<record> read_jsonl(const std::filesystem::path& path) {
  return read_stream(path).records;
}

report stream_report(const stream_contents& s, const std::filesystem::path& path) {
  report out;
  if (!s.headers.empty()) out.meta = s.headers.back().meta;
  for (const auto& h : s.headers)
    for (const auto& [name, info] : h.metrics) out.metrics.insert_or_assign(name, info);

  // The last record of each case id; records without one (schema 1.0) are all kept.
  std::map<std::string, std::size_t> last;
  for (std::size_t i = 0; i < s.records.size(); ++i)
    if (!s.records[i].case_id.empty()) last[s.records[i].case_id] = i;
  std::vector<const record*> kept;
  for (std::size_t i = 0; i < s.records.size(); ++i) {
    const record& r = s.records[i];
    if (r.case_id.empty() || last.at(r.case_id) == i) kept.push_back(&r);
  }

  // In the planned order when the header gives it; cases never finished make the report partial.
  const json planned = out.meta.value("planned_cases", json::array());
  std::size_t missing = 0;
  if (planned.is_array() && !planned.empty()) {
    std::map<std::string, std::size_t> rank;
    for (std::size_t i = 0; i < planned.size(); ++i)
      if (planned[i].is_object() && planned[i].contains("case_id"))
        rank.emplace(planned[i]["case_id"].get<std::string>(), i);
    std::stable_sort(kept.begin(), kept.end(), [&](const record* a, const record* b) {
      auto ra = rank.find(a->case_id), rb = rank.find(b->case_id);
      return (ra == rank.end() ? rank.size() : ra->second) <
             (rb == rank.end() ? rank.size() : rb->second);
    });
    // A shard's stream (meta.shard) plans every case of the sweep but owes only its own.
    const json shard = out.meta.value("shard", json());
    // (less those it found finished in another folder of the sweep, meta.shard.held_elsewhere).
    std::set<std::string> owed;
    for (const json& p : planned)
      if (p.is_object() && p.contains("case_id") &&
          (!shard.is_object() || p.value("shard", -1) == shard.value("index", -2)))
        owed.insert(p["case_id"].get<std::string>());
    if (shard.is_object() && shard.contains("held_elsewhere"))
      for (const json& id : shard["held_elsewhere"])
        if (id.is_string()) owed.erase(id.get<std::string>());
    std::size_t found = 0;
    for (const record* r : kept) found += owed.count(r->case_id);
    missing = owed.size() - found;
    out.meta["partial"] = missing > 0;
  }
  for (const record* r : kept) out.records.push_back(*r);
  out.meta["stream"] = {{"path", path.string()},
                        {"headers", s.headers.size()},
                        {"missing_cases", missing},
                        {"dropped_line", s.dropped_line}};
  return out;
}

void repair_stream_tail(const std::filesystem::path& path, const stream_contents& s) {
  std::error_code ec;
  const auto size = std::filesystem::file_size(path, ec);
  ATTNBENCH_CHECK(!ec, io, "cannot read the size of '" << path.string() << "': " << ec.message());
  if (size == s.good_bytes && s.ends_in_newline) return;
  const int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  ATTNBENCH_CHECK(fd >= 0, io, "cannot open '" << path.string() << "': " << errno_text(errno));
  bool ok = ::ftruncate(fd, static_cast<off_t>(s.good_bytes)) == 0;
  int err = errno;
  if (ok && !s.ends_in_newline && ::lseek(fd, 0, SEEK_END) >= 0) {
    try {
      write_fully(fd, "\n", path);
    } catch (const error&) {
      ::close(fd);
      throw;
    }
  }
  if (ok) {
    ok = ::fsync(fd) == 0;
    err = errno;
  }
  ::close(fd);
  ATTNBENCH_CHECK(ok, io,
                  "cannot repair the end of '" << path.string() << "': " << errno_text(err));
}

}  // namespace attnbench
