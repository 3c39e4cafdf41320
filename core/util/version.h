/* version.h - `pagoda --version`'s text (version.c, beside pgd_version_string). */
#ifndef PAGODA_UTIL_VERSION_H
#define PAGODA_UTIL_VERSION_H

#include <stdio.h>

/* The version, commit, build type, compiler and options, one a line. */
void pgd_version_print(FILE *f);

#endif
