// Random rows for the logits_process tests: histories with repeats (so counts exceed 1
// and the repetition penalty must apply once per id), repeated bias ids (added in list
// order), ids outside the vocabulary (skipped), rows with some steps off, and logits of
// both signs (the repetition penalty divides positives and multiplies negatives).
#pragma once

#include <cstdint>
#include <vector>

#include "base/rng.h"
#include "ops/logits_process/logits_process.h"

namespace tide::testing {

struct ProcessCase {
  int64_t rows = 0, vocab = 0;
  std::vector<float> logits;
  std::vector<int32_t> prompt_off, prompt, output_off, output, bias_off, bias_ids, masked_off, masked;
  std::vector<float> bias_values, rep, pres, freq;

  // Params over these host arrays (logits: the caller's copy).
  LogitsProcessParams Params(float* x) const {
    return LogitsProcessParams{x,
                               rows,
                               vocab,
                               prompt_off.data(),
                               prompt.data(),
                               output_off.data(),
                               output.data(),
                               bias_off.data(),
                               bias_ids.data(),
                               bias_values.data(),
                               masked_off.data(),
                               masked.data(),
                               rep.data(),
                               pres.data(),
                               freq.data()};
  }
};

inline ProcessCase MakeProcessCase(int64_t rows, int64_t vocab, int64_t max_history, Rng& rng) {
  ProcessCase c;
  c.rows = rows;
  c.vocab = vocab;
  c.logits.resize(static_cast<size_t>(rows * vocab));
  for (float& f : c.logits) f = rng.Uniform(-6.f, 6.f);
  auto id = [&](int64_t hot) {  // mostly from a small hot set (repeats), sometimes anywhere or out of range
    const double u = rng.Uniform();
    if (u < 0.02) return static_cast<int32_t>(u < 0.01 ? -1 - static_cast<int64_t>(rng.NextU64() % 5) : vocab + 2);
    if (u < 0.6) return static_cast<int32_t>(rng.NextU64() % static_cast<uint64_t>(hot));
    return static_cast<int32_t>(rng.NextU64() % static_cast<uint64_t>(vocab));
  };
  auto list = [&](std::vector<int32_t>& off, std::vector<int32_t>& ids, int64_t max_len, int64_t hot) {
    off.push_back(0);
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t n = static_cast<int64_t>(rng.NextU64() % static_cast<uint64_t>(max_len + 1));
      for (int64_t i = 0; i < n; ++i) ids.push_back(id(hot));
      off.push_back(static_cast<int32_t>(ids.size()));
    }
  };
  const int64_t hot = vocab < 64 ? vocab : 64;
  list(c.prompt_off, c.prompt, max_history, hot);
  list(c.output_off, c.output, max_history, hot);
  list(c.bias_off, c.bias_ids, 12, hot);
  for (size_t i = 0; i < c.bias_ids.size(); ++i) c.bias_values.push_back(rng.Uniform(-5.f, 5.f));
  list(c.masked_off, c.masked, 4, hot);
  for (int64_t r = 0; r < rows; ++r) {
    const int kind = static_cast<int>(r % 4);  // 0: all on; 1: repetition only; 2: presence/frequency only; 3: none
    c.rep.push_back(kind == 0 || kind == 1 ? rng.Uniform(0.5f, 2.f) : 1.f);
    c.pres.push_back(kind == 0 || kind == 2 ? rng.Uniform(-2.f, 2.f) : 0.f);
    c.freq.push_back(kind == 0 || kind == 2 ? rng.Uniform(-2.f, 2.f) : 0.f);
  }
  return c;
}

}  // namespace tide::testing
