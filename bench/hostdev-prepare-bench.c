/*
 * hostdev-prepare-bench.c: the cost of preparing PCI host devices for a
 * guest's start and for hot-plug (virHostdevPreparePCIDevices), on the PCI
 * mock, for the series and for Debian's unpatched libvirt 9.0.0 alike.
 *
 *   hostdev-prepare-bench start|hotplug N GROUPSIZE
 *
 * N VFs (managed='yes'), GROUPSIZE of them per IOMMU group. 'start' prepares
 * all of them in one call, as a guest's start does; 'hotplug' prepares them
 * one call each, as N hot-plugs do. With groups of more than one device the
 * VFs are first bound to vfio-pci through sysfs, as an administrator would
 * ('virsh nodedev-detach'): hot-plugging one device of a group whose other
 * devices stay on a host driver is refused by the series (and fails in QEMU
 * without it).
 *
 * Run under 'valgrind --tool=callgrind --toggle-collect=benchPrepare': only
 * the preparation is counted, not the mock's set-up. Exits non-zero (and
 * says why) unless every device ends active, on vfio-pci.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#include <config.h>

#include <dlfcn.h>

#include "internal.h"
#include "virhostdev.h"
#include "virpci.h"
#include "virfile.h"
#include "virstring.h"
#include "virerror.h"
#include "domain_conf.h"
#define LIBVIRT_VIRCOMMANDPRIV_H_ALLOW
#include "vircommandpriv.h"

static const unsigned char uuid[VIR_UUID_BUFLEN] = "bench-prepare-00";

static int __attribute__((noinline))
benchPrepare(virHostdevManager *mgr,
             virDomainHostdevDef **hostdevs,
             int nhostdevs)
{
    return virHostdevPreparePCIDevices(mgr, "QEMU", "bench", uuid,
                                       hostdevs, nhostdevs, 0);
}

static int
bindToVFIO(const char *addr)
{
    g_autofree char *override = g_strdup_printf("/sys/bus/pci/devices/%s/driver_override", addr);
    g_autofree char *unbind = g_strdup_printf("/sys/bus/pci/devices/%s/driver/unbind", addr);

    if (virFileWriteStr(override, "vfio-pci", 0) < 0 ||
        virFileWriteStr(unbind, addr, 0) < 0 ||
        virFileWriteStr("/sys/bus/pci/drivers_probe", addr, 0) < 0)
        return -1;
    return 0;
}

int
main(int argc, char **argv)
{
    void (*addDevices)(unsigned int, unsigned int);
    g_autoptr(virCommandDryRunToken) dryRun = NULL;
    g_autofree char *root = g_strdup("/tmp/lvf-bench-XXXXXX");
    g_autofree virDomainHostdevDef **hostdevs = NULL;
    virHostdevManager *mgr;
    unsigned int n, groupSize, i;
    bool hotplug;

    if (argc != 4 ||
        (STRNEQ(argv[1], "start") && STRNEQ(argv[1], "hotplug")) ||
        virStrToLong_ui(argv[2], NULL, 10, &n) < 0 || n == 0 || n > 2048 ||
        virStrToLong_ui(argv[3], NULL, 10, &groupSize) < 0 || groupSize == 0) {
        fprintf(stderr, "usage: %s start|hotplug N GROUPSIZE\n", argv[0]);
        return 2;
    }
    hotplug = STREQ(argv[1], "hotplug");

    if (virErrorInitialize() < 0) {
        fprintf(stderr, "cannot initialise libvirt's errors\n");
        return 1;
    }

    if (!g_mkdtemp(root)) {
        fprintf(stderr, "cannot create %s\n", root);
        return 1;
    }
    g_setenv("LIBVIRT_FAKE_ROOT_DIR", root, TRUE);
    if (!(addDevices = dlsym(RTLD_DEFAULT, "lvfBenchAddDevices"))) {
        fprintf(stderr, "the benchmark's PCI mock is not preloaded\n");
        return 1;
    }
    addDevices(n, groupSize);
    /* modprobe and friends are not run */
    dryRun = virCommandDryRunTokenNew();

    mgr = g_new0(virHostdevManager, 1);
    mgr->activePCIHostdevs = virPCIDeviceListNew();
    mgr->inactivePCIHostdevs = virPCIDeviceListNew();
    mgr->activeUSBHostdevs = virUSBDeviceListNew();
    mgr->activeSCSIHostdevs = virSCSIDeviceListNew();
    mgr->activeNVMeHostdevs = virNVMeDeviceListNew();
    mgr->stateDir = g_strdup_printf("%s/hostdevmgr", root);
    if (g_mkdir_with_parents(mgr->stateDir, 0777) < 0)
        return 1;

    hostdevs = g_new0(virDomainHostdevDef *, n);
    for (i = 0; i < n; i++) {
        virDomainHostdevDef *def = virDomainHostdevDefNew();
        virPCIDeviceAddress *addr = &def->source.subsys.u.pci.addr;

        def->mode = VIR_DOMAIN_HOSTDEV_MODE_SUBSYS;
        def->source.subsys.type = VIR_DOMAIN_HOSTDEV_SUBSYS_TYPE_PCI;
#ifdef BENCH_PCI_DRIVER_INFO
        def->source.subsys.u.pci.driver.name = VIR_DEVICE_HOSTDEV_PCI_DRIVER_NAME_VFIO;
#else
        def->source.subsys.u.pci.backend = VIR_DOMAIN_HOSTDEV_PCI_BACKEND_VFIO;
#endif
        def->managed = true;
        addr->domain = 3;
        addr->bus = 0x10 + i / 256;
        addr->slot = (i / 8) % 32;
        addr->function = i % 8;
        hostdevs[i] = def;

        if (hotplug && groupSize > 1) {
            g_autofree char *id = virPCIDeviceAddressAsString(addr);
            if (bindToVFIO(id) < 0) {
                fprintf(stderr, "cannot bind %s to vfio-pci: %s\n", id,
                        virGetLastErrorMessage());
                return 1;
            }
        }
    }

    if (hotplug) {
        for (i = 0; i < n; i++) {
            if (benchPrepare(mgr, &hostdevs[i], 1) < 0) {
                fprintf(stderr, "hot-plug of device %u failed: %s\n", i,
                        virGetLastErrorMessage());
                return 1;
            }
        }
    } else if (benchPrepare(mgr, hostdevs, n) < 0) {
        fprintf(stderr, "start failed: %s\n", virGetLastErrorMessage());
        return 1;
    }

    /* What a user would check: every device in use, on vfio-pci. */
    if (virPCIDeviceListCount(mgr->activePCIHostdevs) != n) {
        fprintf(stderr, "%zu of %u devices active\n",
                virPCIDeviceListCount(mgr->activePCIHostdevs), n);
        return 1;
    }
    for (i = 0; i < n; i++) {
        g_autofree char *id = virPCIDeviceAddressAsString(&hostdevs[i]->source.subsys.u.pci.addr);
        g_autofree char *link = g_strdup_printf("/sys/bus/pci/devices/%s/driver", id);
        g_autofree char *target = NULL;
        g_autofree char *driver = NULL;

        if (virFileResolveLink(link, &target) == 0)
            driver = g_path_get_basename(target);
        if (!driver || STRNEQ(driver, "vfio-pci")) {
            fprintf(stderr, "%s is not on vfio-pci (%s)\n", id,
                    NULLSTR(target));
            return 1;
        }
    }
    virFileDeleteTree(root);
    return 0;
}
