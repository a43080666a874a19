// Minimal leveled logging to stderr. Thread-safe (one fprintf per line).
#pragma once

#include <cstdarg>

namespace tide {

enum class LogLevel : int { kDebug = 0, kInfo = 1, kWarning = 2, kError = 3 };

void SetLogLevel(LogLevel level);
LogLevel GetLogLevel();
void Log(LogLevel level, const char* fmt, ...) __attribute__((format(printf, 2, 3)));

}  // namespace tide

#define TIDE_LOG_INFO(...) ::tide::Log(::tide::LogLevel::kInfo, __VA_ARGS__)
#define TIDE_LOG_WARN(...) ::tide::Log(::tide::LogLevel::kWarning, __VA_ARGS__)
#define TIDE_LOG_ERROR(...) ::tide::Log(::tide::LogLevel::kError, __VA_ARGS__)
#define TIDE_LOG_DEBUG(...) ::tide::Log(::tide::LogLevel::kDebug, __VA_ARGS__)
