#!/bin/sh
# vmrescue payload for `az vm repair run --custom-script-file THIS --run-on-repair`.
#
# The vm-repair extension appends this file to its driver and runs it with
# `bash -e`, no arguments, from inside a downloaded script-library folder. Its
# stdout is collapsed to one line with `echo $(cat log)` (so glob characters
# would be expanded on the repair VM) and only the last 4096 bytes come back.
# So: every line starts with a level prefix, messages carry no glob
# characters, details go to the full log on the repair VM, and the short
# summary comes last.
#
# Exit 0 (the driver then prints [STATUS]::SUCCESS) only when the disk was
# repaired and verified, or proven to boot as it is (VERIFY=boot). A disk
# left unchanged otherwise exits 5: the driver must not call it a success.
#
# Settings: `vmrescue az-payload` bakes them into a copy of this file. As a
# library script (`--run-id`), positional values arrive in this order:
#   recipe kernel module dry_run verify binary_url binary_sha256
# The repair disk is the one `vmrescue scan --pick` chooses (one rule, in the
# binary): /dev/disk/azure/scsi1/lun0, else /dev/disk/azure/data/by-lun/0
# (NVMe sizes with azure-vm-utils), else the NVMe namespace after the OS
# disk's on its controller, else the only candidate disk; none: exit 3.
# Environment overrides (tests): VMRESCUE_DISK (skips the choice),
# VMRESCUE_LOG_DIR (default /var/log/vmrescue), VMRESCUE_BIN,
# VMRESCUE_BIN_DIR (where a download goes, default /var/lib/vmrescue/bin);
# vmrescue itself reads VMRESCUE_DEVICE_ROOT (a fake sysfs and /dev).
set -u

# --- baked settings (replaced by vmrescue az-payload) ---------------------
RECIPE="auto"
PARAMS=""
DRY_RUN="0"
VERIFY=""
BINARY_URL=""
BINARY_SHA256=""
RELEASE_URL=""
SHA256_X86_64=""
SHA256_AARCH64=""
CONSOLE_LOGS=""
EXPECTED_VERSION=""
# --- end of baked settings -------------------------------------------------

[ $# -ge 1 ] && [ -n "$1" ] && RECIPE=$1
[ $# -ge 2 ] && [ -n "$2" ] && PARAMS="$PARAMS kernel=$2"
[ $# -ge 3 ] && [ -n "$3" ] && PARAMS="$PARAMS module=$3"
[ $# -ge 4 ] && DRY_RUN=$4
[ $# -ge 5 ] && VERIFY=$5
[ $# -ge 6 ] && BINARY_URL=$6
[ $# -ge 7 ] && BINARY_SHA256=$7

DISK=${VMRESCUE_DISK:-}
LOG_DIR=${VMRESCUE_LOG_DIR:-/var/log/vmrescue}
BIN_DIR=${VMRESCUE_BIN_DIR:-/var/lib/vmrescue/bin}
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
# find_binary's stdout is captured: it reports on fd 3, the payload's stdout.
exec 3>&1
fail() {
  say Error "$*"
  say Info "full log on the repair VM: $FULL_LOG"
  exit 1
}

sha256_of() { sha256sum "$1" | cut -d' ' -f1; }

# The download to use for this repair VM: "URL SHA256", from an explicit
# binary URL or from the release folder and the sum baked in for `uname -m`.
download_source() {
  if [ -n "$BINARY_URL" ]; then
    [ -n "$BINARY_SHA256" ] || { say Error "binary_url given without binary_sha256: refusing an unverified download" >&3; return 1; }
    echo "$BINARY_URL $BINARY_SHA256"
    return 0
  fi
  [ -n "$RELEASE_URL" ] || return 1
  machine=$(uname -m)
  case "$machine" in
    x86_64 | amd64) arch=x86_64 sum=$SHA256_X86_64 ;;
    aarch64 | arm64) arch=aarch64 sum=$SHA256_AARCH64 ;;
    *) say Error "vmrescue has no release for the repair VM's architecture $machine" >&3; return 1 ;;
  esac
  [ -n "$sum" ] || { say Error "this payload carries no sha256 for $arch: regenerate it with az-payload --sha256sums SHA256SUMS" >&3; return 1; }
  echo "$RELEASE_URL/vmrescue-$EXPECTED_VERSION-$arch-linux-musl $sum"
}

fetch() {
  if command -v curl >/dev/null 2>&1; then
    curl -fsSL --retry 3 -o "$2" "$1" >>"$FULL_LOG" 2>&1
  elif command -v wget >/dev/null 2>&1; then
    wget -q -O "$2" "$1" >>"$FULL_LOG" 2>&1
  else
    say Error "neither curl nor wget is installed on the repair VM" >&3
    return 1
  fi
}

find_binary() {
  if [ -n "${VMRESCUE_BIN:-}" ] && [ -x "$VMRESCUE_BIN" ]; then
    echo "$VMRESCUE_BIN"
    return 0
  fi
  for found in "$(command -v vmrescue 2>/dev/null)" "$BIN_DIR/vmrescue"; do
    [ -n "$found" ] && [ -x "$found" ] || continue
    version=$("$found" --version 2>/dev/null | cut -d' ' -f2)
    if [ -z "$EXPECTED_VERSION" ] || [ "$version" = "$EXPECTED_VERSION" ]; then
      echo "$found"
      return 0
    fi
    say Warning "vmrescue $version at $found is not the expected $EXPECTED_VERSION" >&3
  done
  source=$(download_source) || return 1
  url=${source% *}
  want=${source##* }
  mkdir -p "$BIN_DIR" || return 1
  tmp="$BIN_DIR/vmrescue.download"
  say Info "downloading $url" >&3
  fetch "$url" "$tmp" || { rm -f "$tmp"; say Error "download failed: $url" >&3; return 1; }
  got=$(sha256_of "$tmp")
  if [ "$got" != "$want" ]; then
    rm -f "$tmp"
    say Error "sha256 mismatch for the downloaded binary: got $got, expected $want" >&3
    return 1
  fi
  chmod 0755 "$tmp" && mv "$tmp" "$BIN_DIR/vmrescue" && echo "$BIN_DIR/vmrescue"
}

# The disk vmrescue would choose, with the refusal's own words (exit 3,
# what was looked at) when there is none; every disk's class goes to the
# full log.
pick_disk() {
  "$BIN" scan >>"$FULL_LOG" 2>&1 || true
  pick_status=0
  DISK=$("$BIN" scan --pick 2>"$FULL_LOG.pick") || pick_status=$?
  cat "$FULL_LOG.pick" >>"$FULL_LOG"
  [ "$pick_status" -eq 0 ] && [ -n "$DISK" ] && return 0
  why=$(sed -n 's/^vmrescue: error: //p' "$FULL_LOG.pick" | head -n 1)
  say Error "no repair disk: ${why:-vmrescue scan --pick exited $pick_status}"
  say Info "full log on the repair VM: $FULL_LOG"
  [ "$pick_status" -eq 0 ] && pick_status=3
  exit "$pick_status"
}

say Info "vmrescue Run Command payload: recipe $RECIPE"
BIN=$(find_binary) || fail "no usable vmrescue binary (none on PATH and no verified download)"
say Info "using $BIN ($("$BIN" --version 2>/dev/null))"
if [ -n "$DISK" ]; then
  say Info "repair disk $DISK (VMRESCUE_DISK)"
else
  pick_disk
  say Info "repair disk $DISK (chosen by vmrescue scan --pick)"
fi

set -- --output runcommand --log-file "$FULL_LOG.vmrescue" repair "$RECIPE" --yes --disk "$DISK"
for param in $PARAMS; do set -- "$@" --param "$param"; done
[ "$DRY_RUN" = 1 ] && set -- "$@" --dry-run
[ "$VERIFY" = boot ] && set -- "$@" --verify-boot
[ "$VERIFY" = off ] && set -- "$@" --no-verify-boot
n=0
for log in $CONSOLE_LOGS; do
  n=$((n + 1))
  file="$LOG_DIR/console-$STAMP-$n.log"
  printf '%s' "$log" | base64 -d | gzip -dc >"$file" || fail "could not unpack the console log baked into the payload"
  set -- "$@" --log "$file"
done
[ "$n" -gt 0 ] && say Info "read $n console log(s) of the broken VM, kept in $LOG_DIR"

status=0
OUT="$FULL_LOG.out"
"$BIN" "$@" 2>>"$FULL_LOG" >"$OUT" || status=$?
cat "$OUT"
cat "$OUT" "$FULL_LOG.vmrescue" >>"$FULL_LOG" 2>/dev/null || true
# A support bundle to attach to a case before the repair VM is deleted.
set -- --output runcommand report --disk "$DISK" -o "$LOG_DIR/vmrescue-report-$STAMP.tar.gz"
for file in "$LOG_DIR"/console-"$STAMP"-*.log; do [ -f "$file" ] && set -- "$@" --log "$file"; done
"$BIN" "$@" 2>>"$FULL_LOG" || say Warning "no support bundle (see the full log)"
say Info "full log on the repair VM: $FULL_LOG"
if [ "$status" -ne 0 ]; then
  say Error "vmrescue exited $status (see the exit codes in the vmrescue README)"
  exit "$status"
fi
outcome=$(sed -n 's/.*outcome=\([a-z-]*\).*/\1/p' "$OUT" | tail -n 1)
case "$outcome" in
  repaired) say Info "result: repaired and verified" ;;
  boots-as-is) say Info "result: boots as is (verified)" ;;
  dry-run) say Info "result: dry run, plan only: disk unchanged" ;;
  *)
    say Error "result: nothing recognised: disk unchanged"
    exit 5
    ;;
esac
exit 0
