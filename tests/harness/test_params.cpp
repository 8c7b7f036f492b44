#include <catch2/catch.hpp>

#include "harness/error.hpp"
#include "harness/params.hpp"

using namespace attnbench;

namespace {

std::vector<param_def> schema() {
  auto s = budget_params(1024);
  s.push_back(int_param("window", 32, 1, 4096, "observation window"));
  s.push_back(choice_param("pool", "max", {"max", "avg"}, "pooling"));
  s.push_back(bool_param("flag", false, "a switch"));
  return s;
}

// Runs f and returns the bad_input message it throws ("" when it does not throw one).
template <class F>
std::string bad_input_message(F f) {
  try {
    f();
  } catch (const error& e) {
    if (e.id() == error_id::bad_input) return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("method specs split into name and ordered key=value pairs", "[params]") {
  auto spec = parse_method_spec("snapkv:budget=1024,window=32");
  CHECK(spec.name == "snapkv");
  REQUIRE(spec.args.size() == 2);
  CHECK(spec.args[0] == std::make_pair(std::string("budget"), std::string("1024")));
  CHECK(parse_method_spec("dense").args.empty());
  CHECK(bad_input_message([] { parse_method_spec(":budget=1"); }).find("no method name") !=
        std::string::npos);
  CHECK(bad_input_message([] { parse_method_spec("x:budget"); }).find("'budget'") !=
        std::string::npos);
  CHECK(bad_input_message([] { parse_method_spec("x:a=1,a=2"); }).find("given twice") !=
        std::string::npos);
}

TEST_CASE("validation fills defaults and canonicalizes values", "[params]") {
  auto v = validate_params("snapkv", schema(), {{"window", "2k"}, {"flag", "yes"}});
  CHECK(v.get_int("budget") == 1024);
  CHECK(v.get_int("window") == 2048);
  CHECK(v.get_bool("flag"));
  CHECK(v.get_string("pool") == "max");
  CHECK_FALSE(v.has("keep"));
  CHECK(canonical_spec("snapkv", v) == "snapkv:budget=1024,flag=true,pool=max,window=2048");
}

TEST_CASE("validation names the bad value", "[params]") {
  CHECK(bad_input_message([] {
          validate_params("snapkv", schema(), {{"windw", "3"}});
        }) == "snapkv: unknown parameter 'windw' (known: budget, keep, window, pool, flag)");
  CHECK(bad_input_message([] {
          validate_params("snapkv", schema(), {{"budget", "-5"}});
        }).find("-5") != std::string::npos);
  CHECK(bad_input_message([] {
          validate_params("snapkv", schema(), {{"budget", "ten"}});
        }).find("'ten'") != std::string::npos);
  CHECK(bad_input_message([] {
          validate_params("snapkv", schema(), {{"keep", "1.5"}});
        }).find("1.5") != std::string::npos);
  CHECK(bad_input_message([] {
          validate_params("snapkv", schema(), {{"pool", "min"}});
        }).find("'min'") != std::string::npos);
  CHECK(bad_input_message([] {
          validate_params("snapkv", schema(), {{"flag", "maybe"}});
        }).find("'maybe'") != std::string::npos);
}

TEST_CASE("budget resolves from tokens or from the kept fraction", "[params]") {
  auto tokens = validate_params("m", schema(), {{"budget", "100"}});
  CHECK(resolve_budget(tokens, 4096) == 100);
  auto frac = validate_params("m", schema(), {{"keep", "0.25"}});
  CHECK(resolve_budget(frac, 4096) == 1024);
  CHECK(resolve_budget(frac, 3) == 1);
  auto tiny = validate_params("m", schema(), {{"keep", "1e-6"}});
  CHECK(resolve_budget(tiny, 10) == 1);
}
