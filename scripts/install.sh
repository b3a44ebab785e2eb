#!/bin/sh
# Installs vmrescue's static release binary for this machine's architecture,
# verified against the release's SHA256SUMS, plus its man page and shell
# completions. POSIX sh; needs curl or wget, sha256sum (or shasum/openssl),
# tar and gzip.
#
#   curl -fsSL https://github.com/vmrescue/vmrescue/releases/download/v0.1.0/install.sh | sudo sh
#
# Environment:
#   PREFIX=DIR                 install under DIR (default /usr/local)
#   VMRESCUE_RELEASE_URL=URL   where the assets are (default: the GitHub
#                              release); a query string such as an Azure SAS
#                              token is kept on every download
#   VMRESCUE_VERSION=X.Y.Z     another release than this script's
# Nothing is installed unless every downloaded file matches its sum.
set -eu

# One brace group: the shell parses it whole before running any of it, so a
# download cut short by `curl | sh` is a syntax error, never half a script.
{
VERSION=${VMRESCUE_VERSION:-0.1.0}
REPOSITORY=https://github.com/vmrescue/vmrescue
BASE_URL=${VMRESCUE_RELEASE_URL:-$REPOSITORY/releases/download/v$VERSION}
PREFIX=${PREFIX:-/usr/local}

die() {
  echo "vmrescue install: $*" >&2
  exit 1
}

machine=$(uname -m)
case $machine in
  x86_64 | amd64) arch=x86_64 ;;
  aarch64 | arm64) arch=aarch64 ;;
  *) die "unsupported architecture '$machine': releases exist for x86_64 (amd64) and aarch64 (arm64) only" ;;
esac
asset=vmrescue-$VERSION-$arch-linux-musl
docs=vmrescue-$VERSION-docs.tar.gz

# The URL of one asset; a query string (SAS token) goes after the file name.
asset_url() {
  case $BASE_URL in
    *\?*) printf '%s/%s?%s\n' "${BASE_URL%%\?*}" "$1" "${BASE_URL#*\?}" ;;
    *) printf '%s/%s\n' "${BASE_URL%/}" "$1" ;;
  esac
}

# Prints the URL without its query string: a SAS token is a secret.
shown_url() {
  printf '%s/%s\n' "${BASE_URL%%\?*}" "$1"
}

if command -v curl >/dev/null 2>&1; then
  fetch() { curl -fsSL --retry 3 -o "$2" "$(asset_url "$1")"; }
elif command -v wget >/dev/null 2>&1; then
  fetch() { wget -q -O "$2" "$(asset_url "$1")"; }
else
  die "neither curl nor wget is installed: install one of them, or download $asset, $docs and SHA256SUMS from $(shown_url '') by hand"
fi

if command -v sha256sum >/dev/null 2>&1; then
  sha256_of() { sha256sum "$1" | cut -d' ' -f1; }
elif command -v shasum >/dev/null 2>&1; then
  sha256_of() { shasum -a 256 "$1" | cut -d' ' -f1; }
elif command -v openssl >/dev/null 2>&1; then
  sha256_of() { openssl dgst -sha256 -r "$1" | cut -d' ' -f1; }
else
  die "no sha256sum, shasum or openssl to verify the download with"
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM

download() {
  fetch "$1" "$tmp/$1" || die "could not download $(shown_url "$1")"
}

verify() {
  expected=$(awk -v name="$1" '$2 == name || $2 == "*" name { print $1; exit }' "$tmp/SHA256SUMS")
  [ -n "$expected" ] || die "SHA256SUMS has no sum for $1: refusing to install it (nothing installed)"
  actual=$(sha256_of "$tmp/$1")
  [ "$actual" = "$expected" ] ||
    die "checksum mismatch for $1: expected $expected, got $actual: refusing to install it (nothing installed)"
}

download SHA256SUMS
download "$asset"
download "$docs"
verify "$asset"
verify "$docs"
chmod 0755 "$tmp/$asset"
"$tmp/$asset" --version >/dev/null 2>&1 || die "$asset does not run on this machine (nothing installed)"
mkdir "$tmp/docs"
gzip -dc "$tmp/$docs" | tar -xf - -C "$tmp/docs" || die "could not unpack $docs (nothing installed)"
d=$tmp/docs/vmrescue-$VERSION-docs

# Install files under a temporary name, then rename: a running copy is never
# overwritten in place.
put() {
  mkdir -p "$(dirname "$2")"
  cp "$1" "$2.new.$$"
  chmod "$3" "$2.new.$$"
  mv -f "$2.new.$$" "$2"
}
for page in "$d"/man/man1/*.1; do
  put "$page" "$PREFIX/share/man/man1/${page##*/}" 0644
done
put "$d/completions/vmrescue.bash" "$PREFIX/share/bash-completion/completions/vmrescue" 0644
put "$d/completions/_vmrescue" "$PREFIX/share/zsh/site-functions/_vmrescue" 0644
put "$d/completions/vmrescue.fish" "$PREFIX/share/fish/vendor_completions.d/vmrescue.fish" 0644
put "$tmp/$asset" "$PREFIX/bin/vmrescue" 0755
echo "installed $("$PREFIX/bin/vmrescue" --version) ($asset, sha256 $(sha256_of "$PREFIX/bin/vmrescue")) to $PREFIX/bin/vmrescue"
}
