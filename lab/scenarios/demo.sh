# The narrated tour of the lab (make demo): the same machinery and checks as
# the default scenarios, told for a person. Each part is a scenario, so the
# tour also ends with "N passed, N failed".

QEMU=$LAB_QEMU
STOCK=$LAB_STOCK_QEMU
LONE=$(dev_find 8086 10d3 1)
LONE2=$(dev_find 8086 10d3 2)
MF=$(dev_find 8086 100e)
MATE=$(dev_find 1b36 000d)
BR_A=$(dev_find 10ec 8139)
BR_B=$(dev_find 8086 25ab)
validate() { "$LIBVIRT_BUILD/run" "$LIBVIRT_BUILD/tools/virt-hostdev-validate" "$@"; }
driver_of() { echo "$1 is bound to $(dev_driver "$1")"; }

d_machine() {
    step "The lab machine"
    note "A TCG guest booted from Debian bookworm's kernel $(uname -r) with an emulated Intel VT-d IOMMU, so it has real IOMMU groups, real drivers and the kernel's real VFIO. It runs this project's virtqemud and virsh from build/libvirt, and this project's QEMU from build/qemu, nested."
    showsh "dmesg | grep -E 'DMAR: IOMMU enabled|Default domain type'"
    note "Its PCI devices, IOMMU groups and drivers:"
    local cmd='for g in GROUPS; do for d in /sys/kernel/iommu_groups/$g/devices/*; do echo "group $g: ${d##*/} $(cat $d/vendor):$(cat $d/device) driver: $(basename "$(readlink $d/driver)" 2>/dev/null)"; done; done'
    showsh "${cmd/GROUPS/$(dev_group "$LONE") $(dev_group "$LONE2") $(dev_group "$MF") $(dev_group "$BR_A")}"
    note "A VFIO variant driver built for this kernel (lab/module) announces itself to depmod with a vfio_pci: alias, as mlx5_vfio_pci or nvgrace_gpu_vfio_pci do on other kernels:"
    showsh "grep '^alias vfio_pci:' /lib/modules/$(uname -r)/modules.alias"
}
scenario "the lab machine" d_machine

d_validate() {
    step "virt-hostdev-validate: can a device be assigned, and how?"
    note "It changes nothing and needs no daemon. For the lone 82574L NIC, the NIC whose other function is a USB controller still on its host driver, and a device behind a PCIe-to-PCI bridge:"
    show validate "$LONE" "$MF" "$BR_A"
    [ $? = 1 ] || fail "virt-hostdev-validate should report one device that cannot be assigned"
}
scenario "virt-hostdev-validate on real devices" d_validate

d_fd_passing() {
    local pid grp cmd
    LAB_QEMU_ARGS="-global ICH9-LPC.acpi-pci-hotplug-with-bridge-support=off"
    step "Assigning a device: variant driver, daemon-opened VFIO files"
    domain_xml tour "$QEMU" "$(hostdev_xml "$LONE")" > /tmp/tour.xml
    note "A guest with <hostdev managed='yes'> for $LONE and no <driver model>: libvirt picks the VFIO driver whose vfio_pci: alias matches the device best."
    showsh "grep -o '<hostdev.*</hostdev>' /tmp/tour.xml"
    show virsh define /tmp/tour.xml
    show virsh start tour || fail "virsh start failed"
    show driver_of "$LONE"
    expect_eq "$(dev_driver "$LONE")" lvf_vfio_pci "the variant driver was picked"
    pid=$(qemu_pid tour)
    grp=$(dev_group "$LONE")
    note "libvirt opened /dev/vfio/vfio and /dev/vfio/$grp itself and passed them to QEMU (fd=...). The QEMU command line:"
    cmd=$(qemu_cmdline tour)
    showsh "tr '\\0' '\\n' < /proc/$pid/cmdline | grep vfio"
    expect_match "$cmd" '"qom-type":"vfio-group"' "group object"
    note "QEMU runs as an unprivileged user, has no /dev/vfio in its mount namespace, and /dev/vfio/$grp is still root's; yet it holds the files:"
    show ps -o user=,pid=,comm= -p "$pid"
    show nsenter -t "$pid" -m -- ls /dev/vfio
    showsh "stat -c '%n %U:%G %a' /dev/vfio/$grp"
    showsh "ls -l /proc/$pid/fd | grep -o '/dev/vfio/.*'"
    note "And the guest sees the NIC (QMP query-pci through virsh):"
    showsh "virsh qemu-monitor-command tour --hmp 'info pci' | grep -B12 'id \"hostdev0\"' | grep -E 'Bus|controller|id '"
    in_guest_n=$(guest_pci tour | grep -c '^8086:10d3$')
    expect_eq "$in_guest_n" 1 "NIC in the guest"

    step "Hot-plug and unplug, across daemon restarts"
    note "The daemon is restarted (as an upgrade would); the VFIO objects are in its status XML:"
    restart_virtqemud
    showsh "grep -A5 '<vfio ' /run/libvirt/qemu/tour.xml"
    hostdev_xml "$LONE2" > /tmp/lone2.xml
    show virsh attach-device tour /tmp/lone2.xml --live || fail "attach-device failed"
    note "QEMU got a new vfio-group object for the second device's group, in the same container:"
    showsh "virsh qemu-monitor-command tour --hmp 'info qom-tree /objects' | grep vfio"
    restart_virtqemud
    show virsh detach-device tour /tmp/lone2.xml --live || fail "detach-device failed"
    for _ in $(seq 1 60); do
        guest_pci tour | grep -c '^8086:10d3$' | grep -qx 1 && break
        sleep 1
    done
    note "Its group object is gone, the device is back on its host driver, and the daemon holds no VFIO file:"
    showsh "virsh qemu-monitor-command tour --hmp 'info qom-tree /objects' | grep vfio"
    show driver_of "$LONE2"
    expect_eq "$(dev_driver "$LONE2")" e1000e "driver after unplug"
    showsh "ls -l /proc/$(virtqemud_pid)/fd | grep -c /dev/vfio"
    show virsh destroy tour
    show driver_of "$LONE"
}
scenario "fd passing, hot-plug and unplug" d_fd_passing

d_group() {
    local out
    step "A device whose IOMMU group mate is on a host driver"
    note "$MF shares its IOMMU group with $MATE, which xhci_hcd drives. Before, QEMU failed late with 'group N is not viable'; now libvirt says which device, which driver, which group and what to do, and changes nothing:"
    domain_xml mate "$QEMU" "$(hostdev_xml "$MF")" > /tmp/mate.xml
    show virsh define /tmp/mate.xml
    show virsh start mate && fail "started"
    out=$(cat /tmp/show.out)
    expect_match "$out" "IOMMU group [0-9]+ is not viable: device $MATE is bound to host driver 'xhci_hcd'" "error"
    show driver_of "$MATE"
    note "With managedGroup='yes' libvirt takes the whole group while the guest runs, and gives it back:"
    domain_xml claim "$QEMU" "$(hostdev_xml "$MF" "managed='yes' managedGroup='yes'")" > /tmp/claim.xml
    showsh "grep -o '<hostdev[^>]*>' /tmp/claim.xml"
    show virsh define /tmp/claim.xml
    show virsh start claim || fail "virsh start failed"
    show driver_of "$MATE"
    show virsh destroy claim
    show driver_of "$MATE"
    expect_eq "$(dev_driver "$MATE")" xhci_hcd "mate after destroy"
}
scenario "IOMMU group viability and managedGroup" d_group

d_model() {
    step "Choosing the driver: <driver model='vfio-pci'/>"
    domain_xml forced "$QEMU" "$(hostdev_xml "$LONE" "managed='yes'" "model='vfio-pci'")" > /tmp/forced.xml
    showsh "grep -o '<driver[^>]*>' /tmp/forced.xml"
    show virsh define /tmp/forced.xml
    show virsh start forced || fail "virsh start failed"
    show driver_of "$LONE"
    expect_eq "$(dev_driver "$LONE")" vfio-pci "driver"
    show virsh destroy forced
}
scenario "model='vfio-pci' overrides the variant" d_model

d_legacy() {
    local pid
    step "Debian's own QEMU: the legacy path"
    note "Without the vfio-container/vfio-group objects, QEMU opens /dev/vfio itself, as with libvirt 9.0: the node is in its namespace, owned by its user."
    domain_xml legacy "$STOCK" "$(hostdev_xml "$LONE")" > /tmp/legacy.xml
    show virsh define /tmp/legacy.xml
    show virsh start legacy || fail "virsh start failed"
    pid=$(qemu_pid legacy)
    showsh "tr '\\0' '\\n' < /proc/$pid/cmdline | grep vfio"
    show nsenter -t "$pid" -m -- ls -l /dev/vfio
    expect_nomatch "$(qemu_cmdline legacy)" 'vfio-group' "legacy command line"
    show virsh destroy legacy
}
scenario "Debian's QEMU: legacy path" d_legacy

d_memlock() {
    local pid
    step "Locked memory: two groups, one container"
    note "Without a vIOMMU all groups share one container, so guest RAM (${LAB_GUEST_MIB:-64} MiB) is pinned once:"
    domain_xml memlock "$QEMU" "$(hostdev_xml "$LONE")" "$(hostdev_xml "$LONE2")" > /tmp/memlock.xml
    show virsh define /tmp/memlock.xml
    show virsh start memlock || fail "virsh start failed"
    pid=$(qemu_pid memlock)
    showsh "grep VmLck /proc/$pid/status"
    show virsh destroy memlock
}
scenario "locked memory" d_memlock
