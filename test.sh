#!/bin/sh
# Runs every test of FluxPulse: unit, fuzz seeds, end-to-end tests against
# real Prometheus, Alertmanager and S3 (versitygw) binaries (built once per
# machine into ~/.cache/fluxpulse-testbin if missing), and every benchmark
# once as a compile-and-run check (never as a timed assertion).
set -eu
cd "$(dirname "$0")"
# Two cores: two packages at a time.
go test -p 2 -count=1 -timeout 30m ./...
go test -p 2 -count=1 -run '^$' -bench . -benchtime 1x -timeout 15m ./...
