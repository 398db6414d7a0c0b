#!/usr/bin/env bash
# Install the Debian 12 packages that arca's build, tests and local cluster
# need. Idempotent; never pulls recommended packages.
set -eu
export DEBIAN_FRONTEND=noninteractive

PACKAGES=(
    # build
    make gcc libc6-dev pkg-config clang libclang-rt-14-dev
    # libraries
    libssl-dev libtss2-dev libjson-c-dev libevent-dev
    libcryptsetup-dev libnftables-dev
    # tests: TPM, hosts, registry
    libcriterion-dev openssl swtpm swtpm-tools tpm2-tools iproute2 procps etcd-server etcd-client
    # measured boot: the systemd stub and systemd-measure, independent Authenticode tools, PE files
    systemd systemd-boot-efi pesign sbsigntool osslsigncode binutils linux-image-amd64
    # mesh and firewall
    wireguard-go wireguard-tools nftables util-linux
    # qemu guests: kernel + busybox initramfs, OVMF + ESP, state disks
    qemu-system-x86 ovmf busybox-static cpio kmod mtools dosfstools cryptsetup-bin e2fsprogs
)

missing=()
for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
    echo "install-deps: all ${#PACKAGES[@]} packages present"
    exit 0
fi
SUDO=
[ "$(id -u)" -eq 0 ] || SUDO=sudo
echo "install-deps: installing ${missing[*]}"
$SUDO apt-get -o DPkg::Lock::Timeout=600 update -qq
$SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}"
