#!/usr/bin/env bash
# What a run costs on AWS (bench/README.md §6): three executions of the state
# machine CDK synthesizes, under tests/localaws, with the real function
# binaries — an idle hourly run, a run adding one package, a forced rebuild
# of 2,000 entries — counted (state transitions, Lambda invocations and
# GB-seconds, S3 requests by pricing tier, DynamoDB request units and Scans)
# and priced. tests/run starts moto and localaws and stops them by PID.
set -euo pipefail
cd "$(dirname "$0")/.."
exec tests/run --test aws_cost -- --nocapture
