#include "datasets/structured_random.hpp"

#include <algorithm>
#include <cmath>
#include <set>

#include "datasets/rng.hpp"
#include "harness/error.hpp"
#include "harness/params.hpp"

namespace attnbench {

namespace {

// Coordinates of one head: [0] sink, [1] heavy, [2, 2 + rotary) RoPE pairs (NeoX pairing i,
// i + rotary / 2), the rest Gaussian content. The rotary part takes about half of what is left.
struct layout {
  int d = 0;
  int rotary = 0;  // even
  int content_begin = 0;
  int content = 0;
};

layout head_layout(int d) {
  ATTNBENCH_CHECK(d >= 8, bad_input,
                  "structured workload: head_dim " << d << " is too small (needs at least 8)");
  layout l;
  l.d = d;
  l.rotary = 2 * ((d - 2) / 4);
  l.content_begin = 2 + l.rotary;
  l.content = d - l.content_begin;
  return l;
}

std::uint64_t stream_seed(std::uint64_t seed, int layer, int head, const char* what) {
  return hash_seed(hash_seed(hash_seed(seed, static_cast<std::uint64_t>(layer)),
                             static_cast<std::uint64_t>(head)),
                   what);
}

}  // namespace

nlohmann::json structured_config::to_json() const {
  return {{"sink", sink},
          {"locality", locality},
          {"heavy", heavy},
          {"heavy_count", heavy_count},
          {"content_std", content_std},
          {"rope_base", rope_base}};
}

void structured_config::set(const std::string& key, const std::string& value) {
  const std::optional<double> parsed = parse_real(value);
  if (!parsed)
    ATTNBENCH_BAD_INPUT("structured workload: '" << key << "' expects a number, got '" << value
                                                 << "'");
  const double x = *parsed;
  auto in = [&](double lo, double hi) {
    if (x < lo || x > hi)
      ATTNBENCH_BAD_INPUT("structured workload: '" << key << "' = " << value << " is out of range ["
                                                   << lo << ", " << hi << "]");
    return x;
  };
  if (key == "sink")
    sink = in(0, 100);
  else if (key == "locality")
    locality = in(0, 100);
  else if (key == "heavy")
    heavy = in(0, 100);
  else if (key == "heavy_count") {
    if (x != std::floor(x))
      ATTNBENCH_BAD_INPUT("structured workload: 'heavy_count' = " << value << " is not an integer");
    heavy_count = static_cast<int>(in(0, 1 << 20));
  } else if (key == "content_std")
    content_std = in(0, 100);
  else if (key == "rope_base")
    rope_base = in(2, 1e12);
  else
    ATTNBENCH_BAD_INPUT("structured workload: unknown parameter '"
                        << key
                        << "' (known: sink, locality, heavy, heavy_count, content_std, "
                           "rope_base)");
}

std::vector<std::int64_t> structured_heavy_positions(const structured_config& config, int layer,
                                                     int kv_head, std::int64_t tokens,
                                                     std::uint64_t seed) {
  std::vector<std::int64_t> out;
  if (tokens <= 1 || config.heavy_count <= 0) return out;
  const std::int64_t count = std::min<std::int64_t>(config.heavy_count, tokens - 1);
  rng gen(stream_seed(seed, layer, kv_head, "heavy"));
  std::set<std::int64_t> chosen;
  while (static_cast<std::int64_t>(chosen.size()) < count)
    chosen.insert(1 + static_cast<std::int64_t>(gen.below(static_cast<std::uint64_t>(tokens - 1))));
  return {chosen.begin(), chosen.end()};
}

void structured_qkv(const model_shape& shape, const structured_config& config, int layer,
                    std::int64_t tokens, std::uint64_t seed, tensor_view q, tensor_view k,
                    tensor_view v) {
  const layout l = head_layout(shape.head_dim);
  const int d = shape.head_dim, group = shape.group_size(), half = l.rotary / 2;
  const double sqrt_d = std::sqrt(static_cast<double>(d));
  ATTNBENCH_ASSERT(q.tokens == tokens && k.tokens == tokens && v.tokens == tokens);

  // Each part's scale makes its logit exact under the 1/sqrt(d) softmax scale: a unit query
  // coordinate against sink * sqrt(d) gives `sink`; the rotary pairs (unit vectors rotated by
  // position) give locality / half per pair, so locality * mean cos; content entries
  // N(0, sigma^2) over c dims give a logit variance sigma^4 c / d = content_std^2.
  const double rope_amp = half > 0 ? std::sqrt(config.locality * sqrt_d / half) : 0.0;
  const double sigma =
      std::sqrt(config.content_std * std::sqrt(static_cast<double>(d) / l.content));
  std::vector<double> inv_freq(static_cast<std::size_t>(half));
  for (int i = 0; i < half; ++i)
    inv_freq[static_cast<std::size_t>(i)] = std::pow(config.rope_base, -2.0 * i / l.rotary);

  // Writes the shared parts of position p into x (sink / heavy coordinates left to the caller).
  auto rope_part = [&](float* x, std::int64_t p) {
    for (int i = 0; i < half; ++i) {
      const double angle = static_cast<double>(p) * inv_freq[static_cast<std::size_t>(i)];
      x[2 + i] = static_cast<float>(rope_amp * std::cos(angle));
      x[2 + half + i] = static_cast<float>(rope_amp * std::sin(angle));
    }
  };

  for (int h = 0; h < shape.kv_heads; ++h) {
    const auto heavy = structured_heavy_positions(config, layer, h, tokens, seed);
    rng key_gen(stream_seed(seed, layer, h, "k"));
    rng value_gen(stream_seed(seed, layer, h, "v"));
    for (std::int64_t p = 0; p < tokens; ++p) {
      float* kr = k.at(static_cast<int>(p), h);
      kr[0] = p == 0 ? static_cast<float>(config.sink * sqrt_d) : 0.0f;
      kr[1] = std::binary_search(heavy.begin(), heavy.end(), p)
                  ? static_cast<float>(config.heavy * sqrt_d)
                  : 0.0f;
      rope_part(kr, p);
      for (int i = l.content_begin; i < d; ++i)
        kr[i] = static_cast<float>(sigma * key_gen.normal());
      float* vr = v.at(static_cast<int>(p), h);
      for (int i = 0; i < d; ++i) vr[i] = static_cast<float>(value_gen.normal());
    }
    for (int g = 0; g < group; ++g) {
      const int qh = h * group + g;
      rng query_gen(stream_seed(seed, layer, qh, "q"));
      for (std::int64_t p = 0; p < tokens; ++p) {
        float* qr = q.at(static_cast<int>(p), qh);
        qr[0] = qr[1] = 1.0f;
        rope_part(qr, p);
        for (int i = l.content_begin; i < d; ++i)
          qr[i] = static_cast<float>(sigma * query_gen.normal());
      }
    }
  }
}

}  // namespace attnbench
