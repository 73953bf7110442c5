#pragma once
#include <string>

namespace syncwell::app {
// The OpenAPI 3 document of the HTTP API (src/api/openapi.json, embedded at build time).
const std::string& OpenApiDocument();
}  // namespace syncwell::app
