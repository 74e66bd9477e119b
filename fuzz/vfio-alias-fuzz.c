/*
 * vfio-alias-fuzz: libFuzzer target for libvirt's reading of the kernel's
 * module alias files and its choice of a VFIO variant driver.
 *
 * Code under test: src/util/virpci.c of the prepared libvirt tree, compiled
 * with the fuzzer's coverage, ASan and UBSan (scripts/fuzz); everything it
 * calls comes from the tree's libvirt.so. Each input is split at the first
 * two 0x01 bytes into
 *   - the contents of modules.alias,
 *   - the contents of modules.builtin.modinfo,
 *   - a device's modalias (and a driver name),
 * written to a private modules directory that virPCIVFIOGetModulesDir()
 * (weakened in virpci.o, defined here) returns. Then the code parses the
 * files (the cache is defeated: every input gets a fresh directory entry)
 * and picks the best variant for the modalias, as a managed='yes' start
 * does. A crash, a sanitizer report or a leak fails the run.
 */
#include <config.h>

#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <unistd.h>

#include "internal.h"
#include "virnetdev.h"
#include "virpci.h"

static char *baseDir;            /* private, made at start */
static char *modulesDir;         /* what virPCIVFIOGetModulesDir() returns */
static unsigned long long generation;

char *
virPCIVFIOGetModulesDir(void)
{
    return g_strdup(modulesDir);
}


/* virpci.c refers to it (network names of SR-IOV devices, not fuzzed);
 * libvirt.so does not export it */
int
virNetDevGetPhysPortName(const char *ifname G_GNUC_UNUSED,
                         char **physPortName)
{
    *physPortName = NULL;
    return 0;
}


static void
writeFile(const char *dir, const char *name, const uint8_t *data, size_t len)
{
    g_autofree char *path = g_strdup_printf("%s/%s", dir, name);
    int fd;

    unlink(path);
    if ((fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600)) < 0)
        abort();
    if (len && write(fd, data, len) != (ssize_t) len)
        abort();
    close(fd);
}


/* The part of @data up to the next 0x01 byte (or its end); advances. */
static const uint8_t *
nextPart(const uint8_t **data, size_t *size, size_t *len)
{
    const uint8_t *start = *data;
    const uint8_t *sep = memchr(start, 0x01, *size);

    *len = sep ? (size_t) (sep - start) : *size;
    *data += *len + (sep ? 1 : 0);
    *size -= *len + (sep ? 1 : 0);
    return start;
}


/* the private directory goes when the fuzzer exits */
static void
removeDirs(void)
{
    size_t i;

    for (i = 0; i < 2; i++) {
        g_autofree char *dir = g_strdup_printf("%s/%zu", baseDir, i);
        g_autofree char *a = g_strdup_printf("%s/modules.alias", dir);
        g_autofree char *b = g_strdup_printf("%s/modules.builtin.modinfo", dir);

        unlink(a);
        unlink(b);
        rmdir(dir);
    }
    rmdir(baseDir);
}


int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerInitialize(int *argc G_GNUC_UNUSED,
                     char ***argv G_GNUC_UNUSED)
{
    g_autofree char *tmpl = g_strdup_printf("%s/vfio-alias-fuzz.XXXXXX",
                                            g_get_tmp_dir());
    char *base = g_mkdtemp(tmpl);

    if (!base)
        abort();
    baseDir = g_strdup(base);
    atexit(removeDirs);
    return 0;
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *alias, *builtin, *rest;
    size_t aliasLen, builtinLen, restLen;
    g_autofree char *modalias = NULL;
    g_autofree char *module = NULL;
    g_autofree char *pattern = NULL;
    g_autofree char *dir = NULL;
    char *nl;

    alias = nextPart(&data, &size, &aliasLen);
    builtin = nextPart(&data, &size, &builtinLen);
    rest = nextPart(&data, &size, &restLen);

    /* alternate directories and new files: the parsed-alias cache, keyed
     * by the directory and the files' state, never serves an input */
    dir = g_strdup_printf("%s/%llu", baseDir, generation++ % 2);
    g_mkdir_with_parents(dir, 0700);
    writeFile(dir, "modules.alias", alias, aliasLen);
    writeFile(dir, "modules.builtin.modinfo", builtin, builtinLen);
    g_free(modulesDir);
    modulesDir = g_strdup(dir);

    modalias = g_strndup((const char *) rest, restLen);
    if ((nl = strchr(modalias, '\n')))
        *nl = '\0';

    ignore_value(virPCIVFIOFindBestVariant(modalias, &module, &pattern));
    if (module)
        ignore_value(virPCIVFIOModuleIsVariant(module));
    ignore_value(virPCIDriverNameIsValid(modalias));
    ignore_value(virPCIVFIOModuleIsVariant(modalias));

    return 0;
}
