// ApiError: every refusal the server sends, in OpenAI's shape
//   {"error": {"message": ..., "type": ..., "param": ..., "code": ...}}
// with the HTTP status and, for 429/503, a Retry-After header.
#pragma once

#include <string>

#include "base/status.h"
#include "server/http_server.h"

namespace tide::server {

struct ApiError {
  int status = 400;
  std::string message;
  std::string type = "invalid_request_error";
  std::string param;        // the offending request field; "" -> null
  std::string code;         // a machine-readable code; "" -> null
  int retry_after_s = 0;    // > 0 adds Retry-After (429, 503)

  static ApiError BadRequest(std::string message, std::string param = "");
  static ApiError NotFound(std::string message, std::string code = "not_found");
  static ApiError Unavailable(std::string message, int retry_after_s, std::string code = "service_unavailable");
  static ApiError RateLimited(std::string message, int retry_after_s, std::string code = "rate_limit_exceeded");
  // The HTTP status a Status maps to: kInvalidArgument/kOutOfRange -> 400,
  // kNotFound -> 404, kResourceExhausted -> 429, kUnavailable -> 503,
  // kDeadlineExceeded -> 504, kUnauthenticated-like kPermissionDenied -> 403,
  // anything else -> 500 (a server fault).
  static ApiError FromStatus(const Status& status, std::string param = "");
};

// The JSON body, with the status and headers set.
HttpResponse ErrorResponse(const ApiError& error);
// The error object alone (also sent as an SSE event when a stream fails mid-way).
std::string ErrorJson(const ApiError& error);

}  // namespace tide::server
