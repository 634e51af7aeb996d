#!/usr/bin/env bash
# System packages the app and its tests need on Debian/Ubuntu, installed when missing.
# Qt's offscreen platform needs EGL/GL, xkbcommon, fontconfig and a font; the keychain
# test needs a real Secret Service (gnome-keyring) on a private D-Bus session; the sync
# server tests start a throwaway PostgreSQL cluster from the postgresql binaries; the
# /account web page test drives Debian's Chromium (/usr/bin/chromium) through Playwright.
# Idempotent and quick when everything is present. Elsewhere it only says what to do.
set -euo pipefail

# What the app needs to run; with --for-tests also what only the tests need (a
# PostgreSQL server for the sync server's tests, Chromium for the web page's), so
# `make run` does not pull a browser onto a therapist's machine.
PACKAGES=(libegl1 libgl1 libxkbcommon0 libfontconfig1 libglib2.0-0 libdbus-1-3
          fonts-dejavu-core dbus gnome-keyring)
if [[ "${1:-}" == "--for-tests" ]]; then
    PACKAGES+=(postgresql chromium)
fi
# The desktop bundle (make package) carries the X11 libraries Qt's xcb plugin needs, and
# PyInstaller reads binaries with binutils' objdump.
if [[ "${1:-}" == "--for-package" ]]; then
    PACKAGES+=(libxcb-icccm4 libxcb-keysyms1 libxcb-cursor0 binutils)
fi

if ! command -v dpkg-query >/dev/null 2>&1; then
    echo "system-deps: not a Debian-like system; install Qt's runtime libraries," \
         "dbus and gnome-keyring with your package manager" >&2
    exit 0
fi

missing=()
for pkg in "${PACKAGES[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
    [[ "$status" == "install ok installed" ]] || missing+=("$pkg")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

if [[ $(id -u) -eq 0 ]]; then
    echo "system-deps: installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
    echo "system-deps: missing ${missing[*]}; run: sudo apt-get install ${missing[*]}" >&2
fi
