#!/usr/bin/env bash
# State-disk benchmark in one qemu (TCG) guest: sequential write and read
# MiB/s of the plain virtio disk, dm-crypt alone (LUKS2 aes-xts-plain64,
# 4096-byte sectors) and dm-crypt + dm-integrity (hmac(sha256), journal on:
# the arca layout), reported as ratios against the plain disk measured in
# the same run; and the time arca-disk-mapper takes to format, wipe, mkfs
# and mount a blank 1 GiB disk. TCG figures are far below hardware; the
# ratios are what to compare. Exit 77: skipped (names what is missing).
set -u
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../vm/vm-lib.sh"
B=${ARCA_BUILD_DIR:-$here/../../build}
MIB=${BENCH_DISK_MIB:-128}
vm_require cryptsetup mkfs.ext4 || { echo "skipped: missing $VM_MISSING"; exit 77; }
[ -x "$B/arca-disk-mapper" ] || { echo "skipped: $B/arca-disk-mapper not built"; exit 77; }
vm_workdir
W=$VM_WORK

echo "MIB=$MIB" >"$W/bench.sh"
cat >>"$W/bench.sh" <<'GUEST'
. /lib/vmtest.sh
now() { cut -d' ' -f1 /proc/uptime; }
# rate NAME DEV: write then read MIB MiB with O_DIRECT.
rate() {
    t0=$(now)
    dd if=/dev/zero of="$2" bs=1M count=$MIB oflag=direct conv=fsync 2>/dev/null || { vmtest_fail "$1" "write failed"; return; }
    t1=$(now)
    echo 3 >/proc/sys/vm/drop_caches
    dd if="$2" of=/dev/null bs=1M count=$MIB iflag=direct 2>/dev/null || { vmtest_fail "$1" "read failed"; return; }
    t2=$(now)
    w=$(awk -v a=$t0 -v b=$t1 -v m=$MIB 'BEGIN{printf "%.1f", m/(b-a)}')
    r=$(awk -v a=$t1 -v b=$t2 -v m=$MIB 'BEGIN{printf "%.1f", m/(b-a)}')
    vmtest_note "bench $1 write=$w read=$r"
}
echo -n 0123456789abcdef0123456789abcdef >/tmp/key
rate plain /dev/vda
/usr/bin/cryptsetup luksFormat -q --type luks2 --cipher aes-xts-plain64 --key-size 512 --sector-size 4096 \
    --pbkdf pbkdf2 --pbkdf-force-iterations 1000 --key-file /tmp/key /dev/vda &&
    /usr/bin/cryptsetup open --key-file /tmp/key /dev/vda crypt && rate crypt /dev/mapper/crypt
/usr/bin/cryptsetup close crypt
t0=$(now)
/usr/bin/arca-disk-mapper --device /dev/vdb --mkfs /usr/bin/mkfs.ext4 --bind none setup >/dev/null 2>/dev/null
t1=$(now)
vmtest_note "bench format-1g seconds=$(awk -v a=$t0 -v b=$t1 'BEGIN{printf "%.1f", b-a}')"
umount /run/state
rate integrity /dev/mapper/arca-state
GUEST
truncate -s $((MIB + 32))M "$W/a.img"
truncate -s 1G "$W/b.img"
vm_build_initramfs "$W/initrd" "$W/bench.sh" "$B/arca-disk-mapper" cryptsetup mkfs.ext4 || exit 1
start=$SECONDS
vm_boot --log "$W/log" --initrd "$W/initrd" --disk "$W/a.img" --disk "$W/b.img" --timeout 900
rc=$?
log=$(tr -d '\r' <"$W/log")
get() { echo "$log" | sed -n "s/^VMTEST note bench $1 .*$2=\([0-9.]*\).*/\1/p"; }
pw=$(get plain write) pr=$(get plain read) cw=$(get crypt write) cr=$(get crypt read)
iw=$(get integrity write) ir=$(get integrity read) fs=$(get format-1g seconds)
if [ -z "$pw" ] || [ -z "$cw" ] || [ -z "$iw" ] || [ -z "$fs" ]; then
    echo "guest run incomplete (qemu exit $rc):"
    echo "$log" | tail -20
    exit 1
fi
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.2f", a/b}'; }
echo "qemu TCG guest (-cpu max), ${MIB} MiB sequential, O_DIRECT, 1 MiB blocks; one boot: $((SECONDS - start)) s"
printf '  %-28s write %7s MiB/s  read %7s MiB/s\n' "plain virtio disk" "$pw" "$pr"
printf '  %-28s write %7s MiB/s  read %7s MiB/s   (x%s / x%s of plain)\n' "dm-crypt" "$cw" "$cr" \
    "$(ratio "$cw" "$pw")" "$(ratio "$cr" "$pr")"
printf '  %-28s write %7s MiB/s  read %7s MiB/s   (x%s / x%s of plain)\n' "dm-crypt + integrity (arca)" "$iw" "$ir" \
    "$(ratio "$iw" "$pw")" "$(ratio "$ir" "$pr")"
echo "  integrity on top of dm-crypt: x$(ratio "$iw" "$cw") write, x$(ratio "$ir" "$cr") read"
echo "  arca-disk-mapper setup of a blank 1 GiB disk (format, wipe, mkfs, mount): $fs s"
