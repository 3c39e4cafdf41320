/* version.c - pgd_version_string() (llm.h): the version, commit and build
 * options, from the build_info.h CMake generates at configure time. */
#include <stdio.h>

#include "pagoda/llm.h"
#include "pagoda/build_info.h"

const char *pgd_version_string(void) {
    static char buf[512];
    if (!buf[0])
        snprintf(buf, sizeof buf, "%s (commit %s, %s build, %s, %s)", PAGODA_VERSION, PAGODA_BUILD_COMMIT,
                 PAGODA_BUILD_TYPE_STR, PAGODA_BUILD_COMPILER, PAGODA_BUILD_OPTIONS);
    return buf;
}
