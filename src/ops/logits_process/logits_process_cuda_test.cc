#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "backend/cuda_test_util.h"
#include "ops/logits_process/logits_process.h"
#include "ops/logits_process/logits_process_test_util.h"

namespace tide {
namespace {

// Device arrays of one case (the logits are the caller's).
struct DeviceCase {
  DeviceBuffer prompt_off, prompt, output_off, output, bias_off, bias_ids, bias_values, masked_off, masked, rep, pres,
      freq;
  explicit DeviceCase(const testing::ProcessCase& c)
      : prompt_off(testing::Upload(c.prompt_off)),
        prompt(testing::Upload(c.prompt)),
        output_off(testing::Upload(c.output_off)),
        output(testing::Upload(c.output)),
        bias_off(testing::Upload(c.bias_off)),
        bias_ids(testing::Upload(c.bias_ids)),
        bias_values(testing::Upload(c.bias_values)),
        masked_off(testing::Upload(c.masked_off)),
        masked(testing::Upload(c.masked)),
        rep(testing::Upload(c.rep)),
        pres(testing::Upload(c.pres)),
        freq(testing::Upload(c.freq)) {}
  LogitsProcessParams Params(const testing::ProcessCase& c, float* x) const {
    return LogitsProcessParams{x,
                               c.rows,
                               c.vocab,
                               prompt_off.as<int32_t>(),
                               prompt.as<int32_t>(),
                               output_off.as<int32_t>(),
                               output.as<int32_t>(),
                               bias_off.as<int32_t>(),
                               bias_ids.as<int32_t>(),
                               bias_values.as<float>(),
                               masked_off.as<int32_t>(),
                               masked.as<int32_t>(),
                               rep.as<float>(),
                               pres.as<float>(),
                               freq.as<float>()};
  }
};

// Bit-identical to the reference (every operation rounds as on the host), including the
// second launch on the same workspace (the counts must have been cleared) and more rows
// than blocks (rows share a block's count slice).
TEST(LogitsProcessCudaTest, MatchesRef) {
  TIDE_REQUIRE_CUDA();
  Rng rng(43);
  for (const auto& [rows, vocab, hist] : std::vector<std::tuple<int64_t, int64_t, int64_t>>{
           {16, 5000, 300}, {3, 128256, 32768}, {9, 40, 50}, {150, 2000, 200}, {2, 262144, 1000}}) {
    for (int rep = 0; rep < 2; ++rep) {
      const testing::ProcessCase c = testing::MakeProcessCase(rows, vocab, hist, rng);
      std::vector<float> want = c.logits;
      LogitsProcessRef(c.Params(want.data()));
      DeviceCase d(c);
      DeviceBuffer x = testing::Upload(c.logits);
      LogitsProcess(testing::CudaCtx(), d.Params(c, x.as<float>()));
      const std::vector<float> got = testing::Download<float>(x, want.size());
      size_t bad = 0, first = 0;
      for (size_t i = 0; i < want.size(); ++i)
        if (std::memcmp(&got[i], &want[i], 4) != 0 && bad++ == 0) first = i;
      EXPECT_EQ(bad, 0u) << "vocab " << vocab << " rows " << rows << ": first at " << first << " got " << got[first]
                         << " want " << want[first];
    }
  }
}

}  // namespace
}  // namespace tide
