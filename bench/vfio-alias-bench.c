/*
 * vfio-alias-bench: cost of picking a VFIO variant driver for a device.
 *
 * Runs libvirt's own code (virPCIVFIOFindBestVariant() from the build
 * tree's libvirt.so) on a real kernel's modules.alias plus extra
 * "vfio_pci:" lines, and measures in one run:
 *   - uncached: every lookup reads and parses the alias files again (what
 *     a lookup costs without the cache, and what the first lookup costs);
 *   - cached: lookups with the parsed table kept (three stat() calls and a
 *     walk over the vfio_pci: aliases).
 * The directory the code reads is switched between two identical copies
 * to defeat the cache; virPCIVFIOAliasParseCount() proves each mode did
 * what it claims.
 *
 * Usage: vfio-alias-bench MODULES_DIR_A MODULES_DIR_B
 */
#include <config.h>

#include <stdio.h>
#include <time.h>

#include "internal.h"
#include "virpci.h"

static const char *modulesDir;

/* Interposes libvirt's (G_NO_INLINE) lookup of /lib/modules/$(uname -r) */
char *
virPCIVFIOGetModulesDir(void)
{
    return g_strdup(modulesDir);
}

static const char *modaliases[] = {
    "pci:v000015B3d0000101Esv000015B3sd00000001bc02sc00i00",   /* ConnectX-7 VF */
    "pci:v000010DEd00002342sv000010DEsd000016EBbc03sc02i00",   /* GH200 GPU */
    "pci:v00001AF4d00001041sv00001AF4sd00001100bc02sc00i00",   /* virtio-net */
    "pci:v00008086d000010D3sv00008086sd0000A01Fbc02sc00i00",   /* e1000e */
    "pci:v000019E5d0000A256sv000019E5sd00000000bc12sc00i00",   /* HiSilicon SEC VF */
    "pci:v00001DD8d00001003sv00001DD8sd00005001bc01sc08i02",   /* AMD/Pensando */
    "pci:v00008086d00004941sv00008086sd00000000bc0Bsc40i00",   /* QAT 4xxx VF */
    "pci:v00001B36d00000010sv00001AF4sd00001100bc01sc08i02",   /* QEMU NVMe */
};

static double
now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* seconds per lookup */
static double
run(const char *dirA, const char *dirB, size_t n, unsigned long long *parses)
{
    unsigned long long before;
    double t0;
    size_t i;

    modulesDir = dirA;
    before = virPCIVFIOAliasParseCount();
    t0 = now();
    for (i = 0; i < n; i++) {
        g_autofree char *module = NULL;

        modulesDir = (i % 2 && dirB) ? dirB : dirA;
        if (virPCIVFIOFindBestVariant(modaliases[i % G_N_ELEMENTS(modaliases)],
                                      &module, NULL) < 0)
            abort();
    }
    t0 = now() - t0;
    modulesDir = dirA;
    *parses = virPCIVFIOAliasParseCount() - before;
    return t0 / n;
}

static int
cmp(const void *a, const void *b)
{
    double x = *(const double *) a, y = *(const double *) b;

    return x < y ? -1 : x > y;
}

int
main(int argc, char **argv)
{
    double unc[5], cac[5];
    unsigned long long pu = 0, pc = 0;
    size_t i;

    if (argc != 3) {
        fprintf(stderr, "usage: %s MODULES_DIR_A MODULES_DIR_B\n", argv[0]);
        return 2;
    }

    /* sanity: the aliases are there and a variant is picked */
    modulesDir = argv[1];
    {
        g_autofree char *module = NULL;

        if (virPCIVFIOFindBestVariant(modaliases[0], &module, NULL) != 1 ||
            STRNEQ(module, "mlx5_vfio_pci")) {
            fprintf(stderr, "no mlx5_vfio_pci variant found in %s\n", argv[1]);
            return 1;
        }
    }

    for (i = 0; i < G_N_ELEMENTS(unc); i++) {
        unsigned long long p;

        unc[i] = run(argv[1], argv[2], 40, &p);
        pu += p;
        cac[i] = run(argv[1], NULL, 20000, &p);
        pc += p;
    }
    qsort(unc, G_N_ELEMENTS(unc), sizeof(double), cmp);
    qsort(cac, G_N_ELEMENTS(cac), sizeof(double), cmp);

    printf("uncached lookup (read + parse + match): %10.1f us  (median of 5 x 40; %llu parses)\n",
           unc[2] * 1e6, pu);
    printf("cached lookup   (stat x3 + match):      %10.3f us  (median of 5 x 20000; %llu parses)\n",
           cac[2] * 1e6, pc);
    printf("ratio uncached / cached:                %10.0f x\n", unc[2] / cac[2]);
    return 0;
}
