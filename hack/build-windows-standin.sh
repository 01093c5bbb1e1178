#!/usr/bin/env bash
# Build the "Windows stand-in" guest for limapy's e2e tests: a small Debian disk that boots under the
# *Windows* device layout (UEFI, AHCI disk, e1000e NIC, install/answer media on AHCI CD-ROMs) and answers
# the host agent's Windows readiness probe, so the host side of a Windows first boot (answer ISO, boot keys,
# probe, win-done-installation, no install media afterwards) is tested without Windows media.
#
# Usage: hack/build-windows-standin.sh [OUTDIR]
#   OUTDIR defaults to ${XDG_CACHE_HOME:-~/.cache}/limapy/windows-standin.
# Result: OUTDIR/<key>/disk.qcow2 (GPT: ESP with systemd-boot + kernel + initrd, ext4 root "rootfs").
# The last line of stdout is the absolute path of disk.qcow2; progress goes to stderr.
#
# What the guest does (emulating Windows' first logon, see limapy/guest/windows/answer.py):
#   - limapy-firstlogon.service: finds the CD labelled `autounattend`, reads the user name from
#     autounattend.xml (LocalAccount/Name), creates that user and installs `ssh_authorized_keys`; a few
#     seconds after sshd is up it writes /var/lib/limapy-standin/lima-boot-done.txt. Like the real
#     first-logon script it reports its phases on the serial port (COM1 there, ttyS0 here) as
#     `LIMAPY-PHASE <step>: <text>` lines, and `LIMAPY-DONE` at the end.
#   - A first logon that fails: when the answer media's provisioning runner sets PARAM_STANDIN_FAIL
#     (`--set '.param.STANDIN_FAIL = "openssh"'`), it reports `LIMAPY-FAILED openssh: ...` and stops there,
#     as first_logon.ps1 does when installing OpenSSH fails (no user, no SSH, no marker).
#   - /usr/local/bin/PowerShell.exe: understands the probe limapy sends
#     (`... Test-Path -Path '...lima-boot-done.txt' ...`): exit 0 once the marker exists, else 1; the
#     read of limapy-warnings.txt, which holds one line (as a first logon's warning would); and the host
#     agent's listener query (`-EncodedCommand` whose text runs `Get-NetTCPConnection -State Listen`),
#     answered by limapy-listeners from the guest's real sockets (`ss -ltnpH`) in the JSON shape of
#     Get-NetTCPConnection | ConvertTo-Json (tests/fixtures/netstat/), so a listener started in the guest
#     opens a forward and stopping it releases it.
#   - /C: is drive C: (Win32-OpenSSH's sftp-server and scp see `C:\x` as `/C:/x`): C:/Windows/win.ini and
#     the user's C:/Users/<user>, so `limapy copy win:C:\...` lands where a Windows guest's would.
#   - /usr/local/bin/cmd.exe: `cmd.exe /c "CMD"` runs CMD with sh (enough for `limapy shell`).
# The generic kernel (linux-image-amd64) is used because the cloud kernel has no AHCI or e1000e driver.
#
# Environment: LIMAPY_TEST_IMAGE_MIRROR / LIMAPY_TEST_IMAGE_SUITE override apt's own mirror and suite;
# LIMAPY_STANDIN_REBUILD=1 ignores the cache. Building needs root (mmdebstrap --mode=root); a cache hit not.
set -euo pipefail

readonly PACKAGES=(linux-image-amd64 systemd-sysv udev dbus iproute2 kmod openssh-server sudo
    systemd-boot-efi dosfstools mtools)
readonly DEB_ARCH=amd64
readonly ROOT_SIZE_MIB=2048
readonly ESP_SIZE_MIB=64
readonly CMDLINE="root=LABEL=rootfs rw console=ttyS0 quiet"

log() { printf 'build-windows-standin: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# The first plain suite (a codename, no -updates/-security) among apt's own Packages index targets.
read -r apt_mirror apt_suite <<<"$(apt-get indextargets --format '$(REPO_URI) $(RELEASE)' \
    'Created-By: Packages' 2>/dev/null | awk '$2 !~ /[-\/]/ { print; exit }')" || true
MIRROR=${LIMAPY_TEST_IMAGE_MIRROR:-${apt_mirror:-}}
SUITE=${LIMAPY_TEST_IMAGE_SUITE:-${apt_suite:-}}
[[ -n $MIRROR && -n $SUITE ]] ||
    die "apt knows no Debian mirror (run apt-get update); or set LIMAPY_TEST_IMAGE_MIRROR and LIMAPY_TEST_IMAGE_SUITE"

OUTDIR=${1:-${XDG_CACHE_HOME:-$HOME/.cache}/limapy/windows-standin}
mkdir -p -- "$OUTDIR"
OUTDIR=$(cd -- "$OUTDIR" && pwd -P)
key=$({
    sha256sum <"$(readlink -f -- "${BASH_SOURCE[0]}")"
    printf '%s\n' "packages=${PACKAGES[*]}" "mirror=$MIRROR" "suite=$SUITE" "arch=$DEB_ARCH"
} | sha256sum | cut -c1-16)
final="$OUTDIR/$key"
cached() { [[ -f $final/disk.qcow2 && ${LIMAPY_STANDIN_REBUILD:-0} != 1 ]]; }

if cached; then
    log "cached: $final"
    printf '%s\n' "$final/disk.qcow2"
    exit 0
fi
[[ $(id -u) -eq 0 ]] || die "building needs root (mmdebstrap --mode=root, chroot); run: sudo $0${*:+ $*}"
for tool in mmdebstrap mkfs.ext4 qemu-img sfdisk chroot flock; do
    command -v "$tool" >/dev/null ||
        die "$tool not found; install: apt-get install mmdebstrap e2fsprogs qemu-utils fdisk util-linux"
done

exec 9>"$OUTDIR/.lock"
flock 9
if cached; then
    printf '%s\n' "$final/disk.qcow2"
    exit 0
fi
for stale in "$OUTDIR"/.build-*; do
    [[ -e $stale ]] && rm -rf --one-file-system -- "$stale"
done
work=$(mktemp -d "$OUTDIR/.build-$key.XXXXXX")
trap 'rm -rf --one-file-system -- "$work" || true' EXIT
trap 'exit 130' INT TERM
start=$SECONDS
root="$work/root"
out="$work/out"
mkdir -p -- "$out"

# Only the root disk's drivers go into the initramfs (udev loads the rest from the root file system),
# which keeps the initrd small enough to load quickly through UEFI under TCG.
log "mmdebstrap $SUITE from $MIRROR"
include=$(IFS=,; printf '%s' "${PACKAGES[*]}")
mmdebstrap \
    --mode=root --variant=minbase --format=directory --arch="$DEB_ARCH" --components=main \
    --aptopt='APT::Install-Recommends "false"' \
    --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --dpkgopt='path-exclude=/lib/modules/*/kernel/drivers/gpu/*' \
    --dpkgopt='path-exclude=/lib/modules/*/kernel/drivers/net/wireless/*' \
    --dpkgopt='path-exclude=/lib/modules/*/kernel/drivers/media/*' \
    --dpkgopt='path-exclude=/lib/modules/*/kernel/drivers/infiniband/*' \
    --dpkgopt='path-exclude=/lib/modules/*/kernel/sound/*' \
    --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
    --setup-hook='mkdir -p "$1/etc/initramfs-tools/conf.d" && echo MODULES=list >"$1/etc/initramfs-tools/conf.d/limapy.conf"' \
    --customize-hook='printf "%s\n" ahci sd_mod nvme virtio_pci virtio_blk ext4 >>"$1/etc/initramfs-tools/modules"' \
    --customize-hook='chroot "$1" update-initramfs -u -k all' \
    --include="$include" \
    "$SUITE" "$root" "$MIRROR" >&2
log "root file system: $(du -sh --one-file-system "$root" | cut -f1), $((SECONDS - start)) s"

# --- the guest side of the Windows readiness contract ----------------------------------------------------
printf 'LABEL=rootfs / ext4 rw,errors=remount-ro 0 1\n' >"$root/etc/fstab"
printf 'windows-standin\n' >"$root/etc/hostname"
cat >"$root/etc/systemd/network/50-dhcp.network" <<'EOF'
[Match]
Name=en* eth*
[Network]
DHCP=ipv4
EOF
chroot "$root" systemctl enable systemd-networkd >&2
printf 'PasswordAuthentication no\nKbdInteractiveAuthentication no\n' >"$root/etc/ssh/sshd_config.d/limapy.conf"

cat >"$root/usr/local/bin/PowerShell.exe" <<'EOF'
#!/bin/sh
# Stand-in for Windows PowerShell: only the host agent's two commands are understood (the readiness probe,
# and reading the first logon's warnings once ready).
case "$*" in
*"Test-Path"*"lima-boot-done.txt"*) test -f /var/lib/limapy-standin/lima-boot-done.txt ;;
*"Get-Content"*"limapy-warnings.txt"*) cat /var/lib/limapy-standin/limapy-warnings.txt 2>/dev/null; exit 0 ;;
*"-EncodedCommand "*)
    # PowerShell's -EncodedCommand: base64 of the script's UTF-16LE text (ASCII here: drop the NULs)
    for arg; do text=$arg; done
    text=$(printf '%s' "$text" | base64 -d 2>/dev/null | tr -d '\000')
    case "$text" in
    *"Get-NetTCPConnection -State Listen"*) exec /usr/local/sbin/limapy-listeners ;;
    *"New-SmbGlobalMapping"*) exec sudo -n /usr/local/sbin/limapy-smbmap "$text" ;;
    esac
    echo "PowerShell.exe stand-in: unsupported encoded command: $text" >&2; exit 127 ;;
*) echo "PowerShell.exe stand-in: unsupported command: $*" >&2; exit 127 ;;
esac
EOF
cat >"$root/usr/local/sbin/limapy-smbmap" <<'EOF'
#!/bin/sh
# The stand-in's answer to limapy's SMB mapping script (limapy/guest/windows/folders.py): each share the script
# names (`@('\\192.168.5.4\mN', 'X:')`) is mounted with the kernel's cifs client at /X: (as /C: plays drive C:),
# owned by the SSH user; the account is the script's, the password stdin's first line, as the script reads
# them. Output and exit status are the script's: `mapped UNC X:` or `failed UNC X: -- why`, the number failed.
set -u
text=$1
IFS= read -r secret || secret=
secret=$(printf '%s' "$secret" | tr -d '\r') # the host ends the line as Windows does (CRLF)
user=$(printf '%s\n' "$text" | awk -F"'" '$1 ~ /-ArgumentList @\($/ { print $2; exit }')
owner=${SUDO_USER:-root}
failed=0
for pair in $(printf '%s\n' "$text" | awk -F"'" '$1 ~ /^ *@\($/ && $4 ~ /^[A-Z]:$/ { print $2 "|" $4 }'); do
    unc=${pair%|*} drive=${pair#*|}
    src=$(printf '%s' "$unc" | tr '\\' '/')
    ip=${src#//} && ip=${ip%%/*} # the kernel's cifs needs the address as an option without mount.cifs
    modprobe cifs 2>/dev/null || true
    mkdir -p "/$drive"
    umount "/$drive" 2>/dev/null || true
    if why=$(mount -t cifs "$src" "/$drive" \
        -o "ip=$ip,username=$user,password=$secret,uid=$(id -u "$owner"),gid=$(id -g "$owner"),vers=3.1.1" 2>&1); then
        echo "mapped $unc $drive"
    else
        failed=$((failed + 1))
        echo "failed $unc $drive -- $why"
    fi
done
exit "$failed"
EOF
cat >"$root/usr/local/sbin/limapy-listeners" <<'EOF'
#!/bin/sh
# The stand-in's answer to limapy's listener query (limapy/guest/windows/listeners.py): every second, the
# guest's listening TCP sockets (`ss -ltnpH`) as Get-NetTCPConnection -State Listen | Select-Object ... |
# ConvertTo-Json -Compress would print them (one array on one line; IPv6 wildcard `::`, IPv4 `0.0.0.0`),
# then a `--` line, whenever the set changes. OwningProcess is the pid where ss shows it, else 0.
prev=
while :; do
    cur=$(ss -ltnpH 2>/dev/null | sort | awk '
        { a = $4; n = split(a, p, ":"); port = p[n]; addr = substr(a, 1, length(a) - length(port) - 1)
          gsub(/^\[|\]$/, "", addr); sub(/%.*/, "", addr); if (addr == "*") addr = "::"
          pid = 0; if (match($0, /pid=[0-9]+/)) pid = substr($0, RSTART + 4, RLENGTH - 4)
          row[++k] = sprintf("{\"LocalAddress\":\"%s\",\"LocalPort\":%d,\"OwningProcess\":%d,\"State\":\"Listen\"}", addr, port, pid) }
        END { printf "["; for (i = 1; i <= k; i++) printf "%s%s", (i > 1 ? "," : ""), row[i]; printf "]\n" }')
    if [ "$cur" != "$prev" ]; then printf '%s\r\n--\r\n' "$cur" || exit 0; prev=$cur; fi
    sleep 1
done
EOF
cat >"$root/usr/local/bin/cmd.exe" <<'EOF'
#!/bin/sh
# Stand-in for cmd.exe: `cmd.exe /c "CMD"` runs CMD with sh; without /c, an interactive sh.
if [ "${1:-}" = /c ] || [ "${1:-}" = /C ]; then shift; exec sh -c "$*"; fi
exec sh -i
EOF
cat >"$root/usr/local/sbin/limapy-phase" <<'EOF'
#!/bin/sh
# limapy-phase KIND STEP TEXT: one progress line on the serial port, as first_logon.ps1's Send-Phase writes COM1.
printf '\r\nLIMAPY-%s %s: %s\r\n' "$1" "$2" "$3" >/dev/ttyS0 2>/dev/null || true
EOF
cat >"$root/usr/local/sbin/limapy-firstlogon" <<'EOF'
#!/bin/sh
# Emulates the first logon of a limapy Windows guest: user + SSH key from the answer media.
set -eu
state=/var/lib/limapy-standin
[ -e "$state/user-created" ] && exit 0
dev=""
for _ in $(seq 120); do
    dev=$(blkid -L autounattend 2>/dev/null || blkid -L AUTOUNATTEND 2>/dev/null || true)
    [ -n "$dev" ] && break
    sleep 0.5
done
[ -n "$dev" ] || { echo "no CD labelled autounattend" >&2; exit 1; }
mnt=$(mktemp -d)
mount -o ro -t iso9660 "$dev" "$mnt"
limapy-phase PHASE openssh "installing OpenSSH"
if grep -q "PARAM_STANDIN_FAIL" "$mnt/provision/run-provision.ps1" 2>/dev/null; then
    limapy-phase FAILED openssh \
        'the stand-in was asked to fail (PARAM_STANDIN_FAIL) (the whole log: C:\ProgramData\Lima\first-logon.log)'
    umount "$mnt"
    exit 1
fi
user=$(awk '/<LocalAccount[ >]/ { f = 1 } f && /<Name>/ { sub(/.*<Name>/, ""); sub(/<\/Name>.*/, ""); print; exit }' \
    "$mnt/autounattend.xml")
[ -n "$user" ] || { echo "no LocalAccount/Name in autounattend.xml" >&2; exit 1; }
id "$user" >/dev/null 2>&1 || useradd -m -s /bin/bash "$user"
home=$(getent passwd "$user" | cut -d: -f6)
install -d -m 700 -o "$user" -g "$user" "$home/.ssh"
install -m 600 -o "$user" -g "$user" "$mnt/ssh_authorized_keys" "$home/.ssh/authorized_keys"
install -d -m 755 -o "$user" -g "$user" "/C:/Users/$user"
umount "$mnt"
rmdir "$mnt"
limapy-phase PHASE sshd "starting sshd"
mkdir -p "$state"
echo "$user" >"$state/user-created"
echo "limapy-firstlogon: user $user from $dev" >/dev/console
EOF
printf 'ALL ALL=(root) NOPASSWD: /usr/local/sbin/limapy-smbmap\n' >"$root/etc/sudoers.d/limapy-smbmap"
chmod 0440 "$root/etc/sudoers.d/limapy-smbmap"
chmod 0755 "$root/usr/local/sbin/limapy-smbmap"
chmod 0755 "$root/usr/local/bin/PowerShell.exe" "$root/usr/local/bin/cmd.exe" "$root/usr/local/sbin/limapy-firstlogon" \
    "$root/usr/local/sbin/limapy-phase" "$root/usr/local/sbin/limapy-listeners"
# Drive C: as Win32-OpenSSH's sftp-server shows it (`/C:/...`), with the file every Windows has.
mkdir -p "$root/C:/Windows" "$root/C:/Users"
printf '; for 16-bit app support\r\n[fonts]\r\n[extensions]\r\n[mci extensions]\r\n[files]\r\n[Mail]\r\nMAPI=1\r\n' \
    >"$root/C:/Windows/win.ini"
cat >"$root/etc/systemd/system/limapy-firstlogon.service" <<'EOF'
[Unit]
Description=limapy Windows stand-in: first logon (user and SSH key from the answer media)
Before=ssh.service
After=systemd-udev-settle.service local-fs.target
[Service]
Type=oneshot
ExecStart=/usr/local/sbin/limapy-firstlogon
RemainAfterExit=yes
[Install]
WantedBy=multi-user.target
EOF
# The boot-done marker comes a few seconds after sshd, as on Windows (OpenSSH first, provisioning later):
# the host agent must keep probing while SSH already answers.
cat >"$root/etc/systemd/system/limapy-bootdone.service" <<'EOF'
[Unit]
Description=limapy Windows stand-in: lima-boot-done.txt
After=ssh.service limapy-firstlogon.service
Requires=limapy-firstlogon.service
[Service]
Type=oneshot
ExecStart=/bin/sh -c 'limapy-phase PHASE sshd "sshd started"; sleep 6; mkdir -p /var/lib/limapy-standin; echo "this guest is the Linux stand-in, not Windows" >/var/lib/limapy-standin/limapy-warnings.txt; date >/var/lib/limapy-standin/lima-boot-done.txt; limapy-phase DONE done "first logon finished"'
RemainAfterExit=yes
[Install]
WantedBy=multi-user.target
EOF
chroot "$root" systemctl enable limapy-firstlogon.service limapy-bootdone.service >&2
: >"$root/etc/machine-id"
rm -rf -- "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/* "$root"/tmp/* "$root"/var/tmp/*

# --- ESP (systemd-boot, kernel, initrd), built with the guest's own dosfstools/mtools -----------------
kernel=$(cd "$root/boot" && ls vmlinuz-* | sort -V | tail -n 1)
initrd=$(cd "$root/boot" && ls initrd.img-* | sort -V | tail -n 1)
log "kernel $kernel, $(du -h "$root/boot/$initrd" | cut -f1) initrd"
mkdir -p "$root/tmp/esp"
printf 'timeout 0\ndefault standin.conf\n' >"$root/tmp/esp/loader.conf"
printf 'title limapy Windows stand-in\nlinux /vmlinuz\ninitrd /initrd.img\noptions %s\n' "$CMDLINE" \
    >"$root/tmp/esp/standin.conf"
chroot "$root" sh -euc "
    mkfs.fat -C -n ESP /tmp/esp.img $((ESP_SIZE_MIB * 1024)) >/dev/null
    mmd -i /tmp/esp.img ::/EFI ::/EFI/BOOT ::/loader ::/loader/entries
    mcopy -i /tmp/esp.img /usr/lib/systemd/boot/efi/systemd-bootx64.efi ::/EFI/BOOT/BOOTX64.EFI
    mcopy -i /tmp/esp.img /boot/$kernel ::/vmlinuz
    mcopy -i /tmp/esp.img /boot/$initrd ::/initrd.img
    mcopy -i /tmp/esp.img /tmp/esp/loader.conf ::/loader/loader.conf
    mcopy -i /tmp/esp.img /tmp/esp/standin.conf ::/loader/entries/standin.conf
"
mv -- "$root/tmp/esp.img" "$work/esp.img"
rm -rf -- "$root/tmp/esp"

# --- GPT disk: 1 MiB gap, ESP, root -------------------------------------------------------------------
truncate -s "${ROOT_SIZE_MIB}M" "$work/root.img"
mkfs.ext4 -q -F -L rootfs -d "$root" "$work/root.img" >&2
truncate -s "$((1 + ESP_SIZE_MIB + ROOT_SIZE_MIB + 1))M" "$work/disk.raw"
sfdisk -q "$work/disk.raw" >&2 <<EOF
label: gpt
start=1MiB, size=${ESP_SIZE_MIB}MiB, type=uefi, name=ESP
start=$((1 + ESP_SIZE_MIB))MiB, size=${ROOT_SIZE_MIB}MiB, type=linux, name=rootfs
EOF
dd if="$work/esp.img" of="$work/disk.raw" bs=1M seek=1 conv=notrunc,sparse status=none
dd if="$work/root.img" of="$work/disk.raw" bs=1M seek=$((1 + ESP_SIZE_MIB)) conv=notrunc,sparse status=none
qemu-img convert -f raw -O qcow2 "$work/disk.raw" "$out/disk.qcow2"

rm -rf --one-file-system -- "$final"
mv -- "$out" "$final"
for old in "$OUTDIR"/*/; do
    old=${old%/}
    [[ $old != "$final" && -f $old/disk.qcow2 ]] && rm -rf -- "$old"
done
log "built $final in $((SECONDS - start)) s: disk.qcow2 $(du -h "$final/disk.qcow2" | cut -f1)"
printf '%s\n' "$final/disk.qcow2"
