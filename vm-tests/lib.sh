# shellcheck shell=bash
# Shared helpers for vm-tests: cache layout, timing, debootstrap, loop devices,
# chroot mounts, the accelerator probe and booting a disk in QEMU until a marker.
# Source it from a script that already did `set -euo pipefail`.

# Globals below are used by the scripts that source this file.
# shellcheck disable=SC2034
VMT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
VMT_CACHE=${VMRESCUE_CACHE:-$HOME/.cache/vmrescue}/vm-tests
VMT_SUITE=bookworm
VMT_MIRROR=${VMRESCUE_MIRROR:-http://deb.debian.org/debian}
# Default per-boot timeout (seconds); TCG boots a Debian image in about 26 s.
# shellcheck disable=SC2034
VMT_BOOT_TIMEOUT=${VMRESCUE_BOOT_TIMEOUT:-180}
# Lines that mean a boot failed (checked after the caller's expected pattern).
VMT_FAILURE_PATTERNS=(
  'Kernel panic'
  'Dropping to a shell'
  'You are in emergency mode'
  'Entering emergency mode'
  'Give root password for maintenance'
  'dracut-initqueue.*[Tt]imeout'
  'Could not boot'
  'Rebooting automatically due to panic='
)

log() { printf 'vm-tests: %s\n' "$*" >&2; }
die() { printf 'vm-tests: error: %s\n' "$*" >&2; exit 1; }

need_root() { [ "$(id -u)" = 0 ] || die "must run as root (debootstrap, loop devices, QEMU)"; }

need_tools() {
  local tool missing=()
  for tool in "$@"; do command -v "$tool" >/dev/null || missing+=("$tool"); done
  [ ${#missing[@]} -eq 0 ] || die "missing tools: ${missing[*]} (run scripts/install-deps --vm)"
}

# --- timing -----------------------------------------------------------------

VMT_STEP_NAME=""
VMT_STEP_START=0
step() {
  step_done
  VMT_STEP_NAME=$1
  VMT_STEP_START=$SECONDS
  log "step: $VMT_STEP_NAME"
}
step_done() {
  if [ -n "$VMT_STEP_NAME" ]; then
    log "step: $VMT_STEP_NAME took $((SECONDS - VMT_STEP_START)) s"
    VMT_STEP_NAME=""
  fi
}

# --- cache --------------------------------------------------------------------

# Prints a short sha256 over the given files' contents and extra strings, so an
# image is rebuilt whenever its builder script, this library or a package list
# changes. Usage: inputs_hash FILE... -- STRING...
# A file's sections between `# >>> variant NAME` and `# <<< variant NAME`
# lines count only when VMT_HASH_VARIANT is NAME: a variant added to a
# builder that way changes no other variant's key (no rebuild of theirs).
inputs_hash() {
  {
    while [ $# -gt 0 ] && [ "$1" != "--" ]; do
      printf 'file %s\n' "$(basename "$1")"
      variant_sections_only "$1"
      shift
    done
    [ $# -gt 0 ] && shift
    printf 'string %s\n' "$@"
  } | sha256sum | cut -c1-16
}

# Prints FILE without the `# >>> variant NAME` … `# <<< variant NAME`
# sections of variants other than VMT_HASH_VARIANT.
variant_sections_only() {
  awk -v keep="${VMT_HASH_VARIANT:-}" '
    /^# >>> variant / && $4 != keep { skip = 1 }
    !skip { print }
    /^# <<< variant / && $4 != keep { skip = 0 }' "$1"
}

# Runs debootstrap with a per-builder .deb cache so rebuilds download nothing.
# Usage: cached_debootstrap CACHE_NAME TARGET_DIR [debootstrap options...]
cached_debootstrap() {
  local name=$1 target=$2
  shift 2
  local debs="$VMT_CACHE/debs/$name"
  mkdir -p "$debs"
  debootstrap --cache-dir="$debs" "$@" "$VMT_SUITE" "$target" "$VMT_MIRROR" >"$VMT_WORK/debootstrap.log" 2>&1 ||
    { tail -n 30 "$VMT_WORK/debootstrap.log" >&2; die "debootstrap failed (log: $VMT_WORK/debootstrap.log)"; }
}

# A scratch directory for one build or run, removed on exit unless
# VMRESCUE_KEEP_WORK=1. Cleanup functions registered with on_exit run first,
# last registered first.
VMT_EXIT_HOOKS=()
on_exit() { VMT_EXIT_HOOKS=("$1" "${VMT_EXIT_HOOKS[@]}"); }
run_exit_hooks() {
  local status=$? hook
  for hook in "${VMT_EXIT_HOOKS[@]}"; do
    $hook || log "cleanup '$hook' failed"
  done
  VMT_EXIT_HOOKS=()
  return $status
}
install_traps() {
  trap run_exit_hooks EXIT
  trap 'exit 130' INT TERM
  on_exit stop_qemu
}
make_workdir() {
  mkdir -p "$VMT_CACHE/work"
  VMT_WORK=$(mktemp -d "$VMT_CACHE/work/$1.XXXXXX")
  install_traps
  on_exit remove_workdir
}
remove_workdir() {
  if [ "${VMRESCUE_KEEP_WORK:-0}" = 1 ]; then
    log "kept work dir $VMT_WORK"
  else
    rm -rf --one-file-system "$VMT_WORK"
  fi
}

# --- loop devices -------------------------------------------------------------

# Attaches IMAGE with partition scanning and waits until every partition node
# exists (there is no udev here: partx asks the kernel, devtmpfs makes nodes).
# Prints the loop device.
loop_attach() {
  local image=$1 dev expected i
  dev=$(losetup --find --show --partscan "$image")
  expected=$(sfdisk --dump "$image" 2>/dev/null | grep -c '^/' || true)
  partx --add "$dev" 2>/dev/null || partx --update "$dev" 2>/dev/null || true
  for ((i = 0; i < 100; i++)); do
    [ "$(find /dev -maxdepth 1 -name "$(basename "$dev")p*" | wc -l)" -ge "$expected" ] && break
    sleep 0.1
  done
  [ "$(find /dev -maxdepth 1 -name "$(basename "$dev")p*" | wc -l)" -ge "$expected" ] ||
    { losetup --detach "$dev"; die "partition nodes of $dev ($image) did not appear"; }
  echo "$dev"
}

loop_detach() {
  local dev=$1
  partx --delete "$dev" 2>/dev/null || true
  losetup --detach "$dev"
}

# --- chroot -------------------------------------------------------------------

# Mounts /proc, /sys, /dev, /dev/pts and /run into ROOT for running its tools.
chroot_mount() {
  local root=$1
  mount -t proc proc "$root/proc"
  mount -t sysfs sysfs "$root/sys"
  mount --bind /dev "$root/dev"
  mount -t devpts -o newinstance,ptmxmode=0666 devpts "$root/dev/pts"
  mount -t tmpfs tmpfs "$root/run"
}

chroot_umount() {
  local root=$1 sub
  for sub in run dev/pts dev sys proc; do
    if mountpoint -q "$root/$sub"; then umount "$root/$sub"; fi
  done
}

# Runs a command in ROOT with a clean environment and no service starts.
in_chroot() {
  local root=$1
  shift
  env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
    DEBIAN_FRONTEND=noninteractive chroot "$root" "$@"
}

# apt-get install in ROOT, keeping downloaded .debs in the builder's cache.
chroot_apt_install() {
  local root=$1 name=$2
  shift 2
  local debs="$VMT_CACHE/debs/$name"
  mkdir -p "$debs" "$root/var/cache/apt/archives"
  mount --bind "$debs" "$root/var/cache/apt/archives"
  local status=0
  in_chroot "$root" apt-get install -y -q --no-install-recommends "$@" >>"$VMT_WORK/apt.log" 2>&1 || status=$?
  umount "$root/var/cache/apt/archives"
  [ $status = 0 ] || { tail -n 30 "$VMT_WORK/apt.log" >&2; die "apt-get install $* failed (log: $VMT_WORK/apt.log)"; }
}

# Keeps daemons from starting inside a chroot during package installs.
chroot_block_services() {
  printf '#!/bin/sh\nexit 101\n' >"$1/usr/sbin/policy-rc.d"
  chmod 755 "$1/usr/sbin/policy-rc.d"
}
chroot_allow_services() { rm -f "$1/usr/sbin/policy-rc.d"; }

# Prints TEXT with extended-regex metacharacters escaped (kernel versions
# such as 6.12.95+deb12-amd64 contain "+" and ".").
regex_quote() {
  printf '%s' "$1" | sed 's/[][\\.*^$+?(){}|/]/\\&/g'
}

# --- QEMU -------------------------------------------------------------------------

# Prints the QEMU accelerator arguments: KVM only when a probe boot of a kernel
# under exactly those arguments reaches its panic line quickly (nested KVM can
# exist and still hang, or abort on an MSR), else TCG. The answer and its
# reason are cached per host boot. VMRESCUE_ACCEL=kvm|tcg overrides the probe.
accel_args() {
  case "${VMRESCUE_ACCEL:-}" in
    kvm) echo "-accel kvm -cpu host"; return ;;
    tcg) echo "-accel tcg"; return ;;
    "") ;;
    *) die "VMRESCUE_ACCEL must be kvm or tcg" ;;
  esac
  local cache_file
  cache_file="$VMT_CACHE/accel/$(cat /proc/sys/kernel/random/boot_id)"
  if [ ! -s "$cache_file" ]; then
    mkdir -p "$VMT_CACHE/accel"
    probe_accelerator >"$cache_file.tmp"
    mv "$cache_file.tmp" "$cache_file"
  fi
  sed -n 1p "$cache_file"
}

# Prints which accelerator is used and why.
accel_describe() {
  if [ -n "${VMRESCUE_ACCEL:-}" ]; then echo "$VMRESCUE_ACCEL (set by VMRESCUE_ACCEL)"; return; fi
  local cache_file
  cache_file="$VMT_CACHE/accel/$(cat /proc/sys/kernel/random/boot_id)"
  [ -s "$cache_file" ] || accel_args >/dev/null
  echo "$(sed -n 1p "$cache_file"): $(sed -n 2p "$cache_file")"
}

# Prints two lines: the chosen arguments and why.
probe_accelerator() {
  if [ ! -r /dev/kvm ] || [ ! -w /dev/kvm ]; then
    printf '%s\n%s\n' "-accel tcg" "no usable /dev/kvm"
    return
  fi
  local kernel probe_log cpu args start why=()
  kernel=$(probe_kernel)
  probe_log=$(mktemp "$VMT_CACHE/accel/probe.XXXXXX")
  for cpu in host default; do
    args="-accel kvm"
    [ "$cpu" = host ] && args="$args -cpu host"
    start=$SECONDS
    # Without root= and initrd the kernel panics right after its whole init:
    # reaching that line proves the accelerator runs a kernel boot.
    # shellcheck disable=SC2086
    timeout -s KILL 20 qemu-system-x86_64 $args -m 256 -smp 1 -nographic -no-reboot -nic none \
      -serial "file:$probe_log" -monitor none -kernel "$kernel" -append "console=ttyS0 panic=-1" \
      >"$probe_log.qemu" 2>&1 </dev/null || true
    if grep -q 'Kernel panic' "$probe_log"; then
      printf '%s\n%s\n' "$args" "KVM probe (cpu $cpu) reached the kernel's panic line in $((SECONDS - start)) s"
      rm -f "$probe_log" "$probe_log.qemu"
      return
    fi
    if [ $((SECONDS - start)) -ge 20 ]; then
      why+=("cpu $cpu: hung, no panic line within 20 s, last console line '$(tail -n 1 "$probe_log" | tr -cd '[:print:]' | cut -c1-60)'")
    else
      why+=("cpu $cpu: QEMU failed: $(grep -m 1 error "$probe_log.qemu" | cut -c1-100)")
    fi
  done
  rm -f "$probe_log" "$probe_log.qemu"
  local IFS=';'
  printf '%s\n%s\n' "-accel tcg" "KVM probe failed (${why[*]})"
}

# A Debian kernel for the probe: from the .deb caches, else downloaded once.
probe_kernel() {
  local kernel="$VMT_CACHE/accel/vmlinuz"
  if [ ! -s "$kernel" ]; then
    local deb tmp
    deb=$(find "$VMT_CACHE/debs" -name 'linux-image-[0-9]*-amd64_*.deb' 2>/dev/null | sort | head -n 1)
    tmp=$(mktemp -d "$VMT_CACHE/accel/deb.XXXXXX")
    if [ -z "$deb" ]; then
      local package
      package=$(apt-cache depends linux-image-amd64 | sed -n 's/^ *Depends: \(linux-image-[0-9].*\)$/\1/p' | head -n 1)
      (cd "$tmp" && apt-get download -q "$package" >/dev/null 2>&1) || die "cannot download $package for the accelerator probe"
      deb=$(find "$tmp" -name '*.deb' | head -n 1)
    fi
    dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$tmp" --wildcards './boot/vmlinuz-*'
    mv "$(find "$tmp/boot" -name 'vmlinuz-*' | head -n 1)" "$kernel"
    rm -rf "$tmp"
  fi
  echo "$kernel"
}

# Stops a QEMU that boot_until left running (the script was interrupted).
VMT_QEMU_PID=""
stop_qemu() {
  if [ -n "$VMT_QEMU_PID" ] && kill -0 "$VMT_QEMU_PID" 2>/dev/null; then
    kill "$VMT_QEMU_PID"
    wait "$VMT_QEMU_PID" 2>/dev/null || true
  fi
  VMT_QEMU_PID=""
}

# Boots QEMU until EXPECT (an extended regex) or a failure pattern shows up on
# the serial console, QEMU exits, or TIMEOUT seconds pass.
#   boot_until LOG TIMEOUT EXPECT QEMU_ARGS...
# The caller gives the disk/kernel arguments; the cached image must be attached
# with snapshot=on (or be a throwaway copy). Sets BOOT_RESULT (expected,
# failure, exited, timeout), BOOT_LINE (the matching line) and BOOT_SECONDS,
# prints one line, and returns 0 only for "expected".
# VMT_QEMU_SYSTEM picks the emulator (qemu-system-aarch64 for the arm64
# image; the caller then passes -M/-cpu and firmware).
BOOT_RESULT="" BOOT_LINE="" BOOT_SECONDS=0
VMT_QEMU_SYSTEM=${VMT_QEMU_SYSTEM:-qemu-system-x86_64}
boot_until() {
  local serial_log=$1 limit=$2 expect=$3
  shift 3
  local accel start pid line pattern
  if [ "$VMT_QEMU_SYSTEM" = qemu-system-x86_64 ]; then
    read -r -a accel <<<"$(accel_args)"
  else
    # Another architecture's guest: KVM cannot run it, TCG it is.
    accel=(-accel tcg)
  fi
  : >"$serial_log"
  start=$SECONDS
  "$VMT_QEMU_SYSTEM" "${accel[@]}" -m 1024 -smp 2 -nographic -monitor none \
    -serial "file:$serial_log" -no-reboot -nic none "$@" \
    >"$serial_log.qemu" 2>&1 </dev/null &
  pid=$!
  VMT_QEMU_PID=$pid
  BOOT_RESULT="" BOOT_LINE=""
  while :; do
    if line=$(grep -a -m 1 -E -e "$expect" "$serial_log"); then
      BOOT_RESULT=expected BOOT_LINE=$line
      break
    fi
    for pattern in "${VMT_FAILURE_PATTERNS[@]}"; do
      if line=$(grep -a -m 1 -E -e "$pattern" "$serial_log"); then
        # The console may be mid-line: let it finish before ruling out EXPECT
        # (an expected panic line also matches "Kernel panic").
        sleep 1
        if line=$(grep -a -m 1 -E -e "$expect" "$serial_log"); then
          BOOT_RESULT=expected BOOT_LINE=$line
        else
          BOOT_RESULT=failure BOOT_LINE=$(grep -a -m 1 -E -e "$pattern" "$serial_log")
        fi
        break 2
      fi
    done
    if ! kill -0 "$pid" 2>/dev/null; then
      # QEMU ended (poweroff, or -no-reboot after a reboot request): look once more.
      if grep -a -q -E -e "$expect" "$serial_log"; then continue; fi
      BOOT_RESULT=exited BOOT_LINE="QEMU exited: $(tail -c 300 "$serial_log.qemu" | tr '\n' ' ')"
      break
    fi
    if [ $((SECONDS - start)) -ge "$limit" ]; then
      BOOT_RESULT=timeout BOOT_LINE="no marker within $limit s"
      break
    fi
    sleep 0.5
  done
  BOOT_SECONDS=$((SECONDS - start))
  if kill -0 "$pid" 2>/dev/null; then
    # Give a clean poweroff a moment, then stop QEMU.
    sleep 1
    kill "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
  VMT_QEMU_PID=""
  BOOT_LINE=$(printf '%s' "$BOOT_LINE" | tr -d '\r')
  log "boot: $BOOT_RESULT after $BOOT_SECONDS s: $BOOT_LINE"
  [ "$BOOT_RESULT" = expected ]
}

# Sets DISK_BOOT_ARGS to boot the raw DISK without modifying it (snapshot=on)
# with FIRMWARE bios (SeaBIOS), uefi (OVMF, with a fresh copy of its
# variable store at VARS_COPY) or uefi-secboot (OVMF's Secure Boot build
# with Microsoft's keys enrolled in the VARS_COPY, enforced: q35 with SMM
# and the flash locked to SMM, as Secure Boot requires), on a virtio disk,
# or on an NVMe controller (namespace nvme0n1, as on NVMe-only VM sizes)
# with VMT_CONTROLLER=nvme.
DISK_BOOT_ARGS=()
disk_boot_args() {
  local disk=$1 firmware=$2 vars_copy=$3
  case "${VMT_CONTROLLER:-virtio}" in
    virtio) DISK_BOOT_ARGS=(-drive "file=$disk,format=raw,if=virtio,snapshot=on") ;;
    nvme) DISK_BOOT_ARGS=(-drive "file=$disk,format=raw,if=none,id=osdisk,snapshot=on"
      -device "nvme,serial=vmrescue-os,drive=osdisk") ;;
    *) die "unknown controller ${VMT_CONTROLLER}" ;;
  esac
  case "$firmware" in
    bios) ;;
    uefi)
      [ -r /usr/share/OVMF/OVMF_CODE_4M.fd ] || die "OVMF is not installed (scripts/install-deps --vm)"
      cp /usr/share/OVMF/OVMF_VARS_4M.fd "$vars_copy"
      DISK_BOOT_ARGS=(-drive "if=pflash,format=raw,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd"
        -drive "if=pflash,format=raw,file=$vars_copy" "${DISK_BOOT_ARGS[@]}")
      ;;
    uefi-secboot)
      [ -r /usr/share/OVMF/OVMF_CODE_4M.secboot.fd ] && [ -r /usr/share/OVMF/OVMF_VARS_4M.ms.fd ] ||
        die "OVMF's Secure Boot build is not installed (scripts/install-deps --vm)"
      cp /usr/share/OVMF/OVMF_VARS_4M.ms.fd "$vars_copy"
      DISK_BOOT_ARGS=(-machine q35,smm=on -global driver=cfi.pflash01,property=secure,value=on
        -drive "if=pflash,format=raw,unit=0,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.secboot.fd"
        -drive "if=pflash,format=raw,unit=1,file=$vars_copy" "${DISK_BOOT_ARGS[@]}")
      ;;
    *) die "unknown firmware $firmware" ;;
  esac
}

# --- arm64 (qemu-system-aarch64 under TCG) -------------------------------------------

# The machine Azure's Arm64 VMs resemble (Ampere Altra = Neoverse N1); no
# pointer authentication, which is slow under TCG.
VMT_ARM64_MACHINE=(-M virt -cpu neoverse-n1)
# TCG emulating arm64 on x86 boots more slowly than the x86 images.
VMT_ARM64_BOOT_TIMEOUT=${VMRESCUE_ARM64_BOOT_TIMEOUT:-420}

# Sets DISK_BOOT_ARGS to boot the raw arm64 DISK through the AAVMF firmware
# (qemu-efi-aarch64) without modifying it (snapshot=on), with a fresh copy of
# the variable store at VARS_COPY. Boot with VMT_QEMU_SYSTEM=qemu-system-aarch64.
arm64_disk_boot_args() {
  local disk=$1 vars_copy=$2
  [ -r /usr/share/AAVMF/AAVMF_CODE.fd ] || die "AAVMF is not installed (scripts/install-deps --vm)"
  cp /usr/share/AAVMF/AAVMF_VARS.fd "$vars_copy"
  DISK_BOOT_ARGS=("${VMT_ARM64_MACHINE[@]}"
    -drive "if=pflash,format=raw,readonly=on,file=/usr/share/AAVMF/AAVMF_CODE.fd"
    -drive "if=pflash,format=raw,file=$vars_copy"
    -drive "file=$disk,format=raw,if=virtio,snapshot=on")
}
