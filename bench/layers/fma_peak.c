/* One core's fp32 peak: 12 independent chains of 512-bit fused
 * multiply-adds (enough to cover the FMA latency on two units).
 *   gcc -O3 -march=native -o /tmp/fma_peak bench/layers/fma_peak.c && /tmp/fma_peak */
#include <immintrin.h>
#include <stdio.h>
#include <time.h>

int main(void) {
    __m512 acc[12];
    for (int i = 0; i < 12; i++) acc[i] = _mm512_set1_ps(i * 0.001f);
    __m512 b = _mm512_set1_ps(0.9999f), c = _mm512_set1_ps(0.0001f);
    struct timespec s, e;
    long steps = 200000000;
    clock_gettime(CLOCK_MONOTONIC, &s);
    for (long k = 0; k < steps; k++)
        for (int i = 0; i < 12; i++) acc[i] = _mm512_fmadd_ps(acc[i], b, c);
    clock_gettime(CLOCK_MONOTONIC, &e);
    double t = (e.tv_sec - s.tv_sec) + (e.tv_nsec - s.tv_nsec) * 1e-9;
    float sum = 0;
    for (int i = 0; i < 12; i++) sum += _mm512_reduce_add_ps(acc[i]);
    printf("%.1f GFLOP/s (checksum %f)\n", steps * 12.0 * 32 / t / 1e9, sum);
    return 0;
}
