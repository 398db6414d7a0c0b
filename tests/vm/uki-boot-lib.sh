# shellcheck shell=bash
# Boot a UKI under OVMF with a swtpm vTPM and collect the guest's PCRs and
# firmware event log over the serial console. Sourced by tests/vm/test-*.sh
# and tests/bench; needs ARCA_BUILD_DIR (arca-measure) and a scratch dir.
#
#   uki_boot_missing              prints what the machine lacks, or nothing
#   uki_build_initrd OUT          busybox initramfs whose /init prints the
#                                 PCRs and base64 of binary_bios_measurements
#   uki_build_esp UKI OUT         FAT image with UKI as \EFI\BOOT\BOOTX64.EFI
#   uki_boot ESP DIR              boot it; writes DIR/serial.log,
#                                 DIR/pcrs.txt ("N HEX" lines) and DIR/eventlog.bin

UKI_OVMF_CODE=${UKI_OVMF_CODE:-/usr/share/OVMF/OVMF_CODE_4M.fd}
UKI_OVMF_VARS=${UKI_OVMF_VARS:-/usr/share/OVMF/OVMF_VARS_4M.fd}
UKI_STUB=${UKI_STUB:-/usr/lib/systemd/boot/efi/linuxx64.efi.stub}
UKI_BOOT_TIMEOUT=${UKI_BOOT_TIMEOUT:-240}

# The kernel of linux-image-amd64 (never a hard-coded version).
uki_kernel() {
    local dep v
    dep=$(dpkg-query -W -f='${Depends}' linux-image-amd64 2>/dev/null | sed -n 's/.*linux-image-\([0-9][^ ,]*\).*/\1/p')
    for v in $dep; do [ -r "/boot/vmlinuz-$v" ] && { echo "/boot/vmlinuz-$v"; return 0; }; done
    v=$(ls /boot/vmlinuz-* 2>/dev/null | sort -V | tail -1)
    [ -n "$v" ] && [ -r "$v" ] && echo "$v"
}

uki_boot_missing() {
    local m=() t
    for t in qemu-system-x86_64:qemu-system-x86 swtpm:swtpm mkfs.vfat:dosfstools mcopy:mtools \
             mmd:mtools cpio:cpio base64:coreutils; do
        command -v "${t%%:*}" >/dev/null 2>&1 || m+=("${t%%:*} (package ${t#*:})")
    done
    [ -x /usr/bin/busybox ] && file -L /usr/bin/busybox 2>/dev/null | grep -q 'statically linked' ||
        [ -x /bin/busybox ] || m+=("a static busybox (package busybox-static)")
    [ -r "$UKI_OVMF_CODE" ] && [ -r "$UKI_OVMF_VARS" ] || m+=("OVMF ($UKI_OVMF_CODE, package ovmf)")
    [ -r "$UKI_STUB" ] || m+=("systemd-stub ($UKI_STUB, package systemd-boot-efi)")
    [ -n "$(uki_kernel)" ] || m+=("a kernel in /boot (package linux-image-amd64)")
    [ ${#m[@]} -eq 0 ] || echo "missing: ${m[*]}"
}

uki_build_initrd() {
    local out=$1 root bb
    root=$(mktemp -d "${TMPDIR:-/tmp}/uki-initrd.XXXXXX")
    mkdir -p "$root"/bin "$root"/proc "$root"/sys "$root"/dev
    bb=/bin/busybox
    [ -x "$bb" ] || bb=/usr/bin/busybox
    cp "$bb" "$root/bin/busybox"
    cat >"$root/init" <<'INIT'
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mount -t securityfs securityfs /sys/kernel/security
echo ARCA-PCRS-BEGIN
for i in 0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23; do
    echo "$i $(cat /sys/class/tpm/tpm0/pcr-sha256/$i)"
done
echo ARCA-PCRS-END
echo ARCA-LOG-BEGIN
base64 /sys/kernel/security/tpm0/binary_bios_measurements
echo ARCA-LOG-END
poweroff -f
INIT
    chmod 0755 "$root/init"
    (cd "$root" && find . | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0) | gzip -1 >"$out"
    rm -rf "$root"
}

uki_build_esp() {
    local uki=$1 out=$2 kib
    kib=$(( ($(stat -c %s "$uki") / 1024) + 4096 ))
    rm -f "$out"
    mkfs.vfat -C "$out" "$kib" >/dev/null || return 1
    MTOOLS_SKIP_CHECK=1 mmd -i "$out" ::/EFI ::/EFI/BOOT || return 1
    MTOOLS_SKIP_CHECK=1 mcopy -i "$out" "$uki" ::/EFI/BOOT/BOOTX64.EFI || return 1
}

# Extract the lines between two markers of the serial log (CRs dropped).
uki_between() {
    tr -d '\r' <"$1" | sed -n "/^$2\$/,/^$3\$/p" | sed '1d;$d'
}

uki_boot() {
    local esp=$1 dir=$2 sock rc tpid qpid
    mkdir -p "$dir/tpm"
    cp "$UKI_OVMF_VARS" "$dir/vars.fd"
    sock=$dir/swtpm.sock
    swtpm socket --tpm2 --tpmstate dir="$dir/tpm" --ctrl type=unixio,path="$sock" \
        --log file="$dir/swtpm.log" >/dev/null 2>&1 &
    tpid=$!
    for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.05; done
    timeout "$UKI_BOOT_TIMEOUT" qemu-system-x86_64 -machine q35 -m 768 -nodefaults -display none \
        -no-reboot -nic none \
        -drive if=pflash,format=raw,unit=0,readonly=on,file="$UKI_OVMF_CODE" \
        -drive if=pflash,format=raw,unit=1,file="$dir/vars.fd" \
        -chardev socket,id=chrtpm,path="$sock" -tpmdev emulator,id=tpm0,chardev=chrtpm \
        -device tpm-tis,tpmdev=tpm0 \
        -drive if=none,id=esp,format=raw,file="$esp" -device virtio-blk-pci,drive=esp \
        -serial file:"$dir/serial.log" >"$dir/qemu.log" 2>&1 &
    qpid=$!
    wait $qpid
    rc=$?
    kill $tpid 2>/dev/null
    wait $tpid 2>/dev/null
    if [ $rc -ne 0 ]; then
        echo "qemu exited with $rc (124: timeout after ${UKI_BOOT_TIMEOUT}s)" >&2
        tail -5 "$dir/qemu.log" >&2
        return 1
    fi
    uki_between "$dir/serial.log" ARCA-PCRS-BEGIN ARCA-PCRS-END >"$dir/pcrs.txt"
    uki_between "$dir/serial.log" ARCA-LOG-BEGIN ARCA-LOG-END | base64 -d >"$dir/eventlog.bin" || return 1
    [ "$(wc -l <"$dir/pcrs.txt")" -eq 24 ] || { echo "guest reported no PCRs" >&2; tail -20 "$dir/serial.log" >&2; return 1; }
}
