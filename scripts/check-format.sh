#!/usr/bin/env bash
# Fails when a C++ file differs from .clang-format (Debian 12's clang-format 14).
set -euo pipefail
cd "$(dirname "$0")/.."
files=$(git ls-files '*.cpp' '*.hpp' 2>/dev/null || find src tests bench -name '*.[ch]pp')
bad=0
for f in $files; do
  if ! clang-format --dry-run --Werror "$f" 2>/dev/null; then
    echo "needs clang-format: $f" >&2
    bad=1
  fi
done
if ((bad)); then
  echo "run: clang-format -i \$(git ls-files '*.cpp' '*.hpp')" >&2
  exit 1
fi
echo "style ok ($(echo "$files" | wc -w) files)" >&2
