#!/bin/sh
# limapy boot script, run as root on every boot from the cidata seed (see per-boot.sh).
# Order as in Lima: dependency scripts, data files, yq edits, system scripts, user scripts, then the marker
# /run/lima-boot-done holding this boot's instance-id, written as the very last step.
set -u
: "${LIMA_CIDATA_MNT:=/mnt/lima-cidata}"
export LIMA_CIDATA_MNT

INFO() { echo "LIMA $(date -u +%Y-%m-%dT%H:%M:%SZ)| $*"; }
WARNING() { echo "LIMA $(date -u +%Y-%m-%dT%H:%M:%SZ)| WARNING: $*" >&2; }

load_env() {
  [ -r "$1" ] || return 0
  while IFS= read -r line; do
    [ -n "$line" ] && export "$line"
  done <"$1"
}
load_env "$LIMA_CIDATA_MNT/lima.env"
load_env "$LIMA_CIDATA_MNT/param.env"

rm -f /run/lima-boot-done /run/lima-provision-failed

# /etc/environment: replace the block between the markers with the configured env.
if [ -r "$LIMA_CIDATA_MNT/etc_environment" ]; then
  touch /etc/environment
  sed -i '/^#LIMA-START$/,/^#LIMA-END$/d' /etc/environment
  { echo "#LIMA-START"; cat "$LIMA_CIDATA_MNT/etc_environment"; echo "#LIMA-END"; } >>/etc/environment
fi

# /etc/hosts: hostResolver.hosts between markers, replaced on every boot.
if [ -r "$LIMA_CIDATA_MNT/etc_hosts" ]; then
  touch /etc/hosts
  sed -i '/^#LIMA-HOSTS-START$/,/^#LIMA-HOSTS-END$/d' /etc/hosts
  if [ -s "$LIMA_CIDATA_MNT/etc_hosts" ]; then
    { echo "#LIMA-HOSTS-START"; cat "$LIMA_CIDATA_MNT/etc_hosts"; echo "#LIMA-HOSTS-END"; } >>/etc/hosts
  fi
fi

# Some kernels/images want the user session bus for `mode: user` scripts; keep the user lingering.
if command -v loginctl >/dev/null 2>&1; then
  loginctl enable-linger "$LIMA_CIDATA_USER" >/dev/null 2>&1 || true
fi

# Run early (the limapy-boot unit, beside cloud-init's config stage), this script lets that stage finish before
# anything that may install packages or read the configuration it writes (apt's sources, debconf, the locale):
# `systemctl start` of the unit already queued in this boot waits for its job, or returns at once when done.
config_stage_done=
wait_config_stage() {
  [ -z "$config_stage_done" ] || return 0
  config_stage_done=1
  [ "${LIMAPY_BOOT_UNIT:-}" = 1 ] || return 0
  systemctl is-enabled --quiet cloud-config.service 2>/dev/null || return 0
  systemctl start cloud-config.service >/dev/null 2>&1 || true
}
for d in dependency data yq system user; do
  [ -d "$LIMA_CIDATA_MNT/provision.$d" ] && wait_config_stage
done

# reverse-sshfs: the host agent mounts the host folders with sshfs once the guest is up (as the guest user,
# with allow_other); install it when the image lacks it, as Lima's boot scripts do.
if [ "${LIMA_CIDATA_MOUNTTYPE:-}" = reverse-sshfs ] && [ "${LIMA_CIDATA_MOUNTS:-0}" != 0 ]; then
  if ! command -v sshfs >/dev/null 2>&1; then
    wait_config_stage
    INFO "Installing sshfs for reverse-sshfs mounts"
    if command -v apt-get >/dev/null 2>&1; then
      DEBIAN_FRONTEND=noninteractive apt-get install -y sshfs >/dev/null 2>&1 ||
        { apt-get update >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y sshfs >/dev/null 2>&1; }
    elif command -v dnf >/dev/null 2>&1; then dnf install -y fuse-sshfs >/dev/null 2>&1
    elif command -v zypper >/dev/null 2>&1; then zypper --non-interactive install sshfs >/dev/null 2>&1
    elif command -v apk >/dev/null 2>&1; then apk add sshfs >/dev/null 2>&1
    elif command -v pacman >/dev/null 2>&1; then pacman -Sy --noconfirm sshfs >/dev/null 2>&1
    fi
    command -v sshfs >/dev/null 2>&1 || WARNING "sshfs could not be installed: reverse-sshfs mounts will not work"
  fi
  if [ -f /etc/fuse.conf ] && ! grep -q '^user_allow_other' /etc/fuse.conf; then
    echo user_allow_other >>/etc/fuse.conf
  fi
fi

CODE=0
failed() {
  WARNING "$1 failed"
  echo "$1" >>/run/lima-provision-failed
  CODE=1
}

deref() { eval "printf '%s' \"\${$1:-}\""; }

for f in "$LIMA_CIDATA_MNT"/provision.dependency/*; do
  [ -e "$f" ] || continue
  INFO "Executing $f (dependency)"
  "$f" || failed "$f"
done

for f in "$LIMA_CIDATA_MNT"/provision.data/*; do
  [ -e "$f" ] || continue
  n=$(basename "$f")
  path=$(deref "LIMA_CIDATA_DATAFILE_${n}_PATH")
  owner=$(deref "LIMA_CIDATA_DATAFILE_${n}_OWNER")
  permissions=$(deref "LIMA_CIDATA_DATAFILE_${n}_PERMISSIONS")
  overwrite=$(deref "LIMA_CIDATA_DATAFILE_${n}_OVERWRITE")
  if [ -e "$path" ] && [ "$overwrite" = "false" ]; then
    INFO "Not overwriting $path"
    continue
  fi
  INFO "Copying $f to $path"
  { mkdir -p "$(dirname "$path")" && cp "$f" "$path" && chown "$owner" "$path" && chmod "$permissions" "$path"; } ||
    failed "$f"
done

# `mode: yq`: limapy's yq (util/limapy-yq, stdlib Python) edits the file, run as root as Lima runs the yq of its
# guest agent; the directory is made, the file created (through tee), checked writable, owned and chmod-ed as
# the owning user, as in Lima's boot.sh.
yq_python() {
  for p in python3 /usr/libexec/platform-python python; do
    if command -v "$p" >/dev/null 2>&1; then command -v "$p"; return 0; fi
  done
  ci=$(command -v cloud-init) || return 1 # the interpreter cloud-init itself runs with
  sed -n '1s/^#![[:space:]]*\([^[:space:]]*\).*/\1/p' "$ci"
}
if [ -d "$LIMA_CIDATA_MNT/provision.yq" ]; then
  PY=$(yq_python) || PY=
  yq() { "$PY" -B "$LIMA_CIDATA_MNT/util/limapy-yq" "$@"; }
  for f in "$LIMA_CIDATA_MNT"/provision.yq/*; do
    [ -e "$f" ] || continue
    n=$(basename "$f")
    format=$(deref "LIMA_CIDATA_YQ_PROVISION_${n}_FORMAT")
    owner=$(deref "LIMA_CIDATA_YQ_PROVISION_${n}_OWNER")
    path=$(deref "LIMA_CIDATA_YQ_PROVISION_${n}_PATH")
    permissions=$(deref "LIMA_CIDATA_YQ_PROVISION_${n}_PERMISSIONS")
    user="${owner%%:*}"
    if [ -z "$PY" ]; then
      failed "$f (no Python interpreter for limapy's yq)"
      continue
    fi
    if ! sudo -iu "$user" mkdir -p "$(dirname "$path")"; then
      failed "$f (cannot create the directory of $path as user $user)"
      continue
    fi
    if [ -f "$path" ]; then
      INFO "Updating $path"
      if ! sudo -iu "$user" test -w "$path"; then
        failed "$f ($path is not writable by user $user)"
        continue
      fi
      yq --inplace --from-file "$f" --input-format "$format" --output-format "$format" "$path" ||
        { failed "$f (updating $path)"; continue; }
    else
      if [ "$format" = auto ]; then # yq cannot tell the format of a file that does not exist yet
        case "$path" in
        *.csv) format=csv ;; *.ini) format=ini ;; *.json) format=json ;; *.properties) format=properties ;;
        *.toml) format=toml ;; *.tsv) format=tsv ;; *.xml) format=xml ;; *.yaml | *.yml) format=yaml ;;
        *)
          format=yaml
          WARNING "Cannot determine file type for $path, using yaml format"
          ;;
        esac
      fi
      INFO "Creating $path"
      out=$(mktemp) || { failed "$f"; continue; }
      if yq --null-input --from-file "$f" --output-format "$format" >"$out" &&
        sudo -iu "$user" tee "$path" <"$out" >/dev/null; then
        rm -f "$out"
      else
        rm -f "$out"
        failed "$f (creating $path)"
        continue
      fi
    fi
    sudo -iu "$user" chown "$owner" "$path" || failed "$f (chown $owner $path)"
    sudo -iu "$user" chmod "$permissions" "$path" || failed "$f (chmod $permissions $path)"
  done
fi

for f in "$LIMA_CIDATA_MNT"/provision.system/*; do
  [ -e "$f" ] || continue
  INFO "Executing $f (as root)"
  "$f" || failed "$f"
done

if [ -d "$LIMA_CIDATA_MNT/provision.user" ]; then
  params=$(env | sed -n 's/^\(PARAM_[A-Za-z0-9_]*\)=.*/\1/p' | tr '\n' ',' | sed 's/,$//')
  for f in "$LIMA_CIDATA_MNT"/provision.user/*; do
    [ -e "$f" ] || continue
    INFO "Executing $f (as user $LIMA_CIDATA_USER)"
    script=$(mktemp /tmp/lima-user-script.XXXXXX) || { failed "$f"; continue; }
    if install -m 0700 -o "$LIMA_CIDATA_USER" "$f" "$script"; then
      if [ -n "$params" ]; then
        sudo -iu "$LIMA_CIDATA_USER" "--preserve-env=$params" "$script" || failed "$f"
      else
        sudo -iu "$LIMA_CIDATA_USER" "$script" || failed "$f"
      fi
    else
      failed "$f"
    fi
    rm -f "$script"
  done
fi

# The host agent waits for this file to hold the current instance-id: it must stay the last step.
printf '%s\n' "$LIMA_CIDATA_IID" >/run/lima-boot-done.tmp && mv -f /run/lima-boot-done.tmp /run/lima-boot-done
exit "$CODE"
