#pragma once
// Subcommands of the `syncwell` binary. main.cpp parses the command line (CLI11) and calls one
// of these; each returns the process exit code. This folder is the composition root: the only
// place that reads configuration and constructs adapters (STYLE §3).
#include <chrono>
#include <map>
#include <string>

#include "config/settings.hpp"

namespace syncwell::app {

// Exit codes: 0 ok, 1 runtime failure, 2 usage/configuration error.
int RunServe(const config::Settings& settings);

struct TokenOptions {
  std::string user;
  std::string tier = "FREE";
  std::chrono::seconds ttl{3600};
};
int RunToken(const config::Settings& settings, const TokenOptions& o);

struct UserCreateOptions {
  std::string user;
  std::string tier = "FREE";
};
int RunAdminUserCreate(const config::Settings& settings, const UserCreateOptions& o);

struct ConnectionCreateOptions {
  std::string user;
  std::string provider;
  std::string connection_id;
  std::string access_token;
  std::string refresh_token;
  std::string provider_user_id;
  std::string status = "active";
};
int RunAdminConnectionCreate(const config::Settings& settings, const ConnectionCreateOptions& o);
int RunAdminJwksDrop(const config::Settings& settings, const std::string& kid);
int RunAdminQueueStats(const config::Settings& settings);

// Dead-letter queue (SPEC S3). Output never contains message bodies' health data (there is none:
// bodies are job envelopes of ids) and shows users only as hashed ids.
int RunAdminDlqList(const config::Settings& settings, size_t limit);
int RunAdminDlqShow(const config::Settings& settings, const std::string& message_id);
// Redrives one message (id) or every one (all); the jobs go back to QUEUED.
int RunAdminDlqRedrive(const config::Settings& settings, const std::string& message_id, bool all);
int RunAdminDlqPurge(const config::Settings& settings);

std::string SecretKeyPath(const config::Settings& settings);

}  // namespace syncwell::app
