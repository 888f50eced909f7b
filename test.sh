#!/bin/sh
# Runs every test of FluxPulse: unit, fuzz seeds, end-to-end tests against
# real Prometheus, Alertmanager and S3 (versitygw) binaries (built once per
# machine into ~/.cache/fluxpulse-testbin if missing), and every benchmark
# once as a compile-and-run check (never as a timed assertion).
set -eu
cd "$(dirname "$0")"
# FluxPulse's own binaries are built once here and shared by every test
# package (testbin.FluxPulse uses $FLUXPULSE_BIN_DIR when it is set).
FLUXPULSE_BIN_DIR=$(mktemp -d)
export FLUXPULSE_BIN_DIR
trap 'rm -rf "$FLUXPULSE_BIN_DIR"' EXIT
for cmd in fluxpulse fluxpulse-agent fluxpulse-bench; do
	go build -o "$FLUXPULSE_BIN_DIR/$cmd" "./cmd/$cmd"
done
# Two cores: two packages at a time.
go test -p 2 -count=1 -timeout 30m ./...
go test -p 2 -count=1 -run '^$' -bench . -benchtime 1x -timeout 15m ./...
