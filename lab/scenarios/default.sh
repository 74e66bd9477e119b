# The lab's default scenarios (run in the lab guest by lab/guest/run, with
# the helpers of lab/guest/lib.sh). Needs the default topology's devices:
# two lone e1000e (8086:10d3), an e1000 (8086:100e) sharing its group with
# an xHCI controller (1b36:000d), and an rtl8139 (10ec:8139) and i6300esb
# (8086:25ab) behind a PCIe-to-PCI bridge.

QEMU=$LAB_QEMU              # this project's QEMU (vfio-container/vfio-group)
STOCK=$LAB_STOCK_QEMU       # Debian's QEMU 7.2 (tree mode)

LONE=$(dev_find 8086 10d3 1)
LONE2=$(dev_find 8086 10d3 2)
MF=$(dev_find 8086 100e)
MATE=$(dev_find 1b36 000d)
BR_A=$(dev_find 10ec 8139)
BR_B=$(dev_find 8086 25ab)
PAIR_A=$(dev_find 8086 10d3 3)
PAIR_B=$(dev_find 8086 10d3 4)
log "devices: lone $LONE, lone2 $LONE2, multifunction $MF + $MATE, behind bridge $BR_A $BR_B, PCIe pair $PAIR_A $PAIR_B"

# in_guest DOM VENDOR:DEVICE [COUNT]: QEMU shows the guest COUNT such devices
in_guest() {
    local n
    n=$(guest_pci "$1" | grep -c "^$2$" || true)
    expect_eq "$n" "${3:-1}" "devices $2 in the guest (QMP query-pci)"
}

s_lone_managed() {
    expect_eq "$(dev_driver "$LONE")" e1000e "driver of $LONE before"
    define_start lone "$QEMU" "$(hostdev_xml "$LONE")" || fail "virsh start failed"
    in_guest lone 8086:10d3
    expect_match "$(dev_driver "$LONE")" '^(vfio-pci|lvf_vfio_pci)$' "driver of $LONE while assigned"
    virsh destroy lone || fail "virsh destroy failed"
    expect_eq "$(dev_driver "$LONE")" e1000e "driver of $LONE after destroy"
    expect_eq "$(virtqemud_vfio_fds)" 0 "VFIO files held by virtqemud"
}
scenario "managed='yes': a lone device is assigned and given back" s_lone_managed

s_variant() {
    define_start auto "$QEMU" "$(hostdev_xml "$LONE")" || fail "virsh start failed"
    expect_eq "$(dev_driver "$LONE")" lvf_vfio_pci "driver picked from modules.alias"
    in_guest auto 8086:10d3
    virsh destroy auto
    virsh undefine auto
    define_start forced "$QEMU" "$(hostdev_xml "$LONE" "managed='yes'" "model='vfio-pci'")" ||
        fail "virsh start failed"
    expect_eq "$(dev_driver "$LONE")" vfio-pci "driver with <driver model='vfio-pci'/>"
    in_guest forced 8086:10d3
    # (the XML is read whole first: 'virsh ... | grep -q' fails under
    # pipefail when grep exits before virsh has written everything)
    xml=$(virsh dumpxml forced) || fail "virsh dumpxml failed"
    grep -q "model='vfio-pci'" <<< "$xml" || fail "model not kept in the XML"
    virsh destroy forced
    expect_eq "$(dev_driver "$LONE")" e1000e "driver after destroy"
}
scenario "managed='yes' picks the variant driver; model='vfio-pci' overrides it" s_variant

s_nodedev_driver() {
    local nd out
    nd=pci_$(tr ':.' '__' <<< "$LONE")
    virsh nodedev-detach "$nd" || fail "virsh nodedev-detach failed"
    expect_eq "$(dev_driver "$LONE")" lvf_vfio_pci "driver with --driver vfio (libvirt's choice)"
    virsh nodedev-reattach "$nd" || fail "virsh nodedev-reattach failed"
    expect_eq "$(dev_driver "$LONE")" e1000e "driver after nodedev-reattach"
    virsh nodedev-detach "$nd" --driver vfio-pci || fail "virsh nodedev-detach --driver vfio-pci failed"
    expect_eq "$(dev_driver "$LONE")" vfio-pci "driver with --driver vfio-pci"
    out=$(virsh nodedev-dumpxml "$nd") || fail "virsh nodedev-dumpxml failed"
    grep -q '<name>vfio-pci</name>' <<< "$out" || fail "nodedev-dumpxml does not show vfio-pci"
    virsh nodedev-reattach "$nd" || fail "virsh nodedev-reattach failed"
    virsh nodedev-detach "$nd" --driver lvf_vfio_pci || fail "virsh nodedev-detach --driver lvf_vfio_pci failed"
    expect_eq "$(dev_driver "$LONE")" lvf_vfio_pci "driver with --driver lvf_vfio_pci"
    virsh nodedev-reattach "$nd" || fail "virsh nodedev-reattach failed"
    if out=$(virsh nodedev-detach "$nd" --driver e1000e 2>&1); then
        fail "virsh nodedev-detach --driver e1000e was accepted"
    fi
    expect_match "$out" "not a VFIO driver" "error for --driver e1000e"
    expect_eq "$(dev_driver "$LONE")" e1000e "driver after the refused request"
}
# The node device API needs the nodedev driver: Debian's libvirtd has it
# (packaged mode); the tree build has no virnodedevd (libvirt/meson-options).
if [ "$LAB_MODE" = packaged ]; then
    scenario "virsh nodedev-detach --driver: libvirt's choice, vfio-pci, a variant; a host driver refused" s_nodedev_driver
fi

s_unmanaged() {
    modprobe lvf_vfio_pci || fail "cannot load lvf_vfio_pci"
    dev_bind "$LONE2" lvf_vfio_pci
    expect_eq "$(dev_driver "$LONE2")" lvf_vfio_pci "driver bound by hand"
    define_start unmanaged "$QEMU" "$(hostdev_xml "$LONE2" "managed='no'")" ||
        fail "managed='no' with a variant-bound device was refused"
    in_guest unmanaged 8086:10d3
    virsh destroy unmanaged
    expect_eq "$(dev_driver "$LONE2")" lvf_vfio_pci "driver after destroy (managed='no' leaves it)"
    virsh undefine unmanaged
    dev_bind "$LONE2" e1000e
    local out
    out=$(define_start unmanaged2 "$QEMU" "$(hostdev_xml "$LONE2" "managed='no'")") &&
        fail "managed='no' with a device on e1000e was accepted"
    log "$out"
    expect_match "$out" "Unmanaged PCI device $LONE2 must be manually detached from the host: it is bound to 'e1000e'" "error"
    expect_eq "$(virsh domstate unmanaged2)" "shut off" "domain state"
}
scenario "managed='no': variant-bound device accepted, host-bound device refused" s_unmanaged

s_group_mate() {
    local out group
    group=$(dev_group "$MF")
    expect_eq "$(dev_driver "$MATE")" xhci_hcd "driver of the group mate"
    out=$(define_start mate "$QEMU" "$(hostdev_xml "$MF")") &&
        fail "a device whose group mate is on a host driver was started"
    log "$out"
    expect_match "$out" "IOMMU group $group is not viable: device $MATE is bound to host driver 'xhci_hcd'" \
        "libvirt's error"
    expect_nomatch "$out" "qemu-system|is not viable\\.$|Please ensure" "the error does not come from QEMU"
    expect_eq "$(lab_changed_drivers | tr '\n' ' ')" "" "devices whose driver changed"
    expect_eq "$(virsh domstate mate)" "shut off" "domain state"
}
scenario "group mate on its host driver: libvirt's error, nothing changed" s_group_mate

s_group_claim() {
    define_start claim "$QEMU" "$(hostdev_xml "$MF" "managed='yes' managedGroup='yes'")" ||
        fail "virsh start failed"
    in_guest claim 8086:100e
    in_guest claim 1b36:000d 0
    expect_eq "$(dev_driver "$MATE")" vfio-pci "claimed mate while the guest runs"
    virsh destroy claim
    expect_eq "$(dev_driver "$MATE")" xhci_hcd "mate after destroy"
    expect_eq "$(dev_driver "$MF")" e1000 "device after destroy"
}
scenario "managedGroup='yes' claims the group and gives it back" s_group_claim

# The mates managedGroup='yes' claimed are recorded in the status XML: after
# a crash of the daemon exactly those go back to their host drivers. A mate
# the administrator bound to vfio-pci by hand before the start was never
# libvirt's and stays where the administrator put it.
s_group_claim_crash() {
    local st=/run/libvirt/qemu/claimcrash.xml status
    define_start claimcrash "$QEMU" "$(hostdev_xml "$MF" "managed='yes' managedGroup='yes'")" ||
        fail "virsh start failed"
    expect_eq "$(dev_driver "$MATE")" vfio-pci "claimed mate while the guest runs"
    status=$(cat "$st") || fail "no status XML $st"
    expect_match "$status" "<claimed>" "the claim in the status XML"
    crash_virtqemud
    expect_eq "$(virsh domstate claimcrash)" running "domain state after the daemon's crash"
    virsh destroy claimcrash || fail "virsh destroy failed"
    expect_eq "$(dev_driver "$MATE")" xhci_hcd "claimed mate after the daemon's crash and destroy"
    expect_eq "$(dev_driver "$MF")" e1000 "device after destroy"

    dev_bind "$MATE" vfio-pci
    expect_eq "$(dev_driver "$MATE")" vfio-pci "mate bound to vfio-pci by hand"
    virsh start claimcrash || fail "virsh start failed"
    status=$(cat "$st") || fail "no status XML $st"
    expect_nomatch "$status" "<claimed>" "a claim in the status XML"
    crash_virtqemud
    virsh destroy claimcrash || fail "virsh destroy failed"
    expect_eq "$(dev_driver "$MATE")" vfio-pci "mate bound by hand, after the daemon's crash and destroy"
    expect_eq "$(dev_driver "$MF")" e1000 "device after destroy"
    dev_bind "$MATE" xhci_hcd
}
scenario "managedGroup='yes': a daemon crash releases exactly the claimed mates" s_group_claim_crash

s_bridge_group() {
    expect_eq "$(dev_group "$BR_A")" "$(dev_group "$BR_B")" "one IOMMU group behind the bridge"
    define_start bridge "$QEMU" "$(hostdev_xml "$BR_A")" "$(hostdev_xml "$BR_B")" ||
        fail "virsh start failed"
    in_guest bridge 10ec:8139
    in_guest bridge 8086:25ab
    virsh destroy bridge
    expect_eq "$(lab_changed_drivers | tr '\n' ' ')" "" "devices whose driver changed"
}
scenario "a group behind a PCIe-to-PCI bridge is assigned whole" s_bridge_group

# devices.list of QEMU's devices cgroup (v1), or nothing
qemu_devices_list() {
    local path
    path=$(awk -F: '$2 == "devices" {print $3}' "/proc/$(qemu_pid "$1")/cgroup")
    [ -n "$path" ] && cat "/sys/fs/cgroup/devices$path/devices.list" 2>/dev/null
}
# the "c MAJ:MIN" of a device node
node_id() { printf 'c %d:%d' "0x$(stat -c %t "$1")" "0x$(stat -c %T "$1")"; }

s_fd_passing() {
    local pid grp grp2 cmd objs list out
    # the nested guest runs no OS: with native PCIe hot-plug (not ACPI's)
    # QEMU unplugs from a slot the guest never powered on without asking it
    LAB_QEMU_ARGS="-global ICH9-LPC.acpi-pci-hotplug-with-bridge-support=off"
    grp=$(dev_group "$LONE")
    grp2=$(dev_group "$LONE2")
    define_start fdpass "$QEMU" "$(hostdev_xml "$LONE")" || fail "virsh start failed"
    pid=$(qemu_pid fdpass)
    cmd=$(qemu_cmdline fdpass)
    log "QEMU command line: $cmd"
    expect_match "$cmd" '"qom-type":"vfio-container","id":"vfio-ct0","fd":"[0-9]+"' "container object"
    expect_match "$cmd" "\"qom-type\":\"vfio-group\",\"id\":\"vfio-grp$grp\",\"fd\":\"[0-9]+\",\"container\":\"vfio-ct0\"" "group object"
    expect_match "$cmd" "\"host\":\"$LONE\",\"group\":\"vfio-grp$grp\"" "vfio-pci device"
    in_guest fdpass 8086:10d3
    expect_eq "$(ps -o user= -p "$pid")" libvirt-qemu "QEMU's user"
    expect_eq "$(stat -c '%U:%G %a' "/dev/vfio/$grp")" "root:root 600" "/dev/vfio/$grp"
    expect_eq "$(nsenter -t "$pid" -m -- sh -c 'ls -d /dev/vfio 2>/dev/null || echo absent')" absent \
        "/dev/vfio in QEMU's mount namespace"
    expect_match "$(ls -l "/proc/$pid/fd")" " /dev/vfio/$grp$" "QEMU holds /dev/vfio/$grp"
    expect_match "$(ls -l "/proc/$pid/fd")" " /dev/vfio/vfio$" "QEMU holds /dev/vfio/vfio"
    list=$(qemu_devices_list fdpass)
    if [ -n "$list" ]; then
        expect_nomatch "$list" "^$(node_id "/dev/vfio/$grp") |^$(node_id /dev/vfio/vfio) " \
            "QEMU's devices cgroup"
    else
        log "note: no devices cgroup for QEMU (not checked)"
    fi
    expect_eq "$(virtqemud_vfio_fds)" 0 "VFIO files held by virtqemud"
    if [ "$LAB_MODE" = packaged ]; then
        expect_confined_daemon
        expect_confined_qemu fdpass
        expect_vfio_rules fdpass "$grp"
    fi

    # hot-plug a device of another group, across a daemon restart
    restart_virtqemud
    hostdev_xml "$LONE2" > /tmp/lone2.xml
    virsh attach-device fdpass /tmp/lone2.xml --live || fail "attach-device failed"
    in_guest fdpass 8086:10d3 2
    objs=$(qom_objects fdpass | tr '\n' ' ')
    expect_match "$objs" "vfio-grp$grp2 " "QEMU objects after hot-plug"
    expect_match "$(ls -l "/proc/$pid/fd")" " /dev/vfio/$grp2$" "QEMU holds /dev/vfio/$grp2"
    expect_eq "$(stat -c '%U:%G %a' "/dev/vfio/$grp2")" "root:root 600" "/dev/vfio/$grp2"
    expect_eq "$(virtqemud_vfio_fds)" 0 "VFIO files held by virtqemud"
    [ "$LAB_MODE" = packaged ] && expect_vfio_rules fdpass "$grp" "$grp2"
    # QEMU refuses to drop objects a device uses
    out=$(qmp fdpass "{\"execute\":\"object-del\",\"arguments\":{\"id\":\"vfio-grp$grp2\"}}" 2>&1)
    expect_match "$out" "object 'vfio-grp$grp2' is in use, can not be deleted" "object-del of a group in use"
    out=$(qmp fdpass '{"execute":"object-del","arguments":{"id":"vfio-ct0"}}' 2>&1)
    expect_match "$out" "object 'vfio-ct0' is in use, can not be deleted" "object-del of a container in use"

    restart_virtqemud
    virsh detach-device fdpass /tmp/lone2.xml --live || fail "detach-device failed"
    for _ in $(seq 1 60); do
        guest_pci fdpass | grep -c '^8086:10d3$' | grep -qx 1 && break
        sleep 1
    done
    in_guest fdpass 8086:10d3 1
    objs=$(qom_objects fdpass | tr '\n' ' ')
    expect_nomatch "$objs" "vfio-grp$grp2 " "QEMU objects after unplug"
    expect_match "$objs" "vfio-grp$grp vfio-ct0 |vfio-ct0 .*vfio-grp$grp " "objects of the remaining device"
    expect_nomatch "$(ls -l "/proc/$pid/fd")" " /dev/vfio/$grp2$" "QEMU's files after unplug"
    expect_eq "$(dev_driver "$LONE2")" e1000e "driver of the unplugged device"
    expect_eq "$(virtqemud_vfio_fds)" 0 "VFIO files held by virtqemud"
    [ "$LAB_MODE" = packaged ] && expect_vfio_rules fdpass "$grp"

    virsh destroy fdpass
    expect_eq "$(lab_changed_drivers | tr '\n' ' ')" "" "devices whose driver changed"
    expect_eq "$(virtqemud_vfio_fds)" 0 "VFIO files held by virtqemud"
}
scenario "fd passing: QEMU without /dev/vfio; hot-plug/unplug across daemon restarts" s_fd_passing

# wait_in_guest DOM VENDOR:DEVICE COUNT: until QEMU shows the guest COUNT
# such devices (an unplug completes asynchronously), then check it
wait_in_guest() {
    for _ in $(seq 1 60); do
        [ "$(guest_pci "$1" | grep -c "^$2$" || true)" = "$3" ] && break
        sleep 1
    done
    in_guest "$@"
}

# Two devices of one IOMMU group hot-plugged into one guest: the one
# unplugged first stays on its VFIO driver while the other keeps the group
# (the kernel refuses a host driver then, and the device would be left
# with none), stays held across a daemon crash, and goes back to its host
# driver when the group's last device leaves.
s_group_unplug() {
    LAB_QEMU_ARGS="-global ICH9-LPC.acpi-pci-hotplug-with-bridge-support=off"
    expect_eq "$(dev_group "$PAIR_A")" "$(dev_group "$PAIR_B")" "one IOMMU group for the pair"
    # root ports: one for the device present at boot, two free ones for
    # the hot-plugged devices
    define_start grpunplug "$QEMU" "$(hostdev_xml "$LONE")" \
        "<controller type='pci' index='0' model='pcie-root'/>" \
        "<controller type='pci' model='pcie-root-port'/>" \
        "<controller type='pci' model='pcie-root-port'/>" \
        "<controller type='pci' model='pcie-root-port'/>" || fail "virsh start failed"
    # the administrator's own: the second function bound to vfio-pci by
    # hand and assigned with managed='no'; the first one libvirt's
    dev_bind "$PAIR_B" vfio-pci
    hostdev_xml "$PAIR_A" > /tmp/pair-a.xml
    hostdev_xml "$PAIR_B" "managed='no'" > /tmp/pair-b.xml
    virsh attach-device grpunplug /tmp/pair-a.xml --live || fail "attach-device of $PAIR_A failed"
    virsh attach-device grpunplug /tmp/pair-b.xml --live || fail "attach-device of $PAIR_B failed"
    in_guest grpunplug 8086:10d3 3

    virsh detach-device grpunplug /tmp/pair-a.xml --live || fail "detach-device of $PAIR_A failed"
    wait_in_guest grpunplug 8086:10d3 2
    expect_match "$(dev_driver "$PAIR_A")" '^(vfio-pci|lvf_vfio_pci)$' "driver of $PAIR_A while $PAIR_B keeps the group"
    crash_virtqemud

    virsh detach-device grpunplug /tmp/pair-b.xml --live || fail "detach-device of $PAIR_B failed"
    wait_in_guest grpunplug 8086:10d3 1
    expect_eq "$(dev_driver "$PAIR_A")" e1000e "driver of $PAIR_A once the group's last device left"
    expect_eq "$(dev_driver "$PAIR_B")" vfio-pci "driver of $PAIR_B (managed='no': left as it was)"
    virsh destroy grpunplug || fail "virsh destroy failed"
    expect_eq "$(virtqemud_vfio_fds)" 0 "VFIO files held by the daemon"
    dev_bind "$PAIR_B" e1000e
}
scenario "unplug within an IOMMU group: held until the group's last device leaves" s_group_unplug

# race_outcome A RC_A B RC_B WHAT: exactly one of two concurrent requests
# for one IOMMU group succeeded, and the other's error (in /tmp/NAME.out)
# names the winner; prints the winner
race_outcome() {
    local win lose
    log "$5: $1 rc=$2, $3 rc=$4"
    expect_eq "$(( ($2 == 0) + ($4 == 0) ))" 1 "$5 that succeeded" >&2
    if [ "$2" = 0 ]; then win=$1 lose=$3; else win=$3 lose=$1; fi
    log "$lose: $(cat "/tmp/$lose.out")"
    expect_match "$(cat "/tmp/$lose.out")" "in use by driver QEMU, domain $win" \
        "the refusal of $lose names $win" >&2
    echo "$win"
}
# wait_drivers_restored WHAT: every device back on its driver of boot time
# (a rebind after an unplug follows QEMU's DEVICE_DELETED event)
wait_drivers_restored() {
    for _ in $(seq 1 30); do
        [ -z "$(lab_changed_drivers)" ] && break
        sleep 1
    done
    expect_eq "$(lab_changed_drivers | tr '\n' ' ')" "" "devices whose driver changed $1"
}

# Two guests that claim one IOMMU group (managedGroup='yes' on its two
# functions) can both be defined; started at the same moment, again and
# again, exactly one runs and the other is refused naming it: the host
# device manager's lock serialises the claims. Then the same for two
# hot-plugs at the same moment into two running guests.
s_group_race() {
    local i d pa pb ra rb win vf='^(vfio-pci|lvf_vfio_pci)$'
    domain_xml racea "$QEMU" "$(hostdev_xml "$PAIR_A" "managed='yes' managedGroup='yes'")" > /tmp/racea.xml
    domain_xml raceb "$QEMU" "$(hostdev_xml "$PAIR_B" "managed='yes' managedGroup='yes'")" > /tmp/raceb.xml
    virsh define /tmp/racea.xml >/dev/null || fail "defining racea was refused"
    virsh define /tmp/raceb.xml >/dev/null || fail "defining raceb, whose claim overlaps racea's, was refused"
    for i in 1 2 3; do
        virsh start racea > /tmp/racea.out 2>&1 & pa=$!
        virsh start raceb > /tmp/raceb.out 2>&1 & pb=$!
        ra=0; wait "$pa" || ra=$?
        rb=0; wait "$pb" || rb=$?
        win=$(race_outcome racea "$ra" raceb "$rb" "starts at the same moment (round $i)") || exit 1
        expect_eq "$(virsh list --name | sed '/^$/d' | tr '\n' ' ')" "$win " "running domains (round $i)"
        expect_match "$(dev_driver "$PAIR_A")" "$vf" "driver of $PAIR_A while $win runs"
        expect_match "$(dev_driver "$PAIR_B")" "$vf" "driver of $PAIR_B while $win runs"
        virsh destroy "$win" >/dev/null || fail "virsh destroy $win failed"
        wait_drivers_restored "after round $i"
        expect_eq "$(virtqemud_vfio_fds)" 0 "VFIO files held by the daemon (round $i)"
    done
    virsh undefine racea >/dev/null
    virsh undefine raceb >/dev/null

    LAB_QEMU_ARGS="-global ICH9-LPC.acpi-pci-hotplug-with-bridge-support=off"
    for d in hpa hpb; do
        define_start "$d" "$QEMU" "<controller type='pci' index='0' model='pcie-root'/>" \
            "<controller type='pci' model='pcie-root-port'/>" >/dev/null || fail "virsh start $d failed"
    done
    hostdev_xml "$PAIR_A" "managed='yes' managedGroup='yes'" > /tmp/hp-a.xml
    hostdev_xml "$PAIR_B" "managed='yes' managedGroup='yes'" > /tmp/hp-b.xml
    for i in 1 2; do
        virsh attach-device hpa /tmp/hp-a.xml --live > /tmp/hpa.out 2>&1 & pa=$!
        virsh attach-device hpb /tmp/hp-b.xml --live > /tmp/hpb.out 2>&1 & pb=$!
        ra=0; wait "$pa" || ra=$?
        rb=0; wait "$pb" || rb=$?
        win=$(race_outcome hpa "$ra" hpb "$rb" "hot-plugs at the same moment (round $i)") || exit 1
        if [ "$win" = hpa ]; then
            wait_in_guest hpa 8086:10d3 1
            in_guest_n hpb 8086:10d3 0
        else
            wait_in_guest hpb 8086:10d3 1
            in_guest_n hpa 8086:10d3 0
        fi
        expect_match "$(dev_driver "$PAIR_A")" "$vf" "driver of $PAIR_A while $win has the group"
        expect_match "$(dev_driver "$PAIR_B")" "$vf" "driver of $PAIR_B while $win has the group"
        virsh detach-device "$win" "/tmp/hp-${win#hp}.xml" --live >/dev/null || fail "detach-device from $win failed"
        wait_in_guest "$win" 8086:10d3 0
        wait_drivers_restored "after hot-plug round $i"
        expect_eq "$(virtqemud_vfio_fds)" 0 "VFIO files held by the daemon (hot-plug round $i)"
    done
}
scenario "two guests that want one IOMMU group at the same moment: one gets it" s_group_race

s_legacy() {
    local pid grp cmd list
    grp=$(dev_group "$LONE")
    if [ "$LAB_MODE" = packaged ]; then
        # Debian's QEMU was replaced by this project's package: the legacy
        # path is the same QEMU with fd passing turned off in qemu.conf (set
        # through the package's augeas lens, as configuration tools do)
        augtool -s set /files/etc/libvirt/qemu.conf/hostdev_vfio_fd_passing 0 >/dev/null ||
            fail "augtool could not set hostdev_vfio_fd_passing"
        trap 'augtool -s rm /files/etc/libvirt/qemu.conf/hostdev_vfio_fd_passing >/dev/null; restart_virtqemud' EXIT
        restart_virtqemud
    fi
    define_start legacy "$STOCK" "$(hostdev_xml "$LONE")" || fail "virsh start failed"
    pid=$(qemu_pid legacy)
    cmd=$(qemu_cmdline legacy)
    log "QEMU command line: $cmd"
    expect_nomatch "$cmd" 'vfio-container|vfio-group' "no fd objects with Debian's QEMU"
    expect_match "$cmd" "\"host\":\"$LONE\"" "vfio-pci device"
    in_guest legacy 8086:10d3
    if [ "$LAB_MODE" = packaged ]; then
        expect_confined_qemu legacy
        # QEMU opens /dev/vfio itself here: its own group, no other
        expect_vfio_rules legacy "$grp"
    fi
    expect_eq "$(nsenter -t "$pid" -m -- stat -c '%U' "/dev/vfio/$grp")" libvirt-qemu \
        "owner of /dev/vfio/$grp in QEMU's mount namespace"
    list=$(qemu_devices_list legacy)
    [ -z "$list" ] || expect_match "$list" "^$(node_id "/dev/vfio/$grp") rw" "QEMU's devices cgroup"
    virsh destroy legacy
    expect_eq "$(dev_driver "$LONE")" e1000e "driver after destroy"
}
if [ "$LAB_MODE" = packaged ]; then
    scenario "legacy path (fd passing off in qemu.conf) under AppArmor" s_legacy
else
    scenario "Debian's QEMU: the legacy path still works" s_legacy
fi

s_memlock() {
    local pid lck ram v
    ram=$(( ${LAB_GUEST_MIB:-64} * 1024 ))
    define_start memlock "$QEMU" "$(hostdev_xml "$LONE")" "$(hostdev_xml "$LONE2")" ||
        fail "virsh start failed"
    pid=$(qemu_pid memlock)
    in_guest memlock 8086:10d3 2
    expect_match "$(qemu_cmdline memlock)" 'vfio-grp[0-9]+.*vfio-grp[0-9]+' "two group objects"
    expect_eq "$(qemu_cmdline memlock | grep -o '"qom-type":"vfio-container"' | wc -l)" 1 "containers"
    # the guest's firmware remaps memory while it runs (QEMU unmaps and
    # maps again): the most seen over a few seconds is what stays pinned
    lck=0
    for _ in $(seq 1 10); do
        v=$(awk '/^VmLck/ {print $2}' "/proc/$pid/status")
        [ "$v" -gt "$lck" ] && lck=$v
        sleep 1
    done
    log "VmLck ${lck} kB with two groups, guest RAM ${ram} kB"
    echo "vmlck_two_groups_kib=$lck guest_ram_kib=$ram" >> "$R/figures"
    [ "$lck" -ge "$ram" ] || fail "VmLck $lck kB < guest RAM $ram kB: guest RAM is not pinned"
    [ "$lck" -lt $(( ram * 3 / 2 )) ] || fail "VmLck $lck kB: guest RAM pinned more than once"
}
scenario "locked memory: two groups, one container, guest RAM pinned once" s_memlock

# A group mate with <address type='unassigned'/> under fd passing: libvirt
# binds it so that the group is viable and the guest does not get it. Its
# group is passed for the assigned function, so QEMU gets no /dev/vfio
# node, cgroup rule or owner change for the mate either, and the kernel is
# not asked a second time about a group libvirt holds open.
s_fd_unassigned() {
    local pid grp list
    grp=$(dev_group "$PAIR_A")
    expect_eq "$(dev_group "$PAIR_B")" "$grp" "one IOMMU group for the pair"
    define_start fdunassigned "$QEMU" "$(hostdev_xml "$PAIR_A")" \
        "$(hostdev_xml "$PAIR_B" | sed "s|</source>|</source><address type='unassigned'/>|")" ||
        fail "virsh start failed"
    pid=$(qemu_pid fdunassigned)
    in_guest fdunassigned 8086:10d3 1
    expect_match "$(dev_driver "$PAIR_A")" '^(vfio-pci|lvf_vfio_pci)$' "driver of the assigned function"
    expect_match "$(dev_driver "$PAIR_B")" '^(vfio-pci|lvf_vfio_pci)$' "driver of the unassigned mate"
    expect_eq "$(qemu_cmdline fdunassigned | grep -o '"qom-type":"vfio-group"' | wc -l)" 1 "group objects"
    expect_nomatch "$(qemu_cmdline fdunassigned)" "\"host\":\"$PAIR_B\"" "a QEMU device for the unassigned mate"
    expect_eq "$(stat -c '%U:%G %a' "/dev/vfio/$grp")" "root:root 600" "/dev/vfio/$grp"
    expect_eq "$(nsenter -t "$pid" -m -- sh -c 'ls -d /dev/vfio 2>/dev/null || echo absent')" absent \
        "/dev/vfio in QEMU's mount namespace"
    list=$(qemu_devices_list fdunassigned)
    if [ -n "$list" ]; then
        expect_nomatch "$list" "^$(node_id "/dev/vfio/$grp") " "QEMU's devices cgroup"
    else
        log "note: no devices cgroup for QEMU (not checked)"
    fi
    expect_eq "$(virtqemud_vfio_fds)" 0 "VFIO files held by the daemon"
    [ "$LAB_MODE" = packaged ] && expect_vfio_rules fdunassigned "$grp"
    # the same after a daemon restart (read back from the status XML)
    restart_virtqemud
    virsh destroy fdunassigned || fail "virsh destroy failed"
    wait_drivers_restored "after destroy"
}
scenario "fd passing: a group mate with an unassigned address gets no /dev/vfio either" s_fd_unassigned

# A daemon restart never stops a guest. While the daemon is away, a
# hot-plugged device leaves QEMU and something else in QEMU takes its
# group object (here a device added on QEMU's own monitor): at reconnect
# QEMU refuses to delete the object libvirt passed. The guest runs on, the
# device stays in the domain and on its VFIO driver while QEMU holds its
# group, and once the group is free its next unplug completes the removal.
s_reconnect_kept() {
    local pid grp2 alias bus out
    LAB_QEMU_ARGS="-global ICH9-LPC.acpi-pci-hotplug-with-bridge-support=off"
    grp2=$(dev_group "$LONE2")
    define_start reconkept "$QEMU" "$(hostdev_xml "$LONE")" || fail "virsh start failed"
    pid=$(qemu_pid reconkept)
    hostdev_xml "$LONE2" > /tmp/reconkept2.xml
    virsh attach-device reconkept /tmp/reconkept2.xml --live || fail "attach-device failed"
    in_guest reconkept 8086:10d3 2
    alias=$(hostdev_alias reconkept "$LONE2")
    bus=$(hostdev_alias reconkept "$LONE2" bus)

    lab_stop_virtqemud
    out=$(qmp_direct reconkept \
        "{\"execute\":\"device_del\",\"arguments\":{\"id\":\"$alias\"}}" wait:DEVICE_DELETED \
        "{\"execute\":\"device_add\",\"arguments\":{\"driver\":\"vfio-pci\",\"host\":\"$LONE2\",\"group\":\"vfio-grp$grp2\",\"bus\":\"$bus\",\"id\":\"intruder\"}}")
    log "$out"
    lab_start_virtqemud
    expect_eq "$(virsh domstate reconkept)" running "domain state after the daemon's restart"
    expect_eq "$(qemu_pid reconkept)" "$pid" "QEMU's pid after the daemon's restart"
    expect_match "$(virsh dumpxml reconkept)" "<alias name='$alias'/>" "$alias in the domain while QEMU holds its group"
    expect_match "$(dev_driver "$LONE2")" '^(vfio-pci|lvf_vfio_pci)$' "driver of $LONE2 while QEMU holds its group"
    expect_match "$(qom_objects reconkept | tr '\n' ' ')" "vfio-grp$grp2 " "the group object QEMU kept"

    # the group is free again: the next unplug completes the removal
    qmp reconkept '{"execute":"device_del","arguments":{"id":"intruder"}}' >/dev/null ||
        fail "device_del of the intruder failed"
    wait_in_guest reconkept 8086:10d3 1
    virsh detach-device reconkept /tmp/reconkept2.xml --live || fail "detach-device failed"
    expect_nomatch "$(virsh dumpxml reconkept)" "<alias name='$alias'/>" "$alias in the domain after the unplug"
    expect_nomatch "$(qom_objects reconkept | tr '\n' ' ')" "vfio-grp$grp2 " "QEMU objects after the unplug"
    expect_nomatch "$(ls -l "/proc/$pid/fd")" " /dev/vfio/$grp2$" "QEMU's files after the unplug"
    for _ in $(seq 1 30); do
        [ "$(dev_driver "$LONE2")" = e1000e ] && break
        sleep 1
    done
    expect_eq "$(dev_driver "$LONE2")" e1000e "driver of $LONE2 after the unplug"
    expect_eq "$(virtqemud_vfio_fds)" 0 "VFIO files held by the daemon"
    virsh destroy reconkept || fail "virsh destroy failed"
    wait_drivers_restored "after destroy"
}
scenario "daemon restart: a group object QEMU keeps stops no guest; the next unplug completes" s_reconnect_kept
