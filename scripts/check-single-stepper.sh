#!/bin/bash
# Fails if any shipping code but src/node/node.c calls raft_step(): the node's other rooms
# report what happened to node_step() as events (see src/node/internal.h), so one function
# carries out every update, in the order raft.h binds. The protocol core (src/raft/)
# defines raft_step; the simulator (src/sim/) and the test modules (src/testing/) are
# drivers of their own and ship nothing. Comments and string literals are ignored.
#
# Usage: scripts/check-single-stepper.sh [SRC_DIR]   (default: src)
set -euo pipefail
cd "$(dirname "$0")/.."
src=${1:-src}

mapfile -d '' files < <(find "$src" -type f \( -name '*.c' -o -name '*.h' \) \
    -not -path "$src/raft/*" -not -path "$src/sim/*" -not -path "$src/testing/*" -print0 | sort -z)

perl -e '
use strict;
use warnings;
my $allowed = shift @ARGV;
my ($bad, $seen) = (0, 0);
for my $file (@ARGV) {
    open(my $fh, "<", $file) or die "$file: $!\n";
    my $src = do { local $/; <$fh> };
    close($fh);
    # Blank out comments and string literals, keeping newlines for line numbers.
    $src =~ s{ ( /\* .*? \*/ ) | //[^\n]* | "(?:\\.|[^"\\\n])*" | \x27(?:\\.|[^\x27\\\n])*\x27 }
             { defined $1 ? ($1 =~ tr/\n//cdr) : "\"\"" }gsex;
    my @lines = split /\n/, $src, -1;
    for my $i (0 .. $#lines) {
        next unless $lines[$i] =~ /\braft_step\s*\(/;
        if ($file eq $allowed) {
            $seen++;
            next;
        }
        printf "%s:%d: calls raft_step(); report an event to node_step() instead\n", $file, $i + 1;
        $bad++;
    }
}
if ($bad) {
    print STDERR "\nsingle stepper: $bad call(s) of raft_step() outside $allowed\n";
    exit 1;
}
if ($seen == 0) {
    print STDERR "single stepper: $allowed does not call raft_step(); is the check stale?\n";
    exit 1;
}
printf "single stepper: only %s calls raft_step() (%d file(s) checked)\n", $allowed, scalar @ARGV;
' "$src/node/node.c" "${files[@]}"
