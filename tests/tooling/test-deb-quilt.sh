#!/usr/bin/env bash
# scripts/deb-quilt: the series goes into a Debian source package's
# debian/patches as quilt patches that dpkg-source can apply (git's binary
# hunks moved to debian/source/include-binaries), applied, and marked
# applied; a source package built from the result carries everything.
# The unpacked tree sits inside a git repository on purpose (as build/ does):
# git apply must not take it for a subdirectory of that repository.
set -uo pipefail
REPO=$(cd "$(dirname "$0")/../.." && pwd)
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
n=0
ok() { n=$((n + 1)); echo "ok $n - $*"; }
nok() { n=$((n + 1)); echo "not ok $n - $*"; }
check() { local d=$1; shift; if "$@" >/dev/null 2>&1; then ok "$d"; else nok "$d"; fi; }
export GIT_CONFIG_GLOBAL=$W/gitconfig
git config --global user.name dev && git config --global user.email dev@example.invalid

# an enclosing repository, like the project's own
git init -q "$W/outer"
P=$W/outer/pkg

# source package hello_1.0-1, 3.0 (quilt), one Debian patch
S=$W/src/hello-1.0
mkdir -p "$S/debian/source" "$S/debian/patches"
printf 'line one\n' > "$S/README"
( cd "$W/src" && tar -cJf hello_1.0.orig.tar.xz hello-1.0/README )
echo '3.0 (quilt)' > "$S/debian/source/format"
printf 'Source: hello\nMaintainer: Nobody <nobody@example.invalid>\n\nPackage: hello\nArchitecture: all\nDescription: test\n test\n' > "$S/debian/control"
printf 'hello (1.0-1) bookworm; urgency=low\n\n  * test\n\n -- Nobody <nobody@example.invalid>  Sat, 01 Jan 2000 00:00:00 +0000\n' > "$S/debian/changelog"
printf -- '--- a/README\n+++ b/README\n@@ -1 +1,2 @@\n line one\n+line from debian\n' > "$S/debian/patches/debian-readme.patch"
echo debian-readme.patch > "$S/debian/patches/series"
( cd "$W/src" && dpkg-source -q -b hello-1.0 >/dev/null 2>&1 )
dpkg-source -q -x "$W/src/hello_1.0-1.dsc" "$P" >/dev/null 2>&1

# the series: a text change and a new binary file, as git format-patch writes it
G=$W/g
git init -q "$G" && cp "$P/README" "$G/" && git -C "$G" add README && git -C "$G" commit -qm base
printf 'line from the series\n' >> "$G/README"
mkdir -p "$G/data" && printf '\000\001\002binary\377' > "$G/data/blob.bin"
git -C "$G" add -A && git -C "$G" commit -qm "add a line and a binary file"
mkdir -p "$W/patches"
git -C "$G" format-patch -q --binary -o "$W/patches" HEAD~1
name=$(ls "$W/patches")

if "$REPO/scripts/deb-quilt" "$P" "$W/patches" "$name" > "$W/out" 2>&1; then ok "deb-quilt runs"
else nok "deb-quilt runs"; sed 's/^/# /' "$W/out"; fi
check "the text change is applied" grep -qx 'line from the series' "$P/README"
check "the binary file is created, byte for byte" cmp "$G/data/blob.bin" "$P/data/blob.bin"
check "the patch is listed last in debian/patches/series" test "$(tail -1 "$P/debian/patches/series")" = "libvirt-vfio/$name"
check "the recorded patch has no binary hunk" bash -c "! grep -q 'GIT binary patch' '$P/debian/patches/libvirt-vfio/$name'"
check "the binary file is in include-binaries" grep -qx data/blob.bin "$P/debian/source/include-binaries"
check "quilt's .pc marks the patch applied" grep -qx "libvirt-vfio/$name" "$P/.pc/applied-patches"
check "dpkg-source --before-build accepts the tree" bash -c "cd '$P' && dpkg-source --before-build . "
check "nothing was written to the enclosing repository" test -z "$(git -C "$W/outer" status --porcelain --untracked-files=no)"

# a source package built from it, unpacked again, has the whole series
( cd "$W/outer" && dpkg-source -q -b pkg >/dev/null 2>"$W/build.err" ) ||
    sed 's/^/# /' "$W/build.err"
dsc=$(ls "$W/outer"/*.dsc 2>/dev/null | head -1)
check "dpkg-source -b builds a source package" test -n "$dsc"
if [ -n "$dsc" ]; then
    dpkg-source -q -x "$dsc" "$W/again" >/dev/null 2>&1
    check "unpacked again: the text change" grep -qx 'line from the series' "$W/again/README"
    check "unpacked again: the binary file" cmp "$G/data/blob.bin" "$W/again/data/blob.bin"
fi

# a patch that does not apply is an error, not a silent skip
printf 'From 0000000000000000000000000000000000000000 Mon Sep 17 00:00:00 2001\nSubject: bad\n\n---\ndiff --git a/README b/README\n--- a/README\n+++ b/README\n@@ -1 +1,2 @@\n no such line\n+x\n' > "$W/patches/0002-bad.patch"
if "$REPO/scripts/deb-quilt" "$P" "$W/patches" 0002-bad.patch > "$W/out" 2>&1; then nok "a patch that does not apply fails"
else ok "a patch that does not apply fails"; fi
