#!/usr/bin/env bash
# Build a small Debian cloud image for limapy's e2e tests and benchmark, from the Debian archive apt
# already uses on this host (no pre-built cloud image download, no loop mounts).
#
# Usage: hack/build-test-image.sh [OUTDIR]
#   OUTDIR defaults to ${XDG_CACHE_HOME:-~/.cache}/limapy/test-image.
#
# Result (in OUTDIR/<key>/, where <key> hashes this script and its inputs):
#   disk.qcow2   ext4 root file system (label "rootfs", 2 GiB, no partition table)
#   vmlinuz, initrd.img   for direct kernel boot
#   test-image.yaml       a limapy template booting them (also copied to OUTDIR/test-image.yaml)
# The last line of stdout is the absolute path of that template; progress goes to stderr.
#
# Environment:
#   LIMAPY_TEST_IMAGE_MIRROR, LIMAPY_TEST_IMAGE_SUITE  override what is read from apt's sources
#   LIMAPY_TEST_IMAGE_REBUILD=1                        ignore the cache
# Building needs root (mmdebstrap --mode=root, chroot, ownership kept by mkfs.ext4 -d); a cache hit does not.
set -euo pipefail

readonly PACKAGES=(linux-image-cloud-amd64 systemd-sysv udev dbus iproute2 kmod cloud-init openssh-server sudo
    sshfs socat)  # sshfs: reverse-sshfs mounts; socat: the e2e tests' TCP and Unix-socket listeners
readonly DEB_ARCH=amd64
readonly LIMA_ARCH=x86_64
readonly DISK_SIZE=2G
readonly ROOT_LABEL=rootfs
# LABEL= needs udev in the initramfs (initramfs-tools has it); it survives extra disks shifting vda.
readonly CMDLINE="root=LABEL=${ROOT_LABEL} rw console=ttyS0"
readonly TEMPLATE_NAME=test-image.yaml

log() { printf 'build-test-image: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

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

OUTDIR=${1:-${XDG_CACHE_HOME:-$HOME/.cache}/limapy/test-image}
mkdir -p -- "$OUTDIR"
OUTDIR=$(cd -- "$OUTDIR" && pwd -P)

script_path=$(readlink -f -- "${BASH_SOURCE[0]}")
key=$({
    sha256sum <"$script_path"
    printf '%s\n' "packages=${PACKAGES[*]}" "mirror=$MIRROR" "suite=$SUITE" "arch=$DEB_ARCH"
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
readonly HOOKS=/usr/share/mmdebstrap/hooks/merged-usr
[[ -d $HOOKS ]] || die "$HOOKS missing: mmdebstrap >= 1.0 is needed"

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
cp -- "$kernel" "$out/vmlinuz"
cp -- "$initrd" "$out/initrd.img"
log "kernel $(basename -- "$kernel")"

# --- disk ----------------------------------------------------------------------------------------------

log "mkfs.ext4 -d ($DISK_SIZE, label $ROOT_LABEL)"
truncate -s "$DISK_SIZE" "$work/disk.raw"
mkfs.ext4 -q -F -L "$ROOT_LABEL" -d "$root" "$work/disk.raw" >&2
qemu-img convert -f raw -O qcow2 "$work/disk.raw" "$out/disk.qcow2"
rm -f -- "$work/disk.raw"

digest() { printf 'sha256:%s' "$(sha256sum <"$1" | cut -d' ' -f1)"; }
cat >"$out/$TEMPLATE_NAME" <<EOF
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
cpus: 2
memory: 1GiB
disk: 4GiB
mounts: []
plain: false
containerd:
  system: false
  user: false
EOF

# Publish atomically: a half-written build never sits at $final.
rm -rf --one-file-system -- "$final"
mv -- "$out" "$final"
# Older builds stay: instances created from them use their disk.qcow2 as the base of an overlay, and
# deleting it would break them. Remove $OUTDIR/<old key>/ by hand once no instance needs it.
for old in "$OUTDIR"/*/; do
    old=${old%/}
    [[ $old != "$final" && -f $old/$TEMPLATE_NAME ]] && log "an older build is kept (instances may use it): $old"
done
log "built $final in $((SECONDS - start)) s: disk.qcow2 $(du -h "$final/disk.qcow2" | cut -f1)," \
    "vmlinuz $(du -h "$final/vmlinuz" | cut -f1), initrd.img $(du -h "$final/initrd.img" | cut -f1)"
publish
