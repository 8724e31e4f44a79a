/* One core's fp32 peak, with 512-bit fused multiply-adds (AVX-512) and
 * with 256-bit ones (AVX2): 12 independent chains each, enough to cover the
 * FMA latency on two units. Both, because a core may clock lower under
 * AVX-512: on the Xeon of docs/performance.md, 200 GFLOP/s with AVX-512
 * and 112.7 with AVX2, not half of 200. Without AVX-512 only the second.
 *   gcc -O3 -march=native -o /tmp/fma_peak bench/layers/fma_peak.c && /tmp/fma_peak */
#include <immintrin.h>
#include <stdio.h>
#include <time.h>

static double seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

#ifdef __AVX512F__
static void avx512(long steps) {
    __m512 acc[12];
    for (int i = 0; i < 12; i++) acc[i] = _mm512_set1_ps(i * 0.001f);
    __m512 b = _mm512_set1_ps(0.9999f), c = _mm512_set1_ps(0.0001f);
    double s = seconds();
    for (long k = 0; k < steps; k++)
        for (int i = 0; i < 12; i++) acc[i] = _mm512_fmadd_ps(acc[i], b, c);
    double t = seconds() - s;
    float sum = 0;
    for (int i = 0; i < 12; i++) sum += _mm512_reduce_add_ps(acc[i]);
    printf("AVX-512: %.1f GFLOP/s (checksum %f)\n", steps * 12.0 * 32 / t / 1e9, sum);
}
#endif

static void avx2(long steps) {
    __m256 acc[12];
    for (int i = 0; i < 12; i++) acc[i] = _mm256_set1_ps(i * 0.001f);
    __m256 b = _mm256_set1_ps(0.9999f), c = _mm256_set1_ps(0.0001f);
    double s = seconds();
    for (long k = 0; k < steps; k++)
        for (int i = 0; i < 12; i++) acc[i] = _mm256_fmadd_ps(acc[i], b, c);
    double t = seconds() - s;
    float lanes[8], sum = 0;
    for (int i = 0; i < 12; i++) {
        _mm256_storeu_ps(lanes, acc[i]);
        for (int l = 0; l < 8; l++) sum += lanes[l];
    }
    printf("AVX2: %.1f GFLOP/s (checksum %f)\n", steps * 12.0 * 16 / t / 1e9, sum);
}

int main(void) {
#ifdef __AVX512F__
    avx512(200000000);
#endif
    avx2(200000000);
    return 0;
}
