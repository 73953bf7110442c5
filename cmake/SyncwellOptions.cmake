# Build options shared by every target: warnings, sanitizers, ccache, mold.
option(SYNCWELL_BUILD_TESTS "Build the tests" ON)
option(SYNCWELL_BUILD_BENCH "Build the benchmarks" ON)
set(SYNCWELL_SANITIZE "" CACHE STRING "Sanitizers: '', 'address,undefined' or 'thread'")

find_program(CCACHE_PROGRAM ccache)
if(CCACHE_PROGRAM)
  set(CMAKE_CXX_COMPILER_LAUNCHER ${CCACHE_PROGRAM})
endif()
find_program(MOLD_PROGRAM mold)
if(MOLD_PROGRAM)
  add_link_options(-fuse-ld=mold)
endif()

add_library(syncwell_options INTERFACE)
target_compile_options(syncwell_options INTERFACE -Wall -Wextra -Wpedantic -Wno-missing-field-initializers)
# Project-wide Asio configuration lives in core/asio.hpp; these keep every TU consistent.
target_compile_definitions(syncwell_options INTERFACE
  BOOST_ASIO_NO_DEPRECATED BOOST_BEAST_USE_STD_STRING_VIEW BOOST_ASIO_DISABLE_CONCEPTS)

if(SYNCWELL_SANITIZE)
  add_compile_options(-fsanitize=${SYNCWELL_SANITIZE} -fno-omit-frame-pointer -fno-sanitize-recover=undefined)
  add_link_options(-fsanitize=${SYNCWELL_SANITIZE})
endif()
