#include "tensor/dtype.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <string>

namespace tide {

const DTypeInfo& GetDTypeInfo(DType t) {
  static const DTypeInfo kInfo[] = {
      {"f32", 1, 4}, {"f16", 1, 2}, {"bf16", 1, 2},
      {"q8_0", kQK8_0, sizeof(BlockQ8_0)}, {"q4_0", kQK4_0, sizeof(BlockQ4_0)}, {"i32", 1, 4},
  };
  return kInfo[static_cast<int>(t)];
}

bool ParseDType(std::string_view name, DType* out) {
  std::string s(name);
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  for (DType t : {DType::kF32, DType::kF16, DType::kBF16, DType::kQ8_0, DType::kQ4_0, DType::kI32}) {
    if (GetDTypeInfo(t).name == s) {
      *out = t;
      return true;
    }
  }
  return false;
}

float F16ToF32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t mant = h & 0x3ffu;
  uint32_t u;
  if (exp == 0) {
    if (mant == 0) {
      u = sign;
    } else {  // subnormal: renormalise
      exp = 127 - 15 + 1;
      while ((mant & 0x400u) == 0) {
        mant <<= 1;
        --exp;
      }
      mant &= 0x3ffu;
      u = sign | (exp << 23) | (mant << 13);
    }
  } else if (exp == 31) {
    u = sign | 0x7f800000u | (mant << 13);
  } else {
    u = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

uint16_t F32ToF16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  const uint16_t sign = static_cast<uint16_t>((u >> 16) & 0x8000u);
  const uint32_t abs = u & 0x7fffffffu;
  if (abs > 0x7f800000u) return sign | 0x7e00u;  // NaN
  if (abs >= 0x477ff000u) return sign | 0x7c00u;  // overflow to inf (incl. rounding)
  if (abs < 0x38800000u) {                         // subnormal or zero in f16
    if (abs < 0x33000000u) return sign;            // rounds to zero
    const int e = static_cast<int>(abs >> 23);
    uint32_t mant = (abs & 0x7fffffu) | 0x800000u;
    const int shift = 126 - e;  // value = mant * 2^(e-150); f16 subnormal unit is 2^-24
    uint32_t half = mant >> shift;
    const uint32_t rem = mant & ((1u << shift) - 1);
    const uint32_t mid = 1u << (shift - 1);
    if (rem > mid || (rem == mid && (half & 1u))) ++half;
    return sign | static_cast<uint16_t>(half);
  }
  uint32_t r = abs - 0x38000000u;  // rebias exponent 127 -> 15
  const uint32_t rem = r & 0x1fffu;
  r >>= 13;
  if (rem > 0x1000u || (rem == 0x1000u && (r & 1u))) ++r;
  return sign | static_cast<uint16_t>(r);
}

void DequantizeRow(DType t, const void* src, float* dst, int64_t n) {
  switch (t) {
    case DType::kF32:
      std::memcpy(dst, src, static_cast<size_t>(n) * 4);
      return;
    case DType::kF16: {
      const auto* s = static_cast<const uint16_t*>(src);
      for (int64_t i = 0; i < n; ++i) dst[i] = F16ToF32(s[i]);
      return;
    }
    case DType::kBF16: {
      const auto* s = static_cast<const uint16_t*>(src);
      for (int64_t i = 0; i < n; ++i) dst[i] = Bf16ToF32(s[i]);
      return;
    }
    case DType::kQ8_0: {
      const auto* b = static_cast<const BlockQ8_0*>(src);
      for (int64_t i = 0; i < n / kQK8_0; ++i) {
        const float d = F16ToF32(b[i].d);
        for (int j = 0; j < kQK8_0; ++j) dst[i * kQK8_0 + j] = d * static_cast<float>(b[i].qs[j]);
      }
      return;
    }
    case DType::kQ4_0: {
      const auto* b = static_cast<const BlockQ4_0*>(src);
      for (int64_t i = 0; i < n / kQK4_0; ++i) {
        const float d = F16ToF32(b[i].d);
        for (int j = 0; j < kQK4_0 / 2; ++j) {
          dst[i * kQK4_0 + j] = d * static_cast<float>((b[i].qs[j] & 0x0f) - 8);
          dst[i * kQK4_0 + j + kQK4_0 / 2] = d * static_cast<float>((b[i].qs[j] >> 4) - 8);
        }
      }
      return;
    }
    case DType::kI32: {
      const auto* s = static_cast<const int32_t*>(src);
      for (int64_t i = 0; i < n; ++i) dst[i] = static_cast<float>(s[i]);
      return;
    }
  }
}

void QuantizeRow(DType t, const float* src, void* dst, int64_t n) {
  switch (t) {
    case DType::kF32:
      std::memcpy(dst, src, static_cast<size_t>(n) * 4);
      return;
    case DType::kF16: {
      auto* d = static_cast<uint16_t*>(dst);
      for (int64_t i = 0; i < n; ++i) d[i] = F32ToF16(src[i]);
      return;
    }
    case DType::kBF16: {
      auto* d = static_cast<uint16_t*>(dst);
      for (int64_t i = 0; i < n; ++i) d[i] = F32ToBf16(src[i]);
      return;
    }
    case DType::kQ8_0: {
      auto* b = static_cast<BlockQ8_0*>(dst);
      for (int64_t i = 0; i < n / kQK8_0; ++i) {
        float amax = 0.f;
        for (int j = 0; j < kQK8_0; ++j) amax = std::max(amax, std::fabs(src[i * kQK8_0 + j]));
        const float d = amax / 127.f;
        const float id = d != 0.f ? 1.f / d : 0.f;
        b[i].d = F32ToF16(d);
        for (int j = 0; j < kQK8_0; ++j)
          b[i].qs[j] = static_cast<int8_t>(std::lround(src[i * kQK8_0 + j] * id));
      }
      return;
    }
    case DType::kQ4_0: {
      auto* b = static_cast<BlockQ4_0*>(dst);
      for (int64_t i = 0; i < n / kQK4_0; ++i) {
        // The value of largest magnitude maps to -8, so its sign picks the scale's sign.
        float amax = 0.f, vmax = 0.f;
        for (int j = 0; j < kQK4_0; ++j) {
          const float v = src[i * kQK4_0 + j];
          if (std::fabs(v) > amax) { amax = std::fabs(v); vmax = v; }
        }
        const float d = vmax / -8.f;
        const float id = d != 0.f ? 1.f / d : 0.f;
        b[i].d = F32ToF16(d);
        for (int j = 0; j < kQK4_0 / 2; ++j) {
          const int q0 = std::min(15, static_cast<int>(src[i * kQK4_0 + j] * id + 8.5f));
          const int q1 = std::min(15, static_cast<int>(src[i * kQK4_0 + j + 16] * id + 8.5f));
          b[i].qs[j] = static_cast<uint8_t>(std::max(0, q0) | (std::max(0, q1) << 4));
        }
      }
      return;
    }
    case DType::kI32: {
      auto* d = static_cast<int32_t*>(dst);
      for (int64_t i = 0; i < n; ++i) d[i] = static_cast<int32_t>(std::lround(src[i]));
      return;
    }
  }
}

}  // namespace tide
