#!/usr/bin/env bash
# The patch-queue workflow (fetch, tree, export) on a tiny Debian source package
# made here, so it runs in seconds and proves the tooling is generic over the
# package. What a developer relies on: the tree is base + one commit per patch,
# export of an unchanged tree changes nothing, unexported work is never
# overwritten, a bad pin fails with a clear message.
set -uo pipefail
REPO=$(cd "$(dirname "$0")/../.." && pwd)
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
n=0
ok() { n=$((n + 1)); echo "ok $n - $*"; }
nok() { n=$((n + 1)); echo "not ok $n - $*"; }
check() { local d=$1; shift; if "$@" >/dev/null; then ok "$d"; else nok "$d"; fi; }

# A copy of the tooling with a fake package 'hello'
T=$W/top
mkdir -p "$T/pins" "$T/hello/patches"
cp -r "$REPO/scripts" "$T/"
: > "$T/hello/patches/series"
export LVF_CACHE=$W/cache
export GIT_CONFIG_GLOBAL=$W/gitconfig
git config --global user.name dev && git config --global user.email dev@example.invalid

# Build the source package hello_1.0-1 (3.0 quilt, with one Debian patch)
S=$W/pkgsrc/hello-1.0
mkdir -p "$S/debian/source" "$S/debian/patches"
printf 'int main(void) { return 0; }\n' > "$S/hello.c"
printf 'line one\n' > "$S/README"
( cd "$W/pkgsrc" && tar -cJf hello_1.0.orig.tar.xz hello-1.0/hello.c hello-1.0/README )
echo '3.0 (quilt)' > "$S/debian/source/format"
cat > "$S/debian/control" <<'CTL'
Source: hello
Maintainer: Nobody <nobody@example.invalid>
Standards-Version: 4.6.2

Package: hello
Architecture: any
Description: test
 test
CTL
cat > "$S/debian/changelog" <<'CL'
hello (1.0-1) bookworm; urgency=low

  * test

 -- Nobody <nobody@example.invalid>  Sat, 01 Jan 2000 00:00:00 +0000
CL
cat > "$S/debian/patches/debian-readme.patch" <<'DP'
--- a/README
+++ b/README
@@ -1 +1,2 @@
 line one
+line from debian
DP
echo debian-readme.patch > "$S/debian/patches/series"
( cd "$W/pkgsrc" && dpkg-source -q -b hello-1.0 >/dev/null 2>&1 )
mkdir -p "$LVF_CACHE/dl/hello"
cp "$W/pkgsrc"/hello_1.0* "$LVF_CACHE/dl/hello/"
sum=$(sha256sum "$W/pkgsrc/hello_1.0-1.dsc" | cut -d' ' -f1)
printf 'name=hello\nversion=1.0-1\ndsc_sha256=%s\n' "$sum" > "$T/pins/hello"

TR=$T/build/hello
tg() { git -C "$TR" "$@"; }

# 1. fetch: a cached, verified download is not fetched again
check "fetch reuses a verified download without apt" "$T/scripts/fetch" hello

# 2. tree with an empty series: base = Debian source with Debian's patches applied
"$T/scripts/tree" hello >/dev/null 2>&1
check "tree: base tag exists" tg rev-parse -q --verify --quiet base
check "tree: Debian's own patches are applied in base" grep -q 'line from debian' "$TR/README"
check "tree: no quilt .pc directory committed" test ! -e "$TR/.pc"
check "tree: empty series gives no commits on base" test "$(tg rev-list --count base..HEAD)" = 0

# 3. export with an empty series writes an empty series file
"$T/scripts/export" hello >/dev/null 2>&1
check "export: empty series" test ! -s "$T/hello/patches/series"

# 4. two commits, export, files and series
printf 'int main(void) { return 1; }\n' > "$TR/hello.c"
tg commit -q -am "hello: return 1" -m "Because tests need a failure."
printf 'more\n' >> "$TR/README"
tg commit -q -am "README: more"
"$T/scripts/export" hello >/dev/null 2>&1
check "export: two patch files" test "$(ls "$T/hello/patches"/*.patch | wc -l)" = 2
check "export: series lists them in order" test "$(sed -n 1p "$T/hello/patches/series")" = 0001-hello-return-1.patch
check "export: no commit hash in the files" bash -c "! grep -v '^From 0\{40\} ' '$T/hello/patches'/*.patch | grep -q '^From [0-9a-f]\{40\} '"

# 5. export of an unchanged tree changes no file (content or mtime)
before=$(cd "$T/hello/patches" && stat -c '%n %Y %s' * && cat * | sha256sum)
sleep 1
"$T/scripts/export" hello >/dev/null 2>&1
after=$(cd "$T/hello/patches" && stat -c '%n %Y %s' * && cat * | sha256sum)
check "export: unchanged tree changes nothing" test "$before" = "$after"

# 6. recreating the tree from the patches gives the same series, and exporting it is a no-op
rm -rf "$TR"
"$T/scripts/tree" hello >/dev/null 2>&1
check "tree: one commit per patch" test "$(tg rev-list --count base..HEAD)" = 2
check "tree: commit message body kept" bash -c "git -C '$TR' log -1 --format=%b HEAD~1 | grep -q 'Because tests need'"
"$T/scripts/export" hello >/dev/null 2>&1
after2=$(cd "$T/hello/patches" && stat -c '%n %Y %s' * && cat * | sha256sum)
check "export: a re-made tree exports byte-identical files" test "$before" = "$after2"

# 7. unexported work is never overwritten
printf 'x\n' >> "$TR/README"; tg commit -q -am "unexported"
if "$T/scripts/tree" hello > "$W/out" 2>&1; then nok "tree refuses to overwrite unexported commits"
else check "tree refuses to overwrite unexported commits (clear message)" grep -q 'not exported' "$W/out"; fi
check "tree: the unexported commit is still there" test "$(tg log -1 --format=%s)" = unexported
printf 'dirty\n' >> "$TR/hello.c"
if "$T/scripts/tree" hello >/dev/null 2>&1; then nok "tree refuses to overwrite uncommitted edits"; else ok "tree refuses to overwrite uncommitted edits"; fi
if "$T/scripts/export" hello > "$W/out" 2>&1; then nok "export refuses a dirty tree"; else ok "export refuses a dirty tree"; fi
"$T/scripts/tree" hello --force >/dev/null 2>&1
check "tree --force discards unexported work" test "$(tg rev-list --count base..HEAD)" = 2

# 8. a patch removed from the tree is removed from patches/ by export
tg reset -q --hard HEAD~1
"$T/scripts/export" hello >/dev/null 2>&1
check "export: dropped commit removes its patch file" test "$(ls "$T/hello/patches"/*.patch | wc -l)" = 1

# 9. a series that does not apply fails clearly
printf 'garbage\n' > "$T/hello/patches/0002-bad.patch"; echo 0002-bad.patch >> "$T/hello/patches/series"
if "$T/scripts/tree" hello --force > "$W/out" 2>&1; then nok "broken patch is reported"
else check "broken patch is reported by name" grep -q '0002-bad.patch' "$W/out"; fi

# 10. a wrong checksum pin is refused
sed -i 's/dsc_sha256=./dsc_sha256=0/' "$T/pins/hello"
rm -rf "$LVF_CACHE/dl/hello"/*.dsc
if "$T/scripts/fetch" hello > "$W/out" 2>&1; then nok "fetch refuses a pin it cannot verify"; else ok "fetch refuses a pin it cannot verify"; fi

# 11. a pinned version that the archive no longer has: clear error (needs apt's source lists)
if apt-cache showsrc libvirt 2>/dev/null | grep -c "^Version:" >/dev/null; then
    printf 'name=libvirt\nversion=0.0.1-1\ndsc_sha256=%064d\n' 0 > "$T/pins/libvirt"
    if "$T/scripts/fetch" libvirt > "$W/out" 2>&1; then nok "missing pinned version is reported"
    else check "missing pinned version is reported clearly" grep -q 'no longer in the archive' "$W/out"; fi
else
    echo "skip - apt has no deb-src lists (run scripts/setup-host)"
fi
