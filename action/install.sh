#!/usr/bin/env bash
# Installs a released pinsync binary for this machine's OS and architecture
# into "$1/bin" (default ~/.pinsync), checking its SHA-256 against the
# release's SHA256SUMS; where the release has no binary for this machine,
# builds it with `cargo install --locked` instead.
#
# Environment:
#   PINSYNC_VERSION      `latest` (default) or a release tag such as `v0.2.0`
#   PINSYNC_REPOSITORY   owner/name on GitHub (default: the action's own)
#   PINSYNC_RELEASE_URL  where releases are downloaded from, in GitHub's
#                        layout: URL/download/TAG/ASSET and
#                        URL/latest/download/ASSET (default
#                        https://github.com/$PINSYNC_REPOSITORY/releases)
#   RUNNER_OS, RUNNER_ARCH  as GitHub sets them (Linux, macOS; X64, ARM64);
#                        `uname` is asked where they are not set
set -euo pipefail

dest="${1:-$HOME/.pinsync}"
version="${PINSYNC_VERSION:-latest}"
repository="${PINSYNC_REPOSITORY:-pinsync/pinsync}"
releases="${PINSYNC_RELEASE_URL:-https://github.com/$repository/releases}"

fail() {
  echo "pinsync install: $*" >&2
  exit 1
}

# The release's name for this machine (a Rust target triple).
target() {
  local os="${RUNNER_OS:-$(uname -s)}" arch="${RUNNER_ARCH:-$(uname -m)}"
  case "$arch" in
    X64 | x86_64 | amd64) arch=x86_64 ;;
    ARM64 | aarch64 | arm64) arch=aarch64 ;;
    *) arch="unsupported-$arch" ;;
  esac
  case "$os" in
    Linux) echo "$arch-unknown-linux-musl" ;;
    macOS | Darwin) echo "$arch-apple-darwin" ;;
    *) echo "$arch-unsupported-$os" ;;
  esac
}

case "$version" in
  latest) base="$releases/latest/download" ;;
  v[0-9]*) base="$releases/download/$version" ;;
  *) fail "PINSYNC_VERSION must be \`latest\` or a tag such as v0.2.0, not \`$version\`" ;;
esac

triple="$(target)"
asset="pinsync-$triple.tar.gz"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

sha256() {
  if command -v sha256sum >/dev/null; then
    sha256sum "$1" | cut -d' ' -f1
  else
    shasum -a 256 "$1" | cut -d' ' -f1
  fi
}

# `curl --fail` exits 22 on an HTTP error (a 404: no such asset).
fetch() {
  curl --fail --silent --show-error --location --retry 3 --proto '=https,http' \
    --output "$2" "$1"
}

mkdir -p "$dest/bin"
if fetch "$base/SHA256SUMS" "$work/SHA256SUMS" 2>"$work/err" &&
  grep -q " \*\?$asset\$" "$work/SHA256SUMS"; then
  fetch "$base/$asset" "$work/$asset" || fail "cannot download $base/$asset"
  expected="$(grep " \*\?$asset\$" "$work/SHA256SUMS" | head -n1 | cut -d' ' -f1)"
  actual="$(sha256 "$work/$asset")"
  [ "$expected" = "$actual" ] ||
    fail "$asset has SHA-256 $actual, but SHA256SUMS says $expected: not installed"
  tar -xzf "$work/$asset" -C "$work"
  [ -f "$work/pinsync" ] || fail "$asset holds no pinsync binary"
  install -m 0755 "$work/pinsync" "$dest/bin/pinsync"
  echo "pinsync install: $asset ($version) checked and installed in $dest/bin"
else
  # No binary for this machine (or no release at all): build it.
  echo "pinsync install: no $asset in $base; building it with cargo install --locked" >&2
  command -v cargo >/dev/null || fail "no release binary for $triple, and cargo is not installed"
  args=(install --locked --root "$dest" pinsync)
  [ "$version" = latest ] || args+=(--version "${version#v}")
  cargo "${args[@]}"
fi
"$dest/bin/pinsync" --version
