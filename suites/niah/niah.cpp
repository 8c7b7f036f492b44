/// `niah`: needle-in-a-haystack grid (length x depth x needle kind), after "Needle In A
/// Haystack" and RULER's niah_single tasks. Each cell runs `samples` prompts with a
/// deterministic seed per (cell, sample), identical for every method, and scores the decoded
/// answer with RULER's string_match_all.
#include <cmath>

#include "datasets/haystack.hpp"
#include "harness/error.hpp"
#include "suites/common/retrieval_metrics.hpp"
#include "suites/common/retrieval_run.hpp"
#include "suites/common/suite_helpers.hpp"

namespace attnbench {

namespace {

class niah_suite final : public length_axis_suite {
 public:
  std::string name() const override { return "niah"; }
  std::string description() const override {
    return "needle in a haystack: accuracy per (length, depth) cell, string_match_all";
  }
  std::vector<axis_def> axes() const override {
    return {int64_axis("length", {4096, 16384}, {1024, 4096}),
            // --depths' default, 0:1:4.
            real_axis("depth", {0.0, 0.333333, 0.666667, 1.0}, {},
                      "--depths: a list or start:stop:count[:linear|:sigmoid]"),
            needle_axis(), haystack_axis()};
  }

  std::map<std::string, metric_info> metrics() const override {
    auto m = retrieval_metric_info();
    m["needle_mass"] = {
        "fraction", true,
        "dense retrieval-head attention mass on the needle at the first answer token"};
    return m;
  }

  std::vector<suite_case> cases(const run_options& o) const override {
    const std::vector<axis_def> a = axes();
    const std::vector<std::string> haystacks = haystack_values(o, "niah");
    const std::vector<std::string> needles = needle_values(o, "niah");
    const std::vector<double> depths = real_values(o, "niah", a[1]);
    std::vector<suite_case> out;
    for (auto length : int64_values(o, "niah", a[0]))
      for (double depth : depths)
        for (const auto& needle : needles)
          for (const auto& haystack : haystacks)
            out.push_back(make_case("niah", {{"length", length},
                                             {"depth", depth},
                                             {"needle", needle},
                                             {"haystack", haystack}}));
    return out;
  }

  void run(const suite_case& c, const method_instance& method, const run_context& ctx,
           record& rec) const override {
    const run_options& o = *ctx.options;
    const int samples = sample_count(o, 4, 2);
    const auto length = c.axes.at("length").get<std::int64_t>();
    const auto depth = c.axes.at("depth").get<double>();
    const auto needle = parse_value_kind(c.axes.at("needle").get<std::string>());
    const auto haystack = parse_haystack_kind(c.axes.at("haystack").get<std::string>());

    retrieval_accumulator acc;
    nlohmann::json per_sample = nlohmann::json::array();
    for (int s = 0; s < samples; ++s) {
      niah_outcome r =
          run_niah_sample(ctx, method, length, depth, haystack, needle, sample_seed(o.seed, c, s));
      acc.add(r.score, r.result);
      per_sample.push_back(std::move(r.sample));
    }
    acc.write(rec);
    rec.extra["samples"] = per_sample;
  }
};

ATTNBENCH_REGISTER_SUITE(niah_suite);

}  // namespace

}  // namespace attnbench
