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

TEST_CASE("wrapper specs carry the wrapped spec in parentheses", "[params]") {
  auto spec = parse_method_spec("chunk(snapkv:budget=64,window=8):chunk=1024");
  CHECK(spec.name == "chunk");
  CHECK(spec.inner == "snapkv:budget=64,window=8");
  REQUIRE(spec.args.size() == 1);
  CHECK(spec.args[0] == std::make_pair(std::string("chunk"), std::string("1024")));
  // Nested wrappers, and a wrapper without parameters.
  auto nested = parse_method_spec("per_layer(chunk(knorm:keep=0.5):chunk=16):budgets=4/8");
  CHECK(nested.inner == "chunk(knorm:keep=0.5):chunk=16");
  CHECK(nested.args.size() == 1);
  CHECK(parse_method_spec("key_rerotation(knorm)").args.empty());
  CHECK(parse_method_spec("snapkv:budget=1").inner.empty());
  CHECK(bad_input_message([] {
          parse_method_spec("chunk(snapkv");
        }).find("unbalanced '(' after 'chunk'") != std::string::npos);
  CHECK(bad_input_message([] { parse_method_spec("chunk()"); }).find("empty parentheses") !=
        std::string::npos);
  CHECK(bad_input_message([] {
          parse_method_spec("chunk(knorm)=3");
        }).find("expected ':' or the end after ')'") != std::string::npos);
  CHECK(bad_input_message([] {
          parse_method_spec("chunk:a=(1)");
        }).find("unexpected parenthesis") != std::string::npos);
  CHECK(bad_input_message([] { parse_method_spec("(knorm)"); }).find("no method name") !=
        std::string::npos);
  CHECK(canonical_spec("chunk", validate_params("chunk", {}, {}), "knorm:budget=8") ==
        "chunk(knorm:budget=8)");
}

TEST_CASE("list parameters validate every item", "[params]") {
  const std::vector<param_def> s = {
      list_param("budgets", param_type::integer, 1, 1 << 20, "per layer"),
      list_param("keeps", param_type::real, 1e-9, 1.0, "per layer")};
  auto v = validate_params("per_layer", s, {{"budgets", "1k/512/3"}, {"keeps", ".5/1"}});
  CHECK(v.get_list("budgets") == std::vector<double>{1024, 512, 3});
  CHECK(v.get_list("keeps") == std::vector<double>{0.5, 1});
  CHECK(canonical_spec("per_layer", v) == "per_layer:budgets=1024/512/3,keeps=0.5/1");
  CHECK(bad_input_message([&] {
          validate_params("per_layer", s, {{"budgets", "4/0"}});
        }) == "per_layer: parameter 'budgets[1]' = 0 is out of range [1, 1048576]");
  CHECK(bad_input_message([&] {
          validate_params("per_layer", s, {{"budgets", "4/"}});
        }) == "per_layer: parameter 'budgets' = '4/' has an empty item (write items as a/b/c)");
  CHECK(bad_input_message([&] {
          validate_params("per_layer", s, {{"keeps", "0.5/x"}});
        }) == "per_layer: parameter 'keeps[1]' expects a number, got 'x'");
}
