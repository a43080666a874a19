#include "server/api_keys.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "engine/request.h"

namespace tide::server {
namespace {

// Refills a bucket of `capacity` that gains capacity/60 per second.
void Refill(double capacity, double now, double* level, double* last) {
  *level = std::min(capacity, *level + (now - *last) * capacity / 60.0);
  *last = now;
}

int SecondsUntil(double deficit, double capacity) {
  return std::max(1, static_cast<int>(std::ceil(deficit * 60.0 / capacity)));
}

}  // namespace

Result<std::vector<ApiKey>> LoadApiKeysFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return NotFound("--api-keys-file: cannot open " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  nlohmann::json j = nlohmann::json::parse(ss.str(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_array()) return InvalidArgument("--api-keys-file " + path + ": expected a JSON array");
  std::vector<ApiKey> keys;
  for (size_t i = 0; i < j.size(); ++i) {
    const nlohmann::json& e = j[i];
    const std::string where = "--api-keys-file " + path + " entry " + std::to_string(i);
    if (!e.is_object() || !e.contains("key") || !e["key"].is_string() || e["key"].get<std::string>().empty())
      return InvalidArgument(where + ": needs a non-empty string \"key\"");
    ApiKey k;
    k.key = e["key"].get<std::string>();
    k.name = e.contains("name") && e["name"].is_string() ? e["name"].get<std::string>() : "key-" + std::to_string(i);
    for (const char* f : {"requests_per_minute", "tokens_per_minute", "max_concurrent"}) {
      if (!e.contains(f)) continue;
      if (!e[f].is_number() || e[f].get<double>() < 0 || !std::isfinite(e[f].get<double>()))
        return InvalidArgument(where + ": \"" + f + "\" must be a number >= 0");
    }
    k.limits.requests_per_minute = e.value("requests_per_minute", 0.0);
    k.limits.tokens_per_minute = e.value("tokens_per_minute", 0.0);
    k.limits.max_concurrent = static_cast<int>(std::min(e.value("max_concurrent", 0.0), 1e9));
    keys.push_back(std::move(k));
  }
  if (keys.empty()) return InvalidArgument("--api-keys-file " + path + ": no keys");
  return keys;
}

KeyLease::~KeyLease() {
  const int64_t refund = used_ >= 0 && used_ < charged_ ? charged_ - used_ : 0;
  keys_->Release(index_, refund);
}

const std::string& KeyLease::name() const { return keys_->keys_[index_].name; }

ApiKeys::ApiKeys(std::vector<ApiKey> keys) : keys_(std::move(keys)), state_(keys_.size()) {
  const double now = EngineClock();
  for (size_t i = 0; i < keys_.size(); ++i) {
    state_[i].requests = {keys_[i].limits.requests_per_minute, now};
    state_[i].tokens = {keys_[i].limits.tokens_per_minute, now};
  }
}

int ApiKeys::Find(const std::string& authorization) const {
  const std::string prefix = "Bearer ";
  if (authorization.size() <= prefix.size() || authorization.compare(0, prefix.size(), prefix) != 0) return -1;
  const std::string_view given = std::string_view(authorization).substr(prefix.size());
  int found = -1;
  for (size_t i = 0; i < keys_.size(); ++i) {
    const std::string& k = keys_[i].key;
    unsigned diff = given.size() == k.size() ? 0u : 1u;
    for (size_t c = 0; c < k.size(); ++c) diff |= static_cast<unsigned char>(k[c]) ^ static_cast<unsigned char>(c < given.size() ? given[c] : 0);
    if (diff == 0 && found < 0) found = static_cast<int>(i);
  }
  return found;
}

std::variant<std::monostate, ApiError> ApiKeys::Authenticate(const std::string& authorization) const {
  if (!enabled() || Find(authorization) >= 0) return std::monostate{};
  ApiError e;
  e.status = 401;
  e.type = "invalid_request_error";
  e.code = "invalid_api_key";
  e.message = authorization.empty() ? "missing API key: send 'Authorization: Bearer <key>'" : "invalid API key";
  return e;
}

std::variant<std::shared_ptr<KeyLease>, ApiError> ApiKeys::Admit(const std::string& authorization, int64_t tokens) {
  if (!enabled()) return std::shared_ptr<KeyLease>();
  if (auto auth = Authenticate(authorization); std::holds_alternative<ApiError>(auth)) return std::get<ApiError>(auth);
  const size_t i = static_cast<size_t>(Find(authorization));
  const KeyLimits& lim = keys_[i].limits;
  const double now = EngineClock();
  std::lock_guard<std::mutex> lock(mu_);
  State& s = state_[i];
  if (lim.max_concurrent > 0 && s.in_flight >= lim.max_concurrent)
    return ApiError::RateLimited("key '" + keys_[i].name + "' has " + std::to_string(s.in_flight) +
                                     " requests in flight (max_concurrent " + std::to_string(lim.max_concurrent) + ")",
                                 1, "concurrency_limit_exceeded");
  if (lim.requests_per_minute > 0) {
    Refill(lim.requests_per_minute, now, &s.requests.level, &s.requests.last);
    if (s.requests.level < 1)
      return ApiError::RateLimited("key '" + keys_[i].name + "' is over its limit of requests per minute",
                                   SecondsUntil(1 - s.requests.level, lim.requests_per_minute));
  }
  if (lim.tokens_per_minute > 0) {
    Refill(lim.tokens_per_minute, now, &s.tokens.level, &s.tokens.last);
    const double need = static_cast<double>(tokens);
    if (need > lim.tokens_per_minute)
      return ApiError::RateLimited("request needs " + std::to_string(tokens) + " tokens (prompt + max_tokens x n) but key '" +
                                       keys_[i].name + "' allows " + std::to_string(static_cast<int64_t>(lim.tokens_per_minute)) +
                                       " per minute; lower max_tokens",
                                   60, "tokens_exceed_limit");
    if (s.tokens.level < need)
      return ApiError::RateLimited("key '" + keys_[i].name + "' is over its limit of tokens per minute",
                                   SecondsUntil(need - s.tokens.level, lim.tokens_per_minute));
    s.tokens.level -= need;
  }
  if (lim.requests_per_minute > 0) s.requests.level -= 1;
  ++s.in_flight;
  return std::make_shared<KeyLease>(this, i, lim.tokens_per_minute > 0 ? tokens : 0);
}

void ApiKeys::Release(size_t index, int64_t refund) {
  std::lock_guard<std::mutex> lock(mu_);
  State& s = state_[index];
  --s.in_flight;
  const double cap = keys_[index].limits.tokens_per_minute;
  if (cap > 0 && refund > 0) s.tokens.level = std::min(cap, s.tokens.level + static_cast<double>(refund));
}

}  // namespace tide::server
