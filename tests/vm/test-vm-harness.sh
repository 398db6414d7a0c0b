#!/usr/bin/env bash
# The VM harness itself: one guest boot with a virtio disk and a vTPM; the
# guest checks what later scenarios rely on and the host checks the report.
set -u
here=$(cd "$(dirname "$0")" && pwd)
. "$here/vm-lib.sh"
vm_require swtpm || { echo "1..0 # SKIP missing: $VM_MISSING"; exit 0; }
vm_workdir
echo "1..6"

truncate -s 16M "$VM_WORK/disk.img"
printf 'arca-vm-harness-marker' | dd of="$VM_WORK/disk.img" bs=1 seek=4096 conv=notrunc status=none
cat >"$VM_WORK/scenario.sh" <<'SCEN'
. /lib/vmtest.sh
vmtest_check disk-visible test -b /dev/vda
if [ "$(dd if=/dev/vda bs=1 skip=4096 count=22 2>/dev/null)" = arca-vm-harness-marker ]; then
    vmtest_ok disk-content
else
    vmtest_fail disk-content "marker not found at offset 4096"
fi
vmtest_check tpm-present test -c /dev/tpm0
vmtest_check dm-crypt-loaded grep -q crypt /proc/modules
vmtest_check elf-with-libs /usr/bin/cryptsetup --version
SCEN
vm_build_initramfs "$VM_WORK/initrd" "$VM_WORK/scenario.sh" cryptsetup ||
    { vm_tap_line FAIL "initramfs built"; exit 1; }
start=$SECONDS
vm_boot --log "$VM_WORK/log" --initrd "$VM_WORK/initrd" --disk "$VM_WORK/disk.img" \
    --tpm "$VM_WORK/tpm" --timeout 180
rc=$?
echo "# boot took $((SECONDS - start)) s"
if [ $rc -eq 0 ] && grep -q '^VMTEST end rc=0' "$VM_WORK/log"; then
    vm_tap_line OK "guest booted, ran the scenario and powered off"
else
    vm_tap_line FAIL "guest booted, ran the scenario and powered off (qemu exit $rc)"
    vm_log_tail "$VM_WORK/log"
fi
vm_tap "$VM_WORK/log" disk-visible disk-content tpm-present dm-crypt-loaded elf-with-libs
