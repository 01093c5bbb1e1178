# limapy: start the boot script as soon as cloud-init's init stage is done (the user made, the files written,
# the folders mounted), beside sshd, rather than after cloud-init's config and final stages, which take 10-15 s
# more under emulation. The unit runs what cloud-final would (per-boot/00-lima.boot.sh, output appended to
# cloud-init's log, background processes kept as cloud-final keeps them); cloud-final's own run of that script
# then sees /run/limapy-boot-unit and does nothing. Without systemd, cloud-final alone runs it, as before.
if [ -d /run/systemd/system ] && command -v systemd-run >/dev/null 2>&1; then
  systemd-run --no-block --quiet --unit=limapy-boot --description="limapy boot scripts" \
    --property=After=cloud-init.service --property=After=cloud-init-network.service \
    --property=RemainAfterExit=yes --property=KillMode=process \
    --property=StandardOutput=append:/var/log/cloud-init-output.log \
    --property=StandardError=append:/var/log/cloud-init-output.log \
    --setenv=LIMAPY_BOOT_UNIT=1 /bin/sh /var/lib/cloud/scripts/per-boot/00-lima.boot.sh &&
    : >/run/limapy-boot-unit
fi
true
