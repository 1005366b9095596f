#!/bin/sh
# The sites mode's cost (README, HAKMEM_SITES): sqlite3 :memory: inserting rows of 100 bytes
# in one transaction and scanning them, under the preload, without and with HAKMEM_SITES=1.
# Instructions of the whole process under callgrind (20 000 rows: exact and repeatable), then
# wall time (200 000 rows, ROUNDS alternated pairs, medians: noisy on a shared machine).
set -eu
LIB=${LIB:-target/preload/libhakmem.so}
ROUNDS=${ROUNDS:-9}
sql() {
    echo "begin; create table t(a, b); with recursive n(i) as (select 1 union all select i + 1 from n where i < $1) insert into t select i, printf('%0100d', i) from n; commit; select count(*), sum(length(b)) from t;"
}
for mode in 0 1; do
    ir=$(LD_PRELOAD=$PWD/$LIB HAKMEM_SITES=$mode valgrind --tool=callgrind \
        --callgrind-out-file=/dev/null sqlite3 :memory: "$(sql 20000)" 2>&1 |
        sed -n 's/.*I *refs: *//p' | tr -d ,)
    echo "instructions HAKMEM_SITES=$mode: $ir"
done
big=$(sql 200000)
for r in $(seq "$ROUNDS"); do
    for mode in 0 1; do
        s=$(date +%s%N)
        LD_PRELOAD=$PWD/$LIB HAKMEM_SITES=$mode sqlite3 :memory: "$big" >/dev/null
        echo "$mode $(( $(date +%s%N) - s ))"
    done
done | sort -k1,1 -k2,2n | awk -v n="$ROUNDS" '
    { t[$1, ++c[$1]] = $2 }
    END { m = int((n + 1) / 2); printf "time median HAKMEM_SITES=0: %.3f s, HAKMEM_SITES=1: %.3f s (%d pairs)\n", t[0, m] / 1e9, t[1, m] / 1e9, n }'
