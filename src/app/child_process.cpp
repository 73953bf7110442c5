#include "app/child_process.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <thread>

extern char** environ;

namespace syncwell::app {

bool ExitWithParent() {
  const char* parent = std::getenv(kParentPidEnv);
  if (parent == nullptr) return true;
  const std::string expected(parent);
  unsetenv(kParentPidEnv);  // not inherited by anything this process starts
  prctl(PR_SET_PDEATHSIG, SIGTERM);
  // The parent may have died before the line above: then we were re-parented already.
  return std::to_string(getppid()) == expected;
}

Status ChildProcess::Start(const std::vector<std::string>& argv, const std::string& log_path) {
  if (argv.empty()) return MakeError(Errc::kInvalidArgument, "empty command");
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND,
                                   0644);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  posix_spawn_file_actions_addclose(&actions, 0);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  // The child must not inherit the parent's blocked signals (serve waits for SIGTERM).
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK);
  std::vector<char*> args;
  args.reserve(argv.size() + 1);
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  // The child ends with this process (main() arms PR_SET_PDEATHSIG when it sees this variable),
  // also when this process is killed without a chance to stop it.
  std::string parent = std::string(kParentPidEnv) + "=" + std::to_string(getpid());
  std::vector<char*> env;
  for (char** e = environ; *e != nullptr; ++e) {
    if (std::strncmp(*e, kParentPidEnv, std::strlen(kParentPidEnv)) != 0 ||
        (*e)[std::strlen(kParentPidEnv)] != '=')
      env.push_back(*e);
  }
  env.push_back(parent.data());
  env.push_back(nullptr);
  const int rc = posix_spawn(&pid_, argv[0].c_str(), &actions, &attr, args.data(), env.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) {
    pid_ = -1;
    return MakeError(Errc::kUnavailable, "cannot start " + argv[0] + ": " + std::strerror(rc));
  }
  return {};
}

bool ChildProcess::Running() {
  if (pid_ <= 0) return false;
  int st = 0;
  const pid_t r = waitpid(pid_, &st, WNOHANG);
  if (r == pid_) {
    status_ = WIFEXITED(st) ? WEXITSTATUS(st) : -WTERMSIG(st);
    pid_ = -1;
    return false;
  }
  return true;
}

int ChildProcess::Stop(std::chrono::milliseconds grace) {
  if (!Running()) return status_;
  kill(pid_, SIGTERM);
  const auto deadline = std::chrono::steady_clock::now() + grace;
  while (std::chrono::steady_clock::now() < deadline) {
    if (!Running()) return status_;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  kill(pid_, SIGKILL);
  int st = 0;
  waitpid(pid_, &st, 0);
  pid_ = -1;
  status_ = WIFEXITED(st) ? WEXITSTATUS(st) : -WTERMSIG(st);
  return status_;
}

std::string SelfExecutable() {
  char buf[4096];
  const ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return "syncwell";
  return std::string(buf, static_cast<size_t>(n));
}

Result<uint16_t> FreeLoopbackPort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return MakeError(Errc::kUnavailable, "socket: " + std::string(std::strerror(errno)));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    close(fd);
    return MakeError(Errc::kUnavailable, "bind: " + std::string(std::strerror(errno)));
  }
  const uint16_t port = ntohs(addr.sin_port);
  close(fd);
  return port;
}

}  // namespace syncwell::app
