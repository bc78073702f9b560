#!/usr/bin/env bash
# The registry walkthrough on embedded defaults: builds duoprov, creates a SQLite registry in a
# temporary folder, adds the seed's two people and group, marks app:duo for provisioner duoTest,
# shows the effective members, nests groups three deep and shows a cycle being refused.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cargo build --quiet --manifest-path "$repo/Cargo.toml" -p duoprov
duoprov="$repo/target/debug/duoprov"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
step() { printf '\n$ duoprov %s\n' "$*"; "$duoprov" "$@"; }

step init
step subject add mchyzer --name "Chris Hyzer" --login-id mchyzer --description "Chris Hyzer" --email mchyzer@example.edu
step subject add kwilso --name "Kate Wilson" --login-id kwilso --email kwilso@example.edu
step folder add app:duo --create-parents
step group add app:duo:testGroup --description "Duo test group"
step member add app:duo:testGroup mchyzer kwilso
step provision assign duoTest --folder app:duo --scope sub
step member list app:duo:testGroup --effective --json
step provision list duoTest --groups
step group add app:duo:all
step group add org:staff --create-parents
step group add org:faculty
step member add app:duo:all --group org:staff
step member add org:staff --group org:faculty
step member add org:faculty --group app:duo:testGroup
step member list app:duo:all --effective
printf '\n$ duoprov member add app:duo:testGroup --group app:duo:all   # a cycle: refused\n'
if "$duoprov" member add app:duo:testGroup --group app:duo:all; then
  echo "unexpected: the cycle was accepted" >&2
  exit 1
fi
step provision list duoTest --groups
