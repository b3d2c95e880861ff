#!/usr/bin/env bash
# The production-like stack without Docker (PostgreSQL 15, the Temporal server and its Web UI,
# versitygw, N workers), all on 127.0.0.1: `scripts/stack.sh up|down|status|env`. See README,
# "A production-like stack". The Go programs are built into .tools on first use.
set -euo pipefail
cd "$(dirname "$0")/.."
exec node --import tsx -e 'require("./src/stack/cli.ts").stackCli(process.argv.slice(1)).then((c) => process.exit(c))' -- "$@"
