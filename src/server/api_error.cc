#include "server/api_error.h"

#include <nlohmann/json.hpp>

namespace tide::server {

ApiError ApiError::BadRequest(std::string message, std::string param) {
  ApiError e;
  e.status = 400;
  e.message = std::move(message);
  e.param = std::move(param);
  return e;
}

ApiError ApiError::NotFound(std::string message, std::string code) {
  ApiError e;
  e.status = 404;
  e.message = std::move(message);
  e.code = std::move(code);
  return e;
}

ApiError ApiError::Unavailable(std::string message, int retry_after_s, std::string code) {
  ApiError e;
  e.status = 503;
  e.type = "service_unavailable_error";
  e.message = std::move(message);
  e.code = std::move(code);
  e.retry_after_s = retry_after_s;
  return e;
}

ApiError ApiError::RateLimited(std::string message, int retry_after_s, std::string code) {
  ApiError e;
  e.status = 429;
  e.type = "rate_limit_error";
  e.message = std::move(message);
  e.code = std::move(code);
  e.retry_after_s = retry_after_s;
  return e;
}

ApiError ApiError::FromStatus(const Status& status, std::string param) {
  ApiError e;
  e.message = status.message();
  e.param = std::move(param);
  switch (status.code()) {
    case StatusCode::kInvalidArgument:
    case StatusCode::kOutOfRange:
    case StatusCode::kAlreadyExists:
      e.status = 400;
      break;
    case StatusCode::kNotFound:
      e.status = 404;
      e.code = "not_found";
      break;
    case StatusCode::kPermissionDenied:
      e.status = 403;
      e.type = "permission_error";
      break;
    case StatusCode::kResourceExhausted:
      return RateLimited(e.message, 1, "resource_exhausted");
    case StatusCode::kUnavailable:
      return Unavailable(e.message, 1);
    case StatusCode::kDeadlineExceeded:
      e.status = 504;
      e.type = "timeout_error";
      e.code = "request_timeout";
      break;
    case StatusCode::kUnimplemented:
      e.status = 400;
      e.code = "unsupported";
      break;
    default:
      e.status = 500;
      e.type = "server_error";
      break;
  }
  return e;
}

std::string ErrorJson(const ApiError& e) {
  nlohmann::ordered_json j;
  j["error"]["message"] = e.message;
  j["error"]["type"] = e.type;
  j["error"]["param"] = e.param.empty() ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(e.param);
  j["error"]["code"] = e.code.empty() ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(e.code);
  // Messages may quote client bytes; never let invalid UTF-8 break the error itself.
  return j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

HttpResponse ErrorResponse(const ApiError& e) {
  HttpResponse r;
  r.status = e.status;
  r.body = ErrorJson(e);
  if (e.retry_after_s > 0) r.headers.emplace_back("Retry-After", std::to_string(e.retry_after_s));
  if (e.status == 401) r.headers.emplace_back("WWW-Authenticate", "Bearer");
  return r;
}

}  // namespace tide::server
