// Table tests of request parsing: what is accepted, and that every bad field is a 400
// naming it.
#include "server/protocol.h"

#include <gtest/gtest.h>

namespace tide::server {
namespace {

Json Body(const char* text) {
  auto parsed = ParseJsonBody(text);
  EXPECT_TRUE(std::holds_alternative<Json>(parsed)) << text;
  return std::holds_alternative<Json>(parsed) ? std::get<Json>(parsed) : Json::object();
}

// echo + logprobs asks the engine for prompt logprobs with the same number of
// alternatives; either alone does not.
TEST(ProtocolTest, EchoWithLogprobsAsksForPromptLogprobs) {
  const RequestLimits lim;
  auto both = ParseCompletionRequest(Body(R"({"prompt": "hi", "echo": true, "logprobs": 3})"), lim);
  ASSERT_TRUE(std::holds_alternative<CompletionRequest>(both));
  EXPECT_EQ(std::get<CompletionRequest>(both).params.sampling.prompt_logprobs, 3);
  auto zero = ParseCompletionRequest(Body(R"({"prompt": "hi", "echo": true, "logprobs": 0})"), lim);
  ASSERT_TRUE(std::holds_alternative<CompletionRequest>(zero));
  EXPECT_EQ(std::get<CompletionRequest>(zero).params.sampling.prompt_logprobs, 0);
  for (const char* one : {R"({"prompt": "hi", "echo": true})", R"({"prompt": "hi", "logprobs": 2})"}) {
    auto r = ParseCompletionRequest(Body(one), lim);
    ASSERT_TRUE(std::holds_alternative<CompletionRequest>(r)) << one;
    EXPECT_EQ(std::get<CompletionRequest>(r).params.sampling.prompt_logprobs, -1) << one;
  }
}

TEST(ProtocolTest, BodyErrors) {
  for (const char* bad : {"", "   ", "{", "[1,2]", "nul", "{\"a\":}", "\"str\"", "{\"a\":1,}", "{'a':1}"}) {
    auto parsed = ParseJsonBody(bad);
    ASSERT_TRUE(std::holds_alternative<ApiError>(parsed)) << bad;
    EXPECT_EQ(std::get<ApiError>(parsed).status, 400) << bad;
  }
  EXPECT_TRUE(std::holds_alternative<ApiError>(ParseJsonBody("{\"prompt\": \"\xff\xfe\"}")));  // invalid UTF-8
  EXPECT_TRUE(std::holds_alternative<ApiError>(ParseJsonBody(std::string(100, '[') + std::string(100, ']'))));
}

TEST(ProtocolTest, CompletionShapes) {
  const RequestLimits lim;
  auto r = ParseCompletionRequest(Body(R"({"prompt": "hi", "max_tokens": 5, "temperature": 0, "n": 2,
      "stop": ["x", "y"], "seed": -3, "logprobs": 2, "top_k": -1, "unknown_field": {"a": 1}})"), lim);
  ASSERT_TRUE(std::holds_alternative<CompletionRequest>(r));
  const CompletionRequest& c = std::get<CompletionRequest>(r);
  EXPECT_EQ(c.prompts.size(), 1u);
  EXPECT_EQ(c.params.sampling.max_tokens, 5);
  EXPECT_EQ(c.params.sampling.n, 2);
  EXPECT_EQ(c.params.sampling.stop.size(), 2u);
  EXPECT_EQ(c.params.sampling.top_logprobs, 2);
  EXPECT_EQ(c.params.sampling.top_k, 0);
  auto ids = ParseCompletionRequest(Body(R"({"prompt": [[1, 2], [3]]})"), lim);
  ASSERT_TRUE(std::holds_alternative<CompletionRequest>(ids));
  EXPECT_EQ(std::get<CompletionRequest>(ids).prompts.size(), 2u);
  auto flat = ParseCompletionRequest(Body(R"({"prompt": [1, 2, 3], "max_tokens": 16.0})"), lim);
  ASSERT_TRUE(std::holds_alternative<CompletionRequest>(flat));
  EXPECT_EQ(std::get<CompletionRequest>(flat).prompts[0].ids.size(), 3u);
}

TEST(ProtocolTest, CompletionErrorsNameTheParam) {
  const RequestLimits lim;
  const std::pair<const char*, const char*> cases[] = {
      {R"({})", "prompt"},
      {R"({"prompt": 5})", "prompt"},
      {R"({"prompt": []})", "prompt"},
      {R"({"prompt": [1, "a"]})", "prompt"},
      {R"({"prompt": [-1]})", "prompt"},
      {R"({"prompt": [[]]})", "prompt"},
      {R"({"prompt": "a", "max_tokens": 0})", "max_tokens"},
      {R"({"prompt": "a", "max_tokens": -5})", "max_tokens"},
      {R"({"prompt": "a", "max_tokens": "10"})", "max_tokens"},
      {R"({"prompt": "a", "max_tokens": 1e300})", "max_tokens"},
      {R"({"prompt": "a", "max_tokens": 99999999999999999999999})", "max_tokens"},
      {R"({"prompt": "a", "max_tokens": 1.5})", "max_tokens"},
      {R"({"prompt": "a", "temperature": -1})", "temperature"},
      {R"({"prompt": "a", "temperature": "hot"})", "temperature"},
      {R"({"prompt": "a", "top_p": 0})", "top_p"},
      {R"({"prompt": "a", "top_p": 1.5})", "top_p"},
      {R"({"prompt": "a", "n": 0})", "n"},
      {R"({"prompt": "a", "n": 100000})", "n"},
      {R"({"prompt": "a", "stop": 3})", "stop"},
      {R"({"prompt": "a", "stop": [""]})", "stop"},
      {R"({"prompt": "a", "stop": [1]})", "stop"},
      {R"({"prompt": "a", "logprobs": 21})", "logprobs"},
      {R"({"prompt": "a", "logprobs": true})", "logprobs"},
      {R"({"prompt": "a", "presence_penalty": 3})", "presence_penalty"},
      {R"({"prompt": "a", "frequency_penalty": -2.5})", "frequency_penalty"},
      {R"({"prompt": "a", "logit_bias": {"x": 1}})", "logit_bias"},
      {R"({"prompt": "a", "logit_bias": {"5": 101}})", "logit_bias"},
      {R"({"prompt": "a", "logit_bias": [1]})", "logit_bias"},
      {R"({"prompt": "a", "stream": "yes"})", "stream"},
      {R"({"prompt": "a", "stream_options": {"include_usage": true}})", "stream_options"},
      {R"({"prompt": "a", "seed": "x"})", "seed"},
      {R"({"prompt": "a", "top_k": -2})", "top_k"},
      {R"({"prompt": "a", "min_p": 2})", "min_p"},
      {R"({"prompt": "a", "repetition_penalty": 0})", "repetition_penalty"},
      {R"({"prompt": "a", "min_tokens": 10, "max_tokens": 5})", "min_tokens"},
      {R"({"prompt": "a", "echo": 1})", "echo"},
      {R"({"prompt": "a", "user": 5})", "user"},
      {R"({"prompt": "a", "model": 7})", "model"},
      {R"({"prompt": "a", "suffix": "tail"})", "suffix"},
      {R"({"prompt": "a", "best_of": 3})", "best_of"},
      {R"({"prompt": "a", "priority": "high"})", "priority"},
      {R"({"prompt": "a", "ignore_eos": "no"})", "ignore_eos"},
  };
  for (const auto& [text, param] : cases) {
    auto r = ParseCompletionRequest(Body(text), lim);
    ASSERT_TRUE(std::holds_alternative<ApiError>(r)) << text;
    EXPECT_EQ(std::get<ApiError>(r).status, 400) << text;
    EXPECT_EQ(std::get<ApiError>(r).param, param) << text << ": " << std::get<ApiError>(r).message;
  }
}

TEST(ProtocolTest, ChatShapesAndErrors) {
  const RequestLimits lim;
  auto r = ParseChatRequest(Body(R"({"messages": [{"role": "system", "content": "s"},
      {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}],
      "max_completion_tokens": 7, "logprobs": true, "top_logprobs": 3, "tools": [{"type": "function"}],
      "chat_template_kwargs": {"enable_thinking": false}})"), lim);
  ASSERT_TRUE(std::holds_alternative<ChatRequest>(r));
  const ChatRequest& c = std::get<ChatRequest>(r);
  EXPECT_EQ(c.messages[1]["content"], "a\nb");
  EXPECT_EQ(c.params.sampling.max_tokens, 7);
  EXPECT_EQ(c.params.sampling.top_logprobs, 3);
  EXPECT_TRUE(c.tools.is_array());
  EXPECT_FALSE(c.params.add_special_tokens);
  const std::pair<const char*, const char*> cases[] = {
      {R"({})", "messages"},
      {R"({"messages": []})", "messages"},
      {R"({"messages": "hi"})", "messages"},
      {R"({"messages": [1]})", "messages[0]"},
      {R"({"messages": [{"content": "x"}]})", "messages[0].role"},
      {R"({"messages": [{"role": "wizard", "content": "x"}]})", "messages[0].role"},
      {R"({"messages": [{"role": "user"}]})", "messages[0].content"},
      {R"({"messages": [{"role": "user", "content": 5}]})", "messages[0].content"},
      {R"({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]})", "messages[0].content"},
      {R"({"messages": [{"role": "user", "content": "x"}], "top_logprobs": 2})", "top_logprobs"},
      {R"({"messages": [{"role": "user", "content": "x"}], "logprobs": true, "top_logprobs": 30})", "top_logprobs"},
      {R"({"messages": [{"role": "user", "content": "x"}], "tools": {}})", "tools"},
      {R"({"messages": [{"role": "user", "content": "x"}], "chat_template_kwargs": []})", "chat_template_kwargs"},
      {R"({"messages": [{"role": "user", "content": "x"}], "response_format": {"type": "json_object"}})", "response_format"},
      {R"({"messages": [{"role": "user", "content": "x"}], "max_completion_tokens": 0})", "max_completion_tokens"},
  };
  for (const auto& [text, param] : cases) {
    auto e = ParseChatRequest(Body(text), lim);
    ASSERT_TRUE(std::holds_alternative<ApiError>(e)) << text;
    EXPECT_EQ(std::get<ApiError>(e).param, param) << text << ": " << std::get<ApiError>(e).message;
  }
}

TEST(ProtocolTest, TokenizeShapes) {
  const RequestLimits lim;
  auto t = ParseTokenizeRequest(Body(R"({"prompt": "hello"})"), lim);
  ASSERT_TRUE(std::holds_alternative<TokenizeRequest>(t));
  EXPECT_TRUE(std::get<TokenizeRequest>(t).add_special_tokens);
  auto m = ParseTokenizeRequest(Body(R"({"messages": [{"role": "user", "content": "x"}]})"), lim);
  ASSERT_TRUE(std::holds_alternative<TokenizeRequest>(m));
  EXPECT_FALSE(std::get<TokenizeRequest>(m).add_special_tokens);
  EXPECT_TRUE(std::holds_alternative<ApiError>(ParseTokenizeRequest(Body(R"({})"), lim)));
  EXPECT_TRUE(std::holds_alternative<ApiError>(ParseDetokenizeRequest(Body(R"({"tokens": "abc"})"))));
  EXPECT_TRUE(std::holds_alternative<ApiError>(ParseDetokenizeRequest(Body(R"({"tokens": [1, -2]})"))));
  EXPECT_TRUE(std::holds_alternative<DetokenizeRequest>(ParseDetokenizeRequest(Body(R"({"tokens": [1, 2]})"))));
}

}  // namespace
}  // namespace tide::server
