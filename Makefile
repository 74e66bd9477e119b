# libvirt-vfio: patch queues on Debian bookworm's libvirt (and qemu), their
# build, tests and lab. See README.md.
#
#   make check          everything: set-up, fetch, tree, build, all tests
#   make tree [PKG=..] [FORCE=1]   prepare build/PKG (base + series); all
#                                  packages unless PKG is given
#   make export [PKG=..]           write build/PKG's commits to PKG/patches
#   make check-series [PKG=..]     build and test at every patch
#   make build [PKG=..]            build build/PKG incrementally
#   make setup                     host set-up only (deb-src, build deps)
#   make demo                      the main job (see README.md)
#   make bench                     benchmarks (ratios against a same-run baseline)
#   make lab [TOPOLOGY=f] [SCENARIOS=f] [LAB_MODE=tree|packaged]
#                                  real-kernel VFIO scenarios in a TCG guest
#                                  (both modes unless LAB_MODE is given)
#   make deb [PKG=..]              Debian packages of the series in build/deb/
#   make fuzz [FUZZ_SECONDS=N]     the libFuzzer target (fuzz/), N s (default 60)

PKGS ?= $(notdir $(wildcard pins/*))
# PKG=.. on the command line picks one package; otherwise every pinned one
SEL = $(if $(filter command line,$(origin PKG)),$(PKG),$(PKGS))

.PHONY: all check tree export check-series build setup demo bench lab deb fuzz
all: check

check:
	scripts/check $(PKGS)

setup:
	scripts/setup-host $(PKGS)

tree:
	scripts/setup-host $(SEL)
	set -e; for p in $(SEL); do scripts/tree $$p $(if $(FORCE),--force); done

export:
	set -e; for p in $(SEL); do scripts/export $$p; done

check-series:
	scripts/check-series $(SEL)

build:
	scripts/setup-host $(SEL)
	set -e; for p in $(SEL); do scripts/build $$p; done

demo:
	scripts/demo

bench:
	scripts/bench

LAB_MODE ?= both
lab:
	LAB_MODE=$(LAB_MODE) scripts/lab "$(TOPOLOGY)" "$(SCENARIOS)"

deb:
	scripts/setup-host $(SEL)
	scripts/deb $(SEL)

FUZZ_SECONDS ?= 60
fuzz:
	scripts/fuzz $(FUZZ_SECONDS)
