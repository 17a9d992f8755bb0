#!/usr/bin/env bash
# Runs every test of the project; filled in as the suites land.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
make test-go-unit
