#pragma once
// The throwaway Redis of the test run (scripts/with-services.sh sets SYNCWELL_TEST_REDIS_URL).
// Tests labelled `redis` FAIL (never skip) when it is missing, like tests/support/services.hpp
// (which is not included here because it pulls in libpq).
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <random>
#include <stdexcept>
#include <string>

namespace syncwell::test_support {

inline std::string TestRedisUrl() {
  const char* v = std::getenv("SYNCWELL_TEST_REDIS_URL");
  if (v == nullptr || *v == '\0') {
    throw std::runtime_error(
        "SYNCWELL_TEST_REDIS_URL is not set: run the test under scripts/with-services.sh "
        "(scripts/test.sh does)");
  }
  return v;
}

// A unique name per call (process id + counter + random), safe across parallel test processes.
inline std::string UniqueRedisName(const std::string& prefix) {
  static std::atomic<int> counter{0};
  static const uint32_t salt = std::random_device{}();
  return prefix + "_" + std::to_string(::getpid()) + "_" + std::to_string(salt % 100000) + "_" +
         std::to_string(counter++);
}

// A TCP port on 127.0.0.1 with nothing listening (bound then closed).
inline int ClosedPort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

}  // namespace syncwell::test_support
