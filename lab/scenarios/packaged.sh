# The packaged lab (LAB_MODE=packaged, run by lab/guest/run with the helpers
# of lab/guest/lib.sh): Debian's own libvirt and QEMU packages are installed
# as an administrator would, a guest with a PCI hostdev is started by them,
# this project's packages (build/deb, `make deb`) are installed over them
# while it runs, the main scenarios ($LAB_SCENARIOS_MAIN, default.sh) run
# with libvirtd and the AppArmor security driver, and Debian's packages are
# installed again at the end. The guest's / is an overlay: nothing here
# touches the machine that runs the lab.

QEMU=/usr/bin/qemu-system-x86_64        # Debian's, then this project's
STOCK=$QEMU
LONE=$(dev_find 8086 10d3 1)
LONE2=$(dev_find 8086 10d3 2)

# the package files of Debian's versions ($LAB_DEBIAN_PKGS: NAME=VERSION)
debian_debs() {
    local nv n v f
    for nv in $LAB_DEBIAN_PKGS; do
        n=${nv%%=*} v=${nv#*=}
        for f in "$LAB_DEBS/${n}_"*.deb; do
            [ "$(dpkg-deb -f "$f" Version)" = "$v" ] && { echo "$f"; continue 2; }
        done
        fail "no package file for $n $v in $LAB_DEBS"
    done
}
systemctl_calls() { grep -c "systemctl .*$1 .*libvirtd.service" "$LOGS/systemctl.log" || true; }

s_install_debian() {
    [ -r /sys/kernel/security/apparmor/profiles ] || fail "AppArmor is not enabled in the guest's kernel"
    lab_apt install apparmor || fail "apt-get install apparmor failed"
    lab_apt install libvirt-daemon-system qemu-system-x86 qemu-system-gui qemu-block-extra ||
        fail "apt-get install libvirt-daemon-system qemu-system-x86 failed"
    expect_match "$(pkg_version libvirt-daemon-system)" '^9\.0\.0-[0-9]+\+deb12u[0-9]+$' "libvirt-daemon-system (Debian's)"
    expect_match "$(pkg_version qemu-system-x86)" '^1:7\.2\+dfsg-7\+deb12u[0-9]+(\+b[0-9]+)?$' "qemu-system-x86 (Debian's)"
    expect_eq "$(systemctl_calls start)" 1 "libvirtd.service started by the package scripts"
    grep -q '^libvirtd ' /sys/kernel/security/apparmor/profiles ||
        grep -q '^/usr/sbin/libvirtd ' /sys/kernel/security/apparmor/profiles ||
        fail "libvirtd's profile is not loaded"
    expect_confined_daemon
    virsh version || fail "virsh cannot talk to libvirtd"
}
scenario "packaged: Debian's libvirt and QEMU install; libvirtd starts confined" s_install_debian

s_upgrade() {
    local grp grp2 qpid dpid before after
    grp=$(dev_group "$LONE")
    grp2=$(dev_group "$LONE2")
    LAB_QEMU_ARGS="-global ICH9-LPC.acpi-pci-hotplug-with-bridge-support=off"
    define_start running "$QEMU" "$(hostdev_xml "$LONE")" || fail "Debian's libvirt could not start the guest"
    qpid=$(qemu_pid running)
    in_guest_n running 8086:10d3 1
    expect_confined_qemu running
    before=$(aa_files running | grep vfio)
    log "Debian's per-domain profile: $before"
    printf '%s\n' "$before" > "$R/apparmor-debian.files"
    expect_match "$before" '"/dev/vfio/\[0-9\]\*" rw' "Debian's profile grants every group"
    dpid=$(daemon_pid)

    lab_apt install $(ls "$LAB_OUR_DEBS"/*.deb) || fail "apt-get install ./build/deb/*.deb failed"
    expect_match "$(pkg_version libvirt-daemon-system)" '\+vfio[0-9]+$' "libvirt-daemon-system after the upgrade"
    expect_match "$(pkg_version qemu-system-x86)" '\+vfio[0-9]+$' "qemu-system-x86 after the upgrade"
    # (several of Debian's packages restart it in their postinst)
    [ "$(systemctl_calls restart)" -ge 1 ] || fail "the package scripts did not restart libvirtd.service"
    log "ok: the package scripts restarted libvirtd.service $(systemctl_calls restart) times"
    [ "$(daemon_pid)" != "$dpid" ] || fail "libvirtd was not restarted"
    expect_confined_daemon
    expect_eq "$(virsh domstate running)" running "the guest after the upgrade"
    expect_eq "$(qemu_pid running)" "$qpid" "QEMU's pid (the guest was taken over, not restarted)"
    xml=$(virsh dumpxml running) || fail "virsh dumpxml failed"
    grep -q "<address domain='0x0000' bus='0x$(echo "$LONE" | cut -d: -f2)'" <<< "$xml" ||
        fail "the guest's definition lost its hostdev"
    ! grep -q '<vfio' "/run/libvirt/qemu/running.xml" || fail "a Debian-started guest got fd-passing state"

    # legacy path under the new daemon: hot-plug, unplug, destroy
    hostdev_xml "$LONE2" > /tmp/lone2.xml
    virsh attach-device running /tmp/lone2.xml --live || fail "attach-device failed"
    in_guest_n running 8086:10d3 2
    expect_nomatch "$(qom_objects running | tr '\n' ' ')" 'vfio-grp' "no fd objects in Debian's QEMU"
    after=$(aa_files running | grep vfio)
    log "profile after hot-plug: $after"
    expect_match "$after" "\"/dev/vfio/$grp2\" rw" "the hot-plugged group in QEMU's profile"
    virsh detach-device running /tmp/lone2.xml --live || fail "detach-device failed"
    for _ in $(seq 1 60); do
        guest_pci running | grep -c '^8086:10d3$' | grep -qx 1 && break
        sleep 1
    done
    in_guest_n running 8086:10d3 1
    expect_eq "$(dev_driver "$LONE2")" e1000e "driver of the unplugged device"
    # the unplug regenerated the profile with this project's virt-aa-helper:
    # the guest's own group, no longer Debian's wildcard
    expect_vfio_rules running "$grp"
    virsh destroy running || fail "virsh destroy failed"
    expect_eq "$(lab_changed_drivers | tr '\n' ' ')" "" "devices whose driver changed"
}
scenario "packaged: apt-get install ./build/deb/*.deb upgrades in place; the running guest is taken over" s_upgrade

# What AppArmor requires of a VFIO group file that a confined process gets
# already open, measured on this kernel (lab/guest/aa-probe; the figures go
# to aa-probe.txt). It provokes denials on purpose.
s_aa_probe() {
    dev_bind "$LONE" vfio-pci
    expect_eq "$(dev_driver "$LONE")" vfio-pci "driver of $LONE"
    local before out grp
    grp=$(dev_group "$LONE")
    before=$(apparmor_denials)
    /usr/bin/python3 "$LAB_TOP/lab/guest/aa-probe" "/dev/vfio/$grp" > "$R/aa-probe.txt" 2>&1 ||
        { cat "$R/aa-probe.txt"; fail "aa-probe failed"; }
    { echo "kernel log:"; dmesg | grep 'apparmor="DENIED"' | tail -n +"$((before + 1))"
      dmesg | grep -E 'callbacks suppressed|messages suppressed' || true; } >> "$R/aa-probe.txt"
    out=$(cat "$R/aa-probe.txt")
    log "$out"
    # what the analysis of the kernel's code predicts (docs/apparmor-vfio.md)
    expect_match "$out" "'none' +change_profile +-> /dev/vfio/$grp: VFIO_GROUP_GET_STATUS ok" "inherited after change_profile, no rule"
    expect_match "$out" "'none' +change_onexec +-> /apparmor/.null" "inherited across a label change, no rule"
    expect_match "$out" "'none' +SCM_RIGHTS +-> no file received" "received over SCM_RIGHTS, no rule"
    expect_match "$out" "'group-rw' +SCM_RIGHTS +-> /dev/vfio/$grp: VFIO_GROUP_GET_STATUS ok" "received over SCM_RIGHTS, rw rule"
    expect_match "$out" "operation=\"file_receive\".*name=\"/dev/vfio/$grp\"" "the kernel's denial of the received file"
}
EXPECT_DENIALS=1 scenario "packaged: what AppArmor requires of a VFIO file received open (measured)" s_aa_probe

# The main scenarios, with this project's packages and AppArmor
. "$LAB_SCENARIOS_MAIN"

s_downgrade() {
    local debs
    debs=$(debian_debs) || exit 1
    lab_apt install --allow-downgrades $debs || fail "apt-get install --allow-downgrades failed"
    expect_match "$(pkg_version libvirt-daemon-system)" '^9\.0\.0-[0-9]+\+deb12u[0-9]+$' "libvirt-daemon-system after going back"
    expect_match "$(pkg_version qemu-system-x86)" '^1:7\.2\+dfsg-7\+deb12u[0-9]+(\+b[0-9]+)?$' "qemu-system-x86 after going back"
    expect_confined_daemon
    define_start back "$QEMU" "$(hostdev_xml "$LONE")" || fail "Debian's libvirt could not start the guest again"
    in_guest_n back 8086:10d3 1
    expect_confined_qemu back
    virsh destroy back
    expect_eq "$(lab_changed_drivers | tr '\n' ' ')" "" "devices whose driver changed"
}
scenario "packaged: apt-get install --allow-downgrades goes back to Debian's packages" s_downgrade
