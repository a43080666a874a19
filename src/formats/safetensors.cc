#include "formats/safetensors.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <fstream>
#include <limits>
#include <set>
#include <string_view>

#include <nlohmann/json.hpp>

namespace tide {

static_assert(std::endian::native == std::endian::little, "formats/ assumes a little-endian host");

namespace {

using nlohmann::json;

// The limit the safetensors reference implementation applies; a larger header is far
// more likely to be corruption (or an attack on our memory) than a real checkpoint.
constexpr uint64_t kMaxHeaderBytes = 100'000'000;
// Our header needs depth 3 (object -> entry -> shape); anything much deeper is hostile.
constexpr int kMaxJsonDepth = 16;
constexpr size_t kMaxJsonErrorChars = 240;

struct SafetensorsDType {
  std::string_view name;
  DType dtype;
};
// The only dtypes tide reads from safetensors; everything else is refused by name.
constexpr SafetensorsDType kDTypes[] = {
    {"F32", DType::kF32}, {"F16", DType::kF16}, {"BF16", DType::kBF16}};

std::string_view SafetensorsName(DType t) {
  for (const auto& d : kDTypes)
    if (d.dtype == t) return d.name;
  return {};
}

std::string Quote(std::string_view s) { return "'" + std::string(s) + "'"; }

// Checks that [p, p+n) is well-formed UTF-8 (no overlongs, surrogates or code points
// past U+10FFFF) and that brackets nest at most kMaxJsonDepth deep. Done before
// nlohmann::json sees the text so that the error can say where the bad byte is.
// Returns an empty string when fine, else the problem.
std::string CheckJsonText(const uint8_t* p, size_t n) {
  int depth = 0;
  bool in_string = false;
  bool escaped = false;
  size_t i = 0;
  while (i < n) {
    const uint8_t c = p[i];
    if (c < 0x80) {
      if (in_string) {
        if (escaped) {
          escaped = false;
        } else if (c == '\\') {
          escaped = true;
        } else if (c == '"') {
          in_string = false;
        }
      } else if (c == '"') {
        in_string = true;
      } else if (c == '{' || c == '[') {
        if (++depth > kMaxJsonDepth) {
          return "JSON nests deeper than " + std::to_string(kMaxJsonDepth) + " levels at byte " +
                 std::to_string(i);
        }
      } else if (c == '}' || c == ']') {
        --depth;
      }
      ++i;
      continue;
    }
    escaped = false;
    size_t len;
    uint32_t min_cp;
    uint32_t cp;
    if ((c & 0xE0) == 0xC0) {
      len = 2, min_cp = 0x80, cp = c & 0x1Fu;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3, min_cp = 0x800, cp = c & 0x0Fu;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4, min_cp = 0x10000, cp = c & 0x07u;
    } else {
      return "invalid UTF-8 byte 0x" + [&] {
        char buf[3];
        std::snprintf(buf, sizeof buf, "%02x", c);
        return std::string(buf);
      }() + " at byte " + std::to_string(i);
    }
    if (len > n - i) return "truncated UTF-8 sequence at byte " + std::to_string(i);
    for (size_t k = 1; k < len; ++k) {
      if ((p[i + k] & 0xC0) != 0x80) return "invalid UTF-8 continuation at byte " + std::to_string(i + k);
      cp = (cp << 6) | (p[i + k] & 0x3Fu);
    }
    if (cp < min_cp) return "overlong UTF-8 sequence at byte " + std::to_string(i);
    if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
      return "invalid UTF-8 code point at byte " + std::to_string(i);
    i += len;
  }
  return {};
}

bool CheckedMul(uint64_t a, uint64_t b, uint64_t* out) {
  if (a != 0 && b > std::numeric_limits<uint64_t>::max() / a) return false;
  *out = a * b;
  return true;
}

struct Span {
  uint64_t begin;
  uint64_t end;
  size_t index;  // into the tensor list
};

// Validates one header entry (everything but its place among the others).
Status ParseEntry(const std::string& file, const std::string& key, const json& entry, const uint8_t* base,
                  uint64_t data_size, TensorInfo* out, Span* span) {
  const std::string where = file + ": tensor " + Quote(key) + ": ";
  if (key.empty()) return DataLoss(file + ": a tensor has an empty name");
  if (!entry.is_object()) return DataLoss(where + "entry is not a JSON object");
  const auto dtype_it = entry.find("dtype");
  const auto shape_it = entry.find("shape");
  const auto offsets_it = entry.find("data_offsets");
  if (dtype_it == entry.end() || !dtype_it->is_string()) return DataLoss(where + "'dtype' missing or not a string");
  if (shape_it == entry.end() || !shape_it->is_array()) return DataLoss(where + "'shape' missing or not an array");
  if (offsets_it == entry.end() || !offsets_it->is_array() || offsets_it->size() != 2 ||
      !(*offsets_it)[0].is_number_unsigned() || !(*offsets_it)[1].is_number_unsigned()) {
    return DataLoss(where + "'data_offsets' missing or not two non-negative integers");
  }

  const std::string& dtype_name = dtype_it->get_ref<const std::string&>();
  const SafetensorsDType* dtype = nullptr;
  for (const auto& d : kDTypes)
    if (d.name == dtype_name) dtype = &d;
  if (dtype == nullptr) {
    return Unimplemented(where + "dtype " + dtype_name + " is not supported (tide reads F32, F16 and BF16)");
  }

  const json& dims = *shape_it;
  if (dims.size() > static_cast<size_t>(kMaxDims)) {
    return Unimplemented(where + "shape has " + std::to_string(dims.size()) + " dims; tide supports at most " +
                         std::to_string(kMaxDims));
  }
  Shape shape;
  // The product of the non-zero dims must fit in 63 bits: then every partial product,
  // in any order (Shape::numel, kernels' strides), fits too, even when a 0 dim makes
  // numel 0.
  uint64_t nonzero_product = 1;
  bool has_zero = false;
  for (const json& d : dims) {
    if (d.is_number_integer() && !d.is_number_unsigned()) return DataLoss(where + "shape has a negative dim");
    if (!d.is_number_unsigned()) return DataLoss(where + "shape holds a value that is not an integer");
    const uint64_t v = d.get<uint64_t>();
    has_zero |= v == 0;
    if (v != 0 && (!CheckedMul(nonzero_product, v, &nonzero_product) ||
                   nonzero_product > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))) {
      return DataLoss(where + "shape " + dims.dump() + " has more elements than fit in 63 bits");
    }
    shape.dims[static_cast<size_t>(shape.ndim++)] = static_cast<int64_t>(v);
  }
  const uint64_t numel = has_zero ? 0 : nonzero_product;
  uint64_t nbytes;
  const uint64_t elem_bytes = static_cast<uint64_t>(GetDTypeInfo(dtype->dtype).block_bytes);
  if (!CheckedMul(numel, elem_bytes, &nbytes)) {
    return DataLoss(where + dtype_name + " " + shape.ToString() + " needs more than 2^64 bytes");
  }

  const uint64_t begin = (*offsets_it)[0].get<uint64_t>();
  const uint64_t end = (*offsets_it)[1].get<uint64_t>();
  const std::string offsets = "data_offsets [" + std::to_string(begin) + ", " + std::to_string(end) + "]";
  if (end < begin) return DataLoss(where + offsets + " end before they begin");
  if (end - begin != nbytes) {
    return DataLoss(where + offsets + " hold " + std::to_string(end - begin) + " bytes but " + dtype_name + " " +
                    shape.ToString() + " needs " + std::to_string(nbytes));
  }
  if (end > data_size) {
    return DataLoss(where + offsets + " run past the end of the data section (" + std::to_string(data_size) +
                    " bytes)");
  }

  out->name = key;
  out->dtype = dtype->dtype;
  out->shape = shape;
  out->data = base + begin;
  out->nbytes = nbytes;
  out->file = file;
  span->begin = begin;
  span->end = end;
  return OkStatus();
}

Status ParseMetadata(const std::string& file, const json& value, std::map<std::string, std::string>* out) {
  if (!value.is_object()) return DataLoss(file + ": __metadata__ is not a JSON object");
  for (const auto& [k, v] : value.items()) {
    if (!v.is_string()) return DataLoss(file + ": __metadata__ value for " + Quote(k) + " is not a string");
    if (out != nullptr) (*out)[k] = v.get<std::string>();
  }
  return OkStatus();
}

// A serialised file minus tensor bytes: the 8-byte length + padded JSON, and where
// each tensor's bytes go after it.
struct SafetensorsLayout {
  std::string header;
  uint64_t data_bytes = 0;
};

Result<SafetensorsLayout> LayOut(const std::vector<SafetensorsWriteEntry>& entries,
                                 const std::map<std::string, std::string>& metadata) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) {
    nlohmann::ordered_json meta = nlohmann::ordered_json::object();
    for (const auto& [k, v] : metadata) meta[k] = v;
    header["__metadata__"] = std::move(meta);
  }
  std::set<std::string> names;
  uint64_t offset = 0;
  for (const auto& e : entries) {
    const std::string where = "tensor " + Quote(e.name) + ": ";
    if (e.name.empty() || e.name == "__metadata__") return InvalidArgument(where + "reserved or empty name");
    if (!names.insert(e.name).second) return InvalidArgument(where + "written twice");
    const std::string_view dtype = SafetensorsName(e.dtype);
    if (dtype.empty()) {
      return InvalidArgument(where + "safetensors writer takes f32, f16 or bf16, not " +
                             std::string(DTypeName(e.dtype)));
    }
    if (e.shape.ndim < 0 || e.shape.ndim > kMaxDims) return InvalidArgument(where + "bad ndim");
    nlohmann::ordered_json dims = nlohmann::ordered_json::array();
    for (int i = 0; i < e.shape.ndim; ++i) {
      if (e.shape[i] < 0) return InvalidArgument(where + "negative dim in " + e.shape.ToString());
      dims.push_back(e.shape[i]);
    }
    const uint64_t nbytes = DTypeBytes(e.dtype, static_cast<uint64_t>(e.shape.numel()));
    if (nbytes > 0 && e.data == nullptr) return InvalidArgument(where + "no data");
    header[e.name] = {{"dtype", std::string(dtype)}, {"shape", dims}, {"data_offsets", {offset, offset + nbytes}}};
    offset += nbytes;
  }
  std::string text;
  try {
    text = header.dump();
  } catch (const nlohmann::json::exception& e) {  // names or metadata that are not UTF-8
    return InvalidArgument(std::string("cannot encode safetensors header: ") + e.what());
  }
  // Pad with spaces (valid JSON whitespace) so that tensor data starts 8-byte aligned.
  text.append((8 - text.size() % 8) % 8, ' ');
  SafetensorsLayout layout;
  const uint64_t n = text.size();
  layout.header.resize(8);
  std::memcpy(layout.header.data(), &n, 8);
  layout.header += text;
  layout.data_bytes = offset;
  return layout;
}

}  // namespace

Result<std::vector<TensorInfo>> SafetensorsFile::Parse(const uint8_t* data, size_t size, const std::string& name,
                                                       std::map<std::string, std::string>* metadata) {
  if (size < 8) {
    return DataLoss(name + ": file is " + std::to_string(size) +
                    " bytes; a safetensors file starts with an 8-byte header length");
  }
  uint64_t n;
  std::memcpy(&n, data, 8);
  if (n > kMaxHeaderBytes) {
    return DataLoss(name + ": header length " + std::to_string(n) + " exceeds the 100 MB limit");
  }
  if (n > size - 8) {
    return DataLoss(name + ": header length " + std::to_string(n) + " runs past the end of the file (" +
                    std::to_string(size) + " bytes)");
  }
  const uint8_t* text = data + 8;
  if (std::string problem = CheckJsonText(text, n); !problem.empty()) {
    return DataLoss(name + ": header: " + problem);
  }

  // nlohmann::json keeps the last of duplicate keys silently; a second tensor of the
  // same name is corruption, so the parser callback records top-level keys.
  std::set<std::string> seen;
  std::string duplicate;
  auto on_event = [&](int depth, json::parse_event_t event, json& parsed) {
    if (event == json::parse_event_t::key && depth == 1 && duplicate.empty()) {
      if (!seen.insert(parsed.get<std::string>()).second) duplicate = parsed.get<std::string>();
    }
    return true;
  };
  json header;
  try {
    header = json::parse(text, text + n, on_event);
  } catch (const json::exception& e) {
    std::string what = e.what();
    if (what.size() > kMaxJsonErrorChars) what = what.substr(0, kMaxJsonErrorChars) + "...";
    return DataLoss(name + ": header is not valid JSON: " + what);
  }
  if (!header.is_object()) return DataLoss(name + ": header is not a JSON object");
  if (!duplicate.empty()) return DataLoss(name + ": tensor " + Quote(duplicate) + " appears twice in the header");

  const uint8_t* base = text + n;
  const uint64_t data_size = size - 8 - n;
  std::vector<TensorInfo> tensors;
  std::vector<Span> spans;
  tensors.reserve(header.size());
  spans.reserve(header.size());
  for (const auto& [key, value] : header.items()) {
    if (key == "__metadata__") {
      RETURN_IF_ERROR(ParseMetadata(name, value, metadata));
      continue;
    }
    TensorInfo info;
    Span span{};
    RETURN_IF_ERROR(ParseEntry(name, key, value, base, data_size, &info, &span));
    span.index = tensors.size();
    tensors.push_back(std::move(info));
    spans.push_back(span);
  }

  // Overlap check: after sorting by begin, each tensor must end before the next begins.
  std::sort(spans.begin(), spans.end(), [](const Span& a, const Span& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  for (size_t i = 1; i < spans.size(); ++i) {
    const Span& a = spans[i - 1];
    const Span& b = spans[i];
    if (a.end > b.begin) {
      return DataLoss(name + ": tensors " + Quote(tensors[a.index].name) + " [" + std::to_string(a.begin) + ", " +
                      std::to_string(a.end) + "] and " + Quote(tensors[b.index].name) + " [" +
                      std::to_string(b.begin) + ", " + std::to_string(b.end) + "] overlap");
    }
  }
  std::vector<TensorInfo> in_file_order;
  in_file_order.reserve(tensors.size());
  for (const Span& s : spans) in_file_order.push_back(std::move(tensors[s.index]));
  return in_file_order;
}

Result<std::unique_ptr<SafetensorsFile>> SafetensorsFile::Open(const std::string& path) {
  ASSIGN_OR_RETURN(auto mapped, MappedFile::Open(path));
  std::unique_ptr<SafetensorsFile> file(new SafetensorsFile());
  ASSIGN_OR_RETURN(file->tensors_, Parse(mapped->data(), mapped->size(), path, &file->metadata_));
  file->file_ = std::move(mapped);
  return file;
}

Result<std::string> EncodeSafetensors(const std::vector<SafetensorsWriteEntry>& entries,
                                      const std::map<std::string, std::string>& metadata) {
  ASSIGN_OR_RETURN(SafetensorsLayout layout, LayOut(entries, metadata));
  std::string out = std::move(layout.header);
  out.reserve(out.size() + layout.data_bytes);
  for (const auto& e : entries) {
    const uint64_t nbytes = DTypeBytes(e.dtype, static_cast<uint64_t>(e.shape.numel()));
    if (nbytes > 0) out.append(static_cast<const char*>(e.data), nbytes);
  }
  return out;
}

Status WriteSafetensors(const std::string& path, const std::vector<SafetensorsWriteEntry>& entries,
                        const std::map<std::string, std::string>& metadata) {
  auto layout = LayOut(entries, metadata);
  if (!layout.ok()) return layout.status().WithContext(path);
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) return Internal(path + ": cannot open for writing");
  out.write(layout->header.data(), static_cast<std::streamsize>(layout->header.size()));
  for (const auto& e : entries) {
    const uint64_t nbytes = DTypeBytes(e.dtype, static_cast<uint64_t>(e.shape.numel()));
    if (nbytes > 0) out.write(static_cast<const char*>(e.data), static_cast<std::streamsize>(nbytes));
  }
  out.close();
  if (!out) return Internal(path + ": write failed");
  return OkStatus();
}

}  // namespace tide
