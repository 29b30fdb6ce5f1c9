/* Multi-step LIF forward and backward for float32 CPU tensors: the time loop compiled, fused over time.
 *
 * Same functions as snnlab/kernels/lif_torch.py (its docstring gives the semantics), written so that
 * the deterministic forward and the atan / fast-sigmoid / triangle backward round exactly as the
 * PyTorch path does (compiled with -ffp-contract=off: no fused multiply-adds that PyTorch does not do).
 * exp and erf (sigmoid / gaussian / logistic surrogates, noise) are vectorisable polynomials within
 * 2 ulp of the exact values, so those results agree with PyTorch's to float32 rounding, not bit for bit.
 *
 * Layout: x, h (pre-reset membrane), s (spikes), gs (grad of spikes), gx are [T, M] row-major
 * (M = B * neurons); beta and thr are expanded to [M]. Threads split the M neurons into contiguous
 * ranges; each thread walks its range in blocks whose state (membrane, spike count) stays in cache,
 * with the time loop outside and the neuron loop inside (contiguous, vectorised).
 *
 * Memory traffic is what limits these loops, so the backward does not read a saved membrane: the
 * forward keeps the membrane only every CHUNK steps (checkpoints, 1/CHUNK of a tensor), and the
 * backward, for each block of neurons and each chunk of steps from the last, re-runs the forward from
 * the checkpoint, x and the saved spikes into a cache-sized scratch (bit-identical: the same operations
 * on the same values), then runs those steps backwards. The forward writes the full membrane only
 * when asked (for recording), else just its last step.
 *
 * Spike masking: the forward also writes the transmitted spikes s * keep (keep from the counter hash,
 * as counter_rng.keep_mask), the saved s stay the neuron's own; the backward multiplies each step's
 * output gradient by the same keep mask, recomputed.
 */
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>

#define BLOCK 2048    /* forward: neurons per block, state arrays of 8 KB */
#define BWD_BLOCK 1024 /* backward: neurons per block */
#define CHUNK 32       /* steps between membrane checkpoints; the backward's scratch is CHUNK x BWD_BLOCK */
#define INLINE static inline __attribute__((always_inline))

enum { SG_ATAN = 0, SG_FAST_SIGMOID = 1, SG_TRIANGLE = 2, SG_SIGMOID = 3, SG_GAUSSIAN = 4, SG_LOGISTIC = 5 };
enum { NOISE_NONE = 0, NOISE_GAUSSIAN = 1, NOISE_LOGISTIC = 2 };

typedef struct {
    int64_t m0, m1; /* this thread's neurons; first member of both argument structs */
} range_t;

typedef struct {
    range_t r;
    const float *x, *beta, *thr;
    float *h, *s;  /* h: [T, M] when full_membrane, else [M] (the last step only) */
    float *ck;     /* [ceil(T / CHUNK), M]: v[t - 1] at every t that is a multiple of CHUNK */
    float *counts; /* [M]: spikes per neuron over the sample (written with max_spikes only) */
    float *out;    /* [T, M]: the transmitted spikes s * keep (spike masking), NULL without masking */
    int64_t T, M;
    int full_membrane, zero_reset, max_spikes, noise; /* max_spikes < 0: unlimited */
    double noise_div; /* sigma * sqrt(2) (gaussian noise) or sigma (logistic) */
    uint32_t key;
    float mask_p;      /* probability of dropping a spike (with out) */
    uint32_t mask_key; /* counter_rng.mask_key of the mask seed */
} fwd_args;

typedef struct {
    range_t r;
    const float *x, *s, *ck, *gs, *beta, *thr, *total; /* gs NULL: every grad_spikes is gs_const */
    float gs_const;                               /* total: spikes per neuron (max_spikes only) */
    float *gx, *g_beta, *g_thr;                  /* g_beta / g_thr may be NULL (not needed) */
    int64_t T, M;
    int zero_reset, detach_reset, max_spikes, surrogate;
    double param; /* the Python float, so constants derived from it round as in PyTorch */
    float mask_p; /* > 0: spike masking, the output gradient reaches the neuron through kept spikes only */
    uint32_t mask_key;
} bwd_args;

/* ------------------------------------------------------------------ counter RNG (counter_rng.py) */
INLINE uint32_t mix32(uint32_t x) {
    x ^= x >> 16;
    x *= 0x7FEB352Du;
    x ^= x >> 15;
    x *= 0x846CA68Bu;
    x ^= x >> 16;
    return x;
}

INLINE float uniform_from_counter(uint32_t index, uint32_t key) {
    return (float)(mix32(index ^ key) >> 8) * (1.0f / 16777216.0f);
}

/* out[i] = v[i] * keep of element index0 + i (counter_rng.keep_mask): spike masking, forward and backward */
INLINE void apply_keep(float *restrict out, const float *restrict v, int64_t n, uint32_t index0, uint32_t key,
                       float drop_p) {
    for (int64_t i = 0; i < n; ++i)
        out[i] = v[i] * (uniform_from_counter(index0 + (uint32_t)i, key) >= drop_p ? 1.0f : 0.0f);
}

/* ------------------------------------------------------------------ exp and erf for the vector loops
 * libm's expf / erff are calls the compiler cannot vectorise; these are branch-free (selects, fmaf,
 * integer bit operations), so the neuron loops that use them vectorise like the others. fmaf is
 * rounded exactly, so they give the same bits with or without SIMD, on every machine. Accuracy
 * (tests/test_kernels_cpu.py checks it on dense grids against float64): exp within 2 ulp on
 * [-87, 88.7] and +inf from its overflow point (e^x > FLT_MAX) up; exactly 0 below -87.33, where e^x
 * falls under float32's smallest normal number (flushed, no denormal: as torch.exp rounds e^-inf and
 * e^-1e38, so that a density of 0 times a huge membrane stays 0); erf within 2 ulp of its value. */
/* c[0] x^(n-1) + ... + c[n-1], by Horner's rule with fused multiply-adds */
INLINE float horner(float x, const float *c, int n) {
    float p = c[0];
    for (int i = 1; i < n; ++i) p = fmaf(p, x, c[i]);
    return p;
}

/* e^r on |r| <= ln2 / 2: Taylor polynomial of degree 7 (truncation below 0.01 ulp) */
static const float EXP_POLY[8] = {1.98412698e-04f, 1.38888889e-03f, 8.33333333e-03f, 4.16666667e-02f,
                                  1.66666667e-01f, 0.5f, 1.0f, 1.0f};
/* erf(x) / x - 1 in powers of x^2 on |x| <= 0.921875, least squares on Chebyshev nodes */
static const float ERF_SMALL[7] = {8.438768418e-05f, -8.160783909e-04f, 5.202835891e-03f, -2.686024085e-02f,
                                   1.128371358e-01f, -3.761263490e-01f, 1.283791661e-01f};
/* log(erfc(x)) in powers of x on [0.921875, 3.95], fitted the same way */
static const float ERFC_LOG[9] = {1.628479595e-06f, -4.586068098e-05f, 5.949194892e-04f, -4.749702290e-03f,
                                  2.638998628e-02f, -1.100198552e-01f, -6.318958402e-01f, -1.130189180e+00f,
                                  3.083857882e-04f};

/* below EXP_ZERO_BELOW e^x is 0 (flushed); EXP_LAST_ARG is the smallest float whose e^x overflows to +inf */
#define EXP_ZERO_BELOW (-87.33f)
#define EXP_LAST_ARG 88.72283935546875f

INLINE float exp_approx(float x) {
    float c = x < EXP_ZERO_BELOW ? EXP_ZERO_BELOW : x;
    c = c > EXP_LAST_ARG ? EXP_LAST_ARG : c;
    /* c = n ln2 + r, |r| <= ln2 / 2; n rounded by the 1.5 * 2^23 trick (round to nearest even) */
    const float n = (c * 1.44269504089f + 12582912.0f) - 12582912.0f;
    float r = fmaf(n, -0.693145751953125f, c); /* ln2 in two parts: the first times n is exact */
    r = fmaf(n, -1.428606765330187e-06f, r);
    /* 2^n = 2^(n - up) * 2^up, n in [-126, 128], up = 1 for n > 0: both factors normal, and both products exact
     * but where the result overflows (to +inf, from EXP_LAST_ARG up) */
    const int32_t ni = (int32_t)n;
    const int32_t up = ni > 0;
    union { uint32_t i; float f; } two_m = {(uint32_t)(ni - up + 127) << 23};
    const float y = horner(r, EXP_POLY, 8) * two_m.f * (up ? 2.0f : 1.0f);
    return x < EXP_ZERO_BELOW ? 0.0f : y; /* (NaN stays NaN) */
}

INLINE float erf_approx(float x) {
    const float t = fabsf(x);
    /* |x| <= 0.921875: x + x (erf(x) / x - 1) (the rounding of the small second term hardly shows) */
    const float small = fmaf(horner(x * x, ERF_SMALL, 7), x, x);
    /* 0.921875 < |x| < 3.95: 1 - exp(log(erfc(|x|))), sign restored; beyond, erf rounds to +-1 */
    const float u = t < 3.95f ? t : 3.95f;
    float big = t < 3.95f ? 1.0f - exp_approx(horner(u, ERFC_LOG, 9)) : 1.0f;
    big = x < 0.0f ? -big : big;
    return !(t > 0.921875f) ? small : big; /* NaN takes `small`, which is NaN */
}

INLINE float sigmoidf(float z) { return 1.0f / (1.0f + exp_approx(-z)); }

/* firing probability F(u / sigma) of a noisy neuron (surrogate_math.noise_cdf); `scale` is
 * sigma * sqrt(2) (gaussian) or sigma (logistic) */
INLINE float noise_cdf(int noise, float u, float scale) {
    if (noise == NOISE_GAUSSIAN) return 0.5f * (1.0f + erf_approx(u / scale));
    return sigmoidf(u / scale);
}

/* ------------------------------------------------------------------ forward */
INLINE void fwd_block(const fwd_args *a, int64_t b0, int64_t n, const int zero_reset, const int limited,
                      const int noise) {
    float v[BLOCK], cnt[BLOCK];
    const float *restrict beta = a->beta + b0, *restrict thr = a->thr + b0;
    const float k = (float)a->max_spikes;
    const float scale = (float)a->noise_div;
    memset(v, 0, sizeof(float) * n);
    memset(cnt, 0, sizeof(float) * n);
    for (int64_t t = 0; t < a->T; ++t) {
        const float *restrict x = a->x + t * a->M + b0;
        float *restrict h = a->full_membrane ? a->h + t * a->M + b0 : (t == a->T - 1 ? a->h + b0 : NULL);
        float *restrict s = a->s + t * a->M + b0;
        if (t % CHUNK == 0) memcpy(a->ck + (t / CHUNK) * a->M + b0, v, sizeof(float) * n);
        for (int64_t i = 0; i < n; ++i) {
            float hi = fmaf(v[i], beta[i], x[i]); /* torch.addcmul(x, v, beta): one fused multiply-add */
            float si;
            if (noise) {
                float rnd = uniform_from_counter((uint32_t)(t * a->M + b0 + i), a->key);
                si = rnd < noise_cdf(noise, hi - thr[i], scale) ? 1.0f : 0.0f;
            } else {
                si = hi >= thr[i] ? 1.0f : 0.0f;
            }
            if (limited) {
                si = si * (cnt[i] < k ? 1.0f : 0.0f);
                cnt[i] = cnt[i] + si;
            }
            if (h) h[i] = hi;
            s[i] = si;
            v[i] = zero_reset ? hi + (-hi) * si : hi + si * (-thr[i]);
        }
        if (a->out) apply_keep(a->out + t * a->M + b0, s, n, (uint32_t)(t * a->M + b0), a->mask_key, a->mask_p);
    }
    if (limited) memcpy(a->counts + b0, cnt, sizeof(float) * n);
}

static void *fwd_range(void *p) {
    const fwd_args *a = (const fwd_args *)p;
    for (int64_t b0 = a->r.m0; b0 < a->r.m1; b0 += BLOCK) {
        int64_t n = a->r.m1 - b0 < BLOCK ? a->r.m1 - b0 : BLOCK;
        /* one specialised loop per option set (the branches inside fwd_block fold away) */
        const int limited = a->max_spikes >= 0;
        switch (a->zero_reset | (limited << 1) | (a->noise << 2)) {
        case 0: fwd_block(a, b0, n, 0, 0, NOISE_NONE); break;
        case 1: fwd_block(a, b0, n, 1, 0, NOISE_NONE); break;
        case 2: fwd_block(a, b0, n, 0, 1, NOISE_NONE); break;
        case 3: fwd_block(a, b0, n, 1, 1, NOISE_NONE); break;
        case 4: fwd_block(a, b0, n, 0, 0, NOISE_GAUSSIAN); break;
        case 5: fwd_block(a, b0, n, 1, 0, NOISE_GAUSSIAN); break;
        case 6: fwd_block(a, b0, n, 0, 1, NOISE_GAUSSIAN); break;
        case 7: fwd_block(a, b0, n, 1, 1, NOISE_GAUSSIAN); break;
        case 8: fwd_block(a, b0, n, 0, 0, NOISE_LOGISTIC); break;
        case 9: fwd_block(a, b0, n, 1, 0, NOISE_LOGISTIC); break;
        case 10: fwd_block(a, b0, n, 0, 1, NOISE_LOGISTIC); break;
        default: fwd_block(a, b0, n, 1, 1, NOISE_LOGISTIC); break;
        }
    }
    return NULL;
}

/* ------------------------------------------------------------------ backward */
/* dS/du at u = h - threshold, written as surrogate_math.surrogate_grad_ computes it */
INLINE float surrogate(int kind, float u, float p, float c0, float c1, float pp) {
    switch (kind) {
    /* atan: torch.addcmul(c0, u, u, value=c1), then the reciprocal; c0 = 2/p, c1 = 2 (pi/2 p)^2 / p */
    case SG_ATAN: return 1.0f / fmaf(c1 * u, u, c0);
    case SG_FAST_SIGMOID: {
        float w = fabsf(u) * p + 1.0f;
        return 1.0f / (w * w);
    }
    case SG_TRIANGLE: {
        float w = fabsf(u) * pp + p; /* pp = -p^2 */
        return w > 0.0f ? w : 0.0f;
    }
    case SG_SIGMOID: {
        float g = sigmoidf(p * u);
        return p * g * (1.0f - g);
    }
    case SG_GAUSSIAN: {
        float z = u / p;
        return exp_approx(-0.5f * z * z) * (0.39894228040143267794f / p);
    }
    default: {
        float g = sigmoidf(u / p);
        return g * (1.0f - g) / p;
    }
    }
}

/* gh[t] = a[t] + beta c[t] gh[t+1] backwards in time (see LIFFunction in lif_torch.py) */
INLINE void bwd_block(const bwd_args *a, float *restrict hs, int64_t b0, int64_t n, const int zero_reset,
                      const int kind, const int params) {
    float gh[BWD_BLOCK], after[BWD_BLOCK], gb[BWD_BLOCK], gt[BWD_BLOCK], gs_row[BWD_BLOCK], v[BWD_BLOCK];
    float gs_kept[BWD_BLOCK]; /* spike masking: this step's output gradient times the keep mask */
    const float *restrict beta = a->beta + b0, *restrict thr = a->thr + b0;
    /* max_spikes and detach_reset as arithmetic (fewer specialised loops, a shorter build): an
     * infinite cap masks nothing, and `keep` = 0 zeroes the reset's terms, leaving the same values */
    const float k = a->max_spikes >= 0 ? (float)a->max_spikes : INFINITY;
    const float keep = a->detach_reset ? 0.0f : 1.0f;
    const float p = (float)a->param, pp = (float)(-a->param * a->param);
    const float c0 = (float)(2.0 / a->param);
    const double kk = 1.5707963267948966 * a->param;
    const float c1 = (float)(kk * kk * 2.0 / a->param);
    memset(gh, 0, sizeof(float) * n);
    for (int64_t i = 0; i < n; ++i) gs_row[i] = a->gs_const; /* read when grad_spikes is one number */
    if (a->max_spikes >= 0) memcpy(after, a->total + b0, sizeof(float) * n);
    else memset(after, 0, sizeof(float) * n);
    if (params) {
        memset(gb, 0, sizeof(float) * n);
        memset(gt, 0, sizeof(float) * n);
    }
    for (int64_t t0 = (a->T - 1) / CHUNK * CHUNK; t0 >= 0; t0 -= CHUNK) {
    /* the forward again over steps [t0, t1), from the checkpoint and the saved spikes: same operations
     * on the same values as the forward, so the same h */
    const int64_t t1 = t0 + CHUNK < a->T ? t0 + CHUNK : a->T;
    memcpy(v, a->ck + (t0 / CHUNK) * a->M + b0, sizeof(float) * n);
    for (int64_t t = t0; t < t1; ++t) {
        const float *restrict x = a->x + t * a->M + b0;
        const float *restrict s = a->s + t * a->M + b0;
        float *restrict hrow = hs + (t - t0) * BWD_BLOCK;
        for (int64_t i = 0; i < n; ++i) {
            float hi = fmaf(v[i], beta[i], x[i]);
            hrow[i] = hi;
            v[i] = zero_reset ? hi + (-hi) * s[i] : hi + s[i] * (-thr[i]);
        }
    }
    for (int64_t t = t1 - 1; t >= t0; --t) {
        const float *restrict h = hs + (t - t0) * BWD_BLOCK;
        const float *restrict s = a->s + t * a->M + b0;
        const float *restrict gs = a->gs ? a->gs + t * a->M + b0 : gs_row;
        if (a->mask_p > 0.0f) {
            apply_keep(gs_kept, gs, n, (uint32_t)(t * a->M + b0), a->mask_key, a->mask_p);
            gs = gs_kept;
        }
        float *restrict gx = a->gx + t * a->M + b0;
        for (int64_t i = 0; i < n; ++i) {
            float hi = h[i], si = s[i], gsi = gs[i], bi = beta[i], ti = thr[i];
            float sg = surrogate(kind, hi - ti, p, c0, c1, pp);
            after[i] = after[i] - si; /* spikes fired before t */
            sg = sg * (after[i] < k ? 1.0f : 0.0f);
            float bc;
            if (zero_reset) {
                float oms = 1.0f - si;
                bc = ((-(sg * hi * keep)) + oms) * bi;
            } else {
                bc = sg * (-bi * ti) * keep + bi;
            }
            float g_next = gh[i];
            float g = fmaf(g_next, bc, sg * gsi); /* torch.addcmul(a, gh[t+1], bc) */
            if (params) {
                float gv = bi * g_next; /* gradient reaching v[t] from step t+1 */
                float vt = zero_reset ? hi * (1.0f - si) : hi - ti * si;
                gb[i] += g_next * vt;
                if (zero_reset) gt[i] -= sg * (gsi - hi * gv * keep);
                else gt[i] -= sg * (gsi - ti * gv * keep) + gv * si;
            }
            gh[i] = g;
            gx[i] = g;
        }
    }
    }
    if (params) {
        if (a->g_beta) memcpy(a->g_beta + b0, gb, sizeof(float) * n);
        if (a->g_thr) memcpy(a->g_thr + b0, gt, sizeof(float) * n);
    }
}

#define BWD_KIND(ZR, PAR)                                                                                            \
    switch (a->surrogate) {                                                                                          \
    case SG_ATAN: bwd_block(a, hs, b0, n, ZR, SG_ATAN, PAR); break;                                                  \
    case SG_FAST_SIGMOID: bwd_block(a, hs, b0, n, ZR, SG_FAST_SIGMOID, PAR); break;                                  \
    case SG_TRIANGLE: bwd_block(a, hs, b0, n, ZR, SG_TRIANGLE, PAR); break;                                          \
    case SG_SIGMOID: bwd_block(a, hs, b0, n, ZR, SG_SIGMOID, PAR); break;                                            \
    case SG_GAUSSIAN: bwd_block(a, hs, b0, n, ZR, SG_GAUSSIAN, PAR); break;                                          \
    default: bwd_block(a, hs, b0, n, ZR, SG_LOGISTIC, PAR); break;                                                   \
    }

static void *bwd_range(void *p) {
    const bwd_args *a = (const bwd_args *)p;
    float hs[CHUNK * BWD_BLOCK]; /* the membrane of one chunk of steps, recomputed (128 KB) */
    const int params = a->g_beta != NULL || a->g_thr != NULL;
    for (int64_t b0 = a->r.m0; b0 < a->r.m1; b0 += BWD_BLOCK) {
        int64_t n = a->r.m1 - b0 < BWD_BLOCK ? a->r.m1 - b0 : BWD_BLOCK;
        /* one specialised loop per reset, surrogate and whether parameter gradients are needed */
        switch (a->zero_reset | (params << 1)) {
        case 0: BWD_KIND(0, 0) break;
        case 1: BWD_KIND(1, 0) break;
        case 2: BWD_KIND(0, 1) break;
        default: BWD_KIND(1, 1) break;
        }
    }
    return NULL;
}

/* ------------------------------------------------------------------ threads */
#define MAX_THREADS 256

/* Split [0, M) into up to `threads` ranges (multiples of 16 neurons) and run `fn` on each in parallel;
 * `args` is an array of `threads` structs of `size` bytes, each starting with a range_t. */
static int run_split(void *(*fn)(void *), void *args, size_t size, int64_t M, int threads) {
    pthread_t tid[MAX_THREADS];
    char *base = (char *)args;
    int64_t per = ((M + threads - 1) / threads + 15) / 16 * 16;
    int used = 0, rc = 0;
    for (int i = 0; i < threads && i * per < M; ++i, ++used) {
        range_t *r = (range_t *)(base + i * size);
        r->m0 = i * per;
        r->m1 = r->m0 + per < M ? r->m0 + per : M;
    }
    int started = 1;
    for (; started < used; ++started)
        if (pthread_create(&tid[started], NULL, fn, base + started * size) != 0) {
            rc = -1;
            break;
        }
    if (rc != 0) /* could not start a thread: do the remaining ranges here */
        for (int i = started; i < used; ++i) fn(base + i * size);
    fn(base);
    for (int i = 1; i < started; ++i) pthread_join(tid[i], NULL);
    return 0;
}

static int clamp_threads(int threads) { return threads < 1 ? 1 : (threads > MAX_THREADS ? MAX_THREADS : threads); }

int snnlab_lif_forward(const float *x, const float *beta, const float *thr, float *h, float *s, float *ck,
                       float *counts, float *out, int64_t T, int64_t M, int full_membrane, int zero_reset,
                       int max_spikes, int noise, double noise_div, uint32_t key, float mask_p, uint32_t mask_key,
                       int threads) {
    fwd_args a[MAX_THREADS];
    int n = clamp_threads(threads);
    for (int i = 0; i < n; ++i)
        a[i] = (fwd_args){{0, 0}, x, beta, thr, h, s, ck, counts, out, T, M, full_membrane, zero_reset, max_spikes,
                          noise, noise_div, key, mask_p, mask_key};
    return run_split(fwd_range, a, sizeof(fwd_args), M, n);
}

int snnlab_lif_backward(const float *x, const float *s, const float *ck, const float *gs, double gs_const,
                        const float *beta, const float *thr, const float *total, float *gx, float *g_beta,
                        float *g_thr, int64_t T, int64_t M, int zero_reset, int detach_reset, int max_spikes,
                        int surrogate_kind, double param, float mask_p, uint32_t mask_key, int threads) {
    bwd_args a[MAX_THREADS];
    int n = clamp_threads(threads);
    for (int i = 0; i < n; ++i)
        a[i] = (bwd_args){{0, 0}, x, s, ck, gs, beta, thr, total, (float)gs_const, gx, g_beta, g_thr, T, M,
                          zero_reset, detach_reset, max_spikes, surrogate_kind, param, mask_p, mask_key};
    return run_split(bwd_range, a, sizeof(bwd_args), M, n);
}

/* ------------------------------------------------------------------ for the tests: the approximations */
void snnlab_exp_approx(const float *x, float *y, int64_t n) {
    for (int64_t i = 0; i < n; ++i) y[i] = exp_approx(x[i]);
}

void snnlab_erf_approx(const float *x, float *y, int64_t n) {
    for (int64_t i = 0; i < n; ++i) y[i] = erf_approx(x[i]);
}

/* ================================================================== adaptive LIF (feed-forward)
 *
 * The loops of snnlab/kernels/adaptive_lif.py with w=None (its docstring gives the semantics and the backward's
 * two-state recurrence gh / ga), in the same operations and order as its PyTorch loop: h = fma(v, beta, x),
 * theta = strength * a + threshold (two roundings), a = fma(a, rho, s); so the deterministic spikes, membrane and
 * threshold are the PyTorch path's bit for bit. Same layout, threading and blocks as the LIF above; the forward
 * keeps (v, a) every CHUNK steps and the backward re-runs each chunk from them, x and the saved own spikes into a
 * cache-sized scratch (membrane and trace a[t-1]), then runs the chunk backwards. Spike masking as the LIF:
 * the forward writes s * keep apart from the own spikes, the backward masks each step's output gradient. */
#define ABWD_BLOCK 512 /* backward: neurons per block; the scratch is 2 x CHUNK x ABWD_BLOCK floats (128 KB) */

typedef struct {
    range_t r;
    const float *x, *beta, *thr, *rho, *k;
    float *h, *theta;   /* [T, M] when full_membrane, else [M] (the last step only) */
    float *s;           /* [T, M]: the neuron's own spikes */
    float *out;         /* [T, M]: the transmitted spikes s * keep, NULL without masking */
    float *ck_v, *ck_a; /* [ceil(T / CHUNK), M]: v[t - 1] and a[t - 1] at every multiple of CHUNK; NULL: not kept */
    float *counts;      /* [M]: spikes per neuron (written with max_spikes only) */
    int64_t T, M;
    int full_membrane, zero_reset, max_spikes, noise; /* max_spikes < 0: unlimited */
    double noise_div;
    uint32_t key;
    float mask_p;
    uint32_t mask_key;
} afwd_args;

typedef struct {
    range_t r;
    const float *x, *s, *ck_v, *ck_a, *gs, *beta, *thr, *rho, *k, *total; /* gs NULL: every output grad is gs_const */
    float gs_const;
    float *gx, *g_beta, *g_thr, *g_rho, *g_k; /* the parameter gradients per element, NULL where not needed */
    int64_t T, M;
    int zero_reset, detach_reset, max_spikes, surrogate; /* max_spikes < 0: unlimited */
    double param;
    float mask_p;
    uint32_t mask_key;
} abwd_args;

INLINE void afwd_block(const afwd_args *a, int64_t b0, int64_t n, const int zero_reset, const int limited,
                       const int noise) {
    float v[BLOCK], tr[BLOCK], cnt[BLOCK]; /* membrane after reset, trace a[t-1], spikes so far */
    const float *restrict beta = a->beta + b0, *restrict thr = a->thr + b0;
    const float *restrict rho = a->rho + b0, *restrict kk = a->k + b0;
    const float cap = (float)a->max_spikes;
    const float scale = (float)a->noise_div;
    memset(v, 0, sizeof(float) * n);
    memset(tr, 0, sizeof(float) * n);
    memset(cnt, 0, sizeof(float) * n);
    for (int64_t t = 0; t < a->T; ++t) {
        const float *restrict x = a->x + t * a->M + b0;
        const int write = a->full_membrane || t == a->T - 1;
        float *restrict h = write ? a->h + (a->full_membrane ? t * a->M : 0) + b0 : NULL;
        float *restrict th = write ? a->theta + (a->full_membrane ? t * a->M : 0) + b0 : NULL;
        float *restrict s = a->s + t * a->M + b0;
        if (a->ck_v && t % CHUNK == 0) {
            memcpy(a->ck_v + (t / CHUNK) * a->M + b0, v, sizeof(float) * n);
            memcpy(a->ck_a + (t / CHUNK) * a->M + b0, tr, sizeof(float) * n);
        }
        for (int64_t i = 0; i < n; ++i) {
            float hi = fmaf(v[i], beta[i], x[i]); /* torch.addcmul(x, v, beta) */
            float ti = kk[i] * tr[i] + thr[i];     /* torch.mul(strength, a).add_(threshold): two roundings */
            float si;
            if (noise) {
                float rnd = uniform_from_counter((uint32_t)(t * a->M + b0 + i), a->key);
                si = rnd < noise_cdf(noise, hi - ti, scale) ? 1.0f : 0.0f;
            } else {
                si = hi >= ti ? 1.0f : 0.0f;
            }
            if (limited) {
                si = si * (cnt[i] < cap ? 1.0f : 0.0f);
                cnt[i] = cnt[i] + si;
            }
            if (h) {
                h[i] = hi;
                th[i] = ti;
            }
            s[i] = si;
            v[i] = zero_reset ? hi + (-hi) * si : hi + si * (-ti);
            tr[i] = fmaf(tr[i], rho[i], si); /* torch.addcmul(s, a, rho) */
        }
        if (a->out) apply_keep(a->out + t * a->M + b0, s, n, (uint32_t)(t * a->M + b0), a->mask_key, a->mask_p);
    }
    if (limited) memcpy(a->counts + b0, cnt, sizeof(float) * n);
}

static void *afwd_range(void *p) {
    const afwd_args *a = (const afwd_args *)p;
    const int limited = a->max_spikes >= 0;
    for (int64_t b0 = a->r.m0; b0 < a->r.m1; b0 += BLOCK) {
        int64_t n = a->r.m1 - b0 < BLOCK ? a->r.m1 - b0 : BLOCK;
        switch (a->zero_reset | (limited << 1) | (a->noise << 2)) {
        case 0: afwd_block(a, b0, n, 0, 0, NOISE_NONE); break;
        case 1: afwd_block(a, b0, n, 1, 0, NOISE_NONE); break;
        case 2: afwd_block(a, b0, n, 0, 1, NOISE_NONE); break;
        case 3: afwd_block(a, b0, n, 1, 1, NOISE_NONE); break;
        case 4: afwd_block(a, b0, n, 0, 0, NOISE_GAUSSIAN); break;
        case 5: afwd_block(a, b0, n, 1, 0, NOISE_GAUSSIAN); break;
        case 6: afwd_block(a, b0, n, 0, 1, NOISE_GAUSSIAN); break;
        case 7: afwd_block(a, b0, n, 1, 1, NOISE_GAUSSIAN); break;
        case 8: afwd_block(a, b0, n, 0, 0, NOISE_LOGISTIC); break;
        case 9: afwd_block(a, b0, n, 1, 0, NOISE_LOGISTIC); break;
        case 10: afwd_block(a, b0, n, 0, 1, NOISE_LOGISTIC); break;
        default: afwd_block(a, b0, n, 1, 1, NOISE_LOGISTIC); break;
        }
    }
    return NULL;
}

/* reverse time in the two states gh = dL/dh[t] and ga = dL/da[t], in the PyTorch backward's operations:
 *   gh[t]   = fma(gh[t+1], bc, fma(sg, ga[t], sgk * go))
 *   ga[t-1] = fma((1 - s) * (k * beta), gh[t+1], fma(gh[t], -k, ga[t] * rho))
 * (gh[T] = ga[T-1] = 0); the parameter gradients summed over time per element (in another order than PyTorch's
 * chunked sums: equal to float32 rounding) */
INLINE void abwd_block(const abwd_args *a, float *restrict hs, float *restrict as, int64_t b0, int64_t n,
                       const int zero_reset, const int kind, const int params) {
    float gh[ABWD_BLOCK], ga[ABWD_BLOCK], after[ABWD_BLOCK], gs_row[ABWD_BLOCK], gs_kept[ABWD_BLOCK];
    float v[ABWD_BLOCK], tr[ABWD_BLOCK], gb[ABWD_BLOCK], gt[ABWD_BLOCK], gr[ABWD_BLOCK], gk[ABWD_BLOCK];
    const float *restrict beta = a->beta + b0, *restrict thr = a->thr + b0;
    const float *restrict rho = a->rho + b0, *restrict kk = a->k + b0;
    /* max_spikes and detach_reset as arithmetic, as the LIF's backward */
    const float cap = a->max_spikes >= 0 ? (float)a->max_spikes : INFINITY;
    const float keep = a->detach_reset ? 0.0f : 1.0f;
    const float p = (float)a->param, pp = (float)(-a->param * a->param);
    const float c0 = (float)(2.0 / a->param);
    const double kd = 1.5707963267948966 * a->param;
    const float c1 = (float)(kd * kd * 2.0 / a->param);
    memset(gh, 0, sizeof(float) * n);
    memset(ga, 0, sizeof(float) * n);
    for (int64_t i = 0; i < n; ++i) gs_row[i] = a->gs_const;
    if (a->max_spikes >= 0) memcpy(after, a->total + b0, sizeof(float) * n);
    else memset(after, 0, sizeof(float) * n);
    if (params) {
        memset(gb, 0, sizeof(float) * n);
        memset(gt, 0, sizeof(float) * n);
        memset(gr, 0, sizeof(float) * n);
        memset(gk, 0, sizeof(float) * n);
    }
    for (int64_t t0 = (a->T - 1) / CHUNK * CHUNK; t0 >= 0; t0 -= CHUNK) {
        /* the forward again over [t0, t1) from the checkpoint and the saved spikes: the same h and a[t-1] */
        const int64_t t1 = t0 + CHUNK < a->T ? t0 + CHUNK : a->T;
        memcpy(v, a->ck_v + (t0 / CHUNK) * a->M + b0, sizeof(float) * n);
        memcpy(tr, a->ck_a + (t0 / CHUNK) * a->M + b0, sizeof(float) * n);
        for (int64_t t = t0; t < t1; ++t) {
            const float *restrict x = a->x + t * a->M + b0;
            const float *restrict s = a->s + t * a->M + b0;
            float *restrict hrow = hs + (t - t0) * ABWD_BLOCK, *restrict arow = as + (t - t0) * ABWD_BLOCK;
            for (int64_t i = 0; i < n; ++i) {
                float hi = fmaf(v[i], beta[i], x[i]);
                float ti = kk[i] * tr[i] + thr[i];
                hrow[i] = hi;
                arow[i] = tr[i];
                v[i] = zero_reset ? hi + (-hi) * s[i] : hi + s[i] * (-ti);
                tr[i] = fmaf(tr[i], rho[i], s[i]);
            }
        }
        for (int64_t t = t1 - 1; t >= t0; --t) {
            const float *restrict h = hs + (t - t0) * ABWD_BLOCK, *restrict ap = as + (t - t0) * ABWD_BLOCK;
            const float *restrict s = a->s + t * a->M + b0;
            const float *restrict gs = a->gs ? a->gs + t * a->M + b0 : gs_row;
            if (a->mask_p > 0.0f) { /* keep is 0 or 1: sg * (go * keep) is PyTorch's (sg * keep) * go */
                apply_keep(gs_kept, gs, n, (uint32_t)(t * a->M + b0), a->mask_key, a->mask_p);
                gs = gs_kept;
            }
            float *restrict gx = a->gx + t * a->M + b0;
            for (int64_t i = 0; i < n; ++i) {
                const float hi = h[i], ai = ap[i], si = s[i], bi = beta[i], ki = kk[i];
                const float ti = ki * ai + thr[i]; /* as the forward */
                float sg = surrogate(kind, hi - ti, p, c0, c1, pp);
                after[i] = after[i] - si; /* spikes fired before t */
                sg = sg * (after[i] < cap ? 1.0f : 0.0f);
                float bc;
                if (zero_reset) bc = ((-(hi * sg * keep + si)) + 1.0f) * bi; /* beta ((1 - s) - h sg) */
                else bc = sg * ((-bi) * ti) * keep + bi;                     /* beta - beta theta sg */
                const float g_next = gh[i], ga_t = ga[i];
                const float g = fmaf(g_next, bc, fmaf(sg, ga_t, sg * gs[i]));
                if (params) {
                    const float gth = fmaf((1.0f - si) * bi, g_next, -g); /* dL/dtheta[t] */
                    const float vt = zero_reset ? hi * (1.0f - si) : hi - ti * si;
                    gb[i] += g_next * vt;
                    gt[i] += gth;
                    gk[i] += gth * ai;
                    gr[i] += ga_t * ai;
                }
                ga[i] = fmaf((1.0f - si) * (ki * bi), g_next, fmaf(g, -ki, ga_t * rho[i]));
                gh[i] = g;
                gx[i] = g;
            }
        }
    }
    if (params) {
        if (a->g_beta) memcpy(a->g_beta + b0, gb, sizeof(float) * n);
        if (a->g_thr) memcpy(a->g_thr + b0, gt, sizeof(float) * n);
        if (a->g_rho) memcpy(a->g_rho + b0, gr, sizeof(float) * n);
        if (a->g_k) memcpy(a->g_k + b0, gk, sizeof(float) * n);
    }
}

#define ABWD_KIND(ZR, PAR)                                                                                           \
    switch (a->surrogate) {                                                                                          \
    case SG_ATAN: abwd_block(a, hs, as, b0, n, ZR, SG_ATAN, PAR); break;                                             \
    case SG_FAST_SIGMOID: abwd_block(a, hs, as, b0, n, ZR, SG_FAST_SIGMOID, PAR); break;                             \
    case SG_TRIANGLE: abwd_block(a, hs, as, b0, n, ZR, SG_TRIANGLE, PAR); break;                                     \
    case SG_SIGMOID: abwd_block(a, hs, as, b0, n, ZR, SG_SIGMOID, PAR); break;                                       \
    case SG_GAUSSIAN: abwd_block(a, hs, as, b0, n, ZR, SG_GAUSSIAN, PAR); break;                                      \
    default: abwd_block(a, hs, as, b0, n, ZR, SG_LOGISTIC, PAR); break;                                              \
    }

static void *abwd_range(void *p) {
    const abwd_args *a = (const abwd_args *)p;
    float hs[CHUNK * ABWD_BLOCK], as[CHUNK * ABWD_BLOCK]; /* membrane and trace of one chunk, recomputed */
    const int params = a->g_beta || a->g_thr || a->g_rho || a->g_k;
    for (int64_t b0 = a->r.m0; b0 < a->r.m1; b0 += ABWD_BLOCK) {
        int64_t n = a->r.m1 - b0 < ABWD_BLOCK ? a->r.m1 - b0 : ABWD_BLOCK;
        switch (a->zero_reset | (params << 1)) {
        case 0: ABWD_KIND(0, 0) break;
        case 1: ABWD_KIND(1, 0) break;
        case 2: ABWD_KIND(0, 1) break;
        default: ABWD_KIND(1, 1) break;
        }
    }
    return NULL;
}

int snnlab_alif_forward(const float *x, const float *beta, const float *thr, const float *rho, const float *k,
                        float *h, float *theta, float *s, float *out, float *ck_v, float *ck_a, float *counts,
                        int64_t T, int64_t M, int full_membrane, int zero_reset, int max_spikes, int noise,
                        double noise_div, uint32_t key, float mask_p, uint32_t mask_key, int threads) {
    afwd_args a[MAX_THREADS];
    int n = clamp_threads(threads);
    for (int i = 0; i < n; ++i)
        a[i] = (afwd_args){{0, 0}, x, beta, thr, rho, k, h, theta, s, out, ck_v, ck_a, counts, T, M, full_membrane,
                           zero_reset, max_spikes, noise, noise_div, key, mask_p, mask_key};
    return run_split(afwd_range, a, sizeof(afwd_args), M, n);
}

int snnlab_alif_backward(const float *x, const float *s, const float *ck_v, const float *ck_a, const float *gs,
                         double gs_const, const float *beta, const float *thr, const float *rho, const float *k,
                         const float *total, float *gx, float *g_beta, float *g_thr, float *g_rho, float *g_k,
                         int64_t T, int64_t M, int zero_reset, int detach_reset, int max_spikes, int surrogate_kind,
                         double param, float mask_p, uint32_t mask_key, int threads) {
    abwd_args a[MAX_THREADS];
    int n = clamp_threads(threads);
    for (int i = 0; i < n; ++i)
        a[i] = (abwd_args){{0, 0}, x, s, ck_v, ck_a, gs, beta, thr, rho, k, total, (float)gs_const, gx, g_beta,
                           g_thr, g_rho, g_k, T, M, zero_reset, detach_reset, max_spikes, surrogate_kind, param,
                           mask_p, mask_key};
    return run_split(abwd_range, a, sizeof(abwd_args), M, n);
}
