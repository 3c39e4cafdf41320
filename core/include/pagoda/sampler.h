/* sampler.h - per-request token sampling: greedy, temperature, top-k, top-p.
 *
 * One pgd_sampler per request (it owns that request's RNG, seeded from
 * params.seed, so a request's tokens do not depend on what else is in the
 * batch). temperature == 0 means greedy (argmax; ties go to the lowest id).
 * Otherwise logits are divided by temperature, softmaxed, restricted to the
 * top_k most likely tokens (top_k <= 0: no limit) and then to the smallest
 * set whose probability mass reaches top_p (top_p >= 1: no limit), and a
 * token is drawn from what remains, renormalised. */
#ifndef PAGODA_SAMPLER_H
#define PAGODA_SAMPLER_H

#include <stdint.h>

#include "pagoda/status.h"

typedef struct pgd_sampling_params {
    float temperature; /* >= 0; 0 = greedy */
    int top_k;         /* <= 0: disabled */
    float top_p;       /* (0, 1]; 0 in a zeroed config is read as 1 (disabled) */
    uint64_t seed;
} pgd_sampling_params;

typedef struct pgd_sampler pgd_sampler;

/* Checks the parameters: temperature must be finite and >= 0, top_p in
 * [0, 1] (0 = disabled), top_k >= 0 or <= 0 means off and must not exceed
 * vocab_size. Error messages name the parameter and the bad value. */
pgd_status pgd_sampling_params_validate(const pgd_sampling_params *p, int vocab_size);

pgd_status pgd_sampler_create(const pgd_sampling_params *p, int vocab_size, pgd_sampler **out);
void pgd_sampler_destroy(pgd_sampler *s);

/* Choose the next token from logits (vocab_size floats). The logits array
 * may be used as scratch (its contents are unspecified afterwards). */
int pgd_sampler_sample(pgd_sampler *s, float *logits);

/* The sampler's RNG state (4 words), to move a request to another engine
 * mid-generation (prefill/decode disaggregation): a sampler created with the
 * same parameters and given this state draws what this one would next. */
void pgd_sampler_get_state(const pgd_sampler *s, uint64_t state[4]);
void pgd_sampler_set_state(pgd_sampler *s, const uint64_t state[4]);

/* Argmax with ties to the lowest index. */
int pgd_argmax(const float *x, int n);

#endif
