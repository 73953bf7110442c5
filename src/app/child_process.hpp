#pragma once
// A child `syncwell` process (the demo and the local cluster start the server and the simulator as
// real processes, so they talk real HTTP exactly like a deployment). stdout+stderr go to a log
// file; Stop() sends SIGTERM and waits (then SIGKILL after the grace period). Only the PID we
// started is ever signalled. A child also ends when its parent dies without stopping it (killed,
// crashed): Start() passes SYNCWELL_PARENT_PID and the child's main() calls ExitWithParent().
#include <sys/types.h>

#include <chrono>
#include <string>
#include <vector>

#include "core/result.hpp"

namespace syncwell::app {

inline constexpr const char* kParentPidEnv = "SYNCWELL_PARENT_PID";

// In main(): when started by a ChildProcess, receive SIGTERM (a graceful stop) when the parent
// dies (PR_SET_PDEATHSIG). Returns false when the parent is already gone.
bool ExitWithParent();

class ChildProcess {
 public:
  ChildProcess() = default;
  ~ChildProcess() { Stop(std::chrono::seconds(10)); }
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  // argv[0] is the program path. Output (stdout and stderr) is appended to log_path.
  Status Start(const std::vector<std::string>& argv, const std::string& log_path);
  bool Running();
  // SIGTERM, wait up to grace, then SIGKILL. Returns the exit status (or -signal).
  int Stop(std::chrono::milliseconds grace);
  pid_t pid() const { return pid_; }

 private:
  pid_t pid_ = -1;
  int status_ = 0;
};

// The path of the running executable (/proc/self/exe).
std::string SelfExecutable();
// A free TCP port on 127.0.0.1 (bound and released; a small race is possible).
Result<uint16_t> FreeLoopbackPort();

}  // namespace syncwell::app
