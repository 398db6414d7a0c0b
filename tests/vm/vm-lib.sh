# shellcheck shell=bash
# tests/vm/vm-lib.sh — boot a scenario script in a qemu (TCG) guest and read its
# report from the serial console. Source it from a bash test script.
#
# Host side (functions this file defines):
#   vm_require [TOOL...]
#       Checks what a guest boot needs (qemu-system-x86_64, a kernel from
#       linux-image-amd64 with its modules, static busybox, cpio, depmod) plus
#       the extra host TOOLs named. Returns 1 and sets VM_MISSING to a
#       human-readable list when something is missing, e.g.
#         vm_require swtpm || { echo "1..0 # SKIP missing: $VM_MISSING"; exit 0; }
#       Sets VM_KVER (kernel version) and VM_VMLINUZ (kernel image path).
#   vm_workdir
#       Creates $VM_WORK (a private mktemp -d directory, removed on exit
#       together with every qemu and swtpm this file started; VM_KEEP=1
#       keeps the directory for debugging) and returns.
#   vm_build_base
#       Prints the path of the cached base initramfs (gzip'd newc cpio):
#       busybox + applet symlinks, /sbin/modprobe, the modules named in
#       VM_MODULES (default below) with their dependencies, all of
#       kernel/crypto, arch/x86/crypto, lib/crypto, depmod'ed, and /init.
#       Built once per (kernel, module list, this file) under $VM_CACHE_DIR
#       (default $ARCA_BUILD_DIR/vm-cache or /tmp/arca-vm-cache-$UID) with
#       a lock, so concurrent tests share it. Add modules with VM_MODULES_EXTRA.
#   vm_build_initramfs OUT SCENARIO [FILE[=DEST]...]
#       Writes OUT = base archive + an overlay archive (the kernel unpacks
#       concatenated cpio archives in order). The overlay holds SCENARIO as
#       /scenario (run by /init) and each FILE: an ELF FILE goes to
#       /usr/bin/BASENAME (or DEST) with the shared libraries ldd lists for
#       it at their own paths; any other file goes to DEST (required).
#       FILE may be a command name looked up in PATH. Call guest tools by
#       absolute path (/usr/bin/cryptsetup): busybox sh may prefer its own
#       applets (ip!) over PATH.
#       For a UKI: use OUT as the .initrd section; /init runs /scenario the
#       same way and powers off, so the report protocol is unchanged.
#   vm_boot [options]
#       Boots qemu and waits for it to exit; returns qemu's exit status
#       (124 on timeout, 137 when killed by --kill-on). Options:
#         --log FILE         serial console output (required)
#         --initrd FILE      initramfs (with the default -kernel boot)
#         --kernel FILE      kernel (default $VM_VMLINUZ)
#         --no-kernel        no -kernel/-initrd/-append (firmware boot, e.g. a
#                            UKI on an ESP under OVMF via --qemu-arg)
#         --append ARGS      extra kernel command line
#         --disk FILE        raw virtio disk (repeatable: vda, vdb, ...)
#         --disk-serial FILE SERIAL
#                            raw virtio disk with a serial number (shows as
#                            /sys/block/vdX/serial; udev: by-id/virtio-SERIAL).
#                            The kernel may name it before the plain --disks.
#         --tpm STATEDIR     attach a fresh swtpm vTPM with state in STATEDIR
#                            (one swtpm per boot; the state persists)
#         --tpm-flags FLAGS  swtpm --flags (default startup-clear; pass
#                            "not-need-init" for firmware that starts the TPM)
#         --net-user SPEC    user-mode virtio-net; SPEC is appended to
#                            -netdev user,... (e.g. hostfwd=tcp:127.0.0.1:P-:9999)
#                            The guest is 10.0.2.15, the host 10.0.2.2.
#         --timeout SECS     kill qemu after SECS (default 240)
#         --kill-on REGEX    kill qemu (SIGKILL) as soon as the log matches
#         --mem MIB          guest memory (default 1024)
#         --qemu-arg ARG     extra qemu argument (repeatable)
#   vm_free_port
#       Prints a TCP port on 127.0.0.1 that is free right now.
#   vm_tap LOG NAME...
#       Prints one TAP line per NAME from the guest report in LOG ("ok" only
#       when the guest said "VMTEST ok NAME"; a missing report is "not ok")
#       and numbers them from $VM_TAP_N (updated). Returns 1 if any failed.
#   vm_tap_line OK|FAIL TEXT
#       One host-side TAP line with the same numbering.
#   vm_log_tail LOG
#       The last lines of LOG as TAP comments (for failures).
#
# Guest side (/lib/vmtest.sh, sourced before /scenario runs under busybox sh):
#   vmtest_ok NAME / vmtest_fail NAME WHY    print "VMTEST ok NAME" /
#                                            "VMTEST fail NAME: WHY"
#   vmtest_check NAME CMD...                 ok if CMD succeeds
#   vmtest_net_up                            eth0 10.0.2.15/24 via 10.0.2.2
#   vmtest_note TEXT                         "VMTEST note TEXT" (figures)
#   /init prints "VMTEST begin", runs /scenario, prints "VMTEST end rc=N" and
#   powers off. The kernel command line is in /proc/cmdline (use --append
#   to pass parameters to a scenario).
#
# Facts (ENVIRONMENT.md): TCG boots and powers off in ~9 s; -cpu max gives
# AES-NI; /sbin/modprobe must exist for crypto templates; DM_DISABLE_UDEV=1
# and /run/cryptsetup are set up by /init.

VM_MODULES=${VM_MODULES:-"virtio_pci virtio_blk virtio_rng virtio_net virtio_console dm_mod dm_crypt dm_integrity ext4 loop af_packet"}
VM_LIB_FILE=${BASH_SOURCE[0]}
VM_TAP_N=${VM_TAP_N:-0}
VM_PIDS=()

vm_require() {
    VM_MISSING=""
    local t
    for t in qemu-system-x86_64 cpio depmod modprobe gzip ldd flock "$@"; do
        command -v "$t" >/dev/null 2>&1 || VM_MISSING="$VM_MISSING $t"
    done
    if [ -x /bin/busybox ] && ! ldd /bin/busybox >/dev/null 2>&1; then
        :
    else
        VM_MISSING="$VM_MISSING busybox-static(/bin/busybox)"
    fi
    VM_KVER=""
    if command -v dpkg-query >/dev/null 2>&1; then
        VM_KVER=$(dpkg-query -W -f='${Depends}' linux-image-amd64 2>/dev/null |
            sed -n 's/^linux-image-\([^ ,]*\).*/\1/p')
    fi
    if [ -z "$VM_KVER" ]; then
        # No Debian metapackage: take the newest kernel with modules.
        VM_KVER=$(ls -1 /lib/modules 2>/dev/null | sort -V | tail -1)
    fi
    VM_VMLINUZ=/boot/vmlinuz-$VM_KVER
    if [ -z "$VM_KVER" ] || [ ! -r "$VM_VMLINUZ" ] || [ ! -d "/lib/modules/$VM_KVER/kernel" ]; then
        VM_MISSING="$VM_MISSING kernel(linux-image-amd64)"
    fi
    VM_MISSING=${VM_MISSING# }
    [ -z "$VM_MISSING" ]
}

vm_cleanup() {
    local p
    for p in "${VM_PIDS[@]}"; do
        kill -9 "$p" 2>/dev/null
    done
    for p in "${VM_PIDS[@]}"; do
        wait "$p" 2>/dev/null
    done
    VM_PIDS=()
    if [ -n "${VM_KEEP:-}" ]; then
        echo "# kept $VM_WORK" >&2
    elif [ -n "${VM_WORK:-}" ] && [ -d "$VM_WORK" ]; then
        rm -rf "$VM_WORK"
    fi
}

vm_workdir() {
    VM_WORK=$(mktemp -d /tmp/arca-vm.XXXXXX)
    trap vm_cleanup EXIT
    trap 'vm_cleanup; exit 130' INT TERM
}

vm_cache_dir() {
    local d=${VM_CACHE_DIR:-}
    if [ -z "$d" ]; then
        if [ -n "${ARCA_BUILD_DIR:-}" ]; then d=$ARCA_BUILD_DIR/vm-cache; else d=/tmp/arca-vm-cache-$(id -u); fi
    fi
    mkdir -p "$d" && echo "$d"
}

# Copy an ELF file and its libraries into ROOT. $1 root, $2 source, $3 dest.
vm_copy_elf() {
    local root=$1 src=$2 dest=$3 lib
    mkdir -p "$root$(dirname "$dest")"
    cp -L "$src" "$root$dest" || return 1
    for lib in $(ldd "$src" 2>/dev/null | sed -n 's/.*=> \(\/[^ ]*\).*/\1/p; s/^[[:space:]]*\(\/[^ ]*\) (.*/\1/p'); do
        [ -e "$root$lib" ] && continue
        mkdir -p "$root$(dirname "$lib")"
        cp -L "$lib" "$root$lib" || return 1
    done
}

vm_write_init() {
    local root=$1
    cat >"$root/init" <<'EOF'
#!/bin/busybox sh
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm && mount -t devpts devpts /dev/pts
mount -t tmpfs -o mode=0755 tmpfs /run
mount -t tmpfs tmpfs /tmp
mkdir -p /run/cryptsetup /run/lock /var/tmp
export DM_DISABLE_UDEV=1 HOME=/root
for m in $(cat /etc/vm-modules); do modprobe "$m" 2>/dev/null; done
ip link set lo up 2>/dev/null
# Wait (briefly) for the virtio disks to show up.
i=0; while [ $i -lt 50 ] && [ -n "$(cat /etc/vm-wait-dev 2>/dev/null)" ] && [ ! -e "$(cat /etc/vm-wait-dev)" ]; do sleep 0.1; i=$((i+1)); done
. /lib/vmtest.sh
echo "VMTEST begin"
rc=0
if [ -f /scenario ]; then sh /scenario; rc=$?; else echo "VMTEST fail scenario: no /scenario"; rc=1; fi
echo "VMTEST end rc=$rc"
sync
poweroff -f
echo o >/proc/sysrq-trigger
sleep 5
EOF
    chmod 0755 "$root/init"
    mkdir -p "$root/lib"
    cat >"$root/lib/vmtest.sh" <<'EOF'
vmtest_ok() { echo "VMTEST ok $1"; }
vmtest_fail() { n=$1; shift; echo "VMTEST fail $n: $*"; }
vmtest_note() { echo "VMTEST note $*"; }
vmtest_check() { n=$1; shift; if "$@"; then vmtest_ok "$n"; else vmtest_fail "$n" "command failed (exit $?): $*"; fi; }
vmtest_net_up() {
    /bin/busybox ip link set eth0 up &&
    /bin/busybox ip addr add 10.0.2.15/24 dev eth0 &&
    /bin/busybox ip route add default via 10.0.2.2
}
EOF
}

vm_build_base() {
    local cache key out lock tmp m dep f
    cache=$(vm_cache_dir) || return 1
    key=$( { echo "$VM_KVER"; echo "$VM_MODULES ${VM_MODULES_EXTRA:-}"; cat "$VM_LIB_FILE"; } | sha256sum | cut -c1-16)
    out=$cache/base-$VM_KVER-$key.cpio.gz
    lock=$cache/.lock
    (
        flock 9
        [ -s "$out" ] && exit 0
        tmp=$(mktemp -d "$cache/base.XXXXXX") || exit 1
        trap 'rm -rf "$tmp"' EXIT
        local root=$tmp/root
        mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,etc,proc,sys,dev,run,tmp,root,var,mnt,lib/modules}
        cp /bin/busybox "$root/bin/busybox"
        for f in $(/bin/busybox --list-full); do
            [ -e "$root/$f" ] || ln -s /bin/busybox "$root/$f"
        done
        ln -sf /bin/busybox "$root/sbin/modprobe"
        local mdir=/lib/modules/$VM_KVER
        mkdir -p "$root$mdir"
        for m in $VM_MODULES ${VM_MODULES_EXTRA:-}; do
            for dep in $(modprobe -S "$VM_KVER" --show-depends "$m" 2>/dev/null | awk '$1=="insmod"{print $2}'); do
                mkdir -p "$root$(dirname "$dep")"
                cp "$dep" "$root$dep"
            done
        done
        for d in kernel/crypto kernel/arch/x86/crypto kernel/lib/crypto; do
            [ -d "$mdir/$d" ] || continue
            mkdir -p "$root$mdir/$d"
            cp -r "$mdir/$d/." "$root$mdir/$d/"
        done
        cp "$mdir"/modules.order "$mdir"/modules.builtin "$mdir"/modules.builtin.modinfo "$root$mdir/" 2>/dev/null
        depmod -b "$root" "$VM_KVER" || exit 1
        echo "$VM_MODULES ${VM_MODULES_EXTRA:-}" >"$root/etc/vm-modules"
        echo /dev/vda >"$root/etc/vm-wait-dev"
        echo "root:x:0:0:root:/root:/bin/sh" >"$root/etc/passwd"
        echo "root:x:0:" >"$root/etc/group"
        vm_write_init "$root"
        (cd "$root" && find . | cpio -o -H newc -R 0:0 --quiet | gzip -6) >"$tmp/base.cpio.gz" || exit 1
        mv "$tmp/base.cpio.gz" "$out"
    ) 9>"$lock" || return 1
    echo "$out"
}

vm_build_initramfs() {
    local out=$1 scenario=$2 base arg src dest root
    shift 2
    base=$(vm_build_base) || { echo "vm_build_initramfs: base initramfs failed" >&2; return 1; }
    root=$(mktemp -d "${VM_WORK:-/tmp}/overlay.XXXXXX") || return 1
    mkdir -p "$root/usr/bin"
    cp "$scenario" "$root/scenario" || return 1
    for arg in "$@"; do
        src=${arg%%=*} dest=""
        [ "$src" != "$arg" ] && dest=${arg#*=}
        if [ ! -e "$src" ]; then
            src=$(command -v "$src") || { echo "vm_build_initramfs: no such file or command: $arg" >&2; return 1; }
        fi
        if head -c4 "$src" | grep -q 'ELF'; then
            vm_copy_elf "$root" "$src" "${dest:-/usr/bin/$(basename "$src")}" || return 1
        else
            [ -n "$dest" ] || { echo "vm_build_initramfs: $src is not ELF: give FILE=DEST" >&2; return 1; }
            mkdir -p "$root$(dirname "$dest")"
            cp -L "$src" "$root$dest" || return 1
        fi
    done
    { cat "$base"; (cd "$root" && find . | cpio -o -H newc -R 0:0 --quiet | gzip -1); } >"$out" || return 1
    rm -rf "$root"
}

vm_free_port() {
    local p i
    for i in $(seq 1 50); do
        p=$((20000 + RANDOM % 40000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            echo "$p"; return 0
        fi
    done
    return 1
}

vm_boot() {
    local log="" initrd="" kernel=${VM_VMLINUZ:-} nokernel=0 append="" timeout=240 killon="" mem=1024
    local tpmdir="" tpmflags="startup-clear" netspec="" netset=0
    local -a disks=() extra=() args=()
    while [ $# -gt 0 ]; do
        case "$1" in
        --log) log=$2; shift ;;
        --initrd) initrd=$2; shift ;;
        --kernel) kernel=$2; shift ;;
        --no-kernel) nokernel=1 ;;
        --append) append=$2; shift ;;
        --disk) disks+=("$2"); shift ;;
        --disk-serial) disks+=("$2|$3"); shift 2 ;;
        --tpm) tpmdir=$2; shift ;;
        --tpm-flags) tpmflags=$2; shift ;;
        --net-user) netspec=$2; netset=1; shift ;;
        --timeout) timeout=$2; shift ;;
        --kill-on) killon=$2; shift ;;
        --mem) mem=$2; shift ;;
        --qemu-arg) extra+=("$2"); shift ;;
        *) echo "vm_boot: unknown option $1" >&2; return 2 ;;
        esac
        shift
    done
    [ -n "$log" ] || { echo "vm_boot: --log is required" >&2; return 2; }
    : >"$log"
    args=(-nodefaults -display none -monitor none -serial "file:$log" -no-reboot
        -cpu max -m "$mem" -device virtio-rng-pci)
    if [ $nokernel -eq 0 ]; then
        args+=(-kernel "$kernel" -initrd "$initrd"
            -append "console=ttyS0 quiet loglevel=3 panic=-1 no_timer_check $append")
    fi
    local d n=0
    for d in "${disks[@]}"; do
        if [ "${d#*|}" != "$d" ]; then
            args+=(-drive "file=${d%%|*},if=none,id=sd$n,format=raw,cache=unsafe"
                -device "virtio-blk-pci,drive=sd$n,serial=${d#*|}")
            n=$((n + 1))
        else
            args+=(-drive "file=$d,if=virtio,format=raw,cache=unsafe")
        fi
    done
    local swtpm_pid=""
    if [ -n "$tpmdir" ]; then
        command -v swtpm >/dev/null || { echo "vm_boot: swtpm missing" >&2; return 2; }
        mkdir -p "$tpmdir"
        local sock
        sock=$(mktemp -u "${VM_WORK:-/tmp}/swtpm.XXXXXX.sock")
        swtpm socket --tpm2 --ctrl "type=unixio,path=$sock" --tpmstate "dir=$tpmdir" \
            --flags "$tpmflags" >>"$log.swtpm" 2>&1 &
        swtpm_pid=$!
        VM_PIDS+=("$swtpm_pid")
        local i=0
        while [ ! -S "$sock" ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
        [ -S "$sock" ] || { echo "vm_boot: swtpm did not start" >&2; return 2; }
        args+=(-chardev "socket,id=chrtpm,path=$sock" -tpmdev emulator,id=tpm0,chardev=chrtpm
            -device tpm-tis,tpmdev=tpm0)
    fi
    if [ $netset -eq 1 ]; then
        args+=(-netdev "user,id=n0${netspec:+,$netspec}" -device virtio-net-pci,netdev=n0)
    fi
    qemu-system-x86_64 "${args[@]}" "${extra[@]}" >"$log.qemu" 2>&1 &
    local qpid=$! rc start=$SECONDS killed=0
    VM_PIDS+=("$qpid")
    while kill -0 "$qpid" 2>/dev/null; do
        if [ -n "$killon" ] && grep -qE "$killon" "$log" 2>/dev/null; then
            kill -9 "$qpid" 2>/dev/null; killed=1; break
        fi
        if [ $((SECONDS - start)) -ge "$timeout" ]; then
            kill -9 "$qpid" 2>/dev/null; killed=2; break
        fi
        sleep 0.2
    done
    { wait "$qpid"; } 2>/dev/null; rc=$?
    if [ -n "$swtpm_pid" ]; then
        # swtpm exits when qemu disconnects; make sure it has.
        local i=0
        while kill -0 "$swtpm_pid" 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
        kill -9 "$swtpm_pid" 2>/dev/null; wait "$swtpm_pid" 2>/dev/null
    fi
    [ -s "$log.qemu" ] && sed 's/^/qemu: /' "$log.qemu" >>"$log"
    [ $killed -eq 1 ] && return 137
    [ $killed -eq 2 ] && { echo "VMHOST timeout after ${timeout}s" >>"$log"; return 124; }
    return "$rc"
}

vm_tap_line() {
    VM_TAP_N=$((VM_TAP_N + 1))
    if [ "$1" = OK ]; then echo "ok $VM_TAP_N - $2"; else echo "not ok $VM_TAP_N - $2"; fi
}

vm_log_tail() {
    tail -n "${2:-25}" "$1" | tr -d '\r' | sed 's/^/# /'
}

vm_tap() {
    local log=$1 name line bad=0
    shift
    for name in "$@"; do
        line=$(tr -d '\r' <"$log" | grep -E "^VMTEST (ok|fail) $name(:|$)" | tail -1)
        case "$line" in
        "VMTEST ok $name") vm_tap_line OK "$name" ;;
        "VMTEST fail $name:"*) vm_tap_line FAIL "$name: ${line#VMTEST fail "$name": }"; bad=1 ;;
        *) vm_tap_line FAIL "$name: no report from the guest"; bad=1 ;;
        esac
    done
    [ $bad -eq 0 ] || vm_log_tail "$log"
    return $bad
}
