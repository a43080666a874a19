#include "formats/gguf.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <fstream>
#include <limits>
#include <set>

namespace tide {

static_assert(std::endian::native == std::endian::little, "formats/ assumes a little-endian host");

namespace {

// Metadata value types, as numbered by the GGUF spec.
enum class ValueType : uint32_t {
  kU8 = 0, kI8 = 1, kU16 = 2, kI16 = 3, kU32 = 4, kI32 = 5, kF32 = 6,
  kBool = 7, kString = 8, kArray = 9, kU64 = 10, kI64 = 11, kF64 = 12,
};
constexpr uint32_t kNumValueTypes = 13;

// ggml tensor types tide reads, by their ggml_type ids.
constexpr uint32_t kGgmlF32 = 0;
constexpr uint32_t kGgmlF16 = 1;
constexpr uint32_t kGgmlQ4_0 = 2;
constexpr uint32_t kGgmlQ8_0 = 8;
constexpr uint32_t kGgmlBF16 = 30;

constexpr uint64_t kDefaultAlignment = 32;
constexpr uint64_t kMaxAlignment = uint64_t{1} << 30;
constexpr int kMaxArrayDepth = 8;
// Each GgufValue costs ~100 bytes in memory, so a file of 1-byte array elements would
// blow up 100x; the cap bounds that near 400 MB while leaving real tokenizers (under a
// million values across tokens, scores, types and merges) far below it.
constexpr uint64_t kMaxMetadataValues = uint64_t{1} << 22;
// Smallest possible encodings, used to refuse counts the file cannot hold.
constexpr uint64_t kMinKvBytes = 8 + 4 + 1;           // key length, type, 1-byte value
constexpr uint64_t kMinTensorInfoBytes = 8 + 4 + 4 + 8;  // name length, n_dims, type, offset

bool DTypeForGgml(uint32_t type, DType* out) {
  switch (type) {
    case kGgmlF32: *out = DType::kF32; return true;
    case kGgmlF16: *out = DType::kF16; return true;
    case kGgmlQ4_0: *out = DType::kQ4_0; return true;
    case kGgmlQ8_0: *out = DType::kQ8_0; return true;
    case kGgmlBF16: *out = DType::kBF16; return true;
    default: return false;
  }
}

bool GgmlForDType(DType t, uint32_t* out) {
  switch (t) {
    case DType::kF32: *out = kGgmlF32; return true;
    case DType::kF16: *out = kGgmlF16; return true;
    case DType::kQ4_0: *out = kGgmlQ4_0; return true;
    case DType::kQ8_0: *out = kGgmlQ8_0; return true;
    case DType::kBF16: *out = kGgmlBF16; return true;
    default: return false;
  }
}

uint64_t FixedValueBytes(ValueType t) {
  switch (t) {
    case ValueType::kU8: case ValueType::kI8: case ValueType::kBool: return 1;
    case ValueType::kU16: case ValueType::kI16: return 2;
    case ValueType::kU32: case ValueType::kI32: case ValueType::kF32: return 4;
    case ValueType::kU64: case ValueType::kI64: case ValueType::kF64: return 8;
    case ValueType::kString: return 8;  // the length prefix alone
    case ValueType::kArray: return 4 + 8;  // element type + count
  }
  return 1;
}

std::string Quote(const std::string& s) { return "'" + s + "'"; }

// A bounds-checked little-endian reader over (data, size). Every read either succeeds
// whole or fails without moving, so errors can name the position of the bad field.
class Cursor {
 public:
  Cursor(const uint8_t* data, size_t size) : data_(data), size_(size) {}
  [[nodiscard]] size_t pos() const { return pos_; }
  [[nodiscard]] size_t remaining() const { return size_ - pos_; }
  template <typename T>
  [[nodiscard]] bool Read(T* out) {
    if (sizeof(T) > remaining()) return false;
    std::memcpy(out, data_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return true;
  }
  [[nodiscard]] bool ReadBytes(uint64_t n, std::string* out) {
    if (n > remaining()) return false;
    out->assign(reinterpret_cast<const char*>(data_ + pos_), static_cast<size_t>(n));
    pos_ += static_cast<size_t>(n);
    return true;
  }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
};

// Parsing state shared by the helpers: the cursor, the name for messages and the
// metadata value budget.
struct Parser {
  Cursor cur;
  const std::string& name;
  uint64_t values_left = kMaxMetadataValues;

  Status Fail(const std::string& what) const {
    return DataLoss(name + ": " + what + " (at byte " + std::to_string(cur.pos()) + ")");
  }
  template <typename T>
  Status Read(T* out, const std::string& what) {
    if (!cur.Read(out)) return Fail("file ends inside " + what);
    return OkStatus();
  }
  Status ReadString(std::string* out, const std::string& what) {
    uint64_t n = 0;
    RETURN_IF_ERROR(Read(&n, "the length of " + what));
    if (n > cur.remaining()) {
      return Fail("length " + std::to_string(n) + " of " + what + " runs past the end of the file (" +
                  std::to_string(cur.remaining()) + " bytes left)");
    }
    (void)cur.ReadBytes(n, out);
    return OkStatus();
  }

  Status ReadValue(uint32_t raw_type, int depth, const std::string& what, GgufValue* out) {
    if (raw_type >= kNumValueTypes) return Fail(what + " has unknown value type " + std::to_string(raw_type));
    if (values_left == 0) return Fail("more than " + std::to_string(kMaxMetadataValues) + " metadata values");
    --values_left;
    switch (static_cast<ValueType>(raw_type)) {
      case ValueType::kU8: return ReadUInt<uint8_t>(what, out);
      case ValueType::kU16: return ReadUInt<uint16_t>(what, out);
      case ValueType::kU32: return ReadUInt<uint32_t>(what, out);
      case ValueType::kU64: return ReadUInt<uint64_t>(what, out);
      case ValueType::kI8: return ReadInt<int8_t>(what, out);
      case ValueType::kI16: return ReadInt<int16_t>(what, out);
      case ValueType::kI32: return ReadInt<int32_t>(what, out);
      case ValueType::kI64: return ReadInt<int64_t>(what, out);
      case ValueType::kF32: {
        float v{};
        RETURN_IF_ERROR(Read(&v, what));
        out->kind = GgufValue::Kind::kFloat;
        out->f = v;
        return OkStatus();
      }
      case ValueType::kF64: {
        double v{};
        RETURN_IF_ERROR(Read(&v, what));
        out->kind = GgufValue::Kind::kFloat;
        out->f = v;
        return OkStatus();
      }
      case ValueType::kBool: {
        uint8_t v{};
        RETURN_IF_ERROR(Read(&v, what));
        if (v > 1) return Fail(what + " is a bool of value " + std::to_string(v) + " (must be 0 or 1)");
        out->kind = GgufValue::Kind::kBool;
        out->b = v == 1;
        return OkStatus();
      }
      case ValueType::kString:
        out->kind = GgufValue::Kind::kString;
        return ReadString(&out->s, what);
      case ValueType::kArray:
        return ReadArray(depth, what, out);
    }
    return Fail(what + " has unknown value type");
  }

  template <typename T>
  Status ReadUInt(const std::string& what, GgufValue* out) {
    T v{};
    RETURN_IF_ERROR(Read(&v, what));
    out->kind = GgufValue::Kind::kUInt;
    out->u = v;
    return OkStatus();
  }
  template <typename T>
  Status ReadInt(const std::string& what, GgufValue* out) {
    T v{};
    RETURN_IF_ERROR(Read(&v, what));
    out->kind = GgufValue::Kind::kInt;
    out->i = v;
    return OkStatus();
  }

  Status ReadArray(int depth, const std::string& what, GgufValue* out) {
    if (depth >= kMaxArrayDepth) return Fail(what + " nests arrays deeper than " + std::to_string(kMaxArrayDepth));
    uint32_t elem_type = 0;
    uint64_t count = 0;
    RETURN_IF_ERROR(Read(&elem_type, "the element type of " + what));
    if (elem_type >= kNumValueTypes) {
      return Fail(what + " has unknown element type " + std::to_string(elem_type));
    }
    RETURN_IF_ERROR(Read(&count, "the length of " + what));
    const uint64_t min_bytes = FixedValueBytes(static_cast<ValueType>(elem_type));
    if (count > cur.remaining() / min_bytes) {
      return Fail(what + " claims " + std::to_string(count) + " elements, more than the " +
                  std::to_string(cur.remaining()) + " bytes left can hold");
    }
    if (count > values_left) {
      return Fail(what + " has " + std::to_string(count) + " elements; more than " +
                  std::to_string(kMaxMetadataValues) + " metadata values in all");
    }
    out->kind = GgufValue::Kind::kArray;
    out->array.resize(static_cast<size_t>(count));
    // One context string for all elements: vocabularies hold 10^5 strings, and the
    // byte position in any message already pinpoints the element.
    const std::string element = what + "[]";
    for (GgufValue& e : out->array) RETURN_IF_ERROR(ReadValue(elem_type, depth + 1, element, &e));
    return OkStatus();
  }
};

// One tensor-info record as read, before it is checked against the data section.
struct RawTensor {
  std::string name;
  uint32_t type = 0;
  uint64_t offset = 0;
  Shape shape;
  bool sized = false;   // type is one tide reads, so nbytes is known
  uint64_t nbytes = 0;
  DType dtype = DType::kF32;
};

// The on-disk type a writer uses for a value: the narrowest of u32/u64 (i32/i64,
// f32/f64) that holds it exactly, since GgufValue forgets the original width.
ValueType WriteTypeFor(const GgufValue& v) {
  switch (v.kind) {
    case GgufValue::Kind::kUInt: return v.u <= std::numeric_limits<uint32_t>::max() ? ValueType::kU32 : ValueType::kU64;
    case GgufValue::Kind::kInt:
      return v.i >= std::numeric_limits<int32_t>::min() && v.i <= std::numeric_limits<int32_t>::max()
                 ? ValueType::kI32 : ValueType::kI64;
    case GgufValue::Kind::kFloat:
      return static_cast<double>(static_cast<float>(v.f)) == v.f || v.f != v.f ? ValueType::kF32 : ValueType::kF64;
    case GgufValue::Kind::kBool: return ValueType::kBool;
    case GgufValue::Kind::kString: return ValueType::kString;
    case GgufValue::Kind::kArray: return ValueType::kArray;
  }
  return ValueType::kU32;
}

// Widening order inside one array: u32 < u64, i32 < i64, f32 < f64.
ValueType Wider(ValueType a, ValueType b) {
  if (a == b) return a;
  if ((a == ValueType::kU32 && b == ValueType::kU64) || (a == ValueType::kI32 && b == ValueType::kI64) ||
      (a == ValueType::kF32 && b == ValueType::kF64)) {
    return b;
  }
  return a;
}

template <typename T>
void Put(std::string* out, T v) {
  out->append(reinterpret_cast<const char*>(&v), sizeof(T));
}
void PutString(std::string* out, const std::string& s) {
  Put<uint64_t>(out, s.size());
  out->append(s);
}

Status PutValue(std::string* out, const GgufValue& v, ValueType as, int depth) {
  switch (as) {
    case ValueType::kU32: Put<uint32_t>(out, static_cast<uint32_t>(v.u)); return OkStatus();
    case ValueType::kU64: Put<uint64_t>(out, v.u); return OkStatus();
    case ValueType::kI32: Put<int32_t>(out, static_cast<int32_t>(v.i)); return OkStatus();
    case ValueType::kI64: Put<int64_t>(out, v.i); return OkStatus();
    case ValueType::kF32: Put<float>(out, static_cast<float>(v.f)); return OkStatus();
    case ValueType::kF64: Put<double>(out, v.f); return OkStatus();
    case ValueType::kBool: Put<uint8_t>(out, v.b ? 1 : 0); return OkStatus();
    case ValueType::kString: PutString(out, v.s); return OkStatus();
    case ValueType::kArray: {
      if (depth >= kMaxArrayDepth) return InvalidArgument("arrays nest too deep");
      // Empty arrays keep no element kind; u32 is as good as any for them.
      ValueType elem = v.array.empty() ? ValueType::kU32 : WriteTypeFor(v.array[0]);
      for (const GgufValue& e : v.array) {
        if (e.kind != v.array[0].kind) return InvalidArgument("array mixes value kinds");
        elem = Wider(elem, WriteTypeFor(e));
      }
      Put<uint32_t>(out, static_cast<uint32_t>(elem));
      Put<uint64_t>(out, v.array.size());
      for (const GgufValue& e : v.array) RETURN_IF_ERROR(PutValue(out, e, elem, depth + 1));
      return OkStatus();
    }
    default: return Internal("unexpected write type");
  }
}

struct GgufLayout {
  std::string header;              // everything before the data section, padded
  std::vector<uint64_t> offsets;   // per tensor, relative to the data section
  std::vector<uint64_t> nbytes;
  uint64_t alignment = kDefaultAlignment;
};

uint64_t AlignUp(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

Result<GgufLayout> LayOutGguf(const std::vector<std::pair<std::string, GgufValue>>& metadata,
                              const std::vector<GgufWriteTensor>& tensors) {
  GgufLayout layout;
  std::string& h = layout.header;
  h.append("GGUF");
  Put<uint32_t>(&h, 3);
  Put<uint64_t>(&h, tensors.size());
  Put<uint64_t>(&h, metadata.size());
  std::set<std::string> keys;
  for (const auto& [key, value] : metadata) {
    if (!keys.insert(key).second) return InvalidArgument("metadata key " + Quote(key) + " written twice");
    if (key == "general.alignment") {
      const bool is_int = value.kind == GgufValue::Kind::kUInt || value.kind == GgufValue::Kind::kInt;
      const uint64_t a = value.kind == GgufValue::Kind::kUInt ? value.u : static_cast<uint64_t>(value.i);
      if (!is_int || a == 0 || a > kMaxAlignment || (a & (a - 1)) != 0) {
        return InvalidArgument("general.alignment must be a power of two up to 2^30");
      }
      layout.alignment = a;
    }
    PutString(&h, key);
    const ValueType t = WriteTypeFor(value);
    Put<uint32_t>(&h, static_cast<uint32_t>(t));
    Status st = PutValue(&h, value, t, 0);
    if (!st.ok()) return st.WithContext("metadata " + Quote(key));
  }
  std::set<std::string> names;
  uint64_t offset = 0;
  for (const GgufWriteTensor& t : tensors) {
    const std::string where = "tensor " + Quote(t.name) + ": ";
    if (t.name.empty() || !names.insert(t.name).second) return InvalidArgument(where + "empty or duplicate name");
    uint32_t type = 0;
    if (!GgmlForDType(t.dtype, &type)) {
      return InvalidArgument(where + "GGUF writer takes f32, f16, bf16, q8_0 or q4_0, not " +
                             std::string(DTypeName(t.dtype)));
    }
    if (t.shape.ndim < 1 || t.shape.ndim > kMaxDims) return InvalidArgument(where + "needs 1 to 4 dims");
    for (int i = 0; i < t.shape.ndim; ++i) {
      if (t.shape[i] < 0) return InvalidArgument(where + "negative dim in " + t.shape.ToString());
    }
    const int block = GetDTypeInfo(t.dtype).block_elems;
    if (t.shape[t.shape.ndim - 1] % block != 0) {
      return InvalidArgument(where + "row length of " + t.shape.ToString() + " is not a multiple of " +
                             std::to_string(block));
    }
    const uint64_t nbytes = DTypeBytes(t.dtype, static_cast<uint64_t>(t.shape.numel()));
    if (nbytes > 0 && t.data == nullptr) return InvalidArgument(where + "no data");
    PutString(&h, t.name);
    Put<uint32_t>(&h, static_cast<uint32_t>(t.shape.ndim));
    for (int i = t.shape.ndim - 1; i >= 0; --i) Put<uint64_t>(&h, static_cast<uint64_t>(t.shape[i]));
    Put<uint32_t>(&h, type);
    Put<uint64_t>(&h, offset);
    layout.offsets.push_back(offset);
    layout.nbytes.push_back(nbytes);
    offset = AlignUp(offset + nbytes, layout.alignment);
  }
  h.resize(AlignUp(h.size(), layout.alignment), '\0');
  return layout;
}

}  // namespace

std::string_view GgmlTypeName(uint32_t type) {
  // ggml_type ids; gaps are ids ggml has retired.
  static constexpr std::string_view kNames[] = {
      "F32", "F16", "Q4_0", "Q4_1", "", "", "Q5_0", "Q5_1", "Q8_0", "Q8_1",
      "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K", "Q8_K", "IQ2_XXS", "IQ2_XS", "IQ3_XXS", "IQ1_S",
      "IQ4_NL", "IQ3_S", "IQ2_S", "IQ4_XS", "I8", "I16", "I32", "I64", "F64", "IQ1_M",
      "BF16", "", "", "", "TQ1_0", "TQ2_0", "", "", "", "MXFP4"};
  if (type < std::size(kNames) && !kNames[type].empty()) return kNames[type];
  return "unknown";
}

Result<std::unique_ptr<GgufFile>> GgufFile::Parse(const uint8_t* data, size_t size, const std::string& name) {
  Parser p{Cursor(data, size), name};
  char magic[4];
  if (!p.cur.Read(&magic) || std::memcmp(magic, "GGUF", 4) != 0) {
    return DataLoss(name + ": not a GGUF file (no \"GGUF\" magic)");
  }
  std::unique_ptr<GgufFile> file(new GgufFile());
  file->path_ = name;
  RETURN_IF_ERROR(p.Read(&file->version_, "the version"));
  if (file->version_ == 1) {
    return Unimplemented(name + ": GGUF v1 is not supported (tide reads v2 and v3; re-convert the model)");
  }
  if (file->version_ != 2 && file->version_ != 3) {
    const uint32_t swapped = __builtin_bswap32(file->version_);
    if (swapped == 2 || swapped == 3) return Unimplemented(name + ": big-endian GGUF is not supported");
    return Unimplemented(name + ": GGUF version " + std::to_string(file->version_) +
                         " is not supported (tide reads v2 and v3)");
  }
  uint64_t tensor_count = 0;
  uint64_t kv_count = 0;
  RETURN_IF_ERROR(p.Read(&tensor_count, "the tensor count"));
  RETURN_IF_ERROR(p.Read(&kv_count, "the metadata count"));
  const uint64_t left = p.cur.remaining();
  if (tensor_count > left / kMinTensorInfoBytes || kv_count > left / kMinKvBytes ||
      tensor_count * kMinTensorInfoBytes + kv_count * kMinKvBytes > left) {
    return p.Fail("header claims " + std::to_string(tensor_count) + " tensors and " + std::to_string(kv_count) +
                  " metadata entries, more than the " + std::to_string(left) + " bytes left can hold");
  }

  for (uint64_t i = 0; i < kv_count; ++i) {
    std::string key;
    RETURN_IF_ERROR(p.ReadString(&key, "metadata key #" + std::to_string(i)));
    if (file->metadata_.count(key) != 0) return p.Fail("metadata key " + Quote(key) + " appears twice");
    uint32_t type = 0;
    RETURN_IF_ERROR(p.Read(&type, "the type of metadata " + Quote(key)));
    GgufValue value;
    RETURN_IF_ERROR(p.ReadValue(type, 0, "metadata " + Quote(key), &value));
    file->metadata_.emplace(std::move(key), std::move(value));
  }

  uint64_t alignment = kDefaultAlignment;
  if (const GgufValue* a = file->Find("general.alignment")) {
    const bool is_int = a->kind == GgufValue::Kind::kUInt || (a->kind == GgufValue::Kind::kInt && a->i > 0);
    const uint64_t v = a->kind == GgufValue::Kind::kUInt ? a->u : static_cast<uint64_t>(a->i);
    if (!is_int || v == 0 || v > kMaxAlignment || (v & (v - 1)) != 0) {
      return DataLoss(name + ": general.alignment must be a power of two between 1 and 2^30");
    }
    alignment = v;
  }

  std::vector<RawTensor> raw(static_cast<size_t>(tensor_count));
  std::set<std::string> names;
  for (RawTensor& t : raw) {
    RETURN_IF_ERROR(p.ReadString(&t.name, "a tensor name"));
    const std::string what = "tensor " + Quote(t.name);
    if (t.name.empty()) return p.Fail("a tensor has an empty name");
    if (!names.insert(t.name).second) return p.Fail(what + " appears twice");
    uint32_t n_dims = 0;
    RETURN_IF_ERROR(p.Read(&n_dims, "the n_dims of " + what));
    if (n_dims > static_cast<uint32_t>(kMaxDims)) {
      return p.Fail(what + " has " + std::to_string(n_dims) + " dims (GGUF allows at most 4)");
    }
    uint64_t ne[kMaxDims];
    // As for safetensors: the product of the non-zero dims fits in 63 bits, so that
    // no partial product overflows whatever the order (ne[] is reversed below).
    uint64_t nonzero_product = 1;
    bool has_zero = false;
    for (uint32_t d = 0; d < n_dims; ++d) {
      RETURN_IF_ERROR(p.Read(&ne[d], "the shape of " + what));
      const uint64_t limit = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
      if (ne[d] == 0) {
        has_zero = true;
      } else if (ne[d] > limit || nonzero_product > limit / ne[d]) {
        return p.Fail(what + " has more elements than fit in 63 bits");
      } else {
        nonzero_product *= ne[d];
      }
    }
    const uint64_t numel = has_zero ? 0 : nonzero_product;
    // ne[0] varies fastest; TensorInfo shapes are row-major, so the order flips.
    t.shape.ndim = static_cast<int>(n_dims);
    for (uint32_t d = 0; d < n_dims; ++d) t.shape.dims[n_dims - 1 - d] = static_cast<int64_t>(ne[d]);
    RETURN_IF_ERROR(p.Read(&t.type, "the type of " + what));
    RETURN_IF_ERROR(p.Read(&t.offset, "the offset of " + what));
    if (DTypeForGgml(t.type, &t.dtype)) {
      const DTypeInfo& info = GetDTypeInfo(t.dtype);
      const uint64_t row = n_dims == 0 ? 1 : ne[0];
      if (row % static_cast<uint64_t>(info.block_elems) != 0) {
        return p.Fail(what + " of type " + std::string(GgmlTypeName(t.type)) + " has rows of " +
                      std::to_string(row) + " values, not a multiple of the block size " +
                      std::to_string(info.block_elems));
      }
      // numel < 2^63 and block_bytes / block_elems <= 4, so this cannot overflow.
      t.nbytes = numel / static_cast<uint64_t>(info.block_elems) * static_cast<uint64_t>(info.block_bytes);
      t.sized = true;
    } else if (numel == 0) {
      t.sized = true;  // empty whatever its type
    }
  }

  const uint64_t data_start = AlignUp(p.cur.pos(), alignment);
  if (tensor_count > 0 && data_start > size) {
    return DataLoss(name + ": tensor data would start at byte " + std::to_string(data_start) +
                    ", past the end of the file (" + std::to_string(size) + " bytes)");
  }
  const uint64_t data_size = data_start <= size ? size - data_start : 0;
  for (const RawTensor& t : raw) {
    const std::string what = name + ": tensor " + Quote(t.name) + " at offset " + std::to_string(t.offset);
    if (t.offset % alignment != 0) {
      return DataLoss(what + " is not aligned to " + std::to_string(alignment) + " bytes");
    }
    if (t.offset > data_size || (t.sized && t.nbytes > data_size - t.offset) ||
        (!t.sized && t.offset == data_size)) {
      return DataLoss(what + (t.sized ? " with " + std::to_string(t.nbytes) + " bytes" : std::string()) +
                      " runs past the end of the data section (" + std::to_string(data_size) + " bytes)");
    }
  }
  // Overlaps: in offset order, a tensor of known size must end where the next begins
  // or earlier; one of unknown size (an unsupported type) must at least start first.
  std::vector<const RawTensor*> order;
  order.reserve(raw.size());
  for (const RawTensor& t : raw) order.push_back(&t);
  std::sort(order.begin(), order.end(), [](const RawTensor* a, const RawTensor* b) {
    if (a->offset != b->offset) return a->offset < b->offset;
    return a->sized && b->sized ? a->nbytes < b->nbytes : a->sized > b->sized;
  });
  for (size_t i = 1; i < order.size(); ++i) {
    const RawTensor& a = *order[i - 1];
    const RawTensor& b = *order[i];
    const bool overlap = a.sized ? a.offset + a.nbytes > b.offset : a.offset >= b.offset;
    if (overlap) {
      return DataLoss(name + ": tensors " + Quote(a.name) + " (offset " + std::to_string(a.offset) + ") and " +
                      Quote(b.name) + " (offset " + std::to_string(b.offset) + ") overlap");
    }
  }

  for (const RawTensor& t : raw) {
    DType dtype;
    if (!DTypeForGgml(t.type, &dtype)) {
      file->unsupported_[t.name] = t.type;
      continue;
    }
    TensorInfo info;
    info.name = t.name;
    info.dtype = dtype;
    info.shape = t.shape;
    info.data = data + data_start + t.offset;
    info.nbytes = t.nbytes;
    info.file = name;
    file->tensors_.push_back(std::move(info));
  }
  return file;
}

Result<std::unique_ptr<GgufFile>> GgufFile::Open(const std::string& path) {
  ASSIGN_OR_RETURN(auto mapped, MappedFile::Open(path));
  ASSIGN_OR_RETURN(std::unique_ptr<GgufFile> file, Parse(mapped->data(), mapped->size(), path));
  file->file_ = std::move(mapped);
  return file;
}

const GgufValue* GgufFile::Find(const std::string& key) const {
  auto it = metadata_.find(key);
  return it == metadata_.end() ? nullptr : &it->second;
}

std::optional<std::string> GgufFile::GetString(const std::string& key) const {
  const GgufValue* v = Find(key);
  if (v == nullptr || v->kind != GgufValue::Kind::kString) return std::nullopt;
  return v->s;
}

std::optional<int64_t> GgufFile::GetInt(const std::string& key) const {
  const GgufValue* v = Find(key);
  if (v == nullptr) return std::nullopt;
  if (v->kind == GgufValue::Kind::kInt) return v->i;
  if (v->kind == GgufValue::Kind::kUInt && v->u <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
    return static_cast<int64_t>(v->u);
  }
  return std::nullopt;
}

std::optional<double> GgufFile::GetFloat(const std::string& key) const {
  const GgufValue* v = Find(key);
  if (v == nullptr) return std::nullopt;
  switch (v->kind) {
    case GgufValue::Kind::kFloat: return v->f;
    case GgufValue::Kind::kInt: return static_cast<double>(v->i);
    case GgufValue::Kind::kUInt: return static_cast<double>(v->u);
    default: return std::nullopt;
  }
}

std::optional<bool> GgufFile::GetBool(const std::string& key) const {
  const GgufValue* v = Find(key);
  if (v == nullptr || v->kind != GgufValue::Kind::kBool) return std::nullopt;
  return v->b;
}

const std::vector<GgufValue>* GgufFile::GetArray(const std::string& key) const {
  const GgufValue* v = Find(key);
  if (v == nullptr || v->kind != GgufValue::Kind::kArray) return nullptr;
  return &v->array;
}

Result<std::string> EncodeGguf(const std::vector<std::pair<std::string, GgufValue>>& metadata,
                               const std::vector<GgufWriteTensor>& tensors) {
  ASSIGN_OR_RETURN(GgufLayout layout, LayOutGguf(metadata, tensors));
  std::string out = std::move(layout.header);
  const size_t data_start = out.size();
  for (size_t i = 0; i < tensors.size(); ++i) {
    out.resize(data_start + layout.offsets[i], '\0');
    if (layout.nbytes[i] > 0) out.append(static_cast<const char*>(tensors[i].data), layout.nbytes[i]);
  }
  return out;
}

Status WriteGguf(const std::string& path, const std::vector<std::pair<std::string, GgufValue>>& metadata,
                 const std::vector<GgufWriteTensor>& tensors) {
  auto layout = LayOutGguf(metadata, tensors);
  if (!layout.ok()) return layout.status().WithContext(path);
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) return Internal(path + ": cannot open for writing");
  out.write(layout->header.data(), static_cast<std::streamsize>(layout->header.size()));
  uint64_t written = 0;
  const std::string zeros(static_cast<size_t>(layout->alignment), '\0');
  for (size_t i = 0; i < tensors.size(); ++i) {
    out.write(zeros.data(), static_cast<std::streamsize>(layout->offsets[i] - written));
    if (layout->nbytes[i] > 0)
      out.write(static_cast<const char*>(tensors[i].data), static_cast<std::streamsize>(layout->nbytes[i]));
    written = layout->offsets[i] + layout->nbytes[i];
  }
  out.close();
  if (!out) return Internal(path + ": write failed");
  return OkStatus();
}

}  // namespace tide
