// MPI mode (app/mpi_run.hpp): each rank runs its shard, rank 0 gathers the reports and merges.
#include "app/mpi_run.hpp"

#include <mpi.h>

#include <algorithm>
#include <climits>
#include <filesystem>
#include <iostream>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "app/progress.hpp"
#include "app/sharding.hpp"
#include "harness/error.hpp"
#include "reports/jsonl_stream.hpp"
#include "reports/merge.hpp"
#include "reports/run_reporters.hpp"

namespace attnbench {

bool mpi_built() { return true; }

namespace {

// MPI_Init for the life of one run, MPI_Finalize after it (also when the run throws).
class mpi_session {
 public:
  mpi_session() {
    int ready = 0;
    MPI_Initialized(&ready);
    if (!ready) MPI_Init(nullptr, nullptr);
    MPI_Comm_rank(MPI_COMM_WORLD, &m_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &m_size);
  }
  ~mpi_session() {
    int done = 0;
    MPI_Finalized(&done);
    if (!done) MPI_Finalize();
  }
  mpi_session(const mpi_session&) = delete;
  mpi_session& operator=(const mpi_session&) = delete;

  int rank() const { return m_rank; }
  int size() const { return m_size; }

 private:
  int m_rank = 0;
  int m_size = 1;
};

// Every rank's `text` on rank 0 (in rank order); an empty vector on the other ranks. One
// MPI_Gather of the lengths, then one MPI_Gatherv of the bytes.
std::vector<std::string> gather_text(const std::string& text, const mpi_session& mpi) {
  ATTNBENCH_CHECK(text.size() <= static_cast<std::size_t>(INT_MAX), io,
                  "rank " << mpi.rank() << "'s report is " << text.size()
                          << " bytes, more than one MPI message carries (2 GiB); split the "
                             "sweep with --shard and `attnbench merge` instead");
  const int length = static_cast<int>(text.size());
  const bool root = mpi.rank() == 0;
  std::vector<int> lengths(root ? mpi.size() : 0);
  MPI_Gather(&length, 1, MPI_INT, lengths.data(), 1, MPI_INT, 0, MPI_COMM_WORLD);
  std::vector<int> offsets(lengths.size());
  long long total = 0;
  for (std::size_t r = 0; r < lengths.size(); ++r) {
    ATTNBENCH_CHECK(total + lengths[r] <= INT_MAX, io,
                    "the ranks' reports add up to more than one MPI message carries (2 GiB); "
                    "split the sweep with --shard and `attnbench merge` instead");
    offsets[r] = static_cast<int>(total);
    total += lengths[r];
  }
  std::string all(static_cast<std::size_t>(total), '\0');
  MPI_Gatherv(text.data(), length, MPI_CHAR, all.data(), lengths.data(), offsets.data(), MPI_CHAR,
              0, MPI_COMM_WORLD);
  std::vector<std::string> out;
  for (std::size_t r = 0; r < lengths.size(); ++r)
    out.push_back(
        all.substr(static_cast<std::size_t>(offsets[r]), static_cast<std::size_t>(lengths[r])));
  return out;
}

// A rank's folder DIR/rank-R.
bool is_rank_folder(const std::filesystem::path& path) {
  const std::string name = path.filename().string();
  return name.size() > 5 && name.rfind("rank-", 0) == 0 &&
         name.find_first_not_of("0123456789", 5) == std::string::npos &&
         std::filesystem::is_directory(path);
}

// The records that ranks left to other folders (meta.shard.held_elsewhere of each rank's report:
// finished in the stream of a rank folder of an earlier run with another N), the last finished
// record of each, as one more input of the merge; none when no rank left any.
std::optional<merge_input> held_elsewhere(const std::vector<merge_input>& ranks,
                                          const std::filesystem::path& dir) {
  std::set<std::string> wanted;
  for (const auto& in : ranks)
    if (const auto it = in.rep.meta.find("shard"); it != in.rep.meta.end() && it->is_object())
      for (const auto& id : it->value("held_elsewhere", nlohmann::json::array()))
        wanted.insert(id.get<std::string>());
  if (wanted.empty()) return std::nullopt;
  std::map<std::string, record> found;
  std::vector<std::filesystem::path> folders;
  for (const auto& entry : std::filesystem::directory_iterator(dir))
    if (is_rank_folder(entry.path())) folders.push_back(entry.path());
  std::sort(folders.begin(), folders.end());
  for (const auto& folder : folders) {
    if (!std::filesystem::exists(folder / "report.jsonl")) continue;
    for (const record& r : read_stream(folder / "report.jsonl").records)
      if (wanted.count(r.case_id) && r.status != record_status::error)
        found.insert_or_assign(r.case_id, r);
  }
  merge_input in{"earlier rank streams", {}};
  in.rep.meta = ranks.front().rep.meta;
  for (const char* key : {"shard", "interrupted_by", "resume"}) in.rep.meta.erase(key);
  in.rep.meta["partial"] = false;
  in.rep.metrics = ranks.front().rep.metrics;
  for (auto& [id, r] : found) in.rep.records.push_back(std::move(r));
  return in;
}

// A rank's run, with any failure kept as (exit status, message) rather than thrown: every rank
// must reach the collective calls below, whatever happened to it.
struct rank_result {
  report rep;
  int status = 0;
  std::string failure;
};

rank_result run_rank(const run_config& config, const mpi_session& mpi) {
  rank_result out;
  try {
    // The top folder's final report is rank 0's to write: an earlier single-process run's
    // results there are refused as `run` refuses them (the rank folders are checked by the
    // runner itself).
    if (!config.resume && !config.overwrite)
      for (const char* name : {"report.json", "report.jsonl"})
        if (std::filesystem::exists(config.out_dir / name))
          ATTNBENCH_BAD_INPUT("output folder '" << config.out_dir.string() << "' holds an earlier "
                                                << "run (" << name << "); --overwrite discards it");
    // --overwrite: no earlier report may stay beside this run's streams if it stops early.
    if (config.overwrite && mpi.rank() == 0)
      for (const char* name : {"report.json", "report.html", "report.jsonl"})
        std::filesystem::remove(config.out_dir / name);
    run_config mine = config;
    mine.shard = shard_choice{mpi.rank(), mpi.size()};
    mine.out_dir = config.out_dir / ("rank-" + std::to_string(mpi.rank()));
    // Resumed with another N, a rank's cases may sit finished in another rank's folder: they
    // are not run again (the runner's sibling streams); rank 0 takes their records from there.
    if (config.resume && std::filesystem::is_directory(config.out_dir))
      for (const auto& entry : std::filesystem::directory_iterator(config.out_dir))
        if (is_rank_folder(entry.path()) && entry.path().filename() != mine.out_dir.filename())
          mine.sibling_streams.push_back(entry.path() / "report.jsonl");
    std::sort(mine.sibling_streams.begin(), mine.sibling_streams.end());
    // Every rank computes the same balance: rank 0 tells it.
    if (mpi.rank() != 0) mine.maybe_log = nullptr;
    // Each rank streams its own cases (what a --resume of the same N reads back); only rank 0
    // draws progress, for its shard, so the terminal keeps one line.
    jsonl_reporter stream(mine.out_dir / "report.jsonl");
    progress_reporter bar(std::cerr);
    reporter_list quiet({&stream});
    reporter_list shown({&stream, &bar});
    out.rep = run_benchmark(
        mine, mpi.rank() == 0 ? static_cast<reporter&>(shown) : static_cast<reporter&>(quiet));
  } catch (const error& e) {
    out.status = e.id() == error_id::bad_input ? 2 : 1;
    out.failure = e.what();
  } catch (const std::exception& e) {
    out.status = 1;
    out.failure = e.what();
  }
  return out;
}

}  // namespace

int run_mpi(const run_config& config, bool verbose) {
  mpi_session mpi;
  rank_result mine = run_rank(config, mpi);

  // All ranks learn whether any failed outright; rank 0 says why, once per distinct message
  // (bad input fails every rank alike).
  int worst = 0;
  MPI_Allreduce(&mine.status, &worst, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  if (worst != 0) {
    const std::vector<std::string> failures = gather_text(mine.failure, mpi);
    std::map<std::string, std::string> ranks_of;  // message -> "0, 1"
    std::vector<std::string> order;
    for (std::size_t r = 0; r < failures.size(); ++r) {
      if (failures[r].empty()) continue;
      auto [it, fresh] = ranks_of.emplace(failures[r], std::to_string(r));
      if (fresh)
        order.push_back(failures[r]);
      else
        it->second += ", " + std::to_string(r);
    }
    for (const auto& message : order)
      std::cerr << "attnbench: " << message << " (MPI rank " << ranks_of[message] << " of "
                << mpi.size() << ")\n";
    return worst;
  }

  const std::vector<std::string> texts = gather_text(to_json(mine.rep).dump(), mpi);
  if (mpi.rank() != 0) return interrupted_exit_code(mine.rep);

  std::vector<merge_input> inputs;
  int interrupted = 0;  // exit status of the first rank a signal stopped
  std::string interrupted_by;
  for (std::size_t r = 0; r < texts.size(); ++r) {
    merge_input in{"rank-" + std::to_string(r), report_from_json(nlohmann::json::parse(texts[r]))};
    if (!interrupted && (interrupted = interrupted_exit_code(in.rep)))
      interrupted_by = in.rep.meta.value("interrupted_by", std::string());
    inputs.push_back(std::move(in));
  }
  if (auto earlier = held_elsewhere(inputs, config.out_dir)) {
    std::cerr << "attnbench: " << earlier->rep.records.size()
              << " case(s) finished in other rank folders of an earlier run were taken from "
                 "there, not run again\n";
    inputs.push_back(std::move(*earlier));
  }
  // A stopped rank left cases out on purpose: the merged report says so (meta.partial,
  // allow_partial) instead of failing.
  merge_options options;
  options.allow_partial = interrupted != 0;
  merge_result merged = merge_reports(inputs, options);
  for (const auto& w : merged.warnings) std::cerr << "attnbench: " << w << "\n";
  if (!merged.problems.empty()) {
    for (const auto& p : merged.problems) std::cerr << "attnbench: " << p << "\n";
    std::cerr << "attnbench: the ranks' reports do not merge into one sweep ("
              << merged.problems.size() << " problem(s)); they stay in " << config.out_dir.string()
              << "/rank-*\n";
    return 1;
  }
  report& rep = merged.merged;
  // One report of the whole sweep: rank 0's shard description would mislead.
  rep.meta.erase("shard");
  rep.meta["mpi"] = {{"ranks", mpi.size()}};
  if (interrupted) rep.meta["interrupted_by"] = interrupted_by;

  // --overwrite discards an earlier run whole: the streams of ranks this run does not have too.
  if (config.overwrite)
    for (int r = mpi.size();; ++r) {
      const auto stale = config.out_dir / ("rank-" + std::to_string(r));
      if (!std::filesystem::exists(stale)) break;
      std::filesystem::remove_all(stale);
    }
  json_file_reporter file(config.out_dir / "report.json");
  html_file_reporter html(config.out_dir / "report.html");
  console_reporter console(std::cout, verbose);
  reporter_list out({&file, &html, &console});
  out.finish(rep);
  std::cout << "\nreport: " << (config.out_dir / "report.json").string() << " (" << mpi.size()
            << " MPI ranks, their streams in " << (config.out_dir / "rank-*").string() << ")"
            << "\nhtml:   " << (config.out_dir / "report.html").string() << "\n";
  const auto failed = std::count_if(rep.records.begin(), rep.records.end(), [](const record& r) {
    return r.status == record_status::error || r.status == record_status::oom;
  });
  if (failed) std::cerr << "attnbench: " << failed << " case(s) failed; see the records' reason\n";
  return interrupted;
}

}  // namespace attnbench
