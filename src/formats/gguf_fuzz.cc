// libFuzzer target: any byte string must give either a GgufFile whose tensors lie inside
// the input or a Status, never a crash, leak, read out of bounds or runaway allocation.
#include <cstddef>
#include <cstdint>

#include "base/check.h"
#include "formats/gguf.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto file = tide::GgufFile::Parse(data, size, "fuzz.gguf");
  if (!file.ok()) return 0;
  for (const tide::TensorInfo& t : (*file)->tensors()) {
    TIDE_CHECK(t.data >= data && t.data + t.nbytes <= data + size);
    TIDE_CHECK_EQ(t.nbytes, tide::DTypeBytes(t.dtype, static_cast<uint64_t>(t.shape.numel())));
    if (t.nbytes > 0) {
      volatile uint8_t sink = t.data[0];
      sink = t.data[t.nbytes - 1];
      (void)sink;
    }
  }
  // Exercise the typed look-ups on every key.
  for (const auto& [key, value] : (*file)->metadata()) {
    (void)(*file)->GetString(key);
    (void)(*file)->GetInt(key);
    (void)(*file)->GetFloat(key);
    (void)(*file)->GetBool(key);
    (void)(*file)->GetArray(key);
  }
  return 0;
}
