/* router_registry.c - the routers compiled in: one line each (cluster.h). */
#include <string.h>

#include "pagoda/cluster.h"

extern const pgd_router_ops pgd_router_round_robin, pgd_router_least_outstanding, pgd_router_least_kv,
    pgd_router_prefix_aware;

static const pgd_router_ops *const routers[] = {
    &pgd_router_round_robin,
    &pgd_router_least_outstanding,
    &pgd_router_least_kv,
    &pgd_router_prefix_aware,
};

enum { NROUTERS = sizeof routers / sizeof routers[0] };

const pgd_router_ops *pgd_router_find(const char *name) {
    for (int i = 0; name && i < NROUTERS; i++)
        if (!strcmp(routers[i]->name, name)) return routers[i];
    return NULL;
}

const char *const *pgd_router_names(void) {
    static const char *names[NROUTERS + 1];
    for (int i = 0; i < NROUTERS; i++) names[i] = routers[i]->name;
    names[NROUTERS] = NULL;
    return names;
}
