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

# The HTTP status of a download (000: no answer); the body in "$2".
fetch() {
  local proto='=https'
  # Plain http only to this machine (a test's fake release).
  case "$1" in http://127.0.0.1[:/]* | http://localhost[:/]*) proto='=http' ;; esac
  curl --silent --show-error --location --retry 3 --proto "$proto" --proto-redir "$proto" \
    --output "$2" --write-out '%{http_code}' "$1" 2>"$work/err" || true
}

# The SHA-256 SHA256SUMS gives for $asset (`HASH  NAME` or `HASH *NAME`).
expected_sum() {
  awk -v a="$asset" '$2 == a || $2 == "*" a { print $1; exit }' "$work/SHA256SUMS"
}

mkdir -p "$dest/bin"
status="$(fetch "$base/SHA256SUMS" "$work/SHA256SUMS")"
case "$status" in
  200) expected="$(expected_sum)" ;;
  404) expected="" ;; # no release by that name
  *) fail "cannot download $base/SHA256SUMS (HTTP $status): $(cat "$work/err")" ;;
esac
if [ -n "$expected" ]; then
  status="$(fetch "$base/$asset" "$work/$asset")"
  [ "$status" = 200 ] || fail "cannot download $base/$asset (HTTP $status): $(cat "$work/err")"
  actual="$(sha256 "$work/$asset")"
  [ "$expected" = "$actual" ] ||
    fail "$asset has SHA-256 $actual, but SHA256SUMS says $expected: not installed"
  # Only the binary, as a plain file.
  mkdir "$work/out"
  tar -xzf "$work/$asset" -C "$work/out" pinsync || fail "$asset holds no pinsync binary"
  { [ -f "$work/out/pinsync" ] && [ ! -L "$work/out/pinsync" ]; } ||
    fail "$asset's pinsync is not a plain file"
  install -m 0755 "$work/out/pinsync" "$dest/bin/pinsync"
  echo "pinsync install: $asset ($version) checked and installed in $dest/bin"
else
  # The release has no binary for this machine: build it.
  echo "pinsync install: no $asset in $base; building it with cargo install --locked" >&2
  command -v cargo >/dev/null || fail "no release binary for $triple, and cargo is not installed"
  args=(install --locked --root "$dest" pinsync)
  [ "$version" = latest ] || args+=(--version "${version#v}")
  cargo "${args[@]}"
fi
"$dest/bin/pinsync" --version
