#!/usr/bin/env bash
# Build a small Debian cloud image for limapy's e2e tests and benchmark, from the Debian archive apt
# already uses on this host (no pre-built cloud image download, no loop mounts).
#
# Usage: hack/build-test-image.sh [--boot kernel|uefi|bios] [--arch x86_64|aarch64] [OUTDIR]
#   OUTDIR defaults to ${XDG_CACHE_HOME:-~/.cache}/limapy/test-image.
#
# Result (in OUTDIR/<key>/, where <key> hashes this script and its inputs):
#   --boot kernel (the default, x86_64 only):
#     disk.qcow2   ext4 root file system (label "rootfs", 2 GiB, no partition table)
#     vmlinuz, initrd.img   for direct kernel boot
#     test-image.yaml       a limapy template booting them (also copied to OUTDIR/test-image.yaml)
#   --boot uefi / --boot bios (x86_64): one disk laid out as cloud images are, bootable both ways:
#     disk.qcow2   GPT: a BIOS boot partition (GRUB's core.img, for SeaBIOS), an EFI system partition (GRUB's
#                  standalone EFI image as the removable-media loader), the ext4 root (label "rootfs") with the
#                  kernel in /boot; GRUB finds the root by label and boots the kernel from it
#     test-image-uefi.yaml, test-image-bios.yaml (`firmware.legacyBIOS: true`)
#   --arch aarch64 (UEFI only): the same GPT layout with an arm64 root (built through qemu-user-static and
#     binfmt_misc, which this script registers when missing), booted by AAVMF on `virt`: test-image-aarch64.yaml
#   UEFI images carry efibootmgr (the e2e tests write a UEFI variable with it).
# The last line of stdout is the absolute path of the template asked for; progress goes to stderr.
#
# Environment:
#   LIMAPY_TEST_IMAGE_MIRROR, LIMAPY_TEST_IMAGE_SUITE  override what is read from apt's sources
#   LIMAPY_TEST_IMAGE_REBUILD=1                        ignore the cache
# Building needs root (mmdebstrap --mode=root, chroot, ownership kept by mkfs.ext4 -d); a cache hit does not.
set -euo pipefail

log() { printf 'build-test-image: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# --- hooks for a foreign root ----------------------------------------------------------------------------
# Under qemu-user every process costs ~0.1 s, and a handful of maintainer scripts make hundreds. While the
# packages install, their slowest work is stubbed; it is done once at the end, natively where the result
# does not depend on the architecture (measured on 2 cores: mmdebstrap took 885 s, most of it these):
#   update-initramfs (kernel postinst and the initramfs-tools trigger: 2 x 200 s) -> once, with the
#     modules a virt guest needs (MODULES=list: 40 s);
#   update-ca-certificates (postinst and trigger, ~700 processes each: 90 s) -> once, natively (it is a
#     shell script that takes the guest's paths as options);
#   py3compile/py3clean (a Python start per package: 85 s) -> the host's python3.X (the guest's version:
#     the .pyc come out byte-identical) compiles the guest's Python with the guest's paths;
#   the locales postinst's grep per supported locale (490 processes: 40 s) -> it sees an empty list, and
#     /etc/locale.gen gets the same lines here;
#   ssh-keygen of the host keys (deleted below anyway: cloud-init makes them at first boot) -> skipped;
#   dpkg's fsyncs -> eatmydata (mmdebstrap's hook, which removes it again).
# mmdebstrap runs this script as `build-test-image.sh --hook essential|customize ROOT`.
readonly FOREIGN_STUBS=(/usr/sbin/update-initramfs /usr/sbin/update-ca-certificates /usr/bin/py3compile
    /usr/bin/py3clean /usr/share/i18n/SUPPORTED)
since() { printf '%s s' $((EPOCHSECONDS - $1)); }
hook_essential() {
    local root=$1 f
    log "essential packages installed: $(since "$BUILD_EPOCH")"
    for f in "${FOREIGN_STUBS[@]}"; do
        chroot "$root" dpkg-divert --quiet --local --rename --add "$f"
        mkdir -p -- "$root${f%/*}"
        case $f in
            */SUPPORTED) : >"$root$f" ;;
            *) printf '#!/bin/sh\nexit 0\n' >"$root$f"; chmod 755 "$root$f" ;;
        esac
    done
    mkdir -p -- "$root/etc/ssh"
    for f in rsa ecdsa ed25519; do : >"$root/etc/ssh/ssh_host_${f}_key"; done
}
hook_customize() {
    local root=$1 f t=$EPOCHSECONDS
    log "all packages installed: $(since "$BUILD_EPOCH")"
    for f in "${FOREIGN_STUBS[@]}"; do
        rm -f -- "$root$f"
        chroot "$root" dpkg-divert --quiet --local --rename --remove "$f"
    done
    rm -f -- "$root"/etc/ssh/ssh_host_* "$root/var/lib/dpkg/diversions-old"
    # mmdebstrap's eatmydata hook leaves its script behind (the package is known, not installed), and the
    # library it removed in ld.so.cache.
    [[ -e $root/var/lib/dpkg/info/eatmydata.list ]] || rm -f -- "$root/usr/bin/eatmydata"
    chroot "$root" ldconfig
    # What the locales postinst appends to the header it wrote: every supported locale, commented out.
    sed -e '/^[a-zA-Z]/!d' -e 's/ *$//g' "$root/usr/share/i18n/SUPPORTED" | LC_ALL=C sort -u |
        sed 's/^/# /' >>"$root/etc/locale.gen"
    local py
    py=$(readlink -- "$root/usr/bin/python3")  # python3.11: the host's must be the same version
    [[ $py == python3.* && -x /usr/bin/$py ]] ||
        die "/usr/bin/$py not found (it byte-compiles the guest's Python): apt-get install $py"
    "/usr/bin/$py" -m compileall -q -j 0 -s "$root" -p / \
        "$root/usr/share/python3" "$root/usr/lib/python3/dist-packages" >&2
    log "locale.gen, byte-compiled: $(since "$t")"; t=$EPOCHSECONDS
    # The guest's update-ca-certificates is a shell script: run here on its files (the host's openssl
    # names the hash links as the guest's would), then the links are made to point inside the guest.
    sh "$root/usr/sbin/update-ca-certificates" --fresh --hooksdir "" --certsconf "$root/etc/ca-certificates.conf" \
        --certsdir "$root/usr/share/ca-certificates" --localcertsdir "$root/usr/local/share/ca-certificates" \
        --etccertsdir "$root/etc/ssl/certs" >&2
    local link target
    for link in "$root"/etc/ssl/certs/*; do
        [[ -L $link ]] || continue
        target=$(readlink -- "$link")
        [[ $target == "$root"/* ]] && ln -sfn -- "${target#"$root"}" "$link"
    done
    log "update-ca-certificates: $(since "$t")"; t=$EPOCHSECONDS
    # This initramfs holds the modules a virt guest's root disk needs, not MODULES=most's hundreds (150 s
    # under qemu-user, against 40 s); the image's own initramfs-tools configuration stays Debian's.
    printf 'MODULES=list\n' >"$root/etc/initramfs-tools/conf.d/zz-limapy-build"
    printf '%s\n' virtio_pci virtio_blk virtio_scsi sd_mod sr_mod virtio_net virtio_console \
        >"$root/usr/share/initramfs-tools/modules.d/zz-limapy-build"
    for f in "$root"/lib/modules/*; do chroot "$root" update-initramfs -c -k "${f##*/}" >&2; done
    rm -f -- "$root/etc/initramfs-tools/conf.d/zz-limapy-build" \
        "$root/usr/share/initramfs-tools/modules.d/zz-limapy-build"
    log "update-initramfs: $(since "$t")"
}
if [[ ${1:-} == --hook ]]; then
    set -euo pipefail
    "hook_$2" "$3"
    exit 0
fi

BOOT="" LIMA_ARCH=x86_64 OUTDIR_ARG=""
while (($#)); do
    case $1 in
        --boot) (($# >= 2)) || die "--boot needs a value"; BOOT=$2; shift 2 ;;
        --boot=*) BOOT=${1#--boot=}; shift ;;
        --arch) (($# >= 2)) || die "--arch needs a value"; LIMA_ARCH=$2; shift 2 ;;
        --arch=*) LIMA_ARCH=${1#--arch=}; shift ;;
        -h | --help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//' >&2; exit 0 ;;
        --) shift; OUTDIR_ARG=${1:-}; break ;;
        -*) die "unknown option $1 (see --help)" ;;
        *) [[ -z $OUTDIR_ARG ]] || die "one OUTDIR only"; OUTDIR_ARG=$1; shift ;;
    esac
done
case $LIMA_ARCH in
    x86_64) DEB_ARCH=amd64 CONSOLE=ttyS0 EFI_TARGET=x86_64-efi EFI_LOADER=BOOTX64.EFI BOOT=${BOOT:-kernel} ;;
    aarch64) DEB_ARCH=arm64 CONSOLE=ttyAMA0 EFI_TARGET=arm64-efi EFI_LOADER=BOOTAA64.EFI BOOT=${BOOT:-uefi} ;;
    *) die "--arch $LIMA_ARCH: want x86_64 or aarch64" ;;
esac
case $BOOT/$LIMA_ARCH in
    kernel/x86_64 | uefi/* | bios/x86_64) ;;
    */aarch64) die "--arch aarch64 boots by UEFI only (--boot uefi)" ;;
    *) die "--boot $BOOT: want kernel, uefi or bios" ;;
esac
# kernel: a bare ext4 image; gpt: the partitioned disk that both --boot uefi and --boot bios boot.
LAYOUT=$([[ $BOOT == kernel ]] && echo plain || echo gpt)

PACKAGES=("linux-image-cloud-$DEB_ARCH" systemd-sysv udev dbus iproute2 kmod cloud-init openssh-server sudo
    sshfs socat rsync)  # sshfs: reverse-sshfs mounts; socat: the e2e tests' TCP and Unix-socket listeners;
                        # rsync: `shell --sync` and `copy --backend rsync` (Lima's copy tool)
if [[ $LAYOUT == gpt ]]; then
    PACKAGES+=(efibootmgr)
    # arm64 GRUB modules come from the guest's own package (the host has the x86 ones: hack/setup.sh)
    [[ $LIMA_ARCH == aarch64 ]] && PACKAGES+=(grub-efi-arm64-bin)
fi
readonly PACKAGES DEB_ARCH LIMA_ARCH CONSOLE EFI_TARGET EFI_LOADER BOOT LAYOUT
readonly DISK_SIZE=2G
readonly ROOT_LABEL=rootfs
# LABEL= needs udev in the initramfs (initramfs-tools has it); it survives extra disks shifting vda.
readonly CMDLINE="root=LABEL=${ROOT_LABEL} rw console=${CONSOLE}"
case $BOOT/$LIMA_ARCH in
    kernel/*) TEMPLATE_NAME=test-image.yaml ;;
    */aarch64) TEMPLATE_NAME=test-image-aarch64.yaml ;;
    *) TEMPLATE_NAME=test-image-$BOOT.yaml ;;
esac
readonly TEMPLATE_NAME
# The GPT layout, in 512-byte sectors: BIOS boot partition 1 MiB at 1 MiB, ESP 64 MiB, root 2 GiB.
readonly BIOS_START=2048 BIOS_SECTORS=2048 ESP_START=4096 ESP_SECTORS=131072 ROOT_START=135168

# --- the Debian mirror and suite apt uses ---------------------------------------------------------------

# Print "URI SUITE" for the first enabled deb822 "deb" stanza that carries a plain suite (a codename, not
# -updates/-security/-backports).
deb822_mirror() {
    awk '
        function flush() {
            if (types ~ /(^| )deb( |$)/ && enabled != "no" && uri != "") {
                n = split(suites, s, " ")
                for (i = 1; i <= n; i++) if (s[i] !~ /[-\/]/) { print uri, s[i]; found = 1; exit }
            }
            types = ""; uris = ""; suites = ""; uri = ""; enabled = ""
        }
        /^[ \t]*#/ { next }
        /^[ \t]*$/ { flush(); next }
        /^[A-Za-z-]+:/ {
            field = tolower(substr($0, 1, index($0, ":") - 1))
            value = substr($0, index($0, ":") + 1)
            gsub(/^[ \t]+|[ \t]+$/, "", value)
            if (field == "types") types = value
            else if (field == "uris") { split(value, u, " "); uri = u[1] }
            else if (field == "suites") suites = value
            else if (field == "enabled") enabled = tolower(value)
        }
        END { if (!found) flush() }
    ' "$@" 2>/dev/null | head -n 1
}

# Same, from one-line "deb [options] URI SUITE COMPONENTS..." entries.
sources_list_mirror() {
    awk '
        $1 == "deb" {
            i = 2
            if ($i ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
            if ($(i + 1) !~ /[-\/]/) { print $i, $(i + 1); exit }
        }
    ' "$@" 2>/dev/null | head -n 1
}

find_mirror() {
    local found="" f
    local deb822=() lists=()
    for f in /etc/apt/sources.list.d/*.sources; do [[ -f $f ]] && deb822+=("$f"); done
    [[ -f /etc/apt/sources.list ]] && lists+=(/etc/apt/sources.list)
    for f in /etc/apt/sources.list.d/*.list; do [[ -f $f ]] && lists+=("$f"); done
    if ((${#deb822[@]})); then found=$(deb822_mirror "${deb822[@]}"); fi
    if [[ -z $found ]] && ((${#lists[@]})); then found=$(sources_list_mirror "${lists[@]}"); fi
    printf '%s\n' "$found"
}

read -r apt_mirror apt_suite <<<"$(find_mirror)" || true
MIRROR=${LIMAPY_TEST_IMAGE_MIRROR:-${apt_mirror:-}}
SUITE=${LIMAPY_TEST_IMAGE_SUITE:-${apt_suite:-}}
[[ -n $MIRROR && -n $SUITE ]] ||
    die "no Debian mirror found in /etc/apt/sources.list.d/*.sources or /etc/apt/sources.list;" \
        "set LIMAPY_TEST_IMAGE_MIRROR and LIMAPY_TEST_IMAGE_SUITE"
case $MIRROR in
    http://* | https://* | file:/*) ;;
    *) die "unsupported mirror URI '$MIRROR' (want http, https or file); set LIMAPY_TEST_IMAGE_MIRROR" ;;
esac

# --- cache ---------------------------------------------------------------------------------------------

OUTDIR=${OUTDIR_ARG:-${XDG_CACHE_HOME:-$HOME/.cache}/limapy/test-image}
mkdir -p -- "$OUTDIR"
OUTDIR=$(cd -- "$OUTDIR" && pwd -P)

script_path=$(readlink -f -- "${BASH_SOURCE[0]}")
key=$({
    sha256sum <"$script_path"
    printf '%s\n' "packages=${PACKAGES[*]}" "mirror=$MIRROR" "suite=$SUITE" "arch=$DEB_ARCH"
    [[ $LAYOUT == plain ]] || printf '%s\n' "layout=$LAYOUT"  # (the default's key is as before)
} | sha256sum | cut -c1-16)
final="$OUTDIR/$key"

publish() {
    # A convenience copy at a stable path; the printed path is the immutable one inside the keyed dir.
    cp -- "$final/$TEMPLATE_NAME" "$OUTDIR/.$TEMPLATE_NAME.tmp"
    mv -f -- "$OUTDIR/.$TEMPLATE_NAME.tmp" "$OUTDIR/$TEMPLATE_NAME"
    printf '%s\n' "$final/$TEMPLATE_NAME"
}

cached() { [[ -f $final/$TEMPLATE_NAME && ${LIMAPY_TEST_IMAGE_REBUILD:-0} != 1 ]]; }

if cached; then
    log "cached: $final ($SUITE from $MIRROR)"
    publish
    exit 0
fi

[[ $(id -u) -eq 0 ]] ||
    die "building the image needs root (mmdebstrap --mode=root, chroot, mkfs.ext4 -d keeping file" \
        "ownership); run: sudo $0${*:+ $*}"
for tool in mmdebstrap mkfs.ext4 qemu-img sha256sum flock chroot; do
    command -v "$tool" >/dev/null ||
        die "$tool not found; install: apt-get install mmdebstrap e2fsprogs qemu-utils coreutils util-linux"
done
if [[ $LAYOUT == gpt ]]; then
    for tool in sfdisk mkfs.fat mcopy mmd grub-mkimage grub-mkstandalone; do
        command -v "$tool" >/dev/null ||
            die "$tool not found; install: apt-get install fdisk dosfstools mtools grub-common grub-pc-bin" \
                "grub-efi-amd64-bin (hack/setup.sh)"
    done
    [[ $LIMA_ARCH == aarch64 ]] || for d in /usr/lib/grub/i386-pc /usr/lib/grub/x86_64-efi; do
        [[ -f $d/moddep.lst ]] || die "$d missing: apt-get install grub-pc-bin grub-efi-amd64-bin"
    done
fi

# A foreign root file system runs its maintainer scripts through qemu-user-static, which binfmt_misc must
# know (with the F flag, so the interpreter works inside the chroot). Register it when it is not.
ensure_binfmt() {
    local arch=$1 conf=/usr/lib/binfmt.d/qemu-$1.conf dir=/proc/sys/fs/binfmt_misc
    [[ -e $dir/qemu-$arch ]] && return 0
    [[ -f $conf ]] || die "$conf missing: apt-get install qemu-user-static arch-test"
    [[ -e $dir/register ]] || mount -t binfmt_misc binfmt_misc "$dir" ||
        die "cannot mount binfmt_misc at $dir (needed to run $arch programs while building)"
    [[ -e $dir/qemu-$arch ]] || grep -v '^#' "$conf" >"$dir/register" || die "cannot register $conf with binfmt_misc"
    log "registered qemu-user-static for $arch with binfmt_misc"
}
if [[ $LIMA_ARCH == aarch64 ]]; then
    command -v arch-test >/dev/null || die "arch-test not found (mmdebstrap needs it for a foreign root): apt-get install arch-test"
    ensure_binfmt aarch64
fi
readonly HOOKS=/usr/share/mmdebstrap/hooks/merged-usr
[[ -d $HOOKS ]] || die "$HOOKS missing: mmdebstrap >= 1.0 is needed"
foreign_opts=()
if [[ $LIMA_ARCH != "$(uname -m)" ]]; then
    [[ -d /usr/share/mmdebstrap/hooks/eatmydata ]] || die "mmdebstrap's eatmydata hook is missing"
    hook_cmd=$(printf '%q --hook' "$(readlink -f -- "${BASH_SOURCE[0]}")")
    foreign_opts=(--hook-dir=/usr/share/mmdebstrap/hooks/eatmydata
        --essential-hook="$hook_cmd essential \"\$1\"" --customize-hook="$hook_cmd customize \"\$1\"")
fi

# One builder at a time per OUTDIR; whoever waited finds the cache filled.
exec 9>"$OUTDIR/.lock"
flock 9
if cached; then
    log "cached (built by a concurrent run): $final"
    publish
    exit 0
fi
# Anything left in a .build-* dir comes from an interrupted run (we hold the lock). --one-file-system
# keeps rm out of a /proc or /dev that a killed mmdebstrap might have left mounted.
for stale in "$OUTDIR"/.build-*; do
    [[ -e $stale ]] && { log "removing interrupted build $stale"; rm -rf --one-file-system -- "$stale" || true; }
done

work=$(mktemp -d "$OUTDIR/.build-$key.XXXXXX")
cleanup() { rm -rf --one-file-system -- "$work" || true; }
trap cleanup EXIT
trap 'exit 130' INT TERM

start=$SECONDS
export BUILD_EPOCH=$EPOCHSECONDS  # for the hooks' timings
root="$work/root"
out="$work/out"
mkdir -p -- "$out"

# --- root file system ----------------------------------------------------------------------------------

log "mmdebstrap $SUITE from $MIRROR (${#PACKAGES[@]} packages + dependencies)"
include=$(IFS=,; printf '%s' "${PACKAGES[*]}")
mmdebstrap \
    --mode=root --variant=minbase --format=directory --arch="$DEB_ARCH" --components=main \
    --aptopt='APT::Install-Recommends "false"' \
    --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/info/*' \
    --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --dpkgopt='path-exclude=/usr/share/lintian/*' \
    --hook-dir="$HOOKS" \
    ${foreign_opts[@]+"${foreign_opts[@]}"} \
    --include="$include" \
    "$SUITE" "$root" "$MIRROR" >&2
log "root file system: $(du -sh --one-file-system "$root" | cut -f1), $((SECONDS - start)) s"

log "customizing"
printf 'LABEL=%s / ext4 rw,errors=remount-ro 0 1\n' "$ROOT_LABEL" >"$root/etc/fstab"
printf 'localhost\n' >"$root/etc/hostname"
mkdir -p -- "$root/etc/cloud/cloud.cfg.d"
cat >"$root/etc/cloud/cloud.cfg.d/90-limapy-test-image.cfg" <<'EOF'
# limapy test image: only a NoCloud seed (cidata), no network metadata probing.
datasource_list: [ NoCloud, None ]
# Without a locale that exists in the image cloud-init ends in "status: error".
locale: C.UTF-8
# RSA host keys cost seconds under TCG.
ssh_genkeytypes: [ ed25519, ecdsa ]
EOF
chroot "$root" systemctl enable systemd-networkd >&2
rm -f -- "$root"/etc/ssh/ssh_host_*
: >"$root/etc/machine-id"
rm -f -- "$root/var/lib/dbus/machine-id"
ln -s /etc/machine-id "$root/var/lib/dbus/machine-id"
rm -rf -- "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/* "$root"/var/lib/cloud/* \
    "$root"/var/log/*.log "$root"/tmp/* "$root"/var/tmp/*
: >"$root/etc/resolv.conf"

kernel=$(find "$root/boot" -maxdepth 1 -name 'vmlinuz-*' | sort -V | tail -n 1)
initrd=$(find "$root/boot" -maxdepth 1 -name 'initrd.img-*' | sort -V | tail -n 1)
[[ -n $kernel && -n $initrd ]] || die "no kernel or initrd in $root/boot"
log "kernel $(basename -- "$kernel")"
digest() { printf 'sha256:%s' "$(sha256sum <"$1" | cut -d' ' -f1)"; }

# The template's common tail.
template_tail() {
    cat <<EOF
cpus: 2
memory: 1GiB
disk: 4GiB
mounts: []
plain: false
containerd:
  system: false
  user: false
EOF
}

# --- disk: a bare ext4 root, booted by direct kernel boot ------------------------------------------------

build_plain() {
    cp -- "$kernel" "$out/vmlinuz"
    cp -- "$initrd" "$out/initrd.img"
    log "mkfs.ext4 -d ($DISK_SIZE, label $ROOT_LABEL)"
    truncate -s "$DISK_SIZE" "$work/disk.raw"
    mkfs.ext4 -q -F -L "$ROOT_LABEL" -d "$root" "$work/disk.raw" >&2
    qemu-img convert -f raw -O qcow2 "$work/disk.raw" "$out/disk.qcow2"
    rm -f -- "$work/disk.raw"
    {
        cat <<EOF
# limapy test image: Debian $SUITE ($DEB_ARCH) built by hack/build-test-image.sh from $MIRROR
# cache key $key. Boots by direct kernel boot; cloud-init reads the NoCloud seed.
images:
- location: "$final/disk.qcow2"
  arch: $LIMA_ARCH
  digest: "$(digest "$out/disk.qcow2")"
  kernel:
    location: "$final/vmlinuz"
    digest: "$(digest "$out/vmlinuz")"
    cmdline: "$CMDLINE"
  initrd:
    location: "$final/initrd.img"
    digest: "$(digest "$out/initrd.img")"
EOF
        template_tail
    } >"$out/$TEMPLATE_NAME"
}

# --- disk: GPT with BIOS boot partition, ESP and root, as cloud images are (no loop device) ------------

# Little-endian bytes of $1, $2 bytes wide, written at byte offset $3 of file $4.
poke_le() {
    local v=$1 n=$2 i hex=""
    for ((i = 0; i < n; i++)); do hex+=$(printf '\\x%02x' $(((v >> (8 * i)) & 255))); done
    printf "$hex" | dd of="$4" bs=1 seek="$3" conv=notrunc status=none
}

build_gpt() {
    local raw="$work/disk.raw" cfg="$work/grub.cfg" root_bytes
    root_bytes=$(numfmt --from=iec "$DISK_SIZE")
    # GRUB reads the kernel from the root file system, found by its label, as a cloud image's GRUB does.
    # (a standalone EFI image keeps its modules in a memdisk: the ones `search` needs are loaded first)
    cat >"$cfg" <<EOF
set timeout=0
insmod part_gpt
insmod ext2
search --no-floppy --label --set=root $ROOT_LABEL
linux /boot/$(basename -- "$kernel") $CMDLINE
initrd /boot/$(basename -- "$initrd")
boot
EOF
    log "GPT disk: BIOS boot, ESP (GRUB $EFI_TARGET), ext4 root ($DISK_SIZE, label $ROOT_LABEL)"
    truncate -s $((ROOT_START * 512 + root_bytes + (1 << 20))) "$raw"
    sfdisk -q "$raw" >&2 <<EOF
label: gpt
start=$BIOS_START, size=$BIOS_SECTORS, type=21686148-6449-6E6F-744E-656564454649, name="bios"
start=$ESP_START, size=$ESP_SECTORS, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name="esp"
start=$ROOT_START, size=$((root_bytes / 512)), type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name="root"
EOF
    # root: mkfs.ext4 -d into its own image, copied into place
    truncate -s "$root_bytes" "$work/root.img"
    mkfs.ext4 -q -F -L "$ROOT_LABEL" -d "$root" "$work/root.img" >&2
    dd if="$work/root.img" of="$raw" bs=1M seek=$((ROOT_START / 2048)) conv=notrunc,sparse status=none
    rm -f -- "$work/root.img"
    # ESP: FAT made in a file (mkfs.fat -C), filled with mtools
    local grub_efi_dir=/usr/lib/grub/$EFI_TARGET
    [[ $LIMA_ARCH == aarch64 ]] && grub_efi_dir=$root/usr/lib/grub/$EFI_TARGET
    grub-mkstandalone -O "$EFI_TARGET" -d "$grub_efi_dir" --locales= --themes= --fonts= \
        -o "$work/$EFI_LOADER" "boot/grub/grub.cfg=$cfg" >&2
    mkfs.fat -C -n ESP "$work/esp.img" $((ESP_SECTORS / 2)) >/dev/null
    mmd -i "$work/esp.img" ::/EFI ::/EFI/BOOT
    mcopy -i "$work/esp.img" "$work/$EFI_LOADER" "::/EFI/BOOT/$EFI_LOADER"
    dd if="$work/esp.img" of="$raw" bs=1M seek=$((ESP_START / 2048)) conv=notrunc status=none
    if [[ $LIMA_ARCH == x86_64 ]]; then
        # SeaBIOS: GRUB's boot.img in the MBR's code area (the protective MBR's partition table stays), and
        # core.img (with the same configuration built in) in the BIOS boot partition: what grub-bios-setup does.
        local pc=/usr/lib/grub/i386-pc
        grub-mkimage -O i386-pc -d "$pc" -o "$work/core.img" -c "$cfg" -p "(hd0,gpt3)/boot/grub" \
            biosdisk part_gpt ext2 search search_label linux echo >&2
        (($(stat -c %s "$work/core.img") <= BIOS_SECTORS * 512)) || die "core.img does not fit the BIOS boot partition"
        dd if="$pc/boot.img" of="$raw" bs=440 count=1 conv=notrunc status=none
        poke_le "$BIOS_START" 8 $((0x5c)) "$raw"  # boot.img: the sector core.img starts at
        poke_le $((0x9090)) 2 $((0x66)) "$raw"    # boot.img: boot from the BIOS drive as given (a hard disk)
        dd if="$work/core.img" of="$raw" bs=512 seek="$BIOS_START" conv=notrunc status=none
        poke_le $((BIOS_START + 1)) 8 $((BIOS_START * 512 + 0x1f4)) "$raw"  # diskboot: where the rest is
    fi
    qemu-img convert -f raw -O qcow2 "$raw" "$out/disk.qcow2"
    rm -f -- "$raw"
    local kinds=(uefi)
    [[ $LIMA_ARCH == x86_64 ]] && kinds+=(bios)
    local kind name
    for kind in "${kinds[@]}"; do
        name=test-image-$kind.yaml
        [[ $LIMA_ARCH == aarch64 ]] && name=test-image-aarch64.yaml
        {
            cat <<EOF
# limapy test image: Debian $SUITE ($DEB_ARCH) built by hack/build-test-image.sh from $MIRROR
# cache key $key. A GPT disk booted by GRUB from $([[ $kind == bios ]] && echo "SeaBIOS (legacy BIOS)" ||
                echo "UEFI firmware"); cloud-init reads the NoCloud seed.
arch: $LIMA_ARCH
images:
- location: "$final/disk.qcow2"
  arch: $LIMA_ARCH
  digest: "$(digest "$out/disk.qcow2")"
EOF
            [[ $kind == bios ]] && printf 'firmware:\n  legacyBIOS: true\n'
            template_tail
        } >"$out/$name"
    done
}

if [[ $LAYOUT == plain ]]; then build_plain; else build_gpt; fi

# Publish atomically: a half-written build never sits at $final.
rm -rf --one-file-system -- "$final"
mv -- "$out" "$final"
# Older builds stay: instances created from them use their disk.qcow2 as the base of an overlay, and
# deleting it would break them. Remove $OUTDIR/<old key>/ by hand once no instance needs it.
for old in "$OUTDIR"/*/; do
    old=${old%/}
    [[ $old != "$final" && -f $old/$TEMPLATE_NAME ]] && log "an older build is kept (instances may use it): $old"
done
log "built $final ($BOOT, $LIMA_ARCH) in $((SECONDS - start)) s: disk.qcow2 $(du -h "$final/disk.qcow2" | cut -f1)"
publish
