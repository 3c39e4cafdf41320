/* disagg.h - prefill/decode disaggregation over a cluster (cluster.h):
 * PREFILL replicas compute prompts (their requests are prefill_only) and
 * hand each request, with its prompt's KV, to a DECODE replica over a KV
 * link, as DistServe and Splitwise do.
 *
 * The hand-off (pgd_disagg_handoff, the cluster's hook) exports the
 * request from the prefill engine (engine.h), packs it into one byte string,
 * sends it over a communicator (comm.h; the bytes really move: a threads
 * link when both replicas are in this process, else MPI rank to rank, see
 * cluster.h), unpacks it on the decode side and imports it into the DECODE
 * replica the router picks. The prefill replica's blocks stay allocated
 * until the transfer has ended (pgd_engine_export_held): on real clocks
 * until the bytes are sent, on the sim until the priced arrival time on its
 * own clock, so its KV usage includes the transfers in flight. Timing:
 *   - the sim (virtual clocks): the transfer is priced as
 *       latency + kv_bytes / bandwidth
 *     from the prefill replica's clock at the hand-off; the decode replica
 *     cannot start the request before then (its engine waits for the
 *     import's ready_time, sleeping its clock when it has nothing else);
 *   - real clocks (CPU replicas): the transfer takes the time it takes.
 * Every transfer is logged (request, replicas, bytes, start and arrival on
 * the cluster timeline).
 *
 * Link defaults (DistServe, Zhong et al., OSDI 2024, sec. 6 setup: A100
 * nodes with NVLink inside a node and 25 Gbps between nodes; its placement
 * keeps a prefill and a decode instance of one stage in one node, so the KV
 * goes over NVLink): 2400 Gbit/s = 300 GB/s, one direction of A100 NVLink 3
 * (12 links x 25 GB/s), and 5 us per transfer (NVLink/NCCL point-to-point
 * start-up is a few microseconds). kv_link_gbps = 25 models DistServe's
 * cross-node case, 200 an InfiniBand HDR link. */
#ifndef PAGODA_DISAGG_H
#define PAGODA_DISAGG_H

#include <stddef.h>
#include <stdint.h>

#include "pagoda/cluster.h"

#define PGD_KV_LINK_GBPS_DEFAULT 2400.0
#define PGD_KV_LINK_LATENCY_US_DEFAULT 5.0

typedef struct pgd_kv_link_config {
    double gbps;       /* link bandwidth in Gbit/s; 0 = PGD_KV_LINK_GBPS_DEFAULT */
    double latency_us; /* per transfer in microseconds; < 0 = PGD_KV_LINK_LATENCY_US_DEFAULT */
} pgd_kv_link_config;

/* One hand-off, on the cluster timeline. */
typedef struct pgd_kv_transfer {
    int64_t request;   /* cluster id */
    int from, to;      /* replicas */
    size_t kv_bytes;   /* the KV blocks' size (what the link prices) */
    size_t wire_bytes; /* what the communicator moved (the sim carries no KV data) */
    double start;      /* the prefill replica's time at the hand-off */
    double ready;      /* when the KV is on the decode replica */
} pgd_kv_transfer;

typedef struct pgd_disagg_stats {
    int64_t transfers;
    double kv_bytes;     /* summed */
    double link_seconds; /* summed ready - start */
    double max_link_seconds;
    double comm_seconds; /* wall time spent in the communicator (over MPI: rank 0's wall time of
                            each hand-off, the remote export and import included) */
} pgd_disagg_stats;

typedef struct pgd_disagg pgd_disagg;

pgd_status pgd_disagg_create(const pgd_kv_link_config *cfg, pgd_disagg **out);
void pgd_disagg_destroy(pgd_disagg *d);
/* The resolved link (defaults applied). */
const pgd_kv_link_config *pgd_disagg_link(const pgd_disagg *d);

/* The cluster's hand-off hook: set cluster config .handoff = pgd_disagg_handoff,
 * .handoff_ctx = the pgd_disagg. Errors name the request and both replicas. */
pgd_status pgd_disagg_handoff(void *d, pgd_cluster *c, int64_t id, int from);

/* The hand-off's two ends as bytes, shared by the threads link (one
 * process) and the MPI ranks (core/cluster/cluster_mpi.c):
 * export_packed exports request `eid` of engine e with its blocks held
 * (pgd_engine_export_held: the caller calls pgd_engine_export_sent once the
 * bytes are out) and packs it (*buf malloc'd, *kv_bytes the KV's share);
 * import_packed unpacks such bytes into engine e with the KV's ready_time
 * (absolute clock seconds, <= 0 = here now); *eid its id there. */
pgd_status pgd_disagg_export_packed(pgd_engine *e, int64_t eid, void **buf, size_t *n, size_t *kv_bytes);
pgd_status pgd_disagg_import_packed(pgd_engine *e, const void *buf, size_t n, double ready_time, int64_t *eid);

/* The roles of a P/D cluster: prefill replicas first, then decode ones
 * (roles: p + d entries). PGD_ERR_INVALID naming the keys when p or d < 1. */
pgd_status pgd_disagg_roles(int p, int d, pgd_replica_role *roles);

void pgd_disagg_get_stats(const pgd_disagg *d, pgd_disagg_stats *out);
int64_t pgd_disagg_num_transfers(const pgd_disagg *d);
const pgd_kv_transfer *pgd_disagg_transfer(const pgd_disagg *d, int64_t i);

#endif
