#!/usr/bin/env bash
# Installs the peer programs that consul-lock is measured and tested against:
#   - go/      a Go program on Consul's official client (github.com/hashicorp/consul/api,
#              api.Lock), built into go/bin/go-peer;
#   - python/  a script on the Python library consul-lock 0.1.6 (on python-consul).
# Installs only what is missing, says what it did and what it skipped, and never fails: when a
# registry cannot be reached it says so, and the bench and the tests then skip that peer.
# Usage: peers/install.sh            (run from anywhere; as root, it may apt-get install Go)
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
started=$SECONDS
did=()
skipped=()
say() { printf 'peers: %s\n' "$*"; }

# ---- Go: the toolchain (Debian's golang-go), the module download, the build -------------
go_peer() {
    local bin="$here/go/bin/go-peer"
    if ! command -v go >/dev/null 2>&1; then
        if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
            skipped+=("Go peer: no go command, and apt-get is not usable here (not root or not Debian); install Go 1.19+ and run again")
            return
        fi
        say "installing golang-go with apt-get (no go command found)"
        if ! { timeout 90 apt-get update -qq &&
            DEBIAN_FRONTEND=noninteractive timeout 240 apt-get install -y -qq golang-go >/dev/null; }; then
            skipped+=("Go peer: apt-get could not install golang-go (the Debian registry may be unreachable)")
            return
        fi
        did+=("installed golang-go with apt-get ($(go version 2>/dev/null))")
    fi
    if [[ -x "$bin" && "$bin" -nt "$here/go/main.go" && "$bin" -nt "$here/go/go.mod" &&
        (! -e "$here/go/go.sum" || "$bin" -nt "$here/go/go.sum") ]]; then
        skipped+=("Go peer: go/bin/go-peer is already built and newer than its sources")
        return
    fi
    local log
    log=$(mktemp)
    # -mod=mod: go.sum is completed when a module is missing from it (see peers/README.md).
    if (cd "$here/go" && GOFLAGS=-mod=mod timeout 120 go mod download >"$log" 2>&1); then
        local version
        version=$(cd "$here/go" && go list -m -f '{{.Version}}' github.com/hashicorp/consul/api 2>/dev/null)
        local built_against="github.com/hashicorp/consul/api $version (module)"
        if ! (cd "$here/go" && GOFLAGS=-mod=mod timeout 180 go build \
            -ldflags "-X 'main.library=$built_against (api.Lock)'" -o bin/go-peer . >"$log" 2>&1); then
            skipped+=("Go peer: 'go build' failed: $(tail -n 3 "$log" | tr '\n' ' ')")
            rm -f "$log"
            return
        fi
        rm -f "$log"
        did+=("built go/bin/go-peer ($(go version | cut -d' ' -f3), $built_against)")
        if [[ -n "$(cd "$here" && git status --porcelain -- go/go.mod go/go.sum 2>/dev/null)" ]]; then
            say "go.mod/go.sum were completed by this build: commit peers/go/go.mod and peers/go/go.sum"
        fi
        return
    fi
    local proxy_error
    proxy_error=$(tail -n 1 "$log")
    # The fallback: a GOPATH holding Consul's Go client (CONSUL_LOCK_PEER_GOPATH, else
    # ../shared/go next to the project), built in GOPATH mode, which ignores go.mod.
    local gopath="${CONSUL_LOCK_PEER_GOPATH:-}"
    if [[ -z "$gopath" && -d "$here/../../shared/go/src/github.com/hashicorp/consul/api" ]]; then
        gopath="$(cd "$here/../../shared/go" && pwd)"
    fi
    if [[ -z "$gopath" || ! -d "$gopath/src/github.com/hashicorp/consul/api" ]]; then
        skipped+=("Go peer: 'go mod download' failed, the Go module proxy may be unreachable ($proxy_error), and no GOPATH with github.com/hashicorp/consul/api was found (set CONSUL_LOCK_PEER_GOPATH)")
        rm -f "$log"
        return
    fi
    # The revision, as the GOPATH's README records it (its table row for the api package).
    local revision
    revision=$(grep -m 1 '^| `github.com/hashicorp/consul/api`' "$gopath/README.md" 2>/dev/null |
        awk -F'|' '{gsub(/`/, "", $3); gsub(/^ +| +$/, "", $3); print $3}')
    local built_against="github.com/hashicorp/consul/api ${revision:-at an unrecorded revision} (GOPATH fallback)"
    say "the Go module proxy did not answer ($proxy_error); building against the GOPATH $(basename "$(dirname "$gopath")")/$(basename "$gopath")"
    if ! (cd "$here/go" && GO111MODULE=off GOPATH="$gopath" GOFLAGS= CGO_ENABLED=0 timeout 180 go build \
        -ldflags "-X 'main.library=$built_against (api.Lock)'" -o bin/go-peer . >"$log" 2>&1); then
        skipped+=("Go peer: 'go build' in GOPATH mode failed: $(tail -n 3 "$log" | tr '\n' ' ')")
        rm -f "$log"
        return
    fi
    rm -f "$log"
    did+=("built go/bin/go-peer ($(go version | cut -d' ' -f3), $built_against)")
}

# ---- Python: consul-lock 0.1.6 and python-consul from PyPI, plus the Python-2 import fix --
python_peer() {
    local py="${CONSUL_LOCK_PEER_PYTHON_BIN:-python3}"
    if ! command -v "$py" >/dev/null 2>&1; then
        skipped+=("Python peer: no $py")
        return
    fi
    if "$py" -c 'import consul_lock, consul, sys; sys.exit(0 if consul_lock.EphemeralLock else 1)' >/dev/null 2>&1; then
        skipped+=("Python peer: consul-lock 0.1.6 and python-consul are already installed and importable")
        return
    fi
    local log
    log=$(mktemp)
    if ! timeout 120 "$py" -m pip install -q consul-lock==0.1.6 python-consul >"$log" 2>&1; then
        skipped+=("Python peer: pip could not install consul-lock==0.1.6 python-consul (PyPI may be unreachable: $(tail -n 1 "$log"))")
        rm -f "$log"
        return
    fi
    rm -f "$log"
    did+=("pip installed consul-lock==0.1.6 and python-consul")
    local dir
    dir=$("$py" -c 'import importlib.util, os; print(os.path.dirname(importlib.util.find_spec("consul_lock").origin))' 2>/dev/null)
    if [[ -z "$dir" || ! -f "$dir/__init__.py" ]]; then
        skipped+=("Python peer: consul_lock was installed but its files were not found")
        return
    fi
    # consul-lock 0.1.6 is Python 2 code: its package uses implicit relative imports
    # ('from lock_impl import ...', 'import defaults'), which Python 3 rejects. Patch them.
    sed -i -e 's/^from lock_impl import /from .lock_impl import /' \
        -e 's/^import defaults$/from . import defaults/' "$dir/__init__.py" "$dir/lock_impl.py"
    say "PATCHED the installed consul-lock 0.1.6 for Python 3: its two Python-2 relative imports ('from lock_impl import', 'import defaults') in $dir/__init__.py and lock_impl.py now read 'from .lock_impl import', 'from . import defaults'"
    if "$py" -c 'import consul_lock; consul_lock.EphemeralLock' >/dev/null 2>&1; then
        did+=("patched consul_lock's Python-2 imports (sed on the installed files); it imports")
    else
        skipped+=("Python peer: consul_lock still does not import after the patch")
    fi
}

go_peer
python_peer
for d in "${did[@]}"; do say "did: $d"; done
for s in "${skipped[@]}"; do say "skipped: $s"; done
say "done in $((SECONDS - started)) s"
exit 0
