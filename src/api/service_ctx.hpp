#pragma once
// Per-request context shared by ApiService's files. Internal to src/api.
#include <boost/json.hpp>

#include "api/api_service.hpp"

namespace syncwell::api {

struct ApiService::Ctx {
  const HttpRequest& req;
  const RouteMatch& match;
  Caller caller;
  boost::json::object body;
  store::IdempotencyRecord idem;
  bool has_idem = false;
  bool idem_collision = false;  // set when the store found the idempotency key already stored
  // Non-null on the inline path: a handler may start its final write through it and return
  // the response to send once that write succeeds (see ApiService::Deferral).
  ApiService::Deferral* deferral = nullptr;

  const std::string& Param(const char* name) const { return match.params.at(name); }
  // The record to persist with a successful mutation: the response it will replay.
  const store::IdempotencyRecord* Record(const HttpResponse& resp) {
    if (!has_idem) return nullptr;
    idem.status_code = resp.status;
    idem.response_body = resp.body;
    return &idem;
  }
};

HttpResponse StoreFailure(ApiService::Ctx& ctx, const Error& e);
// The same without a Ctx (for a write's completion); does not flag an idempotency collision.
HttpResponse StoreFailure(const std::string& request_id, const Error& e);
// The API's view of a connection (never its tokens).
boost::json::object ConnectionJson(const store::Connection& c);

}  // namespace syncwell::api
