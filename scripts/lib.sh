# Common helpers for the libvirt-vfio tooling. Sourced, never run.
#
# Every package the project patches (libvirt, later qemu) has:
#   pins/PKG            name, version and .dsc checksum of the Debian source package
#   PKG/patches/        the series: git format-patch files plus a 'series' file
#   PKG/deps            Debian build dependencies, one per line (lean, not build-dep)
#   PKG/build.sh        pkg_configure / pkg_build / pkg_test for that package
# and these places under the work tree:
#   build/PKG           the prepared tree (git; tag 'base' = unpacked Debian source)
#   build/PKG/build     its build directory (excluded from git)
#   build/.series/PKG   the worktree used by check-series
# Downloads and ccache live in $LVF_CACHE so a fresh clone on the same machine
# re-downloads and recompiles nothing.

set -euo pipefail

# Build with Debian's own tools (python3, flake8...), not a user's pyenv or venv.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin:$PATH

TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LVF_CACHE=${LVF_CACHE:-${XDG_CACHE_HOME:-${HOME:-/root}/.cache}/libvirt-vfio}
BUILD=${LVF_BUILD:-$TOP/build}

export CCACHE_DIR=${CCACHE_DIR:-$LVF_CACHE/ccache}
# Trees live at different paths (build/PKG, build/.series/PKG): make cache hits
# independent of the absolute path.
export CCACHE_BASEDIR=${CCACHE_BASEDIR:-$TOP/build}
export CCACHE_NOHASHDIR=1
export CCACHE_MAXSIZE=${CCACHE_MAXSIZE:-8G}

# Identity used for the commits the tooling makes itself (base, git am).
TREE_GIT_NAME="libvirt-vfio tree"
TREE_GIT_EMAIL="tree@libvirt-vfio.invalid"
BASE_DATE="2000-01-01T00:00:00Z"

say() { printf '==> %s\n' "$*" >&2; }
warn() { printf '!!  %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# load_pkg PKG: read pins/PKG and PKG/build.sh
load_pkg() {
    PKG=${1:?package name}
    [ -f "$TOP/pins/$PKG" ] || die "unknown package '$PKG' (no pins/$PKG)"
    PIN_NAME= PIN_VERSION= PIN_DSC_SHA256=
    local key val
    while IFS='=' read -r key val; do
        case "$key" in
            name) PIN_NAME=$val ;;
            version) PIN_VERSION=$val ;;
            dsc_sha256) PIN_DSC_SHA256=$val ;;
        esac
    done < <(grep -v '^[[:space:]]*#' "$TOP/pins/$PKG")
    [ -n "$PIN_NAME" ] && [ -n "$PIN_VERSION" ] && [ -n "$PIN_DSC_SHA256" ] ||
        die "pins/$PKG must set name, version and dsc_sha256"
    PATCHDIR=$TOP/$PKG/patches
    TREE=$BUILD/$PKG
    DL=$LVF_CACHE/dl/$PKG
    # upstream version without epoch and Debian revision: 1:7.2+dfsg-7 -> 7.2+dfsg
    local v=${PIN_VERSION#*:}
    DSC=$DL/${PIN_NAME}_${v}.dsc
    pkg_configure() { die "$PKG/build.sh defines no pkg_configure"; }
    pkg_build() { die "$PKG/build.sh defines no pkg_build"; }
    pkg_test() { die "$PKG/build.sh defines no pkg_test"; }
    # shellcheck source=/dev/null
    [ -f "$TOP/$PKG/build.sh" ] && . "$TOP/$PKG/build.sh"
    return 0
}

series_list() {
    [ -f "$PATCHDIR/series" ] || return 0
    grep -v -e '^[[:space:]]*#' -e '^[[:space:]]*$' "$PATCHDIR/series" || true
}

tgit() { git -C "${GIT_TREE:-$TREE}" "$@"; }

# Patch ids of the series in the repository / of the tree's commits since base.
repo_patch_ids() {
    local p
    series_list | while read -r p; do
        git patch-id --stable < "$PATCHDIR/$p" | awk '{print $1}'
    done
}
tree_patch_ids() {
    local c
    for c in $(tgit rev-list --reverse base..HEAD); do
        tgit format-patch --stdout -1 "$c" | git patch-id --stable | awk '{print $1}'
    done
}

tree_exists() { [ -d "$TREE/.git" ] && tgit rev-parse -q --verify base >/dev/null 2>&1; }
tree_dirty() { [ -n "$(tgit status --porcelain --untracked-files=no)" ]; }
# True when the tree holds commits or edits that are not in PKG/patches.
tree_has_unexported() {
    tree_dirty && return 0
    local repo tree
    repo=$(repo_patch_ids | sort)
    tree=$(tree_patch_ids | sort)
    [ -n "$(comm -13 <(echo "$repo") <(echo "$tree") | grep .)" ]
}
# True when the tree's commits are exactly the series, in order.
tree_in_sync() {
    ! tree_dirty && [ "$(repo_patch_ids)" = "$(tree_patch_ids)" ]
}

# Passing results are remembered per (git tree hash, config hash): a tree that
# passed once with the same build files, compiler and build dependencies need
# not be proven again. The proofs live in $LVF_CACHE beside ccache, so a fresh
# clone on the same machine (CI's case) re-proves only the patches that
# changed; with a cold cache every patch is built and tested.
stamp_dir() { echo "$LVF_CACHE/proofs/$PKG"; }
config_hash() {
    # what decides how a tree is built and tested (not demo, bench...)
    ( cd "$TOP" && { find "$PKG" -path "$PKG/patches" -prune -o -type f -print
                     ls scripts/lib.sh scripts/deps scripts/meson-counts scripts/setup-host; } |
          LC_ALL=C sort | xargs cat
      gcc --version | head -1
      # the installed versions of the package's build dependencies
      grep -hv -e '^#' -e '^[[:space:]]*$' "$TOP/$PKG/deps" "$TOP/scripts/deps" 2>/dev/null |
          LC_ALL=C sort -u | xargs dpkg-query -W -f '${Package} ${Version}\n' 2>&1
    ) | sha256sum | cut -c1-16
}
# stamp_write FILE COUNTS: remember a passing tree (what passed, when, where)
stamp_write() {
    mkdir -p "$(dirname "$1")"
    printf '%s passed, %s failed, %s skipped; %s; %s\n' $(cat "$2") \
        "$(date -u +%FT%TZ)" "$TOP" > "$1"
}
