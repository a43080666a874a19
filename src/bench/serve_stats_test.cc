#include "bench/serve_stats.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cmath>

#include "bench/serve_svg.h"

namespace tide::bench {
namespace {

Sample Ok(double ttft, double e2e, int64_t out, std::vector<double> itl) {
  Sample s;
  s.ok = true;
  s.ttft_s = ttft;
  s.e2e_s = e2e;
  s.output_tokens = out;
  s.prompt_tokens = 10;
  s.itl_s = std::move(itl);
  return s;
}

TEST(ServeStats, DescribeInterpolates) {
  Distribution d = Describe({4, 1, 3, 2, 5});
  EXPECT_EQ(d.count, 5);
  EXPECT_DOUBLE_EQ(d.mean, 3);
  EXPECT_DOUBLE_EQ(d.p50, 3);
  EXPECT_DOUBLE_EQ(d.p90, 4.6);
  EXPECT_DOUBLE_EQ(d.max, 5);
  EXPECT_EQ(Describe({}).count, 0);
}

TEST(ServeStats, SloParsesBothForms) {
  auto a = ParseSlo("ttft=500,tpot=50");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->ttft_ms, 500);
  EXPECT_EQ(a->tpot_ms, 50);
  auto b = ParseSlo("ttft:200 e2el:1000");
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->ttft_ms, 200);
  EXPECT_EQ(b->e2e_ms, 1000);
  for (const char* bad : {"", "ttft", "ttft=x", "ttft=-1", "foo=3", "ttft=5ms"}) EXPECT_FALSE(ParseSlo(bad).ok()) << bad;
}

TEST(ServeStats, SummaryCountsAndGoodput) {
  std::vector<Sample> v = {Ok(0.1, 1.0, 10, {0.1, 0.1}), Ok(0.3, 1.2, 10, {0.1}), Ok(0.1, 3.0, 11, {})};
  Sample bad;
  bad.error = "HTTP 500: x";
  v.push_back(bad);
  v.push_back(bad);
  Sample cut;
  cut.interrupted = true;
  v.push_back(cut);
  Slo slo;
  slo.ttft_ms = 200;
  slo.tpot_ms = 150;
  PointSummary s = Summarize(v, 2.0, slo);
  EXPECT_EQ(s.completed, 3);
  EXPECT_EQ(s.failed, 2);
  EXPECT_EQ(s.interrupted, 1);
  EXPECT_EQ(s.errors["HTTP 500: x"], 2);
  EXPECT_DOUBLE_EQ(s.request_throughput, 1.5);
  EXPECT_DOUBLE_EQ(s.output_throughput, 31 / 2.0);
  EXPECT_DOUBLE_EQ(s.input_throughput, 15);
  // Goodput: only the first meets ttft <= 200 and tpot <= 150 (third: tpot 290 ms).
  EXPECT_DOUBLE_EQ(s.goodput, 0.5);
  EXPECT_NEAR(s.tpot_ms.p50, 100, 1e-9);
  EXPECT_EQ(s.itl_ms.count, 3);
}

TEST(ServeStats, JsonAndSvgAreWellFormed) {
  PointResult p;
  p.samples = {Ok(0.05, 0.5, 10, {0.01, 0.012}), Ok(0.06, 0.6, 10, {0.011})};
  p.summary = Summarize(p.samples, 1.0, Slo{});
  p.summary.request_rate = std::numeric_limits<double>::infinity();
  PointResult q = p;
  q.summary.request_rate = 2;
  const std::string json = ToJson({p, q}, R"({"a": 1})");
  const nlohmann::json j = nlohmann::json::parse(json, nullptr, false);
  ASSERT_FALSE(j.is_discarded());
  EXPECT_EQ(j["config"]["a"], 1);
  ASSERT_EQ(j["points"].size(), 2u);
  EXPECT_EQ(j["points"][0]["summary"]["request_rate"], "inf");
  EXPECT_EQ(j["points"][1]["samples"].size(), 2u);
  EXPECT_EQ(j["points"][1]["samples"][0]["itl_ms"].size(), 2u);
  const std::string svg = RenderSvg({p, q}, "a <title> & more");
  EXPECT_EQ(svg.rfind("<?xml", 0), 0u);
  EXPECT_NE(svg.find("a &lt;title&gt; &amp; more"), std::string::npos);
  EXPECT_NE(svg.find("</svg>"), std::string::npos);
  EXPECT_EQ(svg.find("nan"), std::string::npos);
  EXPECT_EQ(svg.find("inf\""), std::string::npos);
  // No points at all still renders (empty axes).
  EXPECT_NE(RenderSvg({}, "empty").find("</svg>"), std::string::npos);
}

}  // namespace
}  // namespace tide::bench
