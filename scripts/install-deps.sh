#!/usr/bin/env bash
# Installs what Vigil's build, tests and QEMU boots need on Debian 12.
# Idempotent: does nothing when everything is present.
set -euo pipefail
need=()
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
ls /boot/vmlinuz-* >/dev/null 2>&1 || need+=(linux-image-amd64)
[ -x /bin/busybox ] && /bin/busybox --list 2>/dev/null | grep -q '^poweroff$' || need+=(busybox-static)
command -v mkfs.ext4 >/dev/null || need+=(e2fsprogs)
command -v systemd-notify >/dev/null || need+=(systemd)
command -v dbus-daemon >/dev/null || need+=(dbus)
# D-Bus guest tests: node-exporter's systemd collector, libglib2.0-bin's gdbus.
command -v prometheus-node-exporter >/dev/null || need+=(prometheus-node-exporter)
command -v gdbus >/dev/null || need+=(libglib2.0-bin)
command -v cpio >/dev/null || need+=(cpio)
command -v mkfs.vfat >/dev/null || need+=(dosfstools)
command -v mkfs.xfs >/dev/null || need+=(xfsprogs)
command -v mkfs.btrfs >/dev/null || need+=(btrfs-progs)
command -v debugfs >/dev/null || need+=(e2fsprogs)
# Partition-table tests: real tables from sfdisk (fdisk) and sgdisk (gdisk).
command -v sfdisk >/dev/null || need+=(fdisk)
command -v sgdisk >/dev/null || need+=(gdisk)
if [ ${#need[@]} -gt 0 ]; then
  echo "install-deps: installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
command -v go >/dev/null || { echo "install-deps: Go is required (go 1.26+)" >&2; exit 1; }
