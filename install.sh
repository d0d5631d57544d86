#!/bin/sh
# Installs the anycable-ts release binary for this machine (Linux or macOS, x64 or arm64, glibc or
# musl), after checking it against the release's SHA256SUMS.
#
#   curl -fsSL https://github.com/anycable-ts/anycable-ts/releases/latest/download/install.sh | sh
#   sh install.sh [--version <v>] [--prefix <dir>] [--base-url <url>] [--as-anycable-go]
#
# --version <v>     release to install: `latest` (default), `0.1.0` or `v0.1.0` (the tag v0.1.0)
# --prefix <dir>    where to put the binary (default /usr/local/bin when writable, else ~/.local/bin)
# --base-url <url>  a mirror laid out like GitHub's release download path:
#                   <url>/<tag>/anycable-ts-<os>-<arch> and <url>/<tag>/SHA256SUMS
#                   (env ANYCABLE_TS_DOWNLOAD_URL; default the anycable-ts GitHub releases)
# --as-anycable-go  also install it under the name anycable-go (a symlink), for Procfiles, systemd
#                   units and `anycable --server-command=anycable-go` written for anycable-go
#
# Nothing is half-installed: the download goes to a temporary directory, is verified, then copied
# next to its destination and renamed into place.
set -eu

GITHUB_RELEASES="https://github.com/anycable-ts/anycable-ts/releases"

base_url="${ANYCABLE_TS_DOWNLOAD_URL:-}"
version="${ANYCABLE_TS_VERSION:-latest}"
prefix=""
as_anycable_go=0
tmp=""
part=""

die() {
  printf 'install.sh: %s\n' "$*" >&2
  exit 1
}

say() {
  printf '%s\n' "$*"
}

usage() {
  cat <<'USAGE'
usage: sh install.sh [--version <v>] [--prefix <dir>] [--base-url <url>] [--as-anycable-go]
  --version <v>     latest (default), 0.1.0 or v0.1.0           env ANYCABLE_TS_VERSION
  --prefix <dir>    default /usr/local/bin when writable, else ~/.local/bin
  --base-url <url>  mirror with <url>/<tag>/<asset> and <url>/<tag>/SHA256SUMS
                    (default the GitHub releases)                env ANYCABLE_TS_DOWNLOAD_URL
  --as-anycable-go  also install it as anycable-go (a symlink)
USAGE
}

cleanup() {
  if [ -n "$part" ]; then rm -f "$part"; fi
  if [ -n "$tmp" ]; then rm -rf "$tmp"; fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

need_value() {
  [ "$2" -ge 2 ] || die "$1 needs a value"
}

while [ $# -gt 0 ]; do
  case "$1" in
    --version) need_value "$1" $#; version=$2; shift 2 ;;
    --version=*) version=${1#*=}; shift ;;
    --prefix) need_value "$1" $#; prefix=$2; shift 2 ;;
    --prefix=*) prefix=${1#*=}; shift ;;
    --base-url) need_value "$1" $#; base_url=$2; shift 2 ;;
    --base-url=*) base_url=${1#*=}; shift ;;
    --as-anycable-go) as_anycable_go=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) die "unknown option: $1 (see --help)" ;;
  esac
done

# --- platform ------------------------------------------------------------------------------------
os=$(uname -s)
case "$os" in
  Linux) os=linux ;;
  Darwin) os=darwin ;;
  MINGW* | MSYS* | CYGWIN*) die "on Windows download anycable-ts-windows-x64.exe from $GITHUB_RELEASES" ;;
  *) die "unsupported operating system: $os (supported: Linux, Darwin)" ;;
esac

machine=$(uname -m)
case "$machine" in
  x86_64 | amd64) arch=x64 ;;
  aarch64 | arm64) arch=arm64 ;;
  *) die "unsupported architecture: $machine (supported: x86_64/amd64, aarch64/arm64)" ;;
esac

# musl (Alpine and friends) needs the musl build: ldd says which libc this is
libc=""
if [ "$os" = linux ]; then
  ldd_out=$(ldd --version 2>&1 || true)
  case "$ldd_out" in
    *musl*) libc=musl ;;
    *GLIBC* | *"GNU libc"* | *"GNU C Library"*) libc=glibc ;;
    *)
      for loader in /lib/ld-musl-*.so.1; do
        if [ -e "$loader" ]; then libc=musl; fi
      done
      ;;
  esac
fi

asset="anycable-ts-$os-$arch"
if [ "$libc" = musl ]; then
  [ "$arch" = x64 ] || die "no musl build for linux-$arch (musl builds: linux-x64); use a glibc system"
  asset="$asset-musl"
fi

# --- where from, where to ------------------------------------------------------------------------
case "$version" in
  latest) tag=latest ;;
  [0-9]*) tag="v$version" ;;
  *) tag=$version ;;
esac
if [ -n "$base_url" ]; then
  url="${base_url%/}/$tag"
elif [ "$tag" = latest ]; then
  url="$GITHUB_RELEASES/latest/download"
else
  url="$GITHUB_RELEASES/download/$tag"
fi

if [ -n "$prefix" ]; then
  if [ ! -d "$prefix" ]; then
    mkdir -p "$prefix" 2>/dev/null || die "cannot create $prefix (no write access?); pick another --prefix"
  fi
  [ -w "$prefix" ] || die "no write access to $prefix; pick another --prefix or run as its owner"
elif [ -d /usr/local/bin ] && [ -w /usr/local/bin ]; then
  prefix=/usr/local/bin
else
  [ -n "${HOME:-}" ] || die "/usr/local/bin is not writable and HOME is not set; pass --prefix"
  prefix="$HOME/.local/bin"
  mkdir -p "$prefix" 2>/dev/null || die "cannot create $prefix; pass --prefix"
  [ -w "$prefix" ] || die "no write access to $prefix; pass --prefix"
fi

# --- download and verify -------------------------------------------------------------------------
tmp=$(mktemp -d 2>/dev/null || mktemp -d -t anycable-ts)

# fetch <url> <file>: one clear line and exit on any failure
fetch() {
  if command -v curl >/dev/null 2>&1; then
    rc=0
    status=$(curl -sSL -o "$2" -w '%{http_code}' "$1" 2>"$tmp/curl.err") || rc=$?
    case "$rc" in
      0) ;;
      18) die "download of $1 was cut short (fewer bytes than the server announced); nothing installed" ;;
      *) die "download of $1 failed: $(tr '\n' ' ' <"$tmp/curl.err")" ;;
    esac
    case "$status" in
      2??) ;;
      404) die "not found: $1 (no release $tag, or no $asset asset in it)" ;;
      *) die "download of $1 failed: HTTP $status" ;;
    esac
  elif command -v wget >/dev/null 2>&1; then
    wget -q -O "$2" "$1" || die "download of $1 failed (wget exit $?: not found, or a network error)"
  else
    die "neither curl nor wget is installed"
  fi
}

sha256() {
  if command -v sha256sum >/dev/null 2>&1; then
    sha256sum "$1" | cut -d ' ' -f 1
  elif command -v shasum >/dev/null 2>&1; then
    shasum -a 256 "$1" | cut -d ' ' -f 1
  elif command -v openssl >/dev/null 2>&1; then
    openssl dgst -sha256 "$1" | sed 's/^.*= *//'
  else
    die "no sha256sum, shasum or openssl to verify the download with"
  fi
}

say "anycable-ts $version ($asset) from $url"
fetch "$url/SHA256SUMS" "$tmp/SHA256SUMS"
expected=$(awk -v a="$asset" '{ n = $2; sub(/^\*/, "", n); if (n == a) { print tolower($1); exit } }' "$tmp/SHA256SUMS")
[ -n "$expected" ] || die "$url/SHA256SUMS lists no $asset; nothing installed"
fetch "$url/$asset" "$tmp/$asset"
actual=$(sha256 "$tmp/$asset")
[ "$actual" = "$expected" ] || die "checksum mismatch for $asset: SHA256SUMS says $expected, the download is $actual; nothing installed"

# --- install -------------------------------------------------------------------------------------
dest="$prefix/anycable-ts"
part="$prefix/.anycable-ts.partial.$$"
cp "$tmp/$asset" "$part" 2>/dev/null || die "cannot write to $prefix (read-only or full?); nothing installed"
chmod 755 "$part"
mv -f "$part" "$dest" || die "cannot move the binary into $dest; nothing installed"
part=""

if [ "$as_anycable_go" = 1 ]; then
  alias_path="$prefix/anycable-go"
  if [ -e "$alias_path" ] && [ ! -L "$alias_path" ]; then
    say "replacing $alias_path (a file, not a link) with a link to anycable-ts"
  fi
  part="$prefix/.anycable-go.partial.$$"
  ln -s anycable-ts "$part" || die "cannot create a link in $prefix"
  rm -f "$alias_path"
  mv -f "$part" "$alias_path" || die "cannot create $alias_path"
  part=""
fi

if installed=$("$dest" -v 2>&1); then
  say "installed anycable-ts $installed to $dest"
else
  say "installed $dest, but \`$dest -v\` failed ($installed): the binary may not run on this system" >&2
fi
if [ "$as_anycable_go" = 1 ]; then say "linked $prefix/anycable-go -> anycable-ts"; fi
case ":${PATH:-}:" in
  *":$prefix:"*) ;;
  *) say "note: $prefix is not on your PATH; add it with: export PATH=\"$prefix:\$PATH\"" ;;
esac
