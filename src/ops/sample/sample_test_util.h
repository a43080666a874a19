// Random logit rows for the sample tests: uniform logits, plus rows with a tie for the
// maximum (the lower id must win) and rows with -inf entries (masked tokens).
#pragma once

#include <cmath>
#include <vector>

#include "base/rng.h"
#include "ops/sample/sample.h"

namespace tide::testing {

struct SampleCase {
  int64_t rows, vocab;
  int top_k;
};

inline const std::vector<SampleCase>& SampleCases() {
  static const std::vector<SampleCase> cases = {{1, 128256, 0}, {3, 128256, 20}, {5, 1000, 5}, {2, 7, 20}, {64, 512, 1}};
  return cases;
}

inline std::vector<float> SampleLogits(const SampleCase& c, Rng& rng) {
  std::vector<float> x(static_cast<size_t>(c.rows * c.vocab));
  for (float& f : x) f = rng.Uniform(-8.f, 8.f);
  for (int64_t r = 0; r < c.rows; ++r) {
    float* row = x.data() + r * c.vocab;
    if (r % 2 == 1 && c.vocab > 3) {  // a three-way tie for the maximum, highest id first
      const int64_t a = c.vocab - 1, b = c.vocab / 2, d = c.vocab / 3;
      row[a] = row[b] = row[d] = 9.f;
    }
    if (r % 3 == 2) {
      for (int64_t i = 0; i < c.vocab; i += 5) row[i] = -INFINITY;
    }
  }
  return x;
}

// ---- sample (all settings): rows of several shapes and the settings that reach every
// path of the op (greedy, id-order temperature, top-k, top-p, min-p and their mixes).

// Row r's logits, by r % 6: uniform in [-8, 8); wide (scale 30: a few tokens hold the
// mass); coarse (multiples of 0.5: many ties, at every rank); -inf at every 7th id;
// peaked (one logit 12 above small noise); flat (scale 0.3: top-p keeps most of the
// vocabulary, several sorted chunks on CUDA).
inline std::vector<float> DrawLogits(int64_t rows, int64_t vocab, Rng& rng) {
  std::vector<float> x(static_cast<size_t>(rows * vocab));
  for (int64_t r = 0; r < rows; ++r) {
    float* row = x.data() + r * vocab;
    const int kind = static_cast<int>(r % 6);
    for (int64_t i = 0; i < vocab; ++i) {
      float v = rng.Uniform(-8.f, 8.f);
      if (kind == 1) v *= 30.f / 8.f;
      if (kind == 2) v = std::round(v * 0.5f) / 0.5f * 0.25f;  // multiples of 0.5 in [-4, 4]
      if (kind == 3 && i % 7 == 3) v = -INFINITY;
      if (kind == 4) v = v * 0.1f + (i == vocab / 3 ? 12.f : 0.f);
      if (kind == 5) v *= 0.3f / 8.f;
      row[i] = v;
    }
  }
  return x;
}

// Settings cycled over rows (seed and position random per row).
inline std::vector<SampleRowSpec> DrawSpecs(int64_t rows, int64_t vocab, Rng& rng) {
  struct T {
    float temperature;
    int32_t top_k;
    float top_p, min_p;
  };
  const int32_t over = static_cast<int32_t>(vocab + 3);
  const T table[] = {{0.f, 0, 1.f, 0.f},     {1.f, 0, 1.f, 0.f},       {0.8f, 50, 0.9f, 0.f},  {0.7f, 0, 0.9f, 0.f},
                     {1.3f, 0, 1.f, 0.1f},   {0.5f, 5, 1.f, 0.f},      {1.f, 1, 1.f, 0.f},     {1.f, over, 1.f, 0.f},
                     {0.9f, 0, 0.5f, 0.05f}, {2.f, 10000, 0.99f, 0.f}, {1.f, 0, 0.999f, 0.f}, {0.3f, 40, 0.8f, 0.3f},
                     {1.1f, 7000, 1.f, 0.f}, {0.6f, over, 0.95f, 0.f}};
  const int64_t n_table = static_cast<int64_t>(sizeof(table) / sizeof(table[0]));
  std::vector<SampleRowSpec> spec(static_cast<size_t>(rows));
  for (int64_t r = 0; r < rows; ++r) {
    // Rows and settings both cycle; stepping by 5 pairs every kind of row with each setting.
    const T& t = table[(r * 5 + r / n_table) % n_table];
    SampleRowSpec& s = spec[static_cast<size_t>(r)];
    s.temperature = t.temperature;
    s.top_k = t.top_k;
    s.top_p = t.top_p;
    s.min_p = t.min_p;
    s.seed = rng.NextU64();
    s.position = rng.NextU64() % 4096;
  }
  return spec;
}

// Outputs of one sample launch, poisoned.
struct SampleOut {
  std::vector<int32_t> token, top_ids;
  std::vector<float> logprob, top_lp;
  SampleOut(int64_t rows, int k)
      : token(static_cast<size_t>(rows), -7),
        top_ids(static_cast<size_t>(rows * k), -7),
        logprob(static_cast<size_t>(rows), NAN),
        top_lp(static_cast<size_t>(rows * k), NAN) {}
};

}  // namespace tide::testing
