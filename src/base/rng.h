// Counter-based random numbers: a value is a pure function of (key, counter), so a
// request's samples never depend on what else ran before or beside it.
#pragma once

#include <cstdint>

namespace tide {

// SplitMix64 finaliser: a strong 64-bit mix, cheap enough to call per sample.
constexpr uint64_t Mix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// Uniform in [0, 1) with 53 random bits, from (key, counter).
inline double UniformAt(uint64_t key, uint64_t counter) {
  const uint64_t r = Mix64(Mix64(key) ^ (counter * 0xD1B54A32D192ED03ull));
  return static_cast<double>(r >> 11) * (1.0 / 9007199254740992.0);
}

// A small sequential generator for tests and synthetic weights (deterministic per seed).
class Rng {
 public:
  explicit Rng(uint64_t seed) : key_(seed) {}
  uint64_t NextU64() { return Mix64(Mix64(key_) ^ (counter_++ * 0xD1B54A32D192ED03ull)); }
  double Uniform() { return static_cast<double>(NextU64() >> 11) * (1.0 / 9007199254740992.0); }
  // Uniform float in [lo, hi).
  float Uniform(float lo, float hi) { return lo + static_cast<float>(Uniform()) * (hi - lo); }
  // Standard normal (Box-Muller).
  float Normal();

 private:
  uint64_t key_;
  uint64_t counter_ = 0;
};

}  // namespace tide
