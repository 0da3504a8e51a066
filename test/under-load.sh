#!/usr/bin/env bash
# The suite beside one busy loop per core (npm run test:load): a test that holds only on an idle machine fails
# here. The loops end with the suite, whatever ends it.
set -u
cd "$(dirname "$0")/.."
loops=()
trap 'kill "${loops[@]}" 2>/dev/null' EXIT
for _ in $(seq "$(nproc)"); do
  sh -c 'while :; do :; done' &
  loops+=("$!")
done
npx vitest run "$@"
