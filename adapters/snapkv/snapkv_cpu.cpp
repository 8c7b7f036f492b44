/// snapkv on the CPU: observation-window votes (window_votes), pooled per KV head, through the
/// shared prompt-compression method.
#include "adapters/common/cpu/attention_scores.hpp"
#include "adapters/common/cpu/prompt_scores.hpp"
#include "adapters/snapkv/snapkv.hpp"
#include "harness/error.hpp"

namespace attnbench::cpu {

namespace {

prompt_scores snapkv_scores(const score_request& r, const snapkv::config& c) {
  ATTNBENCH_CHECK(r.q.data && r.q.tokens == r.k.tokens, internal,
                  "snapkv scores the prompt with its queries; prefill got q with "
                      << r.q.tokens << " tokens for " << r.k.tokens << " keys");
  const int tokens = r.k.tokens;
  const int first = tokens - static_cast<int>(std::min<std::int64_t>(c.window, tokens));
  // Votes over every key each window query sees; only the prefix [0, first) is ranked.
  const auto votes = window_votes(r.q, r.k, first, r.scale, r.threads);
  prompt_scores out;
  out.forced_tail = tokens - first;
  for (const auto& head_votes : votes)
    out.scores.push_back(snapkv::pool(head_votes.data(), first, c.kernel, c.pooling));
  return out;
}

prompt_scorer make_snapkv_scorer(const param_values& values) {
  prompt_scorer s;
  s.score = [c = snapkv::read_config(values)](const score_request& r) {
    return snapkv_scores(r, c);
  };
  return s;
}

const scorer_registrar snapkv_scorer("snapkv", make_snapkv_scorer);

}  // namespace

}  // namespace attnbench::cpu

ATTNBENCH_REGISTER_METHOD(attnbench::cpu::prompt_score_cpu_info(
    {"snapkv", "SnapKV: LLM Knows What You are Looking for Before Generation",
     "per KV head, keep the window plus the top tokens by pooled observation-window attention",
     "one row set per KV head (votes summed over its query group); the prompt is compressed once "
     "and the cache grows during decoding",
     attnbench::snapkv::schema()}));
