# limapy: `mode: boot` provision scripts, run by cloud-init's bootcmd early on every boot.
# Scripts and PARAM_* values are carried as Base64 so no content can end a here-document or a quote.
lima_boot_rc=0
lima_boot_script() {
  # Not /run or /tmp: they are often mounted noexec (Debian's /run is), and the script is executed.
  mkdir -p -m 0700 /var/lib/limapy && lima_f=$(mktemp /var/lib/limapy/boot-script.XXXXXX) || return 1
  printf '%s' "$2" | base64 -d >"$lima_f" && chmod 0700 "$lima_f" || { rm -f "$lima_f"; return 1; }
  (
    printf '%s' '{{ params_b64 }}' | base64 -d >"$lima_f.env"
    while IFS= read -r line; do [ -n "$line" ] && export "$line"; done <"$lima_f.env"
    rm -f "$lima_f.env"
    echo "LIMA| Executing boot provision script $1"
    "$lima_f"
  ) || { echo "LIMA| boot provision script $1 failed" >&2; lima_boot_rc=1; }
  rm -f "$lima_f"
}
{% for index, b64 in scripts %}
lima_boot_script {{ index }} '{{ b64 }}'
{% endfor %}
[ "$lima_boot_rc" = 0 ]
