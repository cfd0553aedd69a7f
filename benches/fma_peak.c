// The CPU's peak f32 multiply-add rate on one core: 12 independent AVX2 FMA chains, kept in
// registers. Run one copy per core at once to see the rate with every core busy.
//   gcc -O2 -mavx2 -mfma benches/fma_peak.c -o /tmp/fma_peak && /tmp/fma_peak
#include <immintrin.h>
#include <stdio.h>
#include <time.h>

#define CHAINS(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11)

int main(void) {
#define DECLARE(i) __m256 a##i = _mm256_set1_ps(1.0f + i * 1e-7f);
    CHAINS(DECLARE)
    const __m256 b = _mm256_set1_ps(0.9999999f), c = _mm256_set1_ps(1e-8f);
    const long iterations = 200000000;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (long it = 0; it < iterations; it++) {
#define FMA(i) a##i = _mm256_fmadd_ps(a##i, b, c);
        CHAINS(FMA)
        // Keeps the chains in registers and the loop from being folded away.
        __asm__ volatile("" : "+x"(a0), "+x"(a1), "+x"(a2), "+x"(a3), "+x"(a4), "+x"(a5),
                         "+x"(a6), "+x"(a7), "+x"(a8), "+x"(a9), "+x"(a10), "+x"(a11));
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double seconds = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) * 1e-9;
    __m256 sum = a0;
#define ADD(i) sum = _mm256_add_ps(sum, a##i);
    CHAINS(ADD)
    float lanes[8];
    _mm256_storeu_ps(lanes, sum);
    // 12 chains × 8 lanes × 2 FLOPs per iteration.
    printf("f32 FMA peak: %.1f GFLOP/s on one core (checksum %g)\n",
           iterations * 12.0 * 16.0 / seconds / 1e9, lanes[0]);
    return 0;
}
