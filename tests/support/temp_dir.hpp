#pragma once
// A fresh directory under the test temp dir (left for inspection after a failure).
#include <gtest/gtest.h>
#include <stdlib.h>

#include <stdexcept>
#include <string>

namespace syncwell::test_support {

inline std::string MakeTempDir(const std::string& prefix) {
  std::string tmpl = ::testing::TempDir() + prefix + "-XXXXXX";
  if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  return tmpl;
}

}  // namespace syncwell::test_support
