#pragma once
// The single include point for Boost.Asio (STYLE §7): every TU that needs Asio includes this,
// so configuration macros and the Boost version are the same everywhere. Beast is included
// only by the few TUs that speak HTTP (api/http_server.cpp, loadgen, bench baseline).
#include <boost/asio.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/version.hpp>
#include <utility>

static_assert(BOOST_VERSION >= 108100, "SyncWell needs Boost 1.81 (libboost1.81-dev)");

namespace syncwell {
namespace asio = boost::asio;
}  // namespace syncwell
