# Helpers for lab scenarios (sourced in the lab guest by lab/guest/run).
#
# A scenario script calls
#     scenario NAME FUNCTION
# for each scenario. FUNCTION runs in a subshell; it fails at the first
# failed expectation (expect_*, or any command with `|| fail ...`). After
# each scenario every domain is destroyed and undefined, and every PCI device
# is given back the driver it had when the lab started, so scenarios do not
# depend on each other.

LOGS=$R/logs
mkdir -p "$LOGS"
: > "$R/report"
PASSED=0
FAILED=0
SCENARIO=

# LAB_MODE: "tree" runs this project's virtqemud, virsh and QEMU from the
# build trees (DAC security driver); "packaged" runs Debian's packaging of
# them as Debian does: libvirtd started by its unit (lab/guest/systemctl),
# /usr/bin/virsh, /usr/bin/qemu-system-x86_64, AppArmor confining QEMU.
LAB_MODE=${LAB_MODE:-tree}
if [ "$LAB_MODE" = packaged ]; then
    DAEMON=libvirtd
    DAEMON_BIN=/usr/sbin/libvirtd
else
    DAEMON=virtqemud
    DAEMON_BIN=$LIBVIRT_BUILD/src/virtqemud
fi

# `virsh` is the mode's virsh, for the scenarios and for any shell they start.
# In packaged mode a connection to a daemon that is not running starts it,
# as systemd's socket activation does for libvirtd.socket.
mkdir -p /usr/local/bin
if [ "$LAB_MODE" = packaged ]; then
    cat > /usr/local/bin/virsh <<'SH'
#!/bin/sh
systemctl --quiet is-active libvirtd.service || systemctl start libvirtd.socket
exec /usr/bin/virsh -c qemu:///system "$@"
SH
else
    printf '#!/bin/sh\nexec "%s/run" "%s/tools/virsh" -c qemu:///system "$@"\n' \
        "$LIBVIRT_BUILD" "$LIBVIRT_BUILD" > /usr/local/bin/virsh
fi
chmod 755 /usr/local/bin/virsh
virsh() { /usr/local/bin/virsh "$@"; }

log() { printf '%s\n' "$*" >&2; }
fail() { log "FAILED: $*"; exit 1; }

# expect_eq ACTUAL EXPECTED WHAT
expect_eq() {
    [ "$1" = "$2" ] || fail "$3: got '$1', expected '$2'"
    log "ok: $3 = '$2'"
}
# expect_match TEXT REGEX WHAT
expect_match() {
    # (a here-string: 'printf | grep -q' fails under pipefail when grep
    # exits before a long text is written)
    grep -qE -- "$2" <<< "$1" || fail "$3: '$1' does not match /$2/"
    log "ok: $3 matches /$2/"
}
expect_nomatch() {
    ! grep -qE -- "$2" <<< "$1" || fail "$3: '$1' matches /$2/"
    log "ok: $3 does not match /$2/"
}

# --- narration (make demo) -----------------------------------------------------

NARRATION=$R/narration
step() { printf '\n\033[1m## %s\033[0m\n' "$*" >> "$NARRATION"; }
note() { printf '%s\n' "$*" | fold -s -w 76 | sed 's/^/   /' >> "$NARRATION"; }
# showsh 'SHELL COMMAND': the same for a shell command line, shown as written
showsh() {
    local rc
    printf '\n   $ %s\n' "$1" >> "$NARRATION"
    bash -c "$1" > /tmp/show.out 2>&1
    rc=$?
    sed 's/^/   /' /tmp/show.out | tee -a "$NARRATION" >&2
    return "$rc"
}
# show CMD...: run a command for the reader: the command, then its output
show() {
    local rc
    printf '\n   $ %s\n' "$*" >> "$NARRATION"
    "$@" > /tmp/show.out 2>&1
    rc=$?
    sed 's/^/   /' /tmp/show.out | tee -a "$NARRATION" >&2
    return "$rc"
}

# --- host PCI devices --------------------------------------------------------

# dev_find VENDOR DEVICE [N]: the Nth (from 1) device with these IDs
dev_find() {
    local n=${3:-1} d i=0
    for d in /sys/bus/pci/devices/*; do
        [ "$(cat "$d/vendor")" = "0x$1" ] && [ "$(cat "$d/device")" = "0x$2" ] || continue
        i=$((i + 1))
        [ "$i" = "$n" ] && { basename "$d"; return 0; }
    done
    return 1
}
dev_driver() {
    local l
    l=$(readlink "/sys/bus/pci/devices/$1/driver" 2>/dev/null) || { echo none; return; }
    basename "$l"
}
dev_group() { basename "$(readlink "/sys/bus/pci/devices/$1/iommu_group")"; }
dev_group_members() { ls "/sys/kernel/iommu_groups/$(dev_group "$1")/devices"; }

# dev_bind BDF DRIVER: what an administrator would do by hand
dev_bind() {
    local d=/sys/bus/pci/devices/$1
    [ -e "$d/driver" ] && echo "$1" > "$d/driver/unbind"
    echo "$2" > "$d/driver_override"
    echo "$1" > /sys/bus/pci/drivers_probe
    echo > "$d/driver_override"
}

# the drivers every device had when the lab started
declare -A INITIAL_DRIVER
lab_record_drivers() {
    local d
    for d in /sys/bus/pci/devices/*; do
        INITIAL_DRIVER[$(basename "$d")]=$(dev_driver "$(basename "$d")")
    done
}
# devices whose driver is not the one they started with
lab_changed_drivers() {
    local b
    for b in "${!INITIAL_DRIVER[@]}"; do
        [ "$(dev_driver "$b")" = "${INITIAL_DRIVER[$b]}" ] || echo "$b:$(dev_driver "$b")!=${INITIAL_DRIVER[$b]}"
    done
}
lab_restore_drivers() {
    local b want d
    for b in "${!INITIAL_DRIVER[@]}"; do
        want=${INITIAL_DRIVER[$b]}
        [ "$(dev_driver "$b")" = "$want" ] && continue
        d=/sys/bus/pci/devices/$b
        [ -e "$d/driver" ] && echo "$b" > "$d/driver/unbind"
        if [ "$want" != none ]; then
            echo "$want" > "$d/driver_override"
            echo "$b" > /sys/bus/pci/drivers_probe
            echo > "$d/driver_override"
        fi
    done
}

# --- daemons -------------------------------------------------------------------

DAEMON_PIDFILE=/run/lab-daemon.pid
lab_start_virtqemud() {
    if [ "$LAB_MODE" = packaged ]; then
        systemctl start libvirtd.service || fail "libvirtd did not start (see logs/systemctl.log)"
        virsh version >/dev/null 2>&1 || fail "libvirtd does not answer"
        return 0
    fi
    LIBVIRT_LOG_FILTERS="1:qemu.qemu_process 1:qemu.qemu_vfio 1:qemu.qemu_hotplug 1:qemu.qemu_hostdev 1:util.vfio 1:util.hostdev 1:util.pci 1:security 1:hypervisor 3:*" \
    LIBVIRT_LOG_OUTPUTS="1:file:$LOGS/virtqemud-debug.log" \
    "$LIBVIRT_BUILD/run" "$LIBVIRT_BUILD/src/virtqemud" >> "$LOGS/virtqemud.log" 2>&1 &
    # the pid lives in a file: scenarios restart the daemon in subshells
    echo $! > "$DAEMON_PIDFILE"
    local i
    for i in $(seq 1 300); do
        [ -S /run/libvirt/virtqemud-sock ] && virsh version >/dev/null 2>&1 && return 0
        sleep 0.2
    done
    fail "virtqemud did not start (see logs/virtqemud.log)"
}
lab_stop_virtqemud() {
    if [ "$LAB_MODE" = packaged ]; then
        systemctl stop libvirtd.service
        return 0
    fi
    local pid i
    pid=$(cat "$DAEMON_PIDFILE" 2>/dev/null) || return 0
    kill "$pid" 2>/dev/null
    for i in $(seq 1 150); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.2
    done
    rm -f "$DAEMON_PIDFILE" /run/libvirt/virtqemud-sock /run/virtqemud.pid
}
# restart_virtqemud: restart the daemon (virtqemud or libvirtd), as an
# upgrade or a crash would, with guests running
restart_virtqemud() {
    if [ "$LAB_MODE" = packaged ]; then
        systemctl restart libvirtd.service || fail "systemctl restart libvirtd.service failed"
        virsh version >/dev/null 2>&1 || fail "libvirtd does not answer after its restart"
        return 0
    fi
    lab_stop_virtqemud
    lab_start_virtqemud
}
# crash_virtqemud: kill -9 the daemon (virtqemud or libvirtd), as a crash
# would (no clean shutdown, nothing saved on the way out), then start it
crash_virtqemud() {
    local pid i
    pid=$(daemon_pid) || fail "no live daemon to crash"
    kill -KILL "$pid"
    for i in $(seq 1 150); do
        { [ -e "/proc/$pid" ] && ! grep -q '^State:.*zombie' "/proc/$pid/status" 2>/dev/null; } || break
        sleep 0.2
    done
    [ "$i" -lt 150 ] || fail "the daemon (pid $pid) survived SIGKILL"
    if [ "$LAB_MODE" = packaged ]; then
        systemctl start libvirtd.service || fail "libvirtd did not start after its crash"
        virsh version >/dev/null 2>&1 || fail "libvirtd does not answer after its crash"
        return 0
    fi
    rm -f "$DAEMON_PIDFILE" /run/libvirt/virtqemud-sock /run/virtqemud.pid
    lab_start_virtqemud
}
# daemon_pid: the live daemon's pid; fails loudly when there is none (a dead
# or stale pid must never read as "holds nothing")
daemon_pid() {
    local pid
    if [ "$LAB_MODE" = packaged ]; then
        pid=$(cat /run/lab-systemctl/libvirtd.service.pid 2>/dev/null)
    else
        pid=$(cat "$DAEMON_PIDFILE" 2>/dev/null)
    fi
    if [ -z "$pid" ] || [ "$(readlink "/proc/$pid/exe" 2>/dev/null)" != "$(readlink -f "$DAEMON_BIN")" ]; then
        log "no live $DAEMON (pid '${pid:-}')"
        echo "no-live-$DAEMON"
        return 1
    fi
    echo "$pid"
}
virtqemud_pid() { daemon_pid; }
# VFIO files the daemon holds (there must be none once a command returned);
# prints a non-number when the daemon cannot be found
virtqemud_vfio_fds() {
    local pid
    pid=$(daemon_pid) || { echo "$pid"; return 1; }
    ls -l "/proc/$pid/fd" | grep -c ' /dev/vfio/' || true
}

# --- packages (packaged mode) -------------------------------------------------------

# lab_apt ARGS...: apt-get as an administrator runs it, offline: Debian's
# packages come from the lab's download cache ($LAB_DEBS, filled on the host),
# this project's from build/deb. While it runs, /run/systemd/system exists so
# that the maintainer scripts start and restart services as they do under
# systemd (through lab/guest/systemctl).
lab_apt() {
    local rc
    # man-db's index rebuild (a dpkg trigger) takes minutes under TCG: off,
    # as `dpkg-reconfigure man-db` (auto-update: no) would set it
    rm -f /var/lib/man-db/auto-update
    mkdir -p /run/systemd/system
    # --force-unsafe-io: no fsync per unpacked file (the guest's disk is a
    # throw-away overlay; under TCG the syncs cost minutes). Each line of
    # apt's output carries the seconds since the start, to see what is slow.
    DEBIAN_FRONTEND=noninteractive apt-get -y -q \
        -o Dir::Cache::Archives="$LAB_DEBS" -o Dpkg::Options::=--force-unsafe-io \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "$@" 2>&1 |
        { SECONDS=0; while IFS= read -r l; do printf '[%4ds] %s\n' "$SECONDS" "$l"; done; }
    rc=${PIPESTATUS[0]}
    rmdir /run/systemd/system /run/systemd 2>/dev/null
    return "$rc"
}
# pkg_version PKG: the installed version
pkg_version() { dpkg-query -W -f '${Version}' "$1" 2>/dev/null; }

# --- AppArmor (packaged mode) ------------------------------------------------------

apparmor_denials() { dmesg | grep -c 'apparmor="DENIED"' || true; }
# aa_label PID: the AppArmor label a process runs under
aa_label() { cat "/proc/$1/attr/current"; }
# aa_files DOM: the per-domain rules virt-aa-helper wrote
aa_files() {
    local f
    f=/etc/apparmor.d/libvirt/libvirt-$(virsh domuuid "$1" | head -1).files
    [ -f "$f" ] || fail "no AppArmor rules for $1 ($f)"
    cat "$f"
}
# expect_confined_daemon: libvirtd runs under its own profile, enforced
expect_confined_daemon() {
    local pid
    pid=$(daemon_pid) || fail "libvirtd is not running"
    expect_match "$(aa_label "$pid")" '^(/usr/sbin/)?libvirtd \(enforce\)$' "libvirtd's AppArmor label"
}
# expect_confined_qemu DOM: QEMU runs under libvirt-<uuid>, enforced
expect_confined_qemu() {
    expect_eq "$(aa_label "$(qemu_pid "$1")")" "libvirt-$(virsh domuuid "$1" | head -1) (enforce)" \
        "QEMU's AppArmor label ($1)"
}
# expect_vfio_rules DOM GROUP...: QEMU's profile grants exactly these VFIO
# groups (and the container), never a wildcard
expect_vfio_rules() {
    local dom=$1 rules want got g
    shift
    rules=$(aa_files "$dom" | grep '/dev/vfio/')
    log "AppArmor rules for /dev/vfio ($dom): $(echo $rules)"
    expect_nomatch "$rules" '\[0-9\]|\*' "wildcards in QEMU's profile"
    got=$(printf '%s\n' "$rules" | sed -n 's|.*"/dev/vfio/\([0-9][0-9]*\)".*|\1|p' | sort -un | tr '\n' ' ')
    want=$(printf '%s\n' "$@" | sort -un | tr '\n' ' ')
    expect_eq "$got" "$want" "VFIO groups QEMU's profile grants ($dom)"
}
# in_guest_n DOM VENDOR:DEVICE COUNT: QEMU shows the guest COUNT such devices
in_guest_n() {
    local n
    n=$(guest_pci "$1" | grep -c "^$2$" || true)
    expect_eq "$n" "$3" "devices $2 in the guest (QMP query-pci)"
}

# --- domains --------------------------------------------------------------------

# hostdev_xml BDF [ATTRS] [DRIVER_ATTRS]: a PCI <hostdev>
hostdev_xml() {
    local bdf=$1 attrs=${2:-"managed='yes'"} drv=${3:-}
    local dom=${bdf%%:*} rest=${bdf#*:}
    local bus=${rest%%:*} slot=${rest#*:}; slot=${slot%%.*}
    local fn=${bdf##*.}
    printf "<hostdev mode='subsystem' type='pci' %s><driver name='vfio'%s/><source><address domain='0x%s' bus='0x%s' slot='0x%s' function='0x%s'/></source></hostdev>\n" \
        "$attrs" "${drv:+ $drv}" "$dom" "$bus" "$slot" "$fn"
}
# domain_xml NAME EMULATOR [EXTRA_DEVICE_XML...]: a small q35 guest that
# boots nothing (the devices are realized all the same)
# LAB_QEMU_ARGS: extra QEMU arguments (<qemu:commandline>)
domain_xml() {
    local name=$1 emu=$2 a qargs=; shift 2
    for a in ${LAB_QEMU_ARGS:-}; do
        qargs+="<qemu:arg value='$a'/>"
    done
    cat <<XML
<domain type='qemu' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>
  <name>$name</name>
  <memory unit='MiB'>${LAB_GUEST_MIB:-64}</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='q35'>hvm</type></os>
  <devices>
    <emulator>$emu</emulator>
    <controller type='usb' model='none'/>
    <memballoon model='none'/>
    $*
  </devices>
  ${qargs:+<qemu:commandline>$qargs</qemu:commandline>}
</domain>
XML
}
# define_start NAME EMULATOR [DEVICES...]: prints virsh's output; status as virsh's
define_start() {
    local name=$1
    domain_xml "$@" > "/tmp/$name.xml"
    virsh define "/tmp/$name.xml" >/dev/null || return 1
    virsh start "$name" 2>&1
}
# qemu_pid DOM: the pid of the domain's live QEMU; fails loudly (and prints a
# non-pid) when there is no pidfile or its process is not a QEMU
qemu_pid() {
    local pid
    pid=$(cat "/run/libvirt/qemu/$1.pid" 2>/dev/null)
    case "$(readlink "/proc/${pid:-none}/exe" 2>/dev/null)" in
        */qemu-system-*) echo "$pid" ;;
        *) log "no live QEMU for $1 (pid '${pid:-}')"; echo "no-live-qemu"; return 1 ;;
    esac
}
qemu_cmdline() { tr '\0' ' ' < "/proc/$(qemu_pid "$1")/cmdline"; }
qmp() { virsh qemu-monitor-command "$1" "$2"; }
# guest_pci DOM: "vendor:device" of every PCI device QEMU shows the guest
guest_pci() {
    qmp "$1" '{"execute":"query-pci"}' | python3 -c '
import json, sys
def walk(devs):
    for d in devs:
        print("%04x:%04x" % (d["id"]["vendor"], d["id"]["device"]))
        if "pci_bridge" in d and "devices" in d["pci_bridge"]:
            walk(d["pci_bridge"]["devices"])
for bus in json.load(sys.stdin)["return"]:
    walk(bus["devices"])'
}
# qmp_direct DOM COMMAND...: with the daemon stopped, talk to the domain's
# QMP socket as nothing but QEMU's own peer: each COMMAND is a QMP command
# in JSON, or "wait:EVENT" to wait (20 s at most) for that event; prints
# each reply, fails on an error reply, a missing socket or a missed event
qmp_direct() {
    local sock
    sock=$(ls /var/lib/libvirt/qemu/domain-*-"$1"/monitor.sock 2>/dev/null | head -1)
    [ -S "$sock" ] || fail "no QMP socket for $1"
    shift
    python3 - "$sock" "$@" <<'PY' || fail "QMP on the domain's socket: $*"
import json, socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(20)
s.connect(sys.argv[1])
f = s.makefile("rw")
events = []
def read():
    msg = json.loads(f.readline())
    if "event" in msg:
        events.append(msg["event"])
    return msg
def command(cmd):
    f.write(cmd + "\n"); f.flush()
    while True:
        msg = read()
        if "return" in msg or "error" in msg:
            return msg
read()                                  # the greeting
command('{"execute":"qmp_capabilities"}')
for arg in sys.argv[2:]:
    if arg.startswith("wait:"):
        while arg[5:] not in events:
            read()
        print("event " + arg[5:])
        continue
    reply = command(arg)
    print(json.dumps(reply))
    if "error" in reply:
        sys.exit(1)
PY
}
# hostdev_alias DOM BDF [bus]: the alias libvirt gave the domain's host
# device BDF, or with "bus" the id of the guest bus it sits on (pci.N)
hostdev_alias() {
    virsh dumpxml "$1" | python3 -c '
import sys, xml.etree.ElementTree as ET
bdf = sys.argv[1]
for h in ET.parse(sys.stdin).getroot().iter("hostdev"):
    a = h.find("source/address")
    if "%04x:%02x:%02x.%d" % tuple(int(a.get(k), 16) for k in ("domain", "bus", "slot", "function")) == bdf:
        if sys.argv[2:] == ["bus"]:
            print("pci.%d" % int(h.find("address").get("bus"), 16))
        else:
            print(h.find("alias").get("name"))
        sys.exit(0)
sys.exit(1)' "$2" ${3:-} || fail "no host device $2 in $1"
}
# qom_objects DOM: ids of the user-created objects in QEMU
qom_objects() {
    qmp "$1" '{"execute":"qom-list","arguments":{"path":"/objects"}}' |
        python3 -c 'import json, sys; print("\n".join(sorted(p["name"] for p in json.load(sys.stdin)["return"] if p["type"].startswith("child<"))))'
}
lab_cleanup_domains() {
    local d
    for d in $(virsh list --all --name 2>/dev/null); do
        virsh destroy "$d" >/dev/null 2>&1
        virsh undefine "$d" >/dev/null 2>&1
    done
}

# --- running ----------------------------------------------------------------------

scenario() {
    local name=$1 func=$2 rc start
    SCENARIO=$name
    start=$(date +%s)
    log "=== $name"
    local denied_before=0
    [ "$LAB_MODE" = packaged ] && denied_before=$(apparmor_denials)
    ( set -o pipefail; "$func" ) > "$LOGS/$func.log" 2>&1
    rc=$?
    # no AppArmor denial during a scenario that does not expect one
    if [ "$LAB_MODE" = packaged ] && [ -z "${EXPECT_DENIALS:-}" ] &&
       [ "$(apparmor_denials)" != "$denied_before" ]; then
        { echo "FAILED: AppArmor denied something during this scenario:"
          dmesg | grep 'apparmor="DENIED"' | tail -n +"$((denied_before + 1))"; } >> "$LOGS/$func.log"
        rc=1
    fi
    cp /var/log/libvirt/qemu/*.log "$LOGS/" 2>/dev/null
    lab_cleanup_domains
    lab_restore_drivers
    if [ "$rc" = 0 ]; then
        PASSED=$((PASSED + 1))
        printf 'PASS: lab: %s (%ss)\n' "$name" "$(( $(date +%s) - start ))" >> "$R/report"
    else
        FAILED=$((FAILED + 1))
        printf 'FAIL: lab: %s (%ss)\n' "$name" "$(( $(date +%s) - start ))" >> "$R/report"
        grep -E '^FAILED:' "$LOGS/$func.log" | head -3 | sed 's/^/      /' >> "$R/report"
        printf '      log: build/lab/%s/results/logs/%s.log\n' "$LAB_MODE" "$func" >> "$R/report"
    fi
}

lab_start() {
    lab_record_drivers
    mkdir -p "$LOGS"
    # packaged mode: the packages install and start their daemons (a scenario)
    [ "$LAB_MODE" = packaged ] && return 0
    "$LIBVIRT_BUILD/run" "$LIBVIRT_BUILD/src/virtlogd" > "$LOGS/virtlogd.log" 2>&1 &
    VIRTLOGD_PID=$!
    lab_start_virtqemud
}

lab_finish() {
    lab_stop_virtqemud
    if [ "$LAB_MODE" = packaged ]; then
        systemctl stop virtlogd.service virtlockd.service
    else
        kill "$VIRTLOGD_PID" 2>/dev/null
    fi
    echo "$PASSED $FAILED 0" > "$R/summary"
}
