#!/usr/bin/env bash
# Install the openai npm package pinned in tests/openai/package.json (and
# package-lock.json) for the openai_client ctest entry, which skips without
# it. Needs node and npm (Node 20 or newer) and the npm registry.
set -euo pipefail
cd "$(dirname "$0")/../tests/openai"
command -v npm > /dev/null || { echo "setup_openai_test: npm not found (install nodejs and npm)" >&2; exit 1; }
npm ci --no-audit --no-fund
echo "setup_openai_test: installed $(node -p "require('./node_modules/openai/package.json').version") in tests/openai/node_modules"
