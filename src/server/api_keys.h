// ApiKeys: bearer-token authentication and per-key quotas (requests/min, tokens/min,
// concurrent requests), accounted with token buckets that refill continuously (a full
// bucket is one minute's allowance). Keys are secrets: they are never logged and never
// appear in an error message; a key's `name` does.
//
// Thread-safety: every method may be called from any thread.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <variant>
#include <vector>

#include "base/status.h"
#include "server/api_error.h"

namespace tide::server {

struct KeyLimits {
  double requests_per_minute = 0;  // 0 = unlimited
  double tokens_per_minute = 0;    // prompt + max_tokens x n, charged at admission
  int max_concurrent = 0;          // requests in flight
};

struct ApiKey {
  std::string key;
  std::string name;  // for logs and metrics; defaults to "key-<index>"
  KeyLimits limits;
};

// --api-keys-file: a JSON array of {"key", "name"?, "requests_per_minute"?,
// "tokens_per_minute"?, "max_concurrent"?}. kInvalidArgument naming the entry (by
// index, never by key) when malformed; kNotFound when the file is missing.
Result<std::vector<ApiKey>> LoadApiKeysFile(const std::string& path);

class ApiKeys;

// Holds one admitted request's concurrency slot and token charge; the destructor gives
// the slot back and refunds the tokens it was charged but did not use.
class KeyLease {
 public:
  KeyLease(ApiKeys* keys, size_t index, int64_t charged) : keys_(keys), index_(index), charged_(charged) {}
  ~KeyLease();
  KeyLease(const KeyLease&) = delete;
  KeyLease& operator=(const KeyLease&) = delete;
  void set_used_tokens(int64_t used) { used_ = used; }
  [[nodiscard]] const std::string& name() const;

 private:
  ApiKeys* keys_;
  size_t index_;
  int64_t charged_;
  int64_t used_ = -1;  // -1 = unknown: keep the whole charge
};

class ApiKeys {
 public:
  explicit ApiKeys(std::vector<ApiKey> keys);
  [[nodiscard]] bool enabled() const { return !keys_.empty(); }

  // Checks `authorization` ("Bearer <key>") and charges one request and `tokens`.
  // 401 for a missing or unknown key; 429 with Retry-After when a bucket is short or
  // max_concurrent requests are in flight. With no keys configured, admits everything
  // (the lease is then null). REQUIRES: the ApiKeys outlives every lease.
  std::variant<std::shared_ptr<KeyLease>, ApiError> Admit(const std::string& authorization, int64_t tokens);
  // Authentication only (no quota): for endpoints that do no generation.
  std::variant<std::monostate, ApiError> Authenticate(const std::string& authorization) const;

 private:
  friend class KeyLease;
  struct Bucket {
    double level = 0;
    double last = 0;  // seconds
  };
  struct State {
    Bucket requests, tokens;
    int in_flight = 0;
  };
  // Index of the key, or -1. Compares every key in full (no early exit on a mismatch).
  [[nodiscard]] int Find(const std::string& authorization) const;
  void Release(size_t index, int64_t refund);

  const std::vector<ApiKey> keys_;
  std::mutex mu_;
  std::vector<State> state_;  // GUARDED_BY(mu_)
};

}  // namespace tide::server
