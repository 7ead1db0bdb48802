#!/usr/bin/env bash
# Find or build a free-threaded CPython 3.13 ("3.13t") for the project.
#
#   tools/ft_python.sh              find one, or build one into the cache;
#                                   stdout gets only the interpreter's path
#                                   (so it is also the last line); progress and
#                                   errors go to stderr.
#   tools/ft_python.sh --check-gil PYTHON
#                                   fail unless PYTHON runs without the GIL:
#                                   with PYTHON_GIL=0, and also in the default
#                                   mode after importing neoleasepool, pytest
#                                   and every extension module installed in
#                                   its environment (under PYTHON_GIL=0 an
#                                   extension not marked free-threading-safe
#                                   cannot turn the GIL back on, so that check
#                                   has to run without it).
#
# Where it looks, in order: $NEOLEASEPOOL_FT_PYTHON, python3.13t on PATH,
# pyenv's 3.13.*t versions, then the cache ($NEOLEASEPOOL_FT_PREFIX, by default
# ~/.cache/neoleasepool/python3.13t).  An interpreter is taken only if it is
# CPython 3.13 built with --disable-gil and ssl, ctypes, sqlite3, zlib and venv
# import.
#
# The build: Debian's python3.13 source package from trixie, fetched through a
# temporary apt configuration (its own sources list, lists and cache in a temp
# dir; the system's sources and lists are not touched) with a deb-src line on
# the mirror the machine's own sources use ($NEOLEASEPOOL_DEBIAN_MIRROR
# overrides it).  The upstream source is unpacked without Debian's patches
# (they adapt CPython to Debian's /usr layout), configured with --disable-gil
# (no --enable-optimizations: PGO would make it several times slower), built
# with one job per core and installed into the cache.  Missing build
# dependencies are installed with apt-get, which needs root or password-less
# sudo (fetching and building do not).  The build log is kept next to the
# cache dir ($PREFIX-build.log).
set -euo pipefail

say() { printf 'ft-python: %s\n' "$*" >&2; }
die() { printf 'ft-python: error: %s\n' "$*" >&2; exit 1; }

# What a usable interpreter must pass (run with -I -X gil=0: -I ignores
# PYTHON_GIL, and -X gil=0 is refused by a build that has the GIL).
FT_PROBE='
import sys, sysconfig
assert sys.implementation.name == "cpython", sys.implementation.name
assert sys.version_info[:2] == (3, 13), sys.version
assert sysconfig.get_config_var("Py_GIL_DISABLED"), "not a --disable-gil build"
assert not sys._is_gil_enabled(), "GIL enabled with PYTHON_GIL=0"
import ssl, ctypes, sqlite3, zlib, bz2, lzma, venv, ensurepip
'

is_ft_python() {
    [ -n "$1" ] && [ -x "$1" ] || return 1
    "$1" -I -X gil=0 -c "$FT_PROBE" >/dev/null 2>&1
}

# --check-gil PYTHON ------------------------------------------------------
check_gil() {
    local py=$1
    PYTHON_GIL=0 "$py" -c '
import sys, sysconfig
if not sysconfig.get_config_var("Py_GIL_DISABLED"):
    sys.exit(f"{sys.executable} is not a free-threaded build")
if sys._is_gil_enabled():
    sys.exit("the GIL is enabled although PYTHON_GIL=0")
print(f"ft-python: {sys.executable} {sys.version.split()[0]}: GIL disabled with PYTHON_GIL=0")
' >&2 || return 1
    # Default mode: here a module that has not declared Py_mod_gil
    # NOT_USED turns the GIL on (with a RuntimeWarning, made an error).
    env -u PYTHON_GIL "$py" -W error::RuntimeWarning -c '
import importlib, pathlib, pkgutil, sys, sysconfig

def gil_check(what):
    if sys._is_gil_enabled():
        sys.exit(f"ft-python: importing {what} enabled the GIL: "
                 "it is not marked as free-threading-safe")

gil_check("nothing (at startup)")
names = ["neoleasepool", "pytest", "pytest_timeout"]
import neoleasepool
names += [m.name for m in pkgutil.walk_packages(neoleasepool.__path__, "neoleasepool.")
          if not m.name.endswith(".__main__")]
# Every extension module installed in this environment.
seen = set()
for key in ("purelib", "platlib"):
    root = pathlib.Path(sysconfig.get_paths()[key])
    if root in seen or not root.is_dir():
        continue
    seen.add(root)
    for so in sorted(root.rglob("*.so")):
        rel = so.relative_to(root).with_suffix("")
        parts = list(rel.parts)
        parts[-1] = parts[-1].split(".")[0]
        if all(p.isidentifier() for p in parts):
            names.append(".".join(parts))
checked = 0
for name in names:
    try:
        importlib.import_module(name)
    except ImportError as exc:  # an optional dependency that is absent
        print(f"ft-python: skipped {name}: {exc}", file=sys.stderr)
        continue
    except RuntimeWarning as exc:  # "The global interpreter lock (GIL) has been enabled ..."
        if "global interpreter lock" not in str(exc):
            raise
        sys.exit(f"ft-python: importing {name} enabled the GIL: {exc}")
    gil_check(name)
    checked += 1
print(f"ft-python: GIL still disabled after importing {checked} modules "
      "without PYTHON_GIL", file=sys.stderr)
'
}

if [ "${1:-}" = "--check-gil" ]; then
    [ $# -eq 2 ] || die "usage: $0 --check-gil PYTHON"
    check_gil "$2"
    exit
fi
[ $# -eq 0 ] || die "usage: $0 [--check-gil PYTHON]"

# Look for an existing one ---------------------------------------------------
CACHE_ROOT=${XDG_CACHE_HOME:-$HOME/.cache}/neoleasepool
PREFIX=${NEOLEASEPOOL_FT_PREFIX:-$CACHE_ROOT/python3.13t}
STAMP=$PREFIX/.neoleasepool-ft-build
CACHED=$PREFIX/bin/python3.13t

found() { say "using $1"; printf '%s\n' "$1"; exit 0; }

if [ -n "${NEOLEASEPOOL_FT_PYTHON:-}" ]; then
    is_ft_python "$NEOLEASEPOOL_FT_PYTHON" ||
        die "NEOLEASEPOOL_FT_PYTHON=$NEOLEASEPOOL_FT_PYTHON is not a usable free-threaded CPython 3.13"
    found "$NEOLEASEPOOL_FT_PYTHON"
fi
candidates=()
if p=$(command -v python3.13t 2>/dev/null); then candidates+=("$p"); fi
if command -v pyenv >/dev/null 2>&1; then
    for v in $(pyenv versions --bare --skip-aliases 2>/dev/null | grep -E '^3\.13\.[0-9]+t$' || true); do
        candidates+=("$(pyenv root)/versions/$v/bin/python3.13t")
    done
fi
for p in "${candidates[@]}"; do
    # A shim or wrapper resolves to the real binary.
    real=$("$p" -I -c 'import sys; print(sys.executable)' 2>/dev/null) || continue
    if is_ft_python "$real"; then found "$real"; fi
    say "skipping $p: not a usable free-threaded CPython 3.13"
done
if [ -f "$STAMP" ] && is_ft_python "$CACHED"; then found "$CACHED"; fi

# Build one --------------------------------------------------------------------
mkdir -p "$(dirname "$PREFIX")"
# One build at a time (two tox or make runs may start together).
exec 9>"$PREFIX.lock"
flock 9
if [ -f "$STAMP" ] && is_ft_python "$CACHED"; then found "$CACHED"; fi

command -v apt-get >/dev/null 2>&1 ||
    die "no free-threaded CPython 3.13 found and apt-get is not available to build one from Debian's source package; install python3.13t and put it on PATH, or set NEOLEASEPOOL_FT_PYTHON"
if [ "$(id -u)" -eq 0 ]; then
    SUDO=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO=(sudo -n)
else
    SUDO=(false)  # only fatal if a build dependency is missing (see below)
fi

# The mirror: the first enabled "deb" source of the machine's own release
# (its suites include the codename, e.g. bookworm), in one-line or deb822 form.
APT_ETC=${APT_ETC:-/etc/apt}
find_mirror() {
    local codename=$1 f
    for f in "$APT_ETC"/sources.list "$APT_ETC"/sources.list.d/*.list; do
        if [ -f "$f" ]; then cat "$f"; fi
    done | awk -v cn="$codename" '
        { sub(/#.*/, "") }
        $1 == "deb" {
            i = 2
            if ($i ~ /^\[/) { while ($i !~ /\]$/ && i < NF) i++; i++ }
            uri = $(i); suite = $(i + 1)
            if (uri ~ /^https?:\/\//) {
                if (suite == cn && !best) best = uri
                if (!any && uri !~ /security/) any = uri
            }
        }
        END { if (best) print "oneline " best; else if (any) print "oneline-any " any }'
    for f in "$APT_ETC"/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        # deb822: stanzas separated by blank lines; comment lines start with #.
        awk -v cn="$codename" '
            function flush() {
                if (types ~ /(^| )deb( |$)/ && enabled != "no") {
                    n = split(uris, u, " "); m = split(suites, s, " ")
                    for (j = 1; j <= n; j++) {
                        if (u[j] !~ /^https?:\/\//) continue
                        for (k = 1; k <= m; k++) if (s[k] == cn && !best) best = u[j]
                        if (!any && u[j] !~ /security/) any = u[j]
                    }
                }
                types = uris = suites = enabled = ""; key = ""
            }
            /^[ \t]*#/ { next }
            /^[ \t]*$/ { flush(); next }
            /^[A-Za-z-]+:/ {
                key = tolower(substr($0, 1, index($0, ":") - 1))
                val = substr($0, index($0, ":") + 1)
            }
            /^[ \t]/ { val = $0 }  # a continuation line
            {
                gsub(/^[ \t]+|[ \t]+$/, "", val)
                if (key == "types") types = types " " val
                else if (key == "uris") uris = uris " " val
                else if (key == "suites") suites = suites " " val
                else if (key == "enabled") enabled = tolower(val)
            }
            END { flush(); if (best) print "deb822 " best; else if (any) print "deb822-any " any }' "$f"
    done
}

# shellcheck disable=SC1091
codename=$(. /etc/os-release 2>/dev/null && echo "${VERSION_CODENAME:-}")
if [ -n "${NEOLEASEPOOL_DEBIAN_MIRROR:-}" ]; then
    mirror=$NEOLEASEPOOL_DEBIAN_MIRROR
else
    mirrors=$(find_mirror "$codename")
    # Prefer a source that carries the release itself over any other.
    mirror=$(printf '%s\n' "$mirrors" | awk '$1 !~ /-any$/ {print $2; exit}')
    [ -n "$mirror" ] || mirror=$(printf '%s\n' "$mirrors" | awk 'NF {print $2; exit}')
    [ -n "$mirror" ] ||
        die "no Debian mirror found in /etc/apt/sources.list or /etc/apt/sources.list.d/; set NEOLEASEPOOL_DEBIAN_MIRROR (e.g. http://deb.debian.org/debian)"
fi
mirror=${mirror%/}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/neoleasepool-ft.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
# As root, apt downloads as the unprivileged _apt user where it can reach.
chmod 755 "$tmp"
mkdir -p "$tmp/apt/lists/partial" "$tmp/apt/cache/archives/partial" "$tmp/src"
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
if [ -f "$keyring" ]; then
    echo "deb-src [signed-by=$keyring] $mirror trixie main" >"$tmp/apt/sources.list"
else
    echo "deb-src $mirror trixie main" >"$tmp/apt/sources.list"
fi
APT_TMP=(-q
    -o "Dir::Etc::sourcelist=$tmp/apt/sources.list" -o Dir::Etc::sourceparts=-
    -o "Dir::State::Lists=$tmp/apt/lists" -o "Dir::Cache=$tmp/apt/cache"
    -o Acquire::Languages=none -o APT::Get::List-Cleanup=0)
# apt-get source downloads into the current directory.
if [ "$(id -u)" -eq 0 ] && id _apt >/dev/null 2>&1; then chown _apt "$tmp/src"; fi
LOG=$PREFIX-build.log
: >"$LOG"
fail_log() { say "last lines of $LOG:"; tail -n 40 "$LOG" >&2; die "$1"; }

# Build dependencies: what configure needs for ssl, ctypes (libffi), sqlite3,
# zlib (pip, venv), bz2, lzma, readline, curses, dbm, uuid and decimal.
deps=(build-essential gcc make pkg-config dpkg-dev xz-utils
      libssl-dev libffi-dev zlib1g-dev libsqlite3-dev libbz2-dev liblzma-dev
      libreadline-dev libncurses-dev libgdbm-dev libgdbm-compat-dev uuid-dev
      libexpat1-dev)
missing=()
for d in "${deps[@]}"; do
    dpkg-query -W -f='${Status}' "$d" 2>/dev/null | grep -q 'install ok installed' || missing+=("$d")
done
if [ ${#missing[@]} -gt 0 ]; then
    [ "${SUDO[*]}" != false ] ||
        die "building CPython needs ${missing[*]}, and installing them needs root or password-less sudo; install them, or provide python3.13t on PATH or via NEOLEASEPOOL_FT_PYTHON"
    say "installing build dependencies: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    if ! "${SUDO[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}" >>"$LOG" 2>&1; then
        # The machine's own package lists may be missing or stale.
        say "apt-get install failed; refreshing the machine's package lists and retrying"
        "${SUDO[@]}" apt-get update -q >>"$LOG" 2>&1 || fail_log "apt-get update failed"
        "${SUDO[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}" >>"$LOG" 2>&1 ||
            fail_log "could not install the build dependencies: ${missing[*]}"
    fi
fi

start=$SECONDS
say "fetching Debian's python3.13 source package (trixie, $mirror)"
apt-get "${APT_TMP[@]}" update >>"$LOG" 2>&1 ||
    fail_log "apt-get update with a deb-src line for trixie on $mirror failed"
(cd "$tmp/src" && apt-get "${APT_TMP[@]}" source --download-only python3.13) >>"$LOG" 2>&1 ||
    fail_log "apt-get source --download-only python3.13 failed"
dsc=$(find "$tmp/src" -maxdepth 1 -name 'python3.13_*.dsc' | head -n 1)
[ -n "$dsc" ] || fail_log "no python3.13 .dsc was downloaded"
say "unpacking $(basename "$dsc") (upstream source, without Debian's patches)"
(cd "$tmp/src" && dpkg-source --skip-patches -x "$dsc" python3.13) >>"$LOG" 2>&1 ||
    fail_log "dpkg-source -x failed"
srcdir=$tmp/src/python3.13

rm -rf "$PREFIX"
jobs=$(nproc 2>/dev/null || echo 2)
say "configure --disable-gil --prefix=$PREFIX"
(cd "$srcdir" && ./configure --disable-gil --prefix="$PREFIX" --with-ensurepip=install) >>"$LOG" 2>&1 ||
    fail_log "configure failed"
say "make -j$jobs (2 to 4 minutes on 2 cores; log: $LOG)"
make -C "$srcdir" -j"$jobs" >>"$LOG" 2>&1 || fail_log "make failed"
# Extension modules that configure or setup skipped (a missing -dev package).
if grep -E -A3 'necessary bits to build these optional modules were not found|Following modules built successfully but were removed|Failed to build these modules' "$LOG" >&2; then
    say "warning: some optional modules were not built (above)"
fi
say "make install"
make -C "$srcdir" install >>"$LOG" 2>&1 || fail_log "make install failed"

is_ft_python "$CACHED" || {
    "$CACHED" -I -X gil=0 -c "$FT_PROBE" >>"$LOG" 2>&1 || true
    fail_log "the built interpreter $CACHED does not pass the checks (free-threaded 3.13 with ssl, ctypes, sqlite3, zlib, venv)"
}
# venv and pip must work: a venv gets pip from ensurepip.
if ! { "$CACHED" -m venv "$tmp/venv" && "$tmp/venv/bin/python" -m pip --version; } >>"$LOG" 2>&1; then
    fail_log "python -m venv with pip does not work with $CACHED"
fi
version=$(basename "$dsc" .dsc)
echo "$version built $(date -u +%Y-%m-%dT%H:%M:%SZ) in $((SECONDS - start))s from $mirror trixie" >"$STAMP"
say "built ${version#python3.13_} in $((SECONDS - start))s"
found "$CACHED"
