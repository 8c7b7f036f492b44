// Runs the real `attnbench` binary: exit codes, the one-line error contract, config files.
#include <catch2/catch.hpp>

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include <nlohmann/json.hpp>

#include "app/cli.hpp"
#include "harness/error.hpp"
#include "harness/suite.hpp"
#include "reports/json_report.hpp"
#include "reports/schema_validator.hpp"
#include "tests/cli/cli_test_helpers.hpp"

using namespace attnbench;
namespace fs = std::filesystem;

namespace {

struct outcome {
  int code;
  std::string out, err;
};

fs::path scratch() {
  static const fs::path dir = attnbench::test::scratch_dir("attnbench-cli-");
  return dir;
}

using attnbench::test::slurp;

outcome run_cli(const std::string& args) {
  fs::path out = scratch() / "stdout.txt", err = scratch() / "stderr.txt";
  std::string cmd =
      std::string(ATTNBENCH_BINARY) + " " + args + " >" + out.string() + " 2>" + err.string();
  int status = std::system(cmd.c_str());
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, slurp(out), slurp(err)};
}

int lines(const std::string& s) {
  int n = 0;
  for (char c : s) n += c == '\n';
  return n;
}

}  // namespace

TEST_CASE("bad input exits 2 with one line naming the value and writes no report", "[cli]") {
  fs::path out = scratch() / "never";
  {
    std::ofstream(scratch() / "broken.json") << "{\"lengths\": [4096,";
    std::ofstream(scratch() / "unknown.json") << "{\"lenghts\": \"4k\"}";
    std::ofstream(scratch() / "trailing.json") << "{\"lengths\": \"4k\"} garbage";
    fs::create_directories(scratch() / "a_folder");
  }
  struct bad {
    std::string args, needle;
  };
  std::vector<bad> cases = {
      {"run --method nosuch", "'nosuch'"},
      {"run --method dense:budget=4", "'budget'"},
      {"run --method streaming_llm:windw=4", "'windw'"},
      {"run --method streaming_llm:window=-5", "-5"},
      {"run --method sliding_window:keep=1.5", "1.5"},
      {"run --lengths 4q", "'4q'"},
      {"run --lengths 4k,,8k", "''"},
      {"run --depths 0:1", "'0:1'"},
      {"run --depths 2", "2"},
      {"run --mode sideways", "'sideways'"},
      {"run --shape gpt9", "'gpt9'"},
      {"run --suite nosuite", "'nosuite'"},
      {"run --samples 0", "0"},
      {"run --filter '('", "'('"},
      {"run --workload retrieval_tmp=3", "'retrieval_tmp'"},
      {"run --haystack hay", "'hay'"},
      {"run --needle pin", "'pin'"},
      {"run --backend tpu", "'tpu'"},
      {"run --threads -1", "-1"},
      {"run --budgets 12a", "'12a'"},
      {"run --param nosuite.key=1", "'nosuite.key'"},
      {"run --param novalue", "'novalue'"},
      {"run --suite niah --axis niah.lenth=2k", "'lenth'"},
      {"run --suite niah --axis niah.length=2q", "'2q'"},
      {"run --suite niah --axis nosuite.length=2k", "'nosuite'"},
      {"run --suite niah --axis ruler.length=2k", "'ruler'"},
      {"run --suite niah --axis niah.needle=pin", "'pin'"},
      {"run --suite niah --axis length", "'length'"},
      {"run --config " + (scratch() / "missing.json").string(), "missing.json"},
      {"run --config " + (scratch() / "broken.json").string(), "broken.json"},
      {"run --config " + (scratch() / "unknown.json").string(), "'lenghts'"},
      {"run --no-such-flag", "no-such-flag"},
      // The probe of issue 16: each of these once ran, crashed or exited 1.
      {"run niah --method dense", "'niah'"},
      {"run --lengths ''", "--lengths"},
      {"run --budgets ''", "--budgets"},
      {"run --trace ''", "--trace"},
      {"run --haystack ''", "--haystack"},
      {"run --tasks ''", "--tasks"},
      {"run --out ''", "--out"},
      {"run --seed=-1", "'-1'"},
      {"run --seed 18446744073709551616", "18446744073709551616"},
      {"run --threads 100000", "100000"},
      {"run --suite niah --budgets 256", "--budgets"},
      {"run --suite niah --tasks vt", "--tasks"},
      // Wrapper specs (docs/user-guide.md): the inner method, the parentheses, list items.
      {"run --suite niah --method 'chunk(h2o)'", "cannot wrap 'h2o'"},
      {"run --suite niah --method 'chunk(snapkv'", "unbalanced '('"},
      {"run --suite niah --method chunk", "chunk wraps a method"},
      {"run --suite niah --method 'snapkv(knorm)'", "snapkv does not wrap a method"},
      {"run --suite niah --method 'per_layer(snapkv):budgets=4/0'", "'budgets[1]' = 0"},
      {"run --suite niah --method kv_quant:key_residual=48", "key_residual = 48"},
      {"run --suite ruler --needle word", "--needle"},
      {"run --suite ruler --param ruler.num_needle_k=2 --param ruler.num_needle_k=3",
       "ruler.num_needle_k"},
      {"run --workload retrieval_temp=3 --workload retrieval_temp=4", "retrieval_temp"},
      {"run --config " + (scratch() / "a_folder").string(), "a_folder"},
      {"run --config " + (scratch() / "trailing.json").string(), "trailing.json"},
      {"frobnicate", "'frobnicate'"},
  };
  for (const auto& c : cases) {
    INFO(c.args);
    outcome o = run_cli(c.args + " --out " + out.string());
    CHECK(o.code == 2);
    CHECK(lines(o.err) == 1);
    CHECK(o.err.find(c.needle) != std::string::npos);
    CHECK_FALSE(fs::exists(out));
  }
}

TEST_CASE("report, compare and merge write only regular files", "[cli]") {
  // A FIFO stands in for a device node: replacing either with a regular file is refused.
  const fs::path fifo = scratch() / "a_fifo";
  fs::remove(fifo);
  REQUIRE(::mkfifo(fifo.c_str(), 0644) == 0);
  const std::string report = std::string(ATTNBENCH_TEST_SOURCE_DIR) + "/ci/baseline/report.json";
  for (const std::string& cmd : {"report " + report + " --format md -o " + fifo.string(),
                                 "merge " + report + " -o " + fifo.string()}) {
    INFO(cmd);
    outcome o = run_cli(cmd);
    CHECK(o.code == 2);
    CHECK(lines(o.err) == 1);
    CHECK(o.err.find("not a regular file") != std::string::npos);
    CHECK(fs::is_fifo(fifo));
  }
}

TEST_CASE("list refuses an unknown backend", "[cli]") {
  outcome o = run_cli("list methods --backend tpu");
  CHECK(o.code == 2);
  CHECK(lines(o.err) == 1);
  CHECK(o.err.find("'tpu'") != std::string::npos);
}

TEST_CASE("repeated values run once", "[cli]") {
  fs::path out = scratch() / "repeats";
  outcome o = run_cli("run --suite niah --method dense --method dense --method dense:budget=4 "
                      "--lengths 1k,1k --depths 0.5,0.5 --needle number --needle number "
                      "--samples 1 --threads 1 --out " + out.string());
  INFO(o.err);
  // dense takes no budget: the third spec is bad input, so drop it and run again.
  CHECK(o.code == 2);
  o = run_cli("run --suite niah --suite niah --method dense --method dense --lengths 1k,1k "
              "--depths 0.5,0.5 --needle number --needle number --samples 1 --threads 1 --out " +
              out.string());
  REQUIRE(o.code == 0);
  const auto report = nlohmann::json::parse(slurp(out / "report.json"));
  CHECK(report["records"].size() == 1);
}

TEST_CASE("run writes a JSON report, a JSONL stream and a leaderboard; --verbose a heatmap",
          "[cli]") {
  fs::path out = scratch() / "ok";
  const std::string args =
      "run --suite niah --method dense --lengths 512 --depths 0,1 --samples 1 --threads 1 --out " +
      out.string();
  outcome o = run_cli(args);
  REQUIRE(o.code == 0);
  // The terminal shows the compact leaderboard only; --verbose adds the per-suite tables.
  CHECK(o.out.find("method  NIAH %") != std::string::npos);
  CHECK(o.out.find("niah accuracy") == std::string::npos);
  // A second run into the folder must say that it replaces the first.
  outcome verbose = run_cli(args + " --verbose --overwrite");
  REQUIRE(verbose.code == 0);
  CHECK(verbose.out.find("niah accuracy") != std::string::npos);
  auto report = nlohmann::json::parse(slurp(out / "report.json"));
  CHECK(report.at("records").size() == 2);
  CHECK(report.at("meta").at("workload").at("retrieval_temp") == 13.0);
  auto problems = validate_report_json(report);
  CAPTURE(problems);
  CHECK(problems.empty());
  // The HTML report is written next to report.json and its path printed.
  REQUIRE(fs::exists(out / "report.html"));
  CHECK(slurp(out / "report.html").find("<html") != std::string::npos);
  CHECK(o.out.find((out / "report.html").string()) != std::string::npos);
  std::ifstream jsonl(out / "report.jsonl");
  std::string line;
  int n = 0;
  // The run's header line, then one line per record.
  std::getline(jsonl, line);
  CHECK(line.rfind("{\"stream_header\":", 0) == 0);
  while (std::getline(jsonl, line)) n += !line.empty();
  CHECK(n == 2);
}

TEST_CASE("the command line overrides the config file", "[cli]") {
  fs::path out = scratch() / "cfg";
  fs::path cfg = scratch() / "run.json";
  std::ofstream(cfg)
      << R"({"suite": "niah", "method": ["dense", "streaming_llm"], "lengths": [512, 1024],
                           "depths": "0:1:2", "samples": 1, "threads": 1, "seed": 5, "workload": {"key_noise": 0.1}})";
  outcome o = run_cli("run --config " + cfg.string() + " --lengths 512 --out " + out.string());
  REQUIRE(o.code == 0);
  auto report = nlohmann::json::parse(slurp(out / "report.json"));
  CHECK(report.at("records").size() == 2 * 2);  // 2 methods x 1 length x 2 depths
  CHECK(report.at("meta").at("options").at("seed") == 5);
  CHECK(report.at("meta").at("workload").at("key_noise") == 0.1);
}

TEST_CASE("help and list", "[cli]") {
  for (const char* cmd :
       {"--help", "run --help", "list --help", "report --help", "compare --help", "merge --help"}) {
    INFO(cmd);
    outcome o = run_cli(cmd);
    CHECK(o.code == 0);
    CHECK(o.out.find("example: attnbench") != std::string::npos);
  }
  {
    outcome v = run_cli("--version");
    CHECK(v.code == 0);
    CHECK(v.out.find("attnbench ") == 0);
    CHECK(v.out.find("(git ") != std::string::npos);
    CHECK(v.out.find("CUDA backend") != std::string::npos);
  }
  {
    outcome j = run_cli("list --format json");
    REQUIRE(j.code == 0);
    const auto doc = nlohmann::json::parse(j.out);
    CHECK(doc.at("methods").size() >= 36);
    CHECK(doc.at("suites").size() == suite_registry::instance().all().size());
    CHECK(doc.at("methods")[0].contains("simplified"));
    const std::string names = run_cli("list methods --format names").out;
    CHECK(names.find("snapkv\n") != std::string::npos);
    CHECK(names.find(" ") == std::string::npos);
  }
  outcome o = run_cli("list methods");
  CHECK(o.code == 0);
  CHECK(o.out.find("streaming_llm") != std::string::npos);
  CHECK(o.out.find("sinks (int") != std::string::npos);
  CHECK(run_cli("list suites").out.find("niah") != std::string::npos);
}

TEST_CASE("lengths and depths parse", "[cli]") {
  CHECK(parse_lengths("4k,16k,128k") == std::vector<std::int64_t>{4096, 16384, 131072});
  CHECK(parse_lengths("1000") == std::vector<std::int64_t>{1000});
  CHECK_THROWS_AS(parse_lengths("4k,"), error);
  CHECK_THROWS_AS(parse_lengths("-4k"), error);
  auto d = parse_depths("0:1:11");
  REQUIRE(d.size() == 11);
  CHECK(d[1] == Approx(0.1));
  CHECK(d.back() == 1.0);
  auto s = parse_depths("0:1:5:sigmoid");
  REQUIRE(s.size() == 5);
  CHECK(s.front() == 0.0);
  CHECK(s[2] == Approx(0.5));
  CHECK(s[1] < 0.25);  // denser near the ends
  CHECK(parse_depths("0.5") == std::vector<double>{0.5});
  CHECK_THROWS_AS(parse_depths("0:1:5:cubic"), error);
}

TEST_CASE("the run option workload version=1 reproduces the landed tree's records bit for bit",
          "[cli]") {
  // The fixture holds records of the quick preset (seed 0) written before workload version 2
  // existed; every metric must come back identical, needle mass and fidelity errors included.
  const fs::path fixture =
      fs::path(ATTNBENCH_TEST_SOURCE_DIR) / "tests/cli/fixtures/workload_v1_quick.json";
  const nlohmann::json expected = nlohmann::json::parse(slurp(fixture));
  const fs::path out = scratch() / "v1";
  outcome o = run_cli(
      "run --seed 0 --workload version=1 --method dense --method snapkv --method quest "
      "--method streaming_llm --method knorm --out " +
      out.string());
  REQUIRE(o.code == 0);
  const nlohmann::json report = nlohmann::json::parse(slurp(out / "report.json"));
  CHECK(report.at("meta").at("workload").at("version") == 1);
  std::map<std::string, const nlohmann::json*> by_key;
  for (const auto& r : report.at("records"))
    by_key[r.at("suite").get<std::string>() + "|" + r.at("case").get<std::string>() + "|" +
           r.at("method_spec").get<std::string>() + "|" + r.value("mode", "")] = &r;
  int compared = 0;
  for (const auto& r : expected.at("records")) {
    const std::string key = r.at("suite").get<std::string>() + "|" +
                            r.at("case").get<std::string>() + "|" +
                            r.at("method_spec").get<std::string>() + "|" + r.value("mode", "");
    INFO(key);
    REQUIRE(by_key.count(key) == 1);
#if defined(__SANITIZE_ADDRESS__)
    // ci/sanitize.sh builds at -O1 (Debug): its floating-point code differs from the Release
    // build that wrote the fixture in the last bits, so there the metrics agree to 1e-6
    // (relative, or absolute for errors near zero such as dense's rel_l2 of 4e-7).
    const nlohmann::json& got = by_key[key]->at("metrics");
    REQUIRE(got.size() == r.at("metrics").size());
    for (const auto& [name, value] : r.at("metrics").items())
      CHECK(got.at(name).get<double>() ==
            Approx(value.get<double>()).epsilon(1e-6).margin(1e-6));
#else
    CHECK(by_key[key]->at("metrics") == r.at("metrics"));
#endif
    ++compared;
  }
  CHECK(compared == 145);
}

TEST_CASE("the run option workload version resets the other workload fields whatever its position",
          "[cli]") {
  const fs::path out = scratch() / "version_order";
  outcome o = run_cli(
      "run --suite niah --method dense --lengths 512 --depths 0.5 --samples 1 "
      "--workload retrieval_temp=14 --workload version=1 --out " +
      out.string());
  REQUIRE(o.code == 0);
  const nlohmann::json w =
      nlohmann::json::parse(slurp(out / "report.json")).at("meta").at("workload");
  CHECK(w.at("version") == 1);
  CHECK(w.at("retrieval_temp") == 14);
  CHECK(w.at("rotary_fraction") == 1.0);
  CHECK(run_cli("run --workload version=3").code == 2);
  // A version-2 field under version 1.
  CHECK(run_cli("run --workload version=1 --workload offset_norm=3").code == 2);
}

TEST_CASE("a wrapper spec runs and records its canonical form", "[cli]") {
  fs::path out = scratch() / "wrapper";
  fs::remove_all(out);
  outcome o = run_cli("run --suite niah --method 'chunk(knorm:keep=0.5):chunk=256' --lengths 1k "
                      "--depths 0.5 --samples 1 --threads 1 --out " + out.string());
  INFO(o.err);
  REQUIRE(o.code == 0);
  const auto report = nlohmann::json::parse(slurp(out / "report.json"));
  REQUIRE(report.at("records").size() == 1);
  const auto& rec = report.at("records").at(0);
  CHECK(rec.at("status") == "ok");
  CHECK(rec.at("method") == "chunk");
  CHECK(rec.at("method_spec") == "chunk(knorm:budget=1024,keep=0.5):chunk=256");
  CHECK(rec.at("params").at("inner") == "knorm:budget=1024,keep=0.5");
  CHECK(rec.at("params").at("chunk") == 256);
}

TEST_CASE("plan prints the frontier and writes a schema-valid report, CSV and HTML", "[cli][plan]") {
  const fs::path out = scratch() / "plan";
  outcome o = run_cli("plan --model llama-3.1-8b --gpu h100-sxm-80gb --method dense "
                      "--method snapkv:budget=2048 --method kv_quant:bits=4 --method "
                      "quest:budget=4096 --out " + out.string());
  REQUIRE(o.code == 0);
  CHECK_THAT(o.out, Catch::Contains("== snapkv:budget=2048") && Catch::Contains("128K") &&
                        Catch::Contains("GPU KV cache size:") &&
                        Catch::Contains("Maximum concurrency for 131,072 tokens per request"));
  const report r = read_report(out / "plan.json");  // validates against the schema
  CHECK(r.records.size() > 4 * 9);
  CHECK(slurp(out / "plan.csv").rfind("method_spec,", 0) == 0);
  CHECK_THAT(slurp(out / "plan.html"), Catch::Contains("Capacity plan"));
}

TEST_CASE("plan refuses bad input with one line and exit 2", "[cli][plan]") {
  const std::string base = "plan --out " + (scratch() / "plan-bad").string() + " ";
  for (const auto& [args, names] : std::vector<std::pair<std::string, std::string>>{
           {"--model llama-9 --gpu h100-sxm-80gb", "llama-9"},
           {"--model llama-3.1-8b --gpu tpu-v5", "tpu-v5"},
           {"--model llama-3.1-8b --gpu h100-sxm-80gb --budget vllm:1.5", "1.5"},
           {"--model llama-3.1-8b --gpu h100-sxm-80gb --budget tgi:0.9", "tgi"},
           {"--model llama-3.1-8b --gpu h100-sxm-80gb --tp 3", "--tp 3"},
           {"--model llama-3.1-8b --gpu h100-sxm-80gb --dtype int3", "int3"},
           {"--model llama-3.1-8b --gpu h100-sxm-80gb --method hyperattention",
            "no planning model"},
           {"--model llama-3.1-8b --gpu h100-sxm-80gb --method snapkv:budget=0", "budget"},
           {"--gpu h100-sxm-80gb", "--model"},
           {"--model llama-3.1-8b --gpu h100-sxm-80gb --calibration /nonexistent.json",
            "nonexistent"},
           {"--model llama-3.1-8b --gpu h100-sxm-80gb --context ''", "--context"},
           {"--model llama-3.1-8b --gpu h100-sxm-80gb --batch 0", "--batch value '0'"},
           {"--model llama-3.1-8b --gpu h100-sxm-80gb --batch 1,x", "'x'"},
           {"--model '' --gpu h100-sxm-80gb", "--model"}}) {
    outcome o = run_cli(base + args);
    INFO(args << " -> " << o.err);
    CHECK(o.code == 2);
    CHECK(lines(o.err) == 1);
    CHECK_THAT(o.err, Catch::Contains(names));
  }
}
