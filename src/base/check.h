// CHECK macros for programmer invariants only (never for input: input gets a Status).
// A failed check prints file:line, the expression and both operands, then aborts.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <string>

namespace tide::internal {

[[noreturn]] inline void CheckFailed(const char* file, int line, const std::string& what) {
  std::fprintf(stderr, "%s:%d: CHECK failed: %s\n", file, line, what.c_str());
  std::fflush(stderr);
  std::abort();
}

template <typename A, typename B>
std::string CheckOpMessage(const char* expr, const A& a, const B& b) {
  std::ostringstream os;
  os << expr << " (" << a << " vs " << b << ")";
  return os.str();
}

}  // namespace tide::internal

#define TIDE_CHECK(cond) \
  do { if (!(cond)) ::tide::internal::CheckFailed(__FILE__, __LINE__, #cond); } while (0)

#define TIDE_CHECK_OP(op, a, b)                                                          \
  do {                                                                                   \
    const auto& _tide_a = (a);                                                           \
    const auto& _tide_b = (b);                                                           \
    if (!(_tide_a op _tide_b))                                                           \
      ::tide::internal::CheckFailed(__FILE__, __LINE__,                                  \
          ::tide::internal::CheckOpMessage(#a " " #op " " #b, _tide_a, _tide_b));        \
  } while (0)

#define TIDE_CHECK_EQ(a, b) TIDE_CHECK_OP(==, a, b)
#define TIDE_CHECK_NE(a, b) TIDE_CHECK_OP(!=, a, b)
#define TIDE_CHECK_LT(a, b) TIDE_CHECK_OP(<, a, b)
#define TIDE_CHECK_LE(a, b) TIDE_CHECK_OP(<=, a, b)
#define TIDE_CHECK_GT(a, b) TIDE_CHECK_OP(>, a, b)
#define TIDE_CHECK_GE(a, b) TIDE_CHECK_OP(>=, a, b)
