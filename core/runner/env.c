/* env.c - the environment a run was measured in, for env.json: git
 * revision (and whether the tree was dirty), compiler and flags, build
 * type, CPU model and topology from hwloc (packages, cores, PUs, NUMA
 * nodes, caches), thread count, host name, date. Also mkdir -p.
 *
 * Invariant: every field is best effort; a missing tool (git) or a failed
 * hwloc load gives "unknown"/0 instead of an error. */
#include <errno.h>
#include <hwloc.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "pagoda/runner.h"
#include "util/json_text.h"

#ifndef PAGODA_C_FLAGS
#define PAGODA_C_FLAGS "unknown"
#endif
#ifndef PAGODA_BUILD_TYPE
#define PAGODA_BUILD_TYPE "unknown"
#endif

pgd_status pgd_mkdir_p(const char *path) {
    char buf[4096];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf)
        return pgd_error(PGD_ERR_INVALID, "path too long: %s", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        if (mkdir(buf, 0777) != 0 && errno != EEXIST)
            return pgd_error(PGD_ERR_IO, "cannot create directory %s: %s", buf, strerror(errno));
        *p = '/';
    }
    if (mkdir(buf, 0777) != 0 && errno != EEXIST)
        return pgd_error(PGD_ERR_IO, "cannot create directory %s: %s", buf, strerror(errno));
    return PGD_OK;
}

/* First line of a command's output, or "" (stderr discarded). */
static void cmd_line(const char *cmd, char *out, size_t n) {
    out[0] = 0;
    FILE *p = popen(cmd, "r");
    if (!p) return;
    if (fgets(out, (int)n, p)) out[strcspn(out, "\r\n")] = 0;
    else out[0] = 0;
    while (fgetc(p) != EOF) {
    }
    pclose(p);
}

static json_t *topology_json(void) {
    json_t *o = json_object();
    hwloc_topology_t t;
    if (hwloc_topology_init(&t) != 0) return o;
    if (hwloc_topology_load(t) != 0) {
        hwloc_topology_destroy(t);
        return o;
    }
    const char *model = NULL;
    hwloc_obj_t pkg = hwloc_get_obj_by_type(t, HWLOC_OBJ_PACKAGE, 0);
    if (pkg) model = hwloc_obj_get_info_by_name(pkg, "CPUModel");
    json_object_set_new(o, "cpu_model", pgd_json_text(model ? model : "unknown"));
    json_object_set_new(o, "packages", json_integer(hwloc_get_nbobjs_by_type(t, HWLOC_OBJ_PACKAGE)));
    json_object_set_new(o, "numa_nodes", json_integer(hwloc_get_nbobjs_by_type(t, HWLOC_OBJ_NUMANODE)));
    json_object_set_new(o, "cores", json_integer(hwloc_get_nbobjs_by_type(t, HWLOC_OBJ_CORE)));
    json_object_set_new(o, "pus", json_integer(hwloc_get_nbobjs_by_type(t, HWLOC_OBJ_PU)));
    static const struct { hwloc_obj_type_t type; const char *name; } caches[] = {
        {HWLOC_OBJ_L1CACHE, "l1d_bytes"}, {HWLOC_OBJ_L2CACHE, "l2_bytes"}, {HWLOC_OBJ_L3CACHE, "l3_bytes"}};
    for (size_t i = 0; i < sizeof caches / sizeof caches[0]; i++) {
        hwloc_obj_t c = hwloc_get_obj_by_type(t, caches[i].type, 0);
        if (c && c->attr) json_object_set_new(o, caches[i].name, json_integer((json_int_t)c->attr->cache.size));
    }
    hwloc_obj_t root = hwloc_get_root_obj(t);
    if (root && root->total_memory) json_object_set_new(o, "memory_bytes", json_integer((json_int_t)root->total_memory));
    char ver[32];
    snprintf(ver, sizeof ver, "%u.%u.%u", HWLOC_API_VERSION >> 16, (HWLOC_API_VERSION >> 8) & 0xff,
             HWLOC_API_VERSION & 0xff);
    json_object_set_new(o, "hwloc_api", pgd_json_text(ver));
    hwloc_topology_destroy(t);
    return o;
}

json_t *pgd_env_json(int threads) {
    json_t *o = json_object();
    if (!o) return NULL;
    char buf[256];
    cmd_line("git rev-parse HEAD 2>/dev/null", buf, sizeof buf);
    json_object_set_new(o, "git_revision", pgd_json_text(buf[0] ? buf : "unknown"));
    if (buf[0]) {
        cmd_line("git status --porcelain --untracked-files=no 2>/dev/null | head -1", buf, sizeof buf);
        json_object_set_new(o, "git_dirty", json_boolean(buf[0] != 0));
    }
    json_object_set_new(o, "pagoda_version", pgd_json_text(PAGODA_VERSION));
#ifdef __VERSION__
    json_object_set_new(o, "compiler", pgd_json_text("gcc-compatible " __VERSION__));
#endif
    json_object_set_new(o, "c_flags", pgd_json_text(PAGODA_C_FLAGS));
    json_object_set_new(o, "build_type", pgd_json_text(PAGODA_BUILD_TYPE));
    json_object_set_new(o, "topology", topology_json());
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    json_object_set_new(o, "threads", json_integer(threads > 0 ? threads : online));
    json_object_set_new(o, "online_cpus", json_integer(online));
    if (gethostname(buf, sizeof buf) == 0) {
        buf[sizeof buf - 1] = 0;
        json_object_set_new(o, "hostname", pgd_json_text(buf));
    }
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    json_object_set_new(o, "date", pgd_json_text(buf));
    return o;
}
