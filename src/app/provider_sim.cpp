// `syncwell provider-sim`: the provider simulator as a process (src/providers/sim/README.md).
#include <pthread.h>
#include <signal.h>

#include <iostream>

#include "app/commands.hpp"
#include "config/settings.hpp"
#include "core/log.hpp"
#include "providers/sim/sim_server.hpp"

namespace syncwell::app {

std::optional<std::pair<std::chrono::milliseconds, std::chrono::milliseconds>> ParseLatencyRange(
    const std::string& text) {
  const auto dash = text.find('-');
  auto lo = config::ParseDuration(text.substr(0, dash));
  auto hi = dash == std::string::npos ? lo : config::ParseDuration(text.substr(dash + 1));
  if (!lo || !hi || *hi < *lo) return std::nullopt;
  return std::pair{std::chrono::duration_cast<std::chrono::milliseconds>(*lo),
                   std::chrono::duration_cast<std::chrono::milliseconds>(*hi)};
}

int RunProviderSim(const ProviderSimOptions& o) {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  sim::SimSettings settings = sim::DefaultSimSettings(!o.no_rate_limits);
  if (!o.config_file.empty()) {
    auto loaded = sim::LoadSimSettings(o.config_file);
    if (!loaded) {
      std::cerr << "syncwell provider-sim: " << loaded.error().message << "\n";
      return 2;
    }
    settings = *loaded;
    if (o.no_rate_limits) sim::DisableRateLimits(&settings);
  }
  if (o.seed) settings.seed = *o.seed;
  if (o.days) settings.days_of_history = *o.days;
  if (!o.webhook_target.empty()) settings.webhook_target = o.webhook_target;
  if (!o.latency.empty()) {
    // "50ms-300ms" or "100ms": uniform latency for every provider.
    const auto range = ParseLatencyRange(o.latency);
    if (!range) {
      std::cerr << "syncwell provider-sim: --latency '" << o.latency
                << "': expected MIN-MAX such as 50ms-300ms\n";
      return 2;
    }
    for (auto& [name, p] : settings.profiles) {
      p.latency_min = range->first;
      p.latency_max = range->second;
    }
  }
  auto hp = o.listen.rfind(':');
  if (hp == std::string::npos) {
    std::cerr << "syncwell provider-sim: --listen must be HOST:PORT\n";
    return 2;
  }
  sim::SimServerOptions so;
  so.host = o.listen.substr(0, hp);
  try {
    so.port = static_cast<uint16_t>(std::stoi(o.listen.substr(hp + 1)));
  } catch (const std::exception&) {
    std::cerr << "syncwell provider-sim: --listen must be HOST:PORT\n";
    return 2;
  }
  so.handler_threads = o.handler_threads;
  so.access_log = o.access_log;
  SystemClock clock;
  sim::SimServer server(settings, so, clock);
  if (auto st = server.Start(); !st) {
    std::cerr << "syncwell provider-sim: " << st.error().message << "\n";
    return 1;
  }
  log::Info("provider simulator listening",
            {{"address", server.base_url()}, {"seed", std::to_string(settings.seed)}});
  std::cout << "listening " << so.host << ":" << server.port() << std::endl;
  int sig = 0;
  sigwait(&signals, &sig);
  server.Stop();
  return 0;
}

}  // namespace syncwell::app
