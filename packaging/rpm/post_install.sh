# mcw post-install: create the system user (sysusers.d), make systemd see the unit.
# Nothing is enabled or started: write /etc/mcw/template.json first, then
# `systemctl enable --now mcw`.
systemd-sysusers /usr/lib/sysusers.d/mcw.conf || :
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload || :
fi
