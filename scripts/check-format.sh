#!/bin/bash
# Fails if any C source under src/ or bench/ differs from what clang-format
# (with the repository's .clang-format) would produce. Fix with:
#   clang-format -i FILE...
set -euo pipefail
cd "$(dirname "$0")/.."

clang_format=${CLANG_FORMAT:-}
if [ -z "$clang_format" ]; then
    for candidate in clang-format clang-format-14; do
        if command -v "$candidate" >/dev/null 2>&1; then
            clang_format=$candidate
            break
        fi
    done
fi
if [ -z "$clang_format" ]; then
    echo "format: clang-format not found (apt-get install clang-format)" >&2
    exit 1
fi

dirs=()
for d in src bench; do
    [ -d "$d" ] && dirs+=("$d")
done
files=()
if [ "${#dirs[@]}" -gt 0 ]; then
    mapfile -d '' files < <(find "${dirs[@]}" -type f \( -name '*.c' -o -name '*.h' \) -print0 | sort -z)
fi
if [ "${#files[@]}" -eq 0 ]; then
    echo "format: no C sources yet, nothing to check"
    exit 0
fi

echo "format: $("$clang_format" --version | head -n1), ${#files[@]} file(s)"
if ! "$clang_format" --style=file --dry-run --Werror "${files[@]}"; then
    echo "format: run '$clang_format -i' on the files above" >&2
    exit 1
fi
echo "format: clean"
