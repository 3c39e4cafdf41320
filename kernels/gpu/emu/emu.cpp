/* emu.cpp - the GPU emulator's runtime (see emu.h): device memory as host
 * memory, and kernel launches run block by block with one fiber per GPU
 * thread.
 *
 * Scheduling: the launching host thread runs a block's fibers round-robin;
 * a fiber runs until it arrives at a barrier (block, warp, or the warp
 * barrier inside a shuffle) or returns. A barrier releases when all live
 * threads of its scope have arrived (threads that returned are not waited
 * for, as on NVIDIA hardware). A round in which no fiber arrives, leaves or
 * releases a barrier is a deadlock: the launch fails with an error.
 * Shuffles exchange values through double-buffered per-warp slots with one
 * warp barrier each: a lane can only overwrite a buffer after the next
 * barrier, by which time every lane has read it.
 * Context switches: a few instructions of assembly on x86-64 (callee-saved
 * registers and the stack pointer), ucontext elsewhere. Stacks come from
 * mmap with a guard page below each. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../compat.h"

#if defined(__x86_64__)
#define EMU_ASM_SWITCH 1
#else
#include <ucontext.h>
#endif

thread_local dim3 threadIdx, blockIdx, blockDim, gridDim;

namespace pgd_emu_rt {

enum { MAX_THREADS = 1024, MAX_WARPS = MAX_THREADS / 32, STACK_BYTES = 256 << 10,
       MAX_SMEM = 48 << 10, ERR_DEADLOCK = 719 };

struct barrier;

struct fiber {
#if EMU_ASM_SWITCH
    void *sp;
#else
    ucontext_t ctx;
#endif
    char *stack; /* STACK_BYTES above a guard page */
    int finished;
    int parity;  /* shuffle buffer of this thread's next shuffle */
    const struct barrier *wait_b; /* the barrier it waits at (NULL: runnable) */
    unsigned wait_gen;            /* ... until its generation moves on */
};

struct barrier {
    int live, arrived;
    unsigned gen;
};

struct state {
    fiber fib[MAX_THREADS];
    int n, cur;
#if EMU_ASM_SWITCH
    void *sched_sp;
#else
    ucontext_t sched_ctx;
#endif
    const std::function<void()> *fn;
    barrier blk, warp[MAX_WARPS];
    unsigned long progress;
    uint64_t slots[MAX_WARPS][2][32];
    char *smem;
    size_t smem_cap;
    gpuError_t last_error;
};

static thread_local state *S;

#if EMU_ASM_SWITCH
/* pgd_emu_switch(&save_sp, next_sp): push the callee-saved registers, save
 * the stack pointer, load the other one, pop its registers, return into it. */
extern "C" void pgd_emu_switch(void **save_sp, void *next_sp);
__asm__(".text\n"
        ".globl pgd_emu_switch\n"
        ".type pgd_emu_switch,@function\n"
        "pgd_emu_switch:\n"
        "  pushq %rbp\n  pushq %rbx\n  pushq %r12\n  pushq %r13\n  pushq %r14\n  pushq %r15\n"
        "  movq %rsp, (%rdi)\n"
        "  movq %rsi, %rsp\n"
        "  popq %r15\n  popq %r14\n  popq %r13\n  popq %r12\n  popq %rbx\n  popq %rbp\n"
        "  ret\n"
        ".size pgd_emu_switch, .-pgd_emu_switch\n"
        ".section .note.GNU-stack,\"\",@progbits\n"
        ".text\n");
#endif

static void to_scheduler(void) {
#if EMU_ASM_SWITCH
    pgd_emu_switch(&S->fib[S->cur].sp, S->sched_sp);
#else
    swapcontext(&S->fib[S->cur].ctx, &S->sched_ctx);
#endif
}

static void release_if_complete(barrier *b) {
    if (b->arrived > 0 && b->arrived >= b->live) {
        b->arrived = 0;
        b->gen++;
        S->progress++;
    }
}

static void wait_at(barrier *b) {
    const unsigned gen = b->gen;
    b->arrived++;
    S->progress++;
    release_if_complete(b);
    fiber *f = &S->fib[S->cur];
    f->wait_b = b;
    f->wait_gen = gen;
    while (b->gen == gen) to_scheduler(); /* the scheduler skips us until then */
    f->wait_b = NULL;
}

static int cur_warp(void) { return S->cur / 32; }

void sync_block(void) { wait_at(&S->blk); }
void sync_warp(void) { wait_at(&S->warp[cur_warp()]); }
void *dyn_smem(void) { return S->smem; }

void *shfl_slot(int lane, int *buf) {
    fiber *f = &S->fib[S->cur];
    *buf = f->parity;
    f->parity ^= 1;
    return &S->slots[cur_warp()][*buf][lane];
}
void *shfl_peer(int lane, int buf) { return &S->slots[cur_warp()][buf][lane]; }

/* First frame of every fiber: run the kernel for this thread, leave. */
static void fiber_main(void) {
    (*S->fn)();
    fiber *f = &S->fib[S->cur];
    f->finished = 1;
    S->blk.live--;
    S->warp[S->cur / 32].live--;
    S->progress++;
    release_if_complete(&S->blk);
    release_if_complete(&S->warp[S->cur / 32]);
    to_scheduler();
    abort(); /* a finished fiber is never resumed */
}

static state *get_state(void) {
    if (S) return S;
    S = (state *)calloc(1, sizeof(state));
    if (!S) {
        fprintf(stderr, "gpu emulator: out of memory\n");
        abort();
    }
    return S;
}

static char *fiber_stack(fiber *f) {
    if (!f->stack) {
        long page = sysconf(_SC_PAGESIZE);
        char *m = (char *)mmap(NULL, STACK_BYTES + page, PROT_READ | PROT_WRITE,
                               MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (m == MAP_FAILED) {
            fprintf(stderr, "gpu emulator: cannot map a fiber stack\n");
            abort();
        }
        mprotect(m, page, PROT_NONE); /* guard page: overflow faults */
        f->stack = m + page;
    }
    return f->stack;
}

static void start_fiber(fiber *f) {
    char *stack = fiber_stack(f);
    f->finished = 0;
    f->parity = 0;
    f->wait_b = NULL;
#if EMU_ASM_SWITCH
    /* top: [fake return address][fiber_main][6 zeroed callee-saved registers] */
    uintptr_t top = ((uintptr_t)(stack + STACK_BYTES)) & ~(uintptr_t)15;
    void **sp = (void **)top;
    *--sp = NULL;                    /* fiber_main is entered with rsp = 8 mod 16 */
    *--sp = (void *)&fiber_main;     /* popped by pgd_emu_switch's ret */
    for (int i = 0; i < 6; i++) *--sp = NULL;
    f->sp = sp;
#else
    getcontext(&f->ctx);
    f->ctx.uc_stack.ss_sp = stack;
    f->ctx.uc_stack.ss_size = STACK_BYTES;
    f->ctx.uc_link = NULL;
    makecontext(&f->ctx, fiber_main, 0);
#endif
}

static gpuError_t run_block(int n) {
    state *s = S;
    s->n = n;
    s->blk = barrier{n, 0, 0};
    for (int w = 0; w < (n + 31) / 32; w++) s->warp[w] = barrier{n - 32 * w < 32 ? n - 32 * w : 32, 0, 0};
    for (int i = 0; i < n; i++) start_fiber(&s->fib[i]);
    for (;;) {
        unsigned long before = s->progress;
        int live = 0;
        for (int i = 0; i < n; i++) {
            fiber *f = &s->fib[i];
            if (f->finished) continue;
            live++;
            if (f->wait_b && f->wait_b->gen == f->wait_gen) continue; /* still blocked */
            s->cur = i;
            threadIdx = dim3(i % blockDim.x, (i / blockDim.x) % blockDim.y, i / (blockDim.x * blockDim.y));
#if EMU_ASM_SWITCH
            pgd_emu_switch(&s->sched_sp, f->sp);
#else
            swapcontext(&s->sched_ctx, &f->ctx);
#endif
        }
        if (!live) return gpuSuccess;
        if (s->progress == before) {
            fprintf(stderr, "gpu emulator: deadlock in block (%u, %u, %u): threads wait at "
                            "barriers that can never release\n", blockIdx.x, blockIdx.y, blockIdx.z);
            return ERR_DEADLOCK; /* the stuck fibers are abandoned; their stacks are reused */
        }
    }
}

gpuError_t launch(dim3 grid, dim3 block, size_t smem, const std::function<void()> &fn) {
    state *s = get_state();
    const unsigned long n = (unsigned long)block.x * block.y * block.z;
    if (n == 0 || n > MAX_THREADS || grid.x == 0 || grid.y == 0 || grid.z == 0 ||
        grid.x > 0x7fffffffu || grid.y > 65535 || grid.z > 65535 || smem > MAX_SMEM) {
        fprintf(stderr, "gpu emulator: invalid launch: grid (%u, %u, %u), block (%u, %u, %u), %zu bytes "
                        "of shared memory\n", grid.x, grid.y, grid.z, block.x, block.y, block.z, smem);
        return s->last_error = gpuErrorInvalidConfiguration;
    }
    if (smem > s->smem_cap || !s->smem) {
        free(s->smem);
        s->smem_cap = smem > 256 ? smem : 256;
        s->smem = (char *)aligned_alloc(64, (s->smem_cap + 63) & ~(size_t)63);
    }
    memset(s->smem, 0xff, s->smem_cap); /* uninitialised shared memory reads as NaN */
    s->fn = &fn;
    blockDim = block;
    gridDim = grid;
    for (unsigned z = 0; z < grid.z; z++)
        for (unsigned y = 0; y < grid.y; y++)
            for (unsigned x = 0; x < grid.x; x++) {
                blockIdx = dim3(x, y, z);
                gpuError_t e = run_block((int)n);
                if (e != gpuSuccess) return s->last_error = e;
            }
    return gpuSuccess;
}

} /* namespace pgd_emu_rt */

/* ---- runtime API ---- */

using pgd_emu_rt::get_state;

const char *gpuGetErrorString(gpuError_t e) {
    switch (e) {
    case gpuSuccess: return "no error";
    case gpuErrorInvalidValue: return "invalid argument";
    case gpuErrorMemoryAllocation: return "out of memory";
    case gpuErrorInvalidConfiguration: return "invalid launch configuration";
    case pgd_emu_rt::ERR_DEADLOCK: return "emulated kernel deadlocked at a barrier";
    default: return "unknown emulator error";
    }
}
gpuError_t gpuGetLastError(void) {
    gpuError_t e = get_state()->last_error;
    get_state()->last_error = gpuSuccess;
    return e;
}
gpuError_t gpuGetDeviceCount(int *n) {
    *n = 1;
    return gpuSuccess;
}
gpuError_t gpuSetDevice(int d) { return d == 0 ? gpuSuccess : gpuErrorInvalidValue; }
gpuError_t gpuGetDeviceProperties(gpuDeviceProp *p, int d) {
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "GPU emulator on the host CPU");
    p->multiProcessorCount = 4;
    p->totalGlobalMem = (size_t)sysconf(_SC_PHYS_PAGES) * (size_t)sysconf(_SC_PAGESIZE);
    return d == 0 ? gpuSuccess : gpuErrorInvalidValue;
}
gpuError_t gpuMemGetInfo(size_t *free_bytes, size_t *total) {
    *total = (size_t)sysconf(_SC_PHYS_PAGES) * (size_t)sysconf(_SC_PAGESIZE);
    *free_bytes = (size_t)sysconf(_SC_AVPHYS_PAGES) * (size_t)sysconf(_SC_PAGESIZE);
    return gpuSuccess;
}
gpuError_t gpuMalloc(void **p, size_t n) {
    *p = aligned_alloc(256, (n + 255) & ~(size_t)255);
    if (!*p) return get_state()->last_error = gpuErrorMemoryAllocation;
    memset(*p, 0xff, n); /* device memory starts as garbage: NaN if read unwritten */
    return gpuSuccess;
}
gpuError_t gpuFree(void *p) {
    free(p);
    return gpuSuccess;
}
gpuError_t gpuHostAlloc(void **p, size_t n) { return gpuMalloc(p, n); }
gpuError_t gpuFreeHost(void *p) { return gpuFree(p); }
gpuError_t gpuMemcpyAsync(void *dst, const void *src, size_t n, int kind, gpuStream_t s) {
    memmove(dst, src, n);
    return gpuSuccess;
}
gpuError_t gpuMemcpy(void *dst, const void *src, size_t n, int kind) {
    memmove(dst, src, n);
    return gpuSuccess;
}
gpuError_t gpuMemsetAsync(void *dst, int v, size_t n, gpuStream_t s) {
    memset(dst, v, n);
    return gpuSuccess;
}
gpuError_t gpuStreamCreateNonBlocking(gpuStream_t *s) {
    *s = (void *)get_state();
    return gpuSuccess;
}
gpuError_t gpuStreamDestroy(gpuStream_t s) { return gpuSuccess; }
gpuError_t gpuStreamSynchronize(gpuStream_t s) { return gpuSuccess; }
gpuError_t gpuDeviceSynchronize(void) { return gpuSuccess; }
gpuError_t gpuRuntimeGetVersion(int *v) {
    *v = 0;
    return gpuSuccess;
}
gpuError_t gpuDriverGetVersion(int *v) {
    *v = 0;
    return gpuSuccess;
}

/* ---- no vendor BLAS: the backend uses the own GEMM kernel ---- */

#include "gpu_blas.h"

namespace PGD_GPU_NS {
struct blas {
    int unused;
};
int blas_create(gpuStream_t stream, blas **out, char *msg, size_t msg_size) {
    *out = NULL;
    snprintf(msg, msg_size, "no BLAS in the emulator");
    return -1;
}
void blas_destroy(blas *b) {}
const char *blas_describe(const blas *b) { return "none"; }
int blas_gemm(blas *b, float *y, const void *x, const void *w, pgd_dtype dt, int n, int in, int out,
              char *msg, size_t msg_size) {
    snprintf(msg, msg_size, "no BLAS in the emulator");
    return -1;
}
} /* namespace PGD_GPU_NS */
