# mcw post-uninstall: forget the unit; on removal also what the service created at run time.
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload || :
fi
if [ "$1" -eq 0 ]; then
    rm -rf /var/lib/mcw
fi
# On upgrade, a running service is restarted on the new binary (as Debian's package does).
if [ "$1" -ge 1 ] && [ -d /run/systemd/system ]; then
    systemctl try-restart mcw.service || :
fi
