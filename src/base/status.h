// Status and Result<T>: the error currency of every request, file and config path.
//
// Codes follow the canonical set (absl::StatusCode) because their retry meaning is
// what callers and HTTP mapping rely on: kInvalidArgument = the caller's fault, do not
// retry; kResourceExhausted = retry later; kUnavailable = retry elsewhere/later;
// kDataLoss = a file is corrupt; kUnimplemented = a feature tide refuses on purpose.
//
// Thread-safety: value types; distinct objects may be used from distinct threads.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <new>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>

namespace tide {

enum class StatusCode : int {
  kOk = 0,
  kCancelled = 1,
  kUnknown = 2,
  kInvalidArgument = 3,
  kDeadlineExceeded = 4,
  kNotFound = 5,
  kAlreadyExists = 6,
  kPermissionDenied = 7,
  kResourceExhausted = 8,
  kFailedPrecondition = 9,
  kAborted = 10,
  kOutOfRange = 11,
  kUnimplemented = 12,
  kInternal = 13,
  kUnavailable = 14,
  kDataLoss = 15,
};

std::string_view StatusCodeName(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  [[nodiscard]] bool ok() const noexcept { return code_ == StatusCode::kOk; }
  [[nodiscard]] StatusCode code() const noexcept { return code_; }
  [[nodiscard]] const std::string& message() const noexcept { return message_; }
  // "INVALID_ARGUMENT: message" (or "OK").
  [[nodiscard]] std::string ToString() const;

  // Returns a copy whose message is "prefix: message"; used to add context (file,
  // tensor name) while an error travels up.
  [[nodiscard]] Status WithContext(std::string_view prefix) const;

  // Keeps the first error: adopts `s` only while this status is OK (as
  // absl::Status::Update). Also the way to reassign a Status in CUDA sources, where
  // nvcc flags `st = ...` because the result of operator= (a [[nodiscard]] type) is unused.
  void Update(Status s) {
    if (!ok()) return;
    code_ = s.code_;
    message_ = std::move(s.message_);
  }

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

inline Status OkStatus() { return Status(); }
inline Status InvalidArgument(std::string m) { return {StatusCode::kInvalidArgument, std::move(m)}; }
inline Status NotFound(std::string m) { return {StatusCode::kNotFound, std::move(m)}; }
inline Status DataLoss(std::string m) { return {StatusCode::kDataLoss, std::move(m)}; }
inline Status Unimplemented(std::string m) { return {StatusCode::kUnimplemented, std::move(m)}; }
inline Status Internal(std::string m) { return {StatusCode::kInternal, std::move(m)}; }
inline Status OutOfRange(std::string m) { return {StatusCode::kOutOfRange, std::move(m)}; }
inline Status ResourceExhausted(std::string m) { return {StatusCode::kResourceExhausted, std::move(m)}; }
inline Status FailedPrecondition(std::string m) { return {StatusCode::kFailedPrecondition, std::move(m)}; }
inline Status Unavailable(std::string m) { return {StatusCode::kUnavailable, std::move(m)}; }
inline Status Cancelled(std::string m) { return {StatusCode::kCancelled, std::move(m)}; }
inline Status AlreadyExists(std::string m) { return {StatusCode::kAlreadyExists, std::move(m)}; }
inline Status DeadlineExceeded(std::string m) { return {StatusCode::kDeadlineExceeded, std::move(m)}; }
inline Status PermissionDenied(std::string m) { return {StatusCode::kPermissionDenied, std::move(m)}; }

// Result<T> holds a T or a non-OK Status (std::expected is C++23; g++ 12 lacks it).
template <typename T>
class [[nodiscard]] Result {
 public:
  // Implicit on purpose: `return value;` and `return SomeError(...);` both read well.
  Result(T value) : v_(std::in_place_index<0>, std::move(value)) {}  // NOLINT
  Result(Status status) : v_(std::in_place_index<1>, std::move(status)) {  // NOLINT
    if (std::get<1>(v_).ok()) {
      // An OK status carries no value: that is a programming error, not input.
      std::fprintf(stderr, "Result constructed from OK status without a value\n");
      std::abort();
    }
  }

  [[nodiscard]] bool ok() const noexcept { return v_.index() == 0; }
  [[nodiscard]] const Status& status() const {
    static const Status kOk;
    return ok() ? kOk : std::get<1>(v_);
  }
  // REQUIRES: ok().
  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &std::get<0>(v_); }
  const T* operator->() const { return &std::get<0>(v_); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace tide

#define TIDE_CONCAT_INNER(a, b) a##b
#define TIDE_CONCAT(a, b) TIDE_CONCAT_INNER(a, b)

// Propagates a non-OK Status to the caller.
#define RETURN_IF_ERROR(expr)                  \
  do {                                         \
    ::tide::Status _tide_st = (expr);          \
    if (!_tide_st.ok()) return _tide_st;       \
  } while (0)

// ASSIGN_OR_RETURN(auto x, MakeX()); declares x from a Result or returns its Status.
#define ASSIGN_OR_RETURN(lhs, expr) \
  TIDE_ASSIGN_OR_RETURN_IMPL(TIDE_CONCAT(_tide_res_, __LINE__), lhs, expr)
#define TIDE_ASSIGN_OR_RETURN_IMPL(res, lhs, expr) \
  auto res = (expr);                               \
  if (!res.ok()) return res.status();              \
  lhs = std::move(res).value()
