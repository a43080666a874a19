// Stop strings through the whole engine with a real model and its real tokenizer
// (stories260K from ../shared): a stop string that spans a token boundary, one that
// ends in the middle of a token, include_stop_str_in_output, and the streamed text
// deltas adding up to the final text. The expected texts come from decoding a free
// greedy run, so each case knows exactly where generation must stop.
#include <gtest/gtest.h>

#include <cstdio>

#include "backend/cpu/thread_pool.h"
#include "base/file.h"
#include "engine/model_runner.h"
#include "engine/offline.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"

namespace tide {
namespace {

constexpr const char* kStoriesHf = "../shared/models/stories260K/hf";

ExecContext Ctx() {
  static ThreadPool pool(2);
  ExecContext ctx;
  ctx.pool = &pool;
  return ctx;
}

struct GenRun {
  std::vector<int32_t> tokens;
  std::string streamed;  // text deltas concatenated
  std::string final_text;
  FinishReason finish = FinishReason::kNone;
};

class StopStringSharedTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!FileExists(std::string(kStoriesHf) + "/config.json"))
      GTEST_SKIP() << kStoriesHf << " is absent (CI places shared/ beside the clone)";
    auto model = Model::Load(kStoriesHf);
    ASSERT_TRUE(model.ok()) << model.status().ToString();
    model_ = std::move(*model);
    auto tok = Tokenizer::FromHfFolder(kStoriesHf);
    ASSERT_TRUE(tok.ok()) << tok.status().ToString();
    tok_ = std::move(*tok);
    auto ids = tok_->Encode("Once upon a time, there was a little girl", true);
    ASSERT_TRUE(ids.ok()) << ids.status().ToString();
    prompt_ = *ids;
  }

  GenRun Generate(const std::vector<std::string>& stop, bool include_stop) {
    Request r;
    r.id = "s";
    r.prompt = prompt_;
    r.sampling.temperature = 0.f;
    r.sampling.max_tokens = 64;
    r.sampling.ignore_eos = true;
    r.sampling.stop = stop;
    r.sampling.include_stop_str_in_output = include_stop;
    std::unique_ptr<ModelRunner> runner = MakeModelRunner(*model_, Ctx());
    EngineOptions o;
    o.num_kv_blocks = 64;
    o.max_model_len = 256;
    auto core = EngineCore::Create(*runner, tok_.get(), o);
    EXPECT_TRUE(core.ok()) << core.status().ToString();
    GenRun run;
    if (!core.ok()) return run;
    auto out = RunToCompletion(**core, {r}, [&](const RequestOutput& d) { run.streamed += d.text; });
    EXPECT_TRUE(out.ok()) << out.status().ToString();
    if (!out.ok() || out->size() != 1) return run;
    run.tokens = (*out)[0].token_ids;
    run.final_text = (*out)[0].text;
    run.finish = (*out)[0].finish_reason;
    return run;
  }

  // Decoded text of the first k generated tokens.
  std::string TextOf(const std::vector<int32_t>& ids, size_t k) {
    auto t = tok_->Decode(std::vector<int32_t>(ids.begin(), ids.begin() + static_cast<std::ptrdiff_t>(k)), true);
    EXPECT_TRUE(t.ok());
    return t.ok() ? *t : "";
  }

  // Checks one stop string against the free run: generation stops at the first token
  // whose text contains it, and the text ends right before it (or after it).
  void ExpectStopsAt(const GenRun& free_run, const std::string& stop, bool include_stop, const std::string& what) {
    size_t k = 1;
    while (k <= free_run.tokens.size() && TextOf(free_run.tokens, k).find(stop) == std::string::npos) ++k;
    ASSERT_LE(k, free_run.tokens.size()) << what << ": '" << stop << "' is not in the free run";
    const std::string full = TextOf(free_run.tokens, k);
    const std::string want = full.substr(0, full.find(stop)) + (include_stop ? stop : "");
    const GenRun got = Generate({stop}, include_stop);
    EXPECT_EQ(got.finish, FinishReason::kStop) << what;
    EXPECT_EQ(got.tokens, std::vector<int32_t>(free_run.tokens.begin(), free_run.tokens.begin() + static_cast<std::ptrdiff_t>(k)))
        << what << ": the token that completed the stop string is the last one";
    EXPECT_EQ(got.final_text, want) << what;
    EXPECT_EQ(got.streamed, got.final_text) << what << ": deltas do not add up to the final text";
  }

  std::unique_ptr<Model> model_;
  std::unique_ptr<Tokenizer> tok_;
  std::vector<int32_t> prompt_;
};

TEST_F(StopStringSharedTest, StopStringsAcrossAndInsideTokens) {
  const GenRun free_run = Generate({}, false);
  ASSERT_EQ(free_run.tokens.size(), 64u);
  EXPECT_EQ(free_run.finish, FinishReason::kLength);
  EXPECT_EQ(free_run.streamed, free_run.final_text);
  EXPECT_EQ(free_run.final_text, TextOf(free_run.tokens, 64));
  // Token boundaries in the free run's text: piece i ends at ends[i].
  std::vector<size_t> ends;
  for (size_t k = 1; k <= free_run.tokens.size(); ++k) ends.push_back(TextOf(free_run.tokens, k).size());
  const std::string& text = free_run.final_text;

  // Across a boundary: from inside one multi-byte piece to inside the next, well past the
  // start so that the first occurrence is this one.
  std::string across, inside;
  for (size_t i = 8; i + 1 < ends.size() && across.empty(); ++i) {
    const size_t begin = ends[i - 1], mid = ends[i], end = ends[i + 1];
    if (mid - begin < 2 || end - mid < 2) continue;
    const std::string cand = text.substr(mid - 1, 2 + (end - mid >= 3 ? 1 : 0));
    if (text.find(cand) == mid - 1) across = cand;
  }
  // Inside one token: a piece of 4 (else 3) bytes or more whose middle never occurred before.
  size_t inside_token = 0;
  for (size_t i = 8, min_len = 4; inside.empty() && min_len >= 3; ++i) {  // the longest piece we can
    if (i >= ends.size()) {
      i = 7;
      --min_len;
      continue;
    }
    const size_t begin = ends[i - 1], end = ends[i];
    if (end - begin < min_len) continue;
    const std::string cand = text.substr(begin + 1, end - begin - 2);  // drop first and last byte
    if (text.find(cand) == begin + 1 && cand.find(' ') == std::string::npos) {
      inside = cand;
      inside_token = i;
    }
  }
  ASSERT_FALSE(across.empty()) << "no token boundary fit for the test in: " << text;
  ASSERT_FALSE(inside.empty()) << "no token of 3+ bytes in: " << text;
  std::printf("free run: %s\nstop strings: across tokens '%s', inside token %zu '%s'\n", text.c_str(), across.c_str(),
              inside_token, inside.c_str());
  ExpectStopsAt(free_run, across, false, "across tokens '" + across + "'");
  ExpectStopsAt(free_run, inside, false, "inside token " + std::to_string(inside_token) + " '" + inside + "'");
  ExpectStopsAt(free_run, across, true, "across tokens, included");
  ExpectStopsAt(free_run, inside, true, "inside a token, included");

  // Two stop strings: the earlier occurrence wins whichever is listed first.
  const GenRun both = Generate({inside, across}, false);
  const size_t first = std::min(text.find(inside), text.find(across));
  EXPECT_EQ(both.final_text, text.substr(0, first));
  EXPECT_EQ(both.streamed, both.final_text);
}

}  // namespace
}  // namespace tide
