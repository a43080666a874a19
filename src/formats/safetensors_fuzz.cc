// libFuzzer target: any byte string must give either tensors that lie inside the input
// or a Status, never a crash, leak or read out of bounds.
#include <cstddef>
#include <cstdint>

#include "base/check.h"
#include "formats/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::map<std::string, std::string> metadata;
  auto tensors = tide::SafetensorsFile::Parse(data, size, "fuzz.safetensors", &metadata);
  if (!tensors.ok()) return 0;
  for (const tide::TensorInfo& t : *tensors) {
    // Touch the first and last byte so ASan sees any pointer outside the input.
    TIDE_CHECK(t.data >= data && t.data + t.nbytes <= data + size);
    if (t.nbytes > 0) {
      volatile uint8_t sink = t.data[0];
      sink = t.data[t.nbytes - 1];
      (void)sink;
    }
  }
  return 0;
}
