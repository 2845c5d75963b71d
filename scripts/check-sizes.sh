#!/bin/bash
# Fails if a C file under src/ or bench/ passes about 600 lines, or a function about 80:
# small files with one job, functions that fit on a screen. "About" is FILE_LINES_MAX and
# FUNCTION_LINES_MAX below; a function is a body whose braces stand alone in column 0 after
# a line that ends with ")" (clang-format's layout here), so structs and tables are not
# counted. Prints each offender as file:line: what.
#
# Usage: scripts/check-sizes.sh [DIR...]   (default: src bench)
set -euo pipefail
cd "$(dirname "$0")/.."
FILE_LINES_MAX=${FILE_LINES_MAX:-650}
FUNCTION_LINES_MAX=${FUNCTION_LINES_MAX:-90}

dirs=("$@")
[ ${#dirs[@]} -gt 0 ] || dirs=(src bench)
mapfile -d '' files < <(find "${dirs[@]}" -type f \( -name '*.c' -o -name '*.h' \) -print0 | sort -z)

perl -e '
use strict;
use warnings;
my ($file_max, $fn_max, @files) = @ARGV;
my $bad = 0;
for my $file (@files) {
    open(my $fh, "<", $file) or die "$file: $!\n";
    my @lines = <$fh>;
    close($fh);
    if (@lines > $file_max) {
        printf "%s:1: %d lines (at most about %d)\n", $file, scalar @lines, $file_max;
        $bad++;
    }
    my ($start, $name, $prev) = (undef, "", "");
    for my $i (0 .. $#lines) {
        my $l = $lines[$i];
        if (!defined $start && $l =~ /^\{\s*$/ && $prev =~ /\)\s*$/) {
            $start = $i;
            ($name) = $prev =~ /(\w+)\s*\(/;
            $name //= "?";
        } elsif (defined $start && $l =~ /^\}/) {
            my $n = $i - $start - 1;
            if ($n > $fn_max) {
                printf "%s:%d: function %s has %d lines (at most about %d)\n", $file, $start, $name, $n, $fn_max;
                $bad++;
            }
            undef $start;
        }
        $prev = $l if $l =~ /\S/;
    }
}
if ($bad) {
    print STDERR "\nsizes: $bad file(s) or function(s) too long: split them by job\n";
    exit 1;
}
printf "sizes: %d file(s) within %d lines, functions within %d\n", scalar @files, $file_max, $fn_max;
' "$FILE_LINES_MAX" "$FUNCTION_LINES_MAX" "${files[@]}"
