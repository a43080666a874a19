// Real chat templates (tests/chat_templates/*.jinja) rendered by tide::jinja and by the
// reference, Python's jinja2 with transformers' environment (render_ref.py), over the
// same contexts: outputs must be byte-identical, and a case that raises in jinja2 must
// fail here too. Runs from the source root (tide_test sets the working directory).
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>
#include <string>

#include <gtest/gtest.h>

#include "tokenizer/jinja/jinja.h"

namespace tide::jinja {
namespace {

constexpr int64_t kNowUnix = 1721995200;  // must match render_ref.py's NOW_UNIX

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST(JinjaTemplates, MatchPythonJinja2) {
  const std::string out = ::testing::TempDir() + "jinja_ref_" + std::to_string(::getpid()) + ".json";
  const std::string cmd = "python3 tests/chat_templates/render_ref.py " + out;
  ASSERT_EQ(std::system(cmd.c_str()), 0)
      << "reference renderer failed; it needs python3 and python3-jinja2 (scripts/setup.sh)";
  nlohmann::ordered_json cases = nlohmann::ordered_json::parse(ReadFile(out));
  std::remove(out.c_str());
  ASSERT_TRUE(cases.is_array());
  ASSERT_GT(cases.size(), 100u);

  RenderOptions options;
  options.now_unix_seconds = kNowUnix;
  std::map<std::string, std::unique_ptr<Template>> templates;
  std::map<std::string, std::pair<int, int>> tally;  // template -> (identical, total)
  for (const auto& c : cases) {
    const std::string name = c["template"];
    const std::string case_name = c["case"];
    SCOPED_TRACE(name + " " + case_name);
    if (!templates.count(name)) {
      auto parsed = Template::Parse(ReadFile("tests/chat_templates/" + name));
      ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
      templates[name] = std::move(*parsed);
    }
    Result<std::string> got = templates[name]->Render(c["context"], options);
    auto& [same, total] = tally[name];
    ++total;
    if (c.contains("output")) {
      const std::string want = c["output"];
      EXPECT_TRUE(got.ok()) << got.status().ToString();
      if (got.ok()) {
        EXPECT_EQ(*got, want);
        if (*got == want) ++same;
      }
    } else {
      EXPECT_FALSE(got.ok()) << "jinja2 raised " << c["error"].get<std::string>()
                             << " but tide rendered:\n" << *got;
      if (!got.ok()) ++same;
    }
  }
  for (const auto& [name, t] : tally) {
    std::printf("%-22s %3d/%3d cases identical to jinja2\n", name.c_str(), t.first, t.second);
  }
}

}  // namespace
}  // namespace tide::jinja
