#!/bin/sh
# vmrescue payload for `az vm repair run --custom-script-file THIS --run-on-repair`.
#
# The vm-repair extension appends this file to its driver and runs it with
# `bash -e`, no arguments, from inside a downloaded script-library folder. Its
# stdout is collapsed to one line with `echo $(cat log)` (so glob characters
# would be expanded on the repair VM) and only the last 4096 bytes come back.
# So: every line starts with a level prefix, messages carry no glob
# characters, details go to the full log on the repair VM, and the short
# summary comes last. Exit 0 only when the repair was applied and verified (or
# there was nothing to do).
#
# Settings: `vmrescue az-payload` bakes them into a copy of this file. As a
# library script (`--run-id`), positional values arrive in this order:
#   recipe kernel module dry_run verify binary_url binary_sha256
# Environment overrides (tests): VMRESCUE_DISK (default the Azure LUN 0 path),
# VMRESCUE_LOG_DIR (default /var/log/vmrescue), VMRESCUE_BIN.
set -u

# --- baked settings (replaced by vmrescue az-payload) ---------------------
RECIPE="auto"
KERNEL=""
MODULE=""
DRY_RUN="0"
VERIFY=""
BINARY_URL=""
BINARY_SHA256=""
EXPECTED_VERSION=""
# --- end of baked settings -------------------------------------------------

[ $# -ge 1 ] && [ -n "$1" ] && RECIPE=$1
[ $# -ge 2 ] && KERNEL=$2
[ $# -ge 3 ] && MODULE=$3
[ $# -ge 4 ] && DRY_RUN=$4
[ $# -ge 5 ] && VERIFY=$5
[ $# -ge 6 ] && BINARY_URL=$6
[ $# -ge 7 ] && BINARY_SHA256=$7

DISK=${VMRESCUE_DISK:-/dev/disk/azure/scsi1/lun0}
LOG_DIR=${VMRESCUE_LOG_DIR:-/var/log/vmrescue}
STAMP=$(date -u '+%Y%m%d-%H%M%S')
mkdir -p "$LOG_DIR" 2>/dev/null || LOG_DIR=/tmp
FULL_LOG="$LOG_DIR/runcommand-$STAMP.log"
: >"$FULL_LOG"

# Replaces characters a shell would expand when the log is echoed unquoted.
safe() { printf '%s' "$*" | sed -e 's/\*/<star>/g' -e 's/?/<q>/g' -e 's/\[/(/g' -e 's/\]/)/g'; }
say() {
  level=$1
  shift
  line="[$level $(date -u '+%m/%d/%Y %H:%M:%S')]$(safe "$*")"
  printf '%s\n' "$line"
  printf '%s\n' "$line" >>"$FULL_LOG"
}
fail() {
  say Error "$*"
  say Info "full log on the repair VM: $FULL_LOG"
  exit 1
}

sha256_of() { sha256sum "$1" | cut -d' ' -f1; }

find_binary() {
  if [ -n "${VMRESCUE_BIN:-}" ] && [ -x "$VMRESCUE_BIN" ]; then
    echo "$VMRESCUE_BIN"
    return 0
  fi
  if command -v vmrescue >/dev/null 2>&1; then
    found=$(command -v vmrescue)
    version=$("$found" --version 2>/dev/null | cut -d' ' -f2)
    if [ -z "$EXPECTED_VERSION" ] || [ "$version" = "$EXPECTED_VERSION" ]; then
      echo "$found"
      return 0
    fi
    say Warning "vmrescue $version on PATH is not the expected $EXPECTED_VERSION" >&2
  fi
  [ -n "$BINARY_URL" ] || return 1
  [ -n "$BINARY_SHA256" ] || { say Error "binary_url given without binary_sha256: refusing an unverified download" >&2; return 1; }
  dir=/var/lib/vmrescue/bin
  mkdir -p "$dir" || return 1
  tmp="$dir/vmrescue.download"
  if command -v curl >/dev/null 2>&1; then
    curl -fsSL --retry 3 -o "$tmp" "$BINARY_URL" >>"$FULL_LOG" 2>&1 || { say Error "download failed: $BINARY_URL" >&2; return 1; }
  elif command -v wget >/dev/null 2>&1; then
    wget -q -O "$tmp" "$BINARY_URL" >>"$FULL_LOG" 2>&1 || { say Error "download failed: $BINARY_URL" >&2; return 1; }
  else
    say Error "neither curl nor wget is installed on the repair VM" >&2
    return 1
  fi
  got=$(sha256_of "$tmp")
  if [ "$got" != "$BINARY_SHA256" ]; then
    rm -f "$tmp"
    say Error "sha256 mismatch for the downloaded binary: got $got, expected $BINARY_SHA256" >&2
    return 1
  fi
  chmod 0755 "$tmp" && mv "$tmp" "$dir/vmrescue" && echo "$dir/vmrescue"
}

say Info "vmrescue Run Command payload: recipe $RECIPE on $DISK"
BIN=$(find_binary) || fail "no usable vmrescue binary (none on PATH and no verified download)"
say Info "using $BIN ($("$BIN" --version 2>/dev/null))"

# --- baked console log (vmrescue az-payload --log) -------------------------
CONSOLE_LOG=""
# --- end of baked console log -----------------------------------------------

set -- --output runcommand --log-file "$FULL_LOG.vmrescue" repair "$RECIPE" --yes --disk "$DISK"
[ -n "$CONSOLE_LOG" ] && set -- "$@" --log "$CONSOLE_LOG"
[ -n "$KERNEL" ] && set -- "$@" --param "kernel=$KERNEL"
[ -n "$MODULE" ] && set -- "$@" --param "module=$MODULE"
[ "$DRY_RUN" = 1 ] && set -- "$@" --dry-run
[ "$VERIFY" = boot ] && set -- "$@" --verify-boot

status=0
"$BIN" "$@" 2>>"$FULL_LOG" || status=$?
cat "$FULL_LOG.vmrescue" >>"$FULL_LOG" 2>/dev/null || true
say Info "full log on the repair VM: $FULL_LOG"
if [ "$status" -ne 0 ]; then
  say Error "vmrescue exited $status (see the exit codes in the vmrescue README)"
  exit "$status"
fi
exit 0
