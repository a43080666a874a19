// Element types of weights and activations, and scalar conversions.
//
// Quantised types are stored in blocks (GGUF layout, see docs/formats.md):
//   Q8_0: 32 values = f16 scale d, then 32 x int8 q;        value = d * q      (34 bytes)
//   Q4_0: 32 values = f16 scale d, then 16 bytes of nibbles; byte j holds value j in its
//         low nibble and value j+16 in its high nibble;     value = d * (q - 8) (18 bytes)
#pragma once

#include <cstdint>
#include <cstring>
#include <string_view>

namespace tide {

enum class DType : uint8_t { kF32, kF16, kBF16, kQ8_0, kQ4_0, kI32 };

struct DTypeInfo {
  std::string_view name;
  int block_elems;   // values per block (1 for plain types)
  int block_bytes;   // bytes per block
};

const DTypeInfo& GetDTypeInfo(DType t);
inline std::string_view DTypeName(DType t) { return GetDTypeInfo(t).name; }
// Parses "f32", "f16", "bf16", "q8_0", "q4_0", "i32" (case-insensitive). False if unknown.
bool ParseDType(std::string_view name, DType* out);

// Bytes for n values; REQUIRES n % block_elems == 0 (callers validate shapes first).
inline uint64_t DTypeBytes(DType t, uint64_t n) {
  const DTypeInfo& i = GetDTypeInfo(t);
  return n / static_cast<uint64_t>(i.block_elems) * static_cast<uint64_t>(i.block_bytes);
}

inline constexpr int kQK8_0 = 32;
inline constexpr int kQK4_0 = 32;
struct BlockQ8_0 { uint16_t d; int8_t qs[kQK8_0]; };
struct BlockQ4_0 { uint16_t d; uint8_t qs[kQK4_0 / 2]; };
static_assert(sizeof(BlockQ8_0) == 34);
static_assert(sizeof(BlockQ4_0) == 18);

inline float Bf16ToF32(uint16_t h) {
  uint32_t u = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// Round to nearest even, NaN kept quiet (as torch does).
inline uint16_t F32ToBf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40);
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

float F16ToF32(uint16_t h);
uint16_t F32ToF16(float f);

// Converts n values of type `t` at `src` to f32. REQUIRES n % block_elems == 0.
void DequantizeRow(DType t, const void* src, float* dst, int64_t n);
// Quantises n f32 values into type `t` (f32/f16/bf16/q8_0/q4_0). REQUIRES n % block_elems == 0.
void QuantizeRow(DType t, const float* src, void* dst, int64_t n);

}  // namespace tide
