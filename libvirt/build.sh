# Build and test hooks for libvirt (sourced by scripts/lib.sh:load_pkg).
# $1 is the source tree; the build directory is $1/build.

LIBVIRT_OPTS_FILE=$TOP/libvirt/meson-options

pkg_configure() {
    local src=$1 opts stamp
    opts=$(grep -v -e '^#' -e '^[[:space:]]*$' "$LIBVIRT_OPTS_FILE")
    # reconfigure when the options or the tools meson found would change
    stamp=$( { printf '%s\n' "$opts"; cat "$TOP/libvirt/deps"; command -v python3 flake8 pdwtags; } |
             sha256sum | cut -c1-16)
    if [ -f "$src/build/build.ninja" ] && [ "$(cat "$src/build/.lvf-options" 2>/dev/null)" = "$stamp" ]; then
        return 0     # ninja re-runs meson itself when meson.build files change
    fi
    say "configuring libvirt in $src/build"
    rm -rf "$src/build"
    # shellcheck disable=SC2086
    CC="ccache gcc" meson setup "$src/build" "$src" $opts > "$src/build.setup.log" 2>&1 ||
        { tail -40 "$src/build.setup.log" >&2; die "meson setup failed (log: $src/build.setup.log)"; }
    mv "$src/build.setup.log" "$src/build/setup.log"
    echo "$stamp" > "$src/build/.lvf-options"
}

pkg_build() {
    local src=$1
    pkg_configure "$src"
    say "building libvirt ($src)"
    ninja -C "$src/build" > "$src/build/ninja.log" 2>&1 ||
        { grep -B2 -A20 -m5 -E 'error|FAILED' "$src/build/ninja.log" >&2 || tail -40 "$src/build/ninja.log" >&2
          die "libvirt build failed (log: $src/build/ninja.log)"; }
}

# pkg_test SRC COUNTFILE: libvirt's whole test suite, syntax-check included
# (the prepared tree is a git repository, which syntax-check needs). Writes
# "passed failed skipped" to COUNTFILE.
#
# syntax-check lists the files to check with 'git ls-tree'. In libvirt's own
# repository src/keycodemapdb is a git submodule (so never listed) and there
# is no debian/ directory; in the prepared tree both are ordinary files of
# the base commit. The override below gives syntax-check upstream's view:
# every rule runs, on every file upstream would check, plus the series.
LIBVIRT_SC_EXCLUDE='^(debian|src/keycodemapdb)/|\.(po|ico|png)$$'
pkg_test() {
    local src=$1 counts=$2 rc=0
    say "running libvirt's test suite (meson test, syntax-check included)"
    MAKEFLAGS="VC_LIST_ALWAYS_EXCLUDE_REGEX=$LIBVIRT_SC_EXCLUDE" \
    meson test -C "$src/build" --no-rebuild --print-errorlogs \
        --num-processes "${LVF_TEST_JOBS:-$(nproc)}" --timeout-multiplier 4 \
        > "$src/build/test.log" 2>&1 || rc=$?
    python3 "$TOP/scripts/meson-counts" "$src/build/meson-logs/testlog.json" "$counts" libvirt ||
        { tail -40 "$src/build/test.log" >&2; die "could not read the test results"; }
    if [ "$rc" != 0 ]; then
        grep -E '^ *[0-9]+/[0-9]+ .*(FAIL|TIMEOUT|ERROR)' "$src/build/test.log" >&2 || true
        warn "full log: $src/build/test.log"
    fi
    return 0
}
