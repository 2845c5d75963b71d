#!/bin/bash
# The simulator has teeth: break one safety rule at a time in a copy of the protocol core,
# run the default random run against it, and require that it fails. Prints, per broken
# rule, the first seed that caught it. Exits non-zero if any broken rule goes unnoticed
# or if a mutation no longer applies to the source (the core changed under it).
#
# usage: scripts/mutants.sh [NAME...]     (default: every mutant below)
#
# LUARAFT_MUTANT_SPEC=spec/raft/scenarios_spec.lua runs that spec file instead of the random
# run, and prints, per mutant, the names of the specs that failed against it.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)

# name | file | sed expression that breaks the rule
mutants=(
  "commit-previous-term|src/raft/replicate.c|s/if (index <= r->commit || raft_term_of(r, index) != r->term) {/if (index <= r->commit) {/"
  "vote-for-stale-log|src/raft/election.c|s/bool grant = can_vote \&\& log_up_to_date(r, m) \&\&/bool grant = can_vote \&\& (log_up_to_date(r, m) || true) \&\&/"
  "ack-before-durable|src/raft/update.c|s/if (term_pending || m->type == RAFT_MSG_APPEND_RESP ||/if (term_pending ||/"
  "leader-counts-unsynced-self|src/raft/quorum.c|s/v\[n++\] = pr->id == r->cfg.id ? r->stable : pr->match;/v[n++] = pr->id == r->cfg.id ? r->log.last : pr->match;/"
  "no-check-quorum|src/raft/replicate.c|s/if (!quorum_active(r)) {/if (0) {/"
  "persisted-across-truncation|src/raft/raft.c|s/if (t->generation != r->generation) {/if (0) {/"
  "two-changes-at-once|src/raft/members.c|s/if (r->conf_index > r->commit || !r->committed_in_term) {/if (!r->committed_in_term) {/"
  "change-before-own-term-commit|src/raft/members.c|s/if (r->conf_index > r->commit || !r->committed_in_term) {/if (r->conf_index > r->commit) {/"
  "read-without-heartbeat-round|src/raft/read_index.c|s/if (p->seq == 0 || p->seq > confirmed) {/if (p->seq == 0 || p->seq > confirmed + (1u << 30)) {/"
)

spec=${LUARAFT_MUTANT_SPEC:-}
want=("$@")
work=$(mktemp -d /tmp/luaraft-mutants.XXXXXX)
trap 'rm -rf "$work"' EXIT
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
    echo "mutant $name: the mutation no longer applies to $file" >&2
    status=1
    continue
  fi
  cmake -S "$dir" -B "$dir/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >"$dir/build.log" 2>&1
  if ! cmake --build "$dir/build" --target luaraft_sim_module -j2 >>"$dir/build.log" 2>&1; then
    cat "$dir/build.log" >&2
    echo "mutant $name: does not build" >&2
    status=1
    continue
  fi
  start=$SECONDS
  if [ -n "$spec" ]; then
    # Another spec file: the mutant is caught if any of its specs fails; name them.
    if (cd "$dir" && LUARAFT_BUILD_DIR="$dir/build" \
        lua5.4 /usr/bin/busted --helper=spec/helper.lua -o TAP "$spec") >"$dir/run.log" 2>&1; then
      echo "mutant $name: NOT caught by $spec" >&2
      status=1
    else
      # "not ok 4 - scenario S4: ..." -> S4
      failed=$(sed -n 's/^not ok [0-9]* - //p' "$dir/run.log" | sed 's/^scenario //; s/:.*//' |
        paste -sd ' ' -)
      rule=$(grep -o 'violation: [^(]*' "$dir/run.log" | sort | uniq -c | sort -rn | head -n3 |
        sed 's/^ *//' | paste -sd ';' - || true)
      echo "mutant $name: caught by $spec in $((SECONDS - start)) s: ${failed:-?}${rule:+ ($rule)}"
    fi
    continue
  fi
  # The default run, whatever the caller's LUARAFT_SEEDS (test.sh --quick shrinks it for
  # the specs; a mutant caught only by seed 239 must still be caught here).
  if (cd "$dir" && env -u LUARAFT_SEEDS -u LUARAFT_FIRST_SEED -u LUARAFT_SEED -u LUARAFT_STEPS \
      LUARAFT_BUILD_DIR="$dir/build" LUARAFT_STOP_AT_FIRST=1 \
      lua5.4 /usr/bin/busted --helper=spec/helper.lua spec/raft/random_spec.lua) >"$dir/run.log" 2>&1; then
    echo "mutant $name: NOT caught by the random run" >&2
    status=1
  else
    seed=$(grep -o 'LUARAFT_SEED=[0-9]*' "$dir/run.log" | head -n1 | cut -d= -f2)
    rule=$(grep -o 'violation: [^(]*' "$dir/run.log" | head -n1 || true)
    if [ -z "$seed" ]; then
      cat "$dir/run.log" >&2
      echo "mutant $name: the run failed without naming a seed" >&2
      status=1
    else
      echo "mutant $name: caught by seed $seed in $((SECONDS - start)) s ${rule:+($rule)}"
    fi
  fi
done
exit $status
