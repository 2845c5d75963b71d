#!/bin/bash
# Fails if the protocol core (src/raft/) reaches outside itself: no IO, no
# clock, no randomness from the machine, no Lua, libuv or LMDB. Comments are
# ignored (the core quotes the Raft paper), string literals are ignored for
# the call checks. Prints every offending line as file:line: reason: text.
#
# Usage: scripts/check-core-purity.sh [DIR]   (default: src/raft)
set -euo pipefail
cd "$(dirname "$0")/.."

dir=${1:-src/raft}

if [ ! -d "$dir" ]; then
    echo "core purity: $dir does not exist yet, nothing to check"
    exit 0
fi

mapfile -d '' files < <(find "$dir" -type f \( -name '*.c' -o -name '*.h' \) -print0 | sort -z)
if [ "${#files[@]}" -eq 0 ]; then
    echo "core purity: no sources in $dir yet, nothing to check"
    exit 0
fi

# perl is part of every Debian system (perl-base is Essential).
perl -e '
use strict;
use warnings;

my $forbidden_headers = qr{^(?:uv|lua|lauxlib|lualib|lmdb|unistd|sys/socket|pthread|time|stdio)\.h$};
my $forbidden_calls = qr{\b(time|clock_gettime|rand|srand|getenv|printf|fprintf|puts|fputs|fopen)\s*\(};

my $bad = 0;
for my $file (@ARGV) {
    open(my $fh, "<", $file) or die "$file: $!\n";
    my $src = do { local $/; <$fh> };
    close($fh);
    my @orig = split /\n/, $src, -1;

    # Blank out comments, keeping newlines so line numbers stay right. Strings
    # and character literals are matched (and kept) so that a "/*" inside
    # one does not start a comment.
    (my $code = $src) =~ s{
        ( /\* .*? \*/ ) | ( //[^\n]* ) | ( "(?:\\.|[^"\\\n])*" | \x27(?:\\.|[^\x27\\\n])*\x27 )
    }{
        defined $1 ? ($1 =~ tr/\n//cdr) : defined $2 ? "" : $3
    }gsex;
    # Same text with string and character literals emptied, for the call check.
    (my $bare = $code) =~ s{ "(?:\\.|[^"\\\n])*" | \x27(?:\\.|[^\x27\\\n])*\x27 }{""}gx;

    my @code = split /\n/, $code, -1;
    my @bare = split /\n/, $bare, -1;
    for my $i (0 .. $#code) {
        my @why;
        if ($code[$i] =~ /^\s*#\s*include\s*[<"]([^>"]+)[>"]/) {
            my $header = $1;
            push @why, "forbidden include <$header>" if $header =~ $forbidden_headers;
        }
        while ($bare[$i] =~ /$forbidden_calls/g) {
            push @why, "forbidden call $1()";
        }
        next unless @why;
        printf "%s:%d: %s: %s\n", $file, $i + 1, join(", ", @why), $orig[$i] // "";
        $bad++;
    }
}

if ($bad) {
    print STDERR "\ncore purity: $bad offending line(s). src/raft/ is the pure protocol core:\n",
        "no IO, clock, machine randomness, stdio, Lua, libuv or LMDB (see README.md, Layout).\n";
    exit 1;
}
printf "core purity: %d file(s) clean\n", scalar @ARGV;
' "${files[@]}"
