# The commands whose text is compared between systemd 252 and Vigil. Sourced
# by the guest script of both sides (scripts/capture-systemd-text.sh for
# systemd, init/dbus_text_guest_test.go for Vigil) after a step function is
# defined: step NAME CMD... prints "@@@ BEGIN NAME", the output and
# "@@@ END NAME rc=N".
export LC_ALL=C SYSTEMD_PAGER=cat SYSTEMD_COLORS=0 TERM=dumb COLUMNS=200
systemctl start cap-simple.service cap-oneshot.service cap-remain.service
systemctl start cap-fail.service
sleep 1
step status-simple systemctl status cap-simple.service
step status-oneshot systemctl status cap-oneshot.service
step status-remain systemctl status cap-remain.service
step status-fail systemctl status cap-fail.service
step status-missing systemctl status cap-missing.service
step list-units-cap systemctl list-units --all 'cap-*'
step list-units-failed systemctl list-units --state=failed
step list-units-legend systemctl list-units --type=target
step list-units-nolegend systemctl list-units --all --no-legend 'cap-*'
step list-unit-files-cap systemctl list-unit-files 'cap-*'
step is-active systemctl is-active cap-simple.service cap-oneshot.service cap-fail.service cap-missing.service
step is-failed systemctl is-failed cap-simple.service cap-fail.service
step show-simple systemctl show -p Id,Type,ActiveState,SubState,LoadState,Result,ExecMainStatus cap-simple.service
step show-fail systemctl show -p Id,Type,ActiveState,SubState,LoadState,Result,ExecMainStatus cap-fail.service
step start-fail systemctl start cap-fail.service
step list-jobs systemctl list-jobs
