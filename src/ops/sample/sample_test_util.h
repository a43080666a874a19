// Random logit rows for the sample tests: uniform logits, plus rows with a tie for the
// maximum (the lower id must win) and rows with -inf entries (masked tokens).
#pragma once

#include <cmath>
#include <vector>

#include "base/rng.h"

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

}  // namespace tide::testing
