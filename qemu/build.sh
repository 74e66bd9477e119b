# Build and test hooks for QEMU (sourced by scripts/lib.sh:load_pkg).
# $1 is the source tree; the build directory is $1/build.
#
# A lean qemu-system-x86_64: KVM and TCG, q35, vfio-pci; no UI, no audio, no
# network backends beyond the built-in ones. Firmware comes from Debian's
# packages (the dfsg source ships none): seabios, ipxe-qemu, qemu-system-data.

QEMU_FIRMWARE_PATH=/usr/share/qemu:/usr/share/seabios:/usr/lib/ipxe/qemu
QEMU_CONFIGURE_OPTS=(
    --target-list=x86_64-softmmu
    --without-default-features
    --enable-kvm --enable-tcg
    --enable-fdt=system
    --disable-docs
    --with-git-submodules=ignore
    --firmwarepath=$QEMU_FIRMWARE_PATH
    --cc=gcc --extra-cflags=-Wno-error
    "--meson=meson"
)

pkg_configure() {
    local src=$1 stamp
    stamp=$( { printf '%s\n' "${QEMU_CONFIGURE_OPTS[@]}"; cat "$TOP/qemu/deps"; } | sha256sum | cut -c1-16)
    if [ -f "$src/build/build.ninja" ] && [ "$(cat "$src/build/.lvf-options" 2>/dev/null)" = "$stamp" ]; then
        return 0     # ninja re-runs meson itself when meson.build files change
    fi
    say "configuring QEMU in $src/build"
    rm -rf "$src/build"
    mkdir -p "$src/build"
    ( cd "$src/build" &&
      CC="ccache gcc" ../configure "${QEMU_CONFIGURE_OPTS[@]}" > configure.log 2>&1 ) ||
        { tail -40 "$src/build/configure.log" >&2; die "QEMU configure failed (log: $src/build/configure.log)"; }
    echo "$stamp" > "$src/build/.lvf-options"
}

# The emulator and the qtests of the series (tests/qtest/vfio-*-test).
QEMU_TARGETS=(qemu-system-x86_64)
pkg_build() {
    local src=$1 t
    pkg_configure "$src"
    say "building qemu-system-x86_64 ($src)"
    # build the qtests the series adds too
    for t in "$src"/tests/qtest/vfio-*-test.c; do
        [ -f "$t" ] && QEMU_TARGETS+=("tests/qtest/$(basename "$t" .c)")
    done
    ninja -C "$src/build" "${QEMU_TARGETS[@]}" > "$src/build/ninja.log" 2>&1 ||
        { grep -B2 -A20 -m5 -E 'error|FAILED' "$src/build/ninja.log" >&2 || tail -40 "$src/build/ninja.log" >&2
          die "QEMU build failed (log: $src/build/ninja.log)"; }
    # Run from the build tree, QEMU looks for its firmware under
    # build/qemu-bundle/<firmware path>: point that at Debian's packages.
    local d IFS=:
    for d in $QEMU_FIRMWARE_PATH; do
        [ -e "$src/build/qemu-bundle$d" ] && continue
        mkdir -p "$(dirname "$src/build/qemu-bundle$d")"
        ln -s "$d" "$src/build/qemu-bundle$d"
    done
}

# pkg_test SRC COUNTFILE: the series' qtests (tests/qtest/vfio-*-test.c,
# through meson), then the project's command-line checks of the binary
# (qemu/tests/run). Writes "passed failed skipped" to COUNTFILE.
pkg_test() {
    local src=$1 counts=$2 rc=0 qtests=() t P=0 F=0 S=0 p f s
    say "running the series' qtests and qemu/tests"
    for t in "$src"/tests/qtest/vfio-*-test.c; do
        [ -f "$t" ] && qtests+=("qtest-x86_64/$(basename "$t" .c)")
    done
    if [ ${#qtests[@]} -gt 0 ]; then
        rm -f "$src/build/meson-logs/testlog.json"
        meson test -C "$src/build" --no-rebuild --print-errorlogs \
            --num-processes "${LVF_TEST_JOBS:-$(nproc)}" "${qtests[@]}" \
            > "$src/build/test.log" 2>&1 || rc=$?
        if [ -f "$src/build/meson-logs/testlog.json" ]; then
            python3 "$TOP/scripts/meson-counts" "$src/build/meson-logs/testlog.json" \
                "$counts.meson" qemu || die "could not read the test results"
            read -r P F S < "$counts.meson"
        else
            tail -20 "$src/build/test.log" >&2
            F=1
        fi
        [ "$rc" = 0 ] || warn "qtest log: $src/build/test.log"
    fi
    QEMU_BIN=$src/build/qemu-system-x86_64 QEMU_SRC=$src "$TOP/qemu/tests/run" "$counts.own" ||
        echo "0 1 0" > "$counts.own"
    read -r p f s < "$counts.own"
    echo "$((P + p)) $((F + f)) $((S + s))" > "$counts"
    rm -f "$counts.meson" "$counts.own"
}
