/*
 * hostdev-prepare-mock.c: the prepared tree's own PCI mock
 * (tests/virpcimock.c, included whole so its static helpers are reachable),
 * plus one entry point the benchmark calls to add its devices.
 *
 * Compiled against each tree the benchmark measures (the series and Debian's
 * unpatched 9.0.0), with that tree's own compile flags: both use only what
 * both mocks have (pci_device_new_from_stub, pci_address_parse, the iwlwifi
 * driver for 8086:0044, physfn links).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#include "virpcimock.c"

void lvfBenchAddDevices(unsigned int n, unsigned int groupSize);

/* A PF (0003:0f:00.0, alone in group 999) and @n of its VFs on
 * 0003:10..:SS.F, @groupSize VFs per IOMMU group (groups 1000...), all
 * bound to iwlwifi (8086:0044) like the mock's own first devices. */
void
lvfBenchAddDevices(unsigned int n, unsigned int groupSize)
{
    g_autofree char *config = NULL;
    ssize_t configLen;
    unsigned int i;

    init_syms();
    if (!fakerootdir)
        init_env();

    /* the PCI config space of an endpoint (8086:0044, header type 0), the
     * mock's own test data: without one the mock writes a dummy */
    if ((configLen = virFileReadAll(abs_srcdir "/virpcitestdata/0000-00-01.0.config",
                                    4096, &config)) < 0)
        ABORT("Unable to read the mock's config space data");

    {
        struct pciDevice pf = { .vendor = 0x8086, .device = 0x0044,
                                .iommuGroup = 999 };
        if (pci_address_parse(&pf.addr, "0003:0f:00.0") < 0)
            ABORT("Unable to parse the PF's address");
        pci_device_new_from_stub(&pf);
    }

    for (i = 0; i < n; i++) {
        g_autofree char *id = g_strdup_printf("0003:%02x:%02x.%u",
                                              0x10 + i / 256, (i / 8) % 32, i % 8);
        struct pciDevice vf = { .vendor = 0x8086, .device = 0x0044,
                                .iommuGroup = 1000 + i / groupSize,
                                .physfn = "0003:0f:00.0" };

        if (pci_address_parse(&vf.addr, id) < 0)
            ABORT("Unable to parse PCI address %s", id);
        pci_device_new_from_stub(&vf);
        {
            g_autofree char *devpath = pci_device_get_path(&vf, NULL, true);
            make_file(devpath, "config", config, configLen);
        }
    }
}
