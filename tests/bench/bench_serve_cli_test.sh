#!/usr/bin/env bash
# `tide bench serve` as a user runs it: the binary against the fake server program, a
# two-point sweep with --json and --plot (checked with python3), bad flags refused, and
# Ctrl-C (SIGINT) mid-run printing the partial table and exiting 130.
# Usage: bench_serve_cli_test.sh TIDE_BINARY FAKE_SERVER_BINARY
set -uo pipefail
tide=$1
fake=$2
work=$(mktemp -d)
server_pid=
cleanup() { [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
fails=0
ok() { echo "ok   $1"; }
bad() { fails=$((fails + 1)); echo "FAIL $1"; }

"$fake" --ttft-ms 5 --itl-ms 2 --fail-every 7 >"$work/port" &
server_pid=$!
for _ in $(seq 50); do grep -q listening "$work/port" && break; sleep 0.1; done
port=$(sed -n 's/.*127.0.0.1:\([0-9]*\).*/\1/p' "$work/port")
[ -n "$port" ] || { echo "FAIL fake server did not start"; exit 1; }
url=http://127.0.0.1:$port

if "$tide" bench serve --url "$url" -n 14 --random-input-len 8:16 --random-output-len 4 --request-rate 50,inf \
     --max-concurrency 0 --slo ttft=1000 --json "$work/r.json" --plot "$work/r.svg" >"$work/out" 2>"$work/err" &&
   python3 - "$work/r.json" "$work/r.svg" <<'PY'
import json, sys, xml.etree.ElementTree as ET
j = json.load(open(sys.argv[1]))
assert [p["summary"]["request_rate"] for p in j["points"]] == [50, "inf"], j["points"]
for p in j["points"]:
    s = p["summary"]
    assert s["completed"] == 12 and s["failed"] == 2, s  # requests 7 and 14 answer 500
    assert s["errors"] == {"HTTP 500: fake failure": 2}, s["errors"]
    assert len(p["samples"]) == 14
    assert all(x["output_tokens"] == 4 for x in p["samples"] if x["ok"])
root = ET.parse(sys.argv[2]).getroot()
assert root.tag == "{http://www.w3.org/2000/svg}svg"
PY
then ok "sweep, json, svg"; else bad "sweep, json, svg"; cat "$work/err"; fi
grep -q "Request goodput" "$work/out" && grep -q "^inf " "$work/out" && ok "tables" || { bad "tables"; cat "$work/out"; }

for flags in "--request-rate 0" "--request-rate x" "--random-input-len 0" "--slo ttft" "--url https://x" \
             "--dataset-name nope" "--max-concurrency -1"; do
  case $flags in --url*) target=() ;; *) target=(--url "$url") ;; esac
  # shellcheck disable=SC2086
  "$tide" bench serve "${target[@]}" -n 1 $flags >/dev/null 2>"$work/e"
  rc=$?
  if [ "$rc" = 1 ] && grep -q "INVALID_ARGUMENT" "$work/e"; then ok "refuses $flags"; else bad "refuses $flags (rc $rc)"; cat "$work/e"; fi
done

# Ctrl-C: ~200 requests of ~0.2 s at 2 at a time would take 20 s.
"$tide" bench serve --url "$url" -n 200 --random-output-len 100 --max-concurrency 2 >"$work/int" 2>&1 &
bench_pid=$!
sleep 1
kill -INT "$bench_pid"
wait "$bench_pid"
rc=$?
if [ "$rc" = 130 ] && grep -q "Interrupted requests" "$work/int" && grep -q "Successful requests" "$work/int"; then
  ok "Ctrl-C reports partial results"
else
  bad "Ctrl-C (rc $rc)"; cat "$work/int"
fi
exit $((fails > 0))
