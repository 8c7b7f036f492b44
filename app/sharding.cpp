#include "app/sharding.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "harness/error.hpp"

namespace attnbench {

namespace {

// A non-negative decimal integer below 10^9, or nothing.
std::optional<long> parse_count(const std::string& text) {
  if (text.empty() || text.size() > 9 ||
      !std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return std::nullopt;
  return std::stol(text);
}

// The most shards a sweep is split into: far above any array a scheduler accepts, low enough
// that a typo (`--shard 0/1000000000`) is caught.
constexpr int k_max_shards = 100000;

}  // namespace

double predicted_case_cost(const suite& s, const suite_case& c, const method_instance& method,
                           const run_options& options) {
  (void)s;
  const auto length = c.axes.find("length");
  const double tokens =
      length != c.axes.end() && length->is_number() ? length->get<double>() : 4096.0;
  const double samples = std::max(1, options.samples);
  const double wrapper = method.inner ? 2.0 : 1.0;
  return samples * tokens * (1.0 + tokens / 8192.0) * wrapper;
}

shard_choice parse_shard(const std::string& text) {
  const auto slash = text.find('/');
  const auto index = slash == std::string::npos ? std::nullopt : parse_count(text.substr(0, slash));
  const auto count =
      slash == std::string::npos ? std::nullopt : parse_count(text.substr(slash + 1));
  if (!index || !count)
    ATTNBENCH_BAD_INPUT("--shard '" << text << "' is not i/n (e.g. 0/4) or auto");
  if (*count < 1 || *count > k_max_shards)
    ATTNBENCH_BAD_INPUT("--shard " << text << ": the count must be in [1, " << k_max_shards << "]");
  if (*index >= *count)
    ATTNBENCH_BAD_INPUT("--shard " << text << ": the index must be below the count (0 to "
                                   << *count - 1 << ")");
  return {static_cast<int>(*index), static_cast<int>(*count)};
}

shard_choice shard_from_environment(std::optional<int> count,
                                    const std::function<const char*(const char*)>& getenv) {
  // Every variable that names this process's place, with the size that comes with it (MPI).
  struct found {
    std::string what;
    long index;
    std::optional<long> size;
  };
  std::vector<found> seen;
  const auto read = [&](const char* name) -> std::optional<long> {
    const char* value = getenv(name);
    if (!value) return std::nullopt;
    const auto n = parse_count(value);
    if (!n) ATTNBENCH_BAD_INPUT("--shard auto: " << name << "='" << value << "' is not a number");
    return n;
  };
  if (const auto i = read("SLURM_ARRAY_TASK_ID"))
    seen.push_back({"SLURM_ARRAY_TASK_ID=" + std::to_string(*i), *i, std::nullopt});
  if (const auto i = read("JOB_COMPLETION_INDEX"))
    seen.push_back({"JOB_COMPLETION_INDEX=" + std::to_string(*i), *i, std::nullopt});
  for (const auto& [rank, size] : {std::pair{"OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE"},
                                   std::pair{"PMI_RANK", "PMI_SIZE"}}) {
    const auto r = read(rank);
    if (!r) continue;
    const auto n = read(size);
    if (!n) ATTNBENCH_BAD_INPUT("--shard auto: " << rank << " is set but " << size << " is not");
    seen.push_back(
        {std::string(rank) + "=" + std::to_string(*r) + " of " + size + "=" + std::to_string(*n),
         *r, n});
  }
  if (seen.empty())
    ATTNBENCH_BAD_INPUT(
        "--shard auto: none of SLURM_ARRAY_TASK_ID, JOB_COMPLETION_INDEX, "
        "OMPI_COMM_WORLD_RANK, PMI_RANK is set; give --shard i/n");
  for (const found& f : seen)
    if (f.index != seen.front().index ||
        (f.size && seen.front().size && *f.size != *seen.front().size))
      ATTNBENCH_BAD_INPUT("--shard auto: the environment disagrees with itself ("
                          << seen.front().what << ", " << f.what << ")");
  std::optional<long> size = count;
  for (const found& f : seen) {
    if (!f.size) continue;
    if (size && *size != *f.size)
      ATTNBENCH_BAD_INPUT("--shard auto: " << f.what << " contradicts the shard count " << *size
                                           << " of --shard-count or the manifest");
    size = f.size;
  }
  if (!size)
    ATTNBENCH_BAD_INPUT("--shard auto: " << seen.front().what
                                         << " gives the index only; give the count with "
                                            "--shard-count N or --manifest");
  if (*size < 1 || *size > k_max_shards)
    ATTNBENCH_BAD_INPUT("--shard auto: the shard count " << *size << " is not in [1, "
                                                         << k_max_shards << "]");
  if (seen.front().index >= *size)
    ATTNBENCH_BAD_INPUT("--shard auto: " << seen.front().what << " is not below the shard count "
                                         << *size << " of --shard-count or the manifest");
  return {static_cast<int>(seen.front().index), static_cast<int>(*size)};
}

std::vector<int> assign_shards(const std::vector<planned_case>& cases, int n) {
  ATTNBENCH_CHECK(n >= 1, internal, "assign_shards: " << n << " shards");
  std::vector<std::size_t> order(cases.size());
  std::iota(order.begin(), order.end(), std::size_t{0});
  std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
    if (cases[a].cost != cases[b].cost) return cases[a].cost > cases[b].cost;
    return cases[a].case_id < cases[b].case_id;
  });
  std::vector<double> load(static_cast<std::size_t>(n), 0.0);
  std::vector<int> shard(cases.size(), 0);
  for (std::size_t i : order) {
    const auto least = std::min_element(load.begin(), load.end());  // first of equal loads
    shard[i] = static_cast<int>(least - load.begin());
    *least += cases[i].cost;
  }
  return shard;
}

double shard_balance::ratio() const {
  const double ideal = loads.empty() ? 0 : total / static_cast<double>(loads.size());
  return ideal > 0 ? makespan / ideal : 1.0;
}

shard_balance balance_of(const std::vector<planned_case>& cases, const std::vector<int>& shard,
                         int n) {
  shard_balance b;
  b.loads.assign(static_cast<std::size_t>(n), 0.0);
  for (std::size_t i = 0; i < cases.size(); ++i) {
    b.loads.at(static_cast<std::size_t>(shard[i])) += cases[i].cost;
    b.total += cases[i].cost;
  }
  b.makespan = b.loads.empty() ? 0 : *std::max_element(b.loads.begin(), b.loads.end());
  return b;
}

std::map<std::string, double> measured_case_seconds(const report& rep, const std::string& name) {
  std::map<std::string, double> out;
  const auto it = rep.meta.find("case_seconds");
  if (it != rep.meta.end() && it->is_object())
    for (const auto& [id, seconds] : it->items())
      if (seconds.is_number() && seconds.get<double>() > 0) out[id] = seconds.get<double>();
  if (out.empty())
    ATTNBENCH_BAD_INPUT("--shard-costs " << name
                                         << ": the report holds no case timings "
                                            "(meta.case_seconds, written by attnbench run)");
  return out;
}

void apply_measured_costs(std::vector<planned_case>& cases,
                          const std::map<std::string, double>& measured) {
  double predicted_sum = 0, measured_sum = 0;
  for (const planned_case& c : cases)
    if (const auto it = measured.find(c.case_id); it != measured.end()) {
      predicted_sum += c.cost;
      measured_sum += it->second;
    }
  const double scale = predicted_sum > 0 ? measured_sum / predicted_sum : 1.0;
  for (planned_case& c : cases) {
    const auto it = measured.find(c.case_id);
    c.cost = it != measured.end() ? it->second : c.cost * scale;
  }
}

}  // namespace attnbench
