# libvirt-vfio: patch queues on Debian bookworm's libvirt (and qemu), their
# build, tests and lab. See README.md.
#
#   make check          everything: set-up, fetch, tree, build, all tests
#   make tree [PKG=..] [FORCE=1]   prepare build/PKG (base + series)
#   make export [PKG=..]           write build/PKG's commits to PKG/patches
#   make check-series [PKG=..]     build and test at every patch
#   make build [PKG=..]            build build/PKG incrementally
#   make setup                     host set-up only (deb-src, build deps)
#   make demo                      the main job (see README.md)
#   make bench                     benchmarks (ratios against a same-run baseline)

PKG ?= libvirt
PKGS ?= $(notdir $(wildcard pins/*))

.PHONY: all check tree export check-series build setup demo bench
all: check

check:
	scripts/check $(PKGS)

setup:
	scripts/setup-host $(PKGS)

tree:
	scripts/setup-host $(PKG)
	scripts/tree $(PKG) $(if $(FORCE),--force)

export:
	scripts/export $(PKG)

check-series:
	scripts/check-series $(if $(filter command line,$(origin PKG)),$(PKG),$(PKGS))

build:
	scripts/setup-host $(PKG)
	scripts/build $(PKG)

demo:
	scripts/demo

bench:
	scripts/bench
