#include <gtest/gtest.h>

#include <cstring>
#include <limits>
#include <vector>

#include "backend/cuda_test_util.h"
#include "ops/cache_write/cache_write.h"
#include "ops/rope_cache_write/rope_cache_write.h"
#include "ops/rope_cache_write/rope_cache_write_test_util.h"

namespace tide {
namespace {

TEST(RopeCacheWriteCudaTest, MatchesRefAndUnfusedKernels) {
  TIDE_REQUIRE_CUDA();
  Rng rng(13);
  for (const auto& c : testing::RopeCacheWriteCases()) {
    const testing::RopeCacheWriteData d = testing::MakeRopeCacheWriteData(c, rng);
    const int64_t q_dim = int64_t{c.n_heads} * c.head_dim, kv_dim = int64_t{c.n_kv_heads} * c.head_dim;
    const size_t q_size = static_cast<size_t>(c.n_tokens * q_dim);
    std::vector<float> q_want(q_size), kc_want = d.k_cache, vc_want = d.v_cache;
    RopeCacheWriteParams p = testing::RopeCacheWriteParamsFor(c, d);
    p.q_out = q_want.data();
    p.k_cache = kc_want.data();
    p.v_cache = vc_want.data();
    ASSERT_TRUE(p.check().ok()) << p.check().ToString();
    RopeCacheWriteRef(p);

    const std::vector<float> nan(q_size, std::numeric_limits<float>::quiet_NaN());
    DeviceBuffer dqkv = testing::Upload(d.qkv), dq = testing::Upload(nan), dkc = testing::Upload(d.k_cache),
                 dvc = testing::Upload(d.v_cache), dslots = testing::Upload(d.slots),
                 dpos = testing::Upload(d.positions), dinv = testing::Upload(d.inv_freq);
    RopeCacheWriteParams g = p;
    g.qkv = dqkv.as<float>();
    g.q_out = dq.as<float>();
    g.k_cache = dkc.as<float>();
    g.v_cache = dvc.as<float>();
    g.slots = dslots.as<int64_t>();
    g.positions = dpos.as<int32_t>();
    g.inv_freq = dinv.as<float>();
    RopeCacheWrite(testing::CudaCtx(), g);
    const std::vector<float> q_got = testing::Download<float>(dq, q_size);
    const std::vector<float> kc_got = testing::Download<float>(dkc, kc_want.size());
    const std::vector<float> vc_got = testing::Download<float>(dvc, vc_want.size());
    // As ops/rope's CUDA test: sincosf within 2 ulp, values up to |2|.
    for (size_t i = 0; i < q_size; ++i) ASSERT_NEAR(q_got[i], q_want[i], 2e-6f) << "q " << i;
    for (size_t i = 0; i < kc_want.size(); ++i) ASSERT_NEAR(kc_got[i], kc_want[i], 2e-6f) << "k cache " << i;
    ASSERT_EQ(vc_got, vc_want);

    // The unfused CUDA path (Rope on split q/k, then CacheWrite) gives the same bits.
    std::vector<float> q(q_size), k(static_cast<size_t>(c.n_tokens * kv_dim)), v(k.size());
    for (int64_t t = 0; t < c.n_tokens; ++t) {
      const float* row = d.qkv.data() + t * d.stride;
      std::memcpy(q.data() + t * q_dim, row, static_cast<size_t>(q_dim) * 4);
      std::memcpy(k.data() + t * kv_dim, row + q_dim, static_cast<size_t>(kv_dim) * 4);
      std::memcpy(v.data() + t * kv_dim, row + q_dim + kv_dim, static_cast<size_t>(kv_dim) * 4);
    }
    DeviceBuffer uq = testing::Upload(q), uk = testing::Upload(k), uv = testing::Upload(v),
                 ukc = testing::Upload(d.k_cache), uvc = testing::Upload(d.v_cache);
    RopeParams rp;
    rp.q = uq.as<float>();
    rp.k = uk.as<float>();
    rp.positions = dpos.as<int32_t>();
    rp.inv_freq = dinv.as<float>();
    rp.n_tokens = c.n_tokens;
    rp.n_heads = c.n_heads;
    rp.n_kv_heads = c.n_kv_heads;
    rp.head_dim = c.head_dim;
    rp.rotary_dim = c.rotary_dim;
    rp.style = c.style;
    Rope(testing::CudaCtx(), rp);
    CacheWriteParams cw;
    cw.k = uk.as<float>();
    cw.v = uv.as<float>();
    cw.k_cache = ukc.as<float>();
    cw.v_cache = uvc.as<float>();
    cw.slots = dslots.as<int64_t>();
    cw.n_tokens = c.n_tokens;
    cw.num_blocks = c.num_blocks;
    cw.block_size = c.block_size;
    cw.n_kv_heads = c.n_kv_heads;
    cw.head_dim = c.head_dim;
    CacheWrite(testing::CudaCtx(), cw);
    EXPECT_EQ(testing::Download<float>(uq, q_size), q_got);
    EXPECT_EQ(testing::Download<float>(ukc, kc_got.size()), kc_got);
    EXPECT_EQ(testing::Download<float>(uvc, vc_got.size()), vc_got);
  }
}

}  // namespace
}  // namespace tide
