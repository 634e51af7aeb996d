#!/usr/bin/env bash
# Run a built desktop bundle the way a therapist's machine would, with no display:
#   bash packaging/check-bundle.sh [dist/tacit]
# 1. `tacit --version` prints the version of app/__init__.py (the one place it lives);
# 2. `tacit selftest` passes (crypto known answers, SQLCipher, keychain, Qt offscreen);
# 3. a new vault (the real Argon2id calibration, no test switch), a client and a note
#    through the bundled CLI, found again by search, and `tacit check`;
# 4. the desktop app starts offscreen on that vault and shows its unlock window
#    (TACIT_SMOKE_QUIT=1: app/ui/application.py quits once a window is up);
# then the bundle's size and the start times. Everything happens in a temporary HOME
# that is deleted at the end, with keyring's "fail" backend, so the user's own vault,
# settings and keychain are never touched. Sample data only. Exits non-zero on the
# first failure.
set -euo pipefail

BUNDLE=${1:-dist/tacit}
EXE="$BUNDLE/tacit"
ROOT=$(cd "$(dirname "$0")/.." && pwd)
[[ -x "$EXE" ]] || { echo "check-bundle: no executable at $EXE (run make package)" >&2; exit 1; }
VERSION=$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' "$ROOT/app/__init__.py")

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
export HOME="$WORK/home" XDG_CONFIG_HOME="$WORK/config" XDG_DATA_HOME="$WORK/data"
export XDG_CACHE_HOME="$WORK/cache" XDG_RUNTIME_DIR="$WORK/run"
export TACIT_VAULT="$WORK/vault" QT_QPA_PLATFORM=offscreen
export PYTHON_KEYRING_BACKEND=keyring.backends.fail.Keyring
unset TACIT_INSECURE_TEST_KDF TACIT_PASSPHRASE DISPLAY WAYLAND_DISPLAY
mkdir -p "$HOME" "$XDG_RUNTIME_DIR" && chmod 700 "$XDG_RUNTIME_DIR"

ms_now() { date +%s%3N; }
step() { printf '\n== %s\n' "$*"; }
fail() { echo "check-bundle: FAILED: $*" >&2; exit 1; }
json_field() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }

step "tacit --version"
t0=$(ms_now)
out=$("$EXE" --version)
version_ms=$(( $(ms_now) - t0 ))
echo "$out"
[[ "$out" == "tacit $VERSION" ]] || fail "--version printed '$out', expected 'tacit $VERSION'"

step "tacit selftest"
"$EXE" selftest || fail "selftest"
[[ $("$EXE" selftest --json | json_field '["ok"]') == "True" ]] || fail "selftest --json"

step "a vault, a client and a note (real KDF)"
t0=$(ms_now)
export TACIT_PASSPHRASE="bundle check: seven quiet harbours at dusk"
"$EXE" init --json >/dev/null || fail "init"
init_ms=$(( $(ms_now) - t0 ))
client=$("$EXE" client add "Sample Client" --json | json_field '["id"]')
note=$(printf 'Subjective: sample text for the bundle check.\n' \
    | "$EXE" note new --client "$client" --template soap --title "Bundle check" --json \
    | json_field '["id"]')
found=$("$EXE" note search "bundle" --json | json_field '[0]["id"]')
[[ "$found" == "$note" ]] || fail "the new note was not found by search"
"$EXE" check --json >/dev/null || fail "tacit check"
echo "vault created in ${init_ms} ms; client $client, note $note found by search"
unset TACIT_PASSPHRASE

step "the desktop app, offscreen"
t0=$(ms_now)
TACIT_SMOKE_QUIT=1 "$EXE" gui 2>"$WORK/gui.err" || { cat "$WORK/gui.err" >&2; fail "tacit gui"; }
gui_ms=$(( $(ms_now) - t0 ))
grep "smoke:" "$WORK/gui.err"
grep -q "smoke: showing .*unlock" "$WORK/gui.err" || fail "the unlock window did not show"
t0=$(ms_now)
TACIT_SMOKE_QUIT=1 "$EXE" gui 2>/dev/null || fail "tacit gui (second start)"
gui_warm_ms=$(( $(ms_now) - t0 ))

step "figures"
size=$(du -sh "$BUNDLE" | cut -f1)
files=$(find "$BUNDLE" -type f | wc -l)
echo "bundle:      $BUNDLE  $size in $files files"
echo "--version:   ${version_ms} ms"
echo "app start:   ${gui_ms} ms to the unlock window and out (first), ${gui_warm_ms} ms (again)"
echo "init:        ${init_ms} ms (Argon2id calibration included)"
echo "check-bundle: OK"
