#!/bin/bash
# The whole-node simulation has teeth: break one of the node's rules at a time in a copy of
# the tree (src/node/), run node_sim's default seeds against it, and require that it fails.
# Prints, per broken rule, the first seed that caught it and what was seen. Exits non-zero
# if any broken rule goes unnoticed or a mutation no longer applies (the node changed).
#
# usage: scripts/node-mutants.sh [NAME...]     (default: every mutant below)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)

# node_sim's default run, the one ctest's node_sim makes (cmake/testing.cmake).
run_args=()

# name | file | sed expression that breaks the rule
mutants=(
  "write-answered-before-applied|src/node/writes.c|s/pending_add(n, first + i, entries\[i\].term, \&w->props\[i\].o);/pending_add(n, first + i, entries[i].term, \&w->props[i].o); origin_reply_text(n, \&w->props[i].o, \"+OK\\\\r\\\\n\"); pending_find(n, first + i)->answered = true;/"
  "read-before-index-applied|src/node/reads.c|s/if (!b->confirmed || b->index > n->applied_sent) {/if (!b->confirmed) {/"
  "client-answered-twice|src/node/apply.c|s/node_reply(n, q->tag, q->reply.data, q->reply.len);/node_reply(n, q->tag, q->reply.data, q->reply.len); node_reply(n, q->tag, q->reply.data, q->reply.len);/"
  "unknown-outcome-dropped-on-leadership-loss|src/node/node.c|s/writes_fail_all(n, node_unknown_reply);/writes_fail_all(n, \"+OK\\\\r\\\\n\");/"
  "follower-acks-before-durable|src/node/durability.c|s/if (m->after_persist \&\& d->done < d->submitted) {/if (0) {/"
  "transfer-ok-before-target-leads|src/node/transfer.c|s/    t->phase = TRANSFER_HANDING;/    t->phase = TRANSFER_HANDING; succeed(n); return;/"
)

want=("$@")
work=$(mktemp -d /tmp/luaraft-node-mutants.XXXXXX)
trap '[ -n "${LUARAFT_KEEP_MUTANTS:-}" ] || rm -rf "$work"' EXIT
status=0
for m in "${mutants[@]}"; do
  IFS='|' read -r name file expr <<<"$m"
  if [ ${#want[@]} -gt 0 ] && [[ ! " ${want[*]} " == *" $name "* ]]; then
    continue
  fi
  dir="$work/$name"
  mkdir -p "$dir"
  tar -C "$root" --exclude='./build*' --exclude='./.git' -cf - . | tar -C "$dir" -xf -
  sed -i -e "$expr" "$dir/$file"
  if cmp -s "$root/$file" "$dir/$file"; then
    echo "node mutant $name: the mutation no longer applies to $file" >&2
    status=1
    continue
  fi
  cmake -S "$dir" -B "$dir/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >"$dir/build.log" 2>&1
  if ! cmake --build "$dir/build" --target node_sim -j2 >>"$dir/build.log" 2>&1; then
    cat "$dir/build.log" >&2
    echo "node mutant $name: does not build" >&2
    status=1
    continue
  fi
  start=$SECONDS
  if (cd "$dir" && build/node_sim ${run_args[@]+"${run_args[@]}"} --stop-at-first) >"$dir/run.log" 2>&1; then
    echo "node mutant $name: NOT caught by node_sim's default run" >&2
    status=1
  else
    line=$(grep -m1 '^seed [0-9]* failed' "$dir/run.log" || true)
    if [ -z "$line" ]; then
      line=$(grep -m1 'while running:' "$dir/run.log" || true)
    fi
    if [ -z "$line" ]; then
      tail -n 20 "$dir/run.log" >&2
      echo "node mutant $name: the run failed without naming a seed" >&2
      status=1
    else
      echo "node mutant $name: caught in $((SECONDS - start)) s: ${line:0:200}"
    fi
  fi
done
exit $status
