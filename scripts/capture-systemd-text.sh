#!/bin/bash
# Capture what systemd 252 prints for `systemctl status`, `list-units` and a
# few other verbs for the units in init/testdata/systemd-text/units, so that
# Vigil's text can be compared with it (init/dbus_text_guest_test.go).
#
#   scripts/capture-systemd-text.sh [OUT]
#
# It boots the minimal Debian bookworm of /work/shared/baselines (systemd as
# PID 1, built and packed by its build-rootfs.sh and pack-initramfs.sh if
# missing) in QEMU/TCG with an overlay holding the units and a capture
# script in place of baseline-report (which the baseline marker starts once
# multi-user.target is reached). The capture script runs the steps of
# init/testdata/systemd-text/capture-steps.sh and powers off. OUT (default
# init/testdata/systemd-text/systemd-252.txt) receives the steps' text.
set -euo pipefail
HERE=$(cd "$(dirname "$0")/.." && pwd)
BASE=${BASELINES:-/work/shared/baselines}
DATA=$HERE/init/testdata/systemd-text
OUT=${1:-$DATA/systemd-252.txt}
ROOTFS=/var/tmp/baseline-rootfs
ARCHIVE=/var/tmp/baseline-initramfs.cpio
KERNEL=${KERNEL:-$(ls /boot/vmlinuz-* | sort -V | tail -n 1)}

[ -d "$ROOTFS/var/lib/dpkg" ] || "$BASE/build-rootfs.sh"
[ -f "$ARCHIVE" ] || "$BASE/pack-initramfs.sh"

work=$(mktemp -d /var/tmp/capture-systemd-text.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/overlay/etc/systemd/system" "$work/overlay/usr/local/sbin"
cp "$DATA"/units/*.service "$work/overlay/etc/systemd/system/"
cp "$DATA/capture-steps.sh" "$work/overlay/usr/local/sbin/capture-steps.sh"
cat > "$work/overlay/usr/local/sbin/baseline-report" <<'GUEST'
#!/bin/bash
# Replaces the baseline report: wait for the boot to finish, run the
# capture steps, print them on the console, power off.
timeout 300 systemctl is-system-running --wait > /dev/null 2>&1
step() {
    local name=$1 rc
    shift
    "$@" > /tmp/step.out 2>&1
    rc=$?
    { echo "@@@ BEGIN $name"; cat /tmp/step.out; echo "@@@ END $name rc=$rc"; } > /dev/console
}
echo "@@@ CAPTURE-BEGIN" > /dev/console
. /usr/local/sbin/capture-steps.sh
echo "@@@ CAPTURE-END" > /dev/console
exec systemctl poweroff
GUEST
chmod 755 "$work/overlay/usr/local/sbin/baseline-report"
"$BASE/make-overlay.sh" "$work/overlay" "$work/overlay.cpio" > /dev/null
cat "$ARCHIVE" "$work/overlay.cpio" > "$work/initrd.cpio"

timeout -k 5 600 qemu-system-x86_64 -accel tcg -m 1024 -smp 1 -nographic -no-reboot -nic none \
    -kernel "$KERNEL" -initrd "$work/initrd.cpio" \
    -append 'console=ttyS0 rdinit=/sbin/init panic=-1 quiet' < /dev/null > "$work/console.log" 2>&1 || true
tr -d '\r' < "$work/console.log" | sed -n '/^@@@ CAPTURE-BEGIN$/,/^@@@ CAPTURE-END$/p' > "$work/capture.txt"
if ! grep -q '^@@@ CAPTURE-END$' "$work/capture.txt"; then
    echo "capture incomplete; console tail:" >&2
    tail -n 40 "$work/console.log" >&2
    exit 1
fi
{
    echo "# systemd 252 text captured by scripts/capture-systemd-text.sh on $(date -u +%Y-%m-%dT%H:%MZ)"
    echo "# kernel $(basename "$KERNEL"), rootfs $ROOTFS ($(chroot "$ROOTFS" dpkg-query -W -f='systemd ${Version}' systemd 2>/dev/null || echo systemd))"
    grep -v '^@@@ CAPTURE-' "$work/capture.txt"
} > "$OUT"
echo "wrote $OUT ($(grep -c '^@@@ BEGIN' "$OUT") steps)"
