/* router_round_robin.c - "round-robin": the candidates in turn, whatever
 * their load (a cursor over the candidate list; state per cluster). */
#include "pagoda/cluster.h"

typedef struct rr_state {
    unsigned next;
} rr_state;

static int pick(void *state, pgd_cluster *c, const pgd_replica_load *load, int n, const int32_t *prompt, int n_prompt) {
    (void)c, (void)load, (void)prompt, (void)n_prompt;
    rr_state *s = state;
    return (int)(s->next++ % (unsigned)n);
}

const pgd_router_ops pgd_router_round_robin = {
    .name = "round-robin",
    .description = "each replica in turn",
    .pick = pick,
    .state_size = sizeof(rr_state),
};
