#!/bin/sh
# The peer mcw's benchmarks compare with: a DNS watcher loop written in shell around dig, the
# way such configs were kept current before mcw. Every INTERVAL seconds it asks SERVER:PORT for
# the A records of each `dns://NAME` token in TEMPLATE (one dig for all of them), writes the
# rendered config (addresses in version order, port 11211) to a temp file and renames it over
# OUTPUT when it differs. A name without an answer skips the round: the old output stays.
#
#   dig-watcher.sh TEMPLATE OUTPUT SERVER PORT INTERVAL
set -u
template=$1 output=$2 server=$3 port=$4 interval=$5
tmp="$output.dig-watcher.tmp"
answers="$output.dig-watcher.answers"
while :; do
    queries=$(grep -o '"dns://[^"]*"' "$template" | cut -d/ -f3 | tr -d '"' | sort -u |
        sed 's/$/ A/')
    # shellcheck disable=SC2086 # one word per name and type
    dig -p "$port" "@$server" +noall +answer +time=1 +tries=1 $queries |
        sort -k1,1 -k5,5V >"$answers"
    if awk '
        NR == FNR {
            if ($4 == "A") {
                name = $1; sub(/\.$/, "", name)
                list[name] = (name in list ? list[name] "," : "") "\"" $5 ":11211\""
            }
            next
        }
        {
            while (match($0, /"dns:\/\/[^"]*"/)) {
                name = substr($0, RSTART + 7, RLENGTH - 8)
                if (!(name in list)) exit 1
                $0 = substr($0, 1, RSTART - 1) list[name] substr($0, RSTART + RLENGTH)
            }
            print
        }' "$answers" "$template" >"$tmp"; then
        cmp -s "$tmp" "$output" || mv "$tmp" "$output"
    fi
    sleep "$interval"
done
