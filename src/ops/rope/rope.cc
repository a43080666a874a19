// inv_freq must round like Hugging Face's f32 tensor code, so no FMA contraction.
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#include "ops/rope/rope.h"

#include <cmath>
#include <string>

#include "base/check.h"

namespace tide {

// Each step mirrors one tensor operation of Hugging Face's _compute_default_rope_parameters,
// linear scaling and _compute_llama3_parameters, all of which run on f32 tensors there:
// every intermediate is rounded to f32 where HF's is (Python scalars become f32, and
// `scalar / tensor` is reciprocal(tensor) * scalar in torch), so that our inv_freq
// equals theirs up to the last ulp of torch's powf (ours is correctly rounded via f64).
std::vector<float> RopeInvFreq(double theta, int rotary_dim, const RopeScaling& scaling) {
  const int half = rotary_dim / 2;
  std::vector<float> inv(static_cast<size_t>(half > 0 ? half : 0));
  for (int i = 0; i < half; ++i) {
    // torch.arange(0, dim, 2).float() / dim
    const float exponent = static_cast<float>(2 * i) / static_cast<float>(rotary_dim);
    // base ** exponent, then 1.0 / that
    const float base_pow = static_cast<float>(
        std::pow(static_cast<double>(static_cast<float>(theta)), static_cast<double>(exponent)));
    inv[static_cast<size_t>(i)] = 1.f / base_pow;
  }
  switch (scaling.type) {
    case RopeScaling::Type::kNone:
      break;
    case RopeScaling::Type::kLinear: {
      const float factor = static_cast<float>(scaling.factor);
      for (float& f : inv) f = f / factor;
      break;
    }
    case RopeScaling::Type::kLlama3: {
      // Python scalars meet f32 tensors, so torch rounds them to f32 first.
      const float factor = static_cast<float>(scaling.factor);
      const float low = static_cast<float>(scaling.low_freq_factor);
      const auto old_len = static_cast<double>(scaling.original_max_position_embeddings);
      const float low_freq_wavelen = static_cast<float>(old_len / scaling.low_freq_factor);
      const float high_freq_wavelen = static_cast<float>(old_len / scaling.high_freq_factor);
      const float two_pi = static_cast<float>(2.0 * M_PI);
      const float old_len_f = static_cast<float>(old_len);
      const float high_minus_low = static_cast<float>(scaling.high_freq_factor - scaling.low_freq_factor);
      for (float& f : inv) {
        const float wavelen = (1.f / f) * two_pi;
        if (wavelen < high_freq_wavelen) continue;  // high frequency: kept
        if (wavelen > low_freq_wavelen) {           // low frequency: slowed by `factor`
          f = f / factor;
          continue;
        }
        // In between: blend the two by how far the wavelength is between the bounds.
        const float smooth = ((1.f / wavelen) * old_len_f - low) / high_minus_low;
        f = (1.f - smooth) * f / factor + smooth * f;
      }
      break;
    }
  }
  return inv;
}

Status RopeParams::check() const {
  auto bad = [](const std::string& what) { return InvalidArgument("rope: " + what); };
  if (n_tokens < 0) return bad("n_tokens must be >= 0, got " + std::to_string(n_tokens));
  if (n_heads <= 0) return bad("n_heads must be > 0, got " + std::to_string(n_heads));
  if (head_dim <= 0) return bad("head_dim must be > 0, got " + std::to_string(head_dim));
  if (rotary_dim <= 0 || rotary_dim > head_dim || rotary_dim % 2 != 0) {
    return bad("rotary_dim must be even and in [2, head_dim = " + std::to_string(head_dim) + "], got " +
               std::to_string(rotary_dim));
  }
  if (k != nullptr && n_kv_heads <= 0) {
    return bad("n_kv_heads must be > 0 when k is set, got " + std::to_string(n_kv_heads));
  }
  if (n_tokens == 0) return OkStatus();
  if (q == nullptr) return bad("q is null");
  if (positions == nullptr) return bad("positions is null");
  if (inv_freq == nullptr) return bad("inv_freq is null");
  // The angle is float(pos) * inv_freq as in HF; past 2^24 float(pos) is no longer exact.
  constexpr int32_t kMaxPosition = 1 << 24;
  for (int64_t t = 0; t < n_tokens; ++t) {
    if (positions[t] < 0 || positions[t] >= kMaxPosition) {
      return bad("positions[" + std::to_string(t) + "] = " + std::to_string(positions[t]) +
                 " is outside [0, 2^24)");
    }
  }
  return OkStatus();
}

void Rope(const ExecContext& ctx, const RopeParams& p) {
  switch (ctx.device) {
    case DeviceKind::kCpu:
      RopeCpu(p, ctx.pool);
      return;
    case DeviceKind::kCuda:
#if TIDE_HAVE_CUDA
      RopeCuda(p, ctx.stream);
      return;
#else
      break;  // not built: falls to the check below
#endif
  }
  TIDE_CHECK(false && "rope: no kernel for this device");
}

}  // namespace tide
