#!/bin/sh
# Make sure headless Chromium is there for tests/test_status_browser.py.
#
#   tools/need_chromium.sh
#
# If `chromium` (or `chromium-browser`) is on PATH, say so and stop. Else, where
# apt-get exists and we are root (or sudo works without a password), install
# Debian's `chromium` package; `apt-get update` runs first only if the install
# fails (no package lists yet), then the install is tried once more.
#
# This never fails `make test`: without apt, root or sudo, or when the install
# fails, it says so and exits 0, and the browser test is skipped with a reason
# that says how to install Chromium.
set -u

say() { echo "need_chromium: $*"; }

for name in chromium chromium-browser; do
    if found=$(command -v "$name" 2>/dev/null); then
        say "found $found; nothing to do"
        exit 0
    fi
done

if ! command -v apt-get >/dev/null 2>&1; then
    say "chromium is missing and there is no apt-get here; the browser test will be skipped"
    exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
    as_root=""
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    as_root="sudo -n"
else
    say "chromium is missing, and installing it needs root (or sudo without a password):"
    say "  apt-get install -y chromium"
    say "the browser test will be skipped"
    exit 0
fi

install() {
    # shellcheck disable=SC2086 # $as_root is empty or "sudo -n" on purpose
    $as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium
}

say "chromium is missing: ${as_root:+(with sudo) }apt-get install -y chromium"
if install; then
    say "installed $(command -v chromium)"
    exit 0
fi
say "the install failed; running apt-get update (the package lists may be missing) and trying again"
# shellcheck disable=SC2086
if $as_root apt-get update -q && install; then
    say "installed $(command -v chromium)"
else
    say "could not install chromium; the browser test will be skipped"
fi
exit 0
