/* MD5 of up to 16 independent messages at once, one message per SIMD lane (RFC 1321).
 *
 * A single MD5 stream cannot go faster than its chain of dependent steps (about 5 CPU cycles
 * per byte), and an S3 endpoint must compute one for every part it receives (the ETag). Parts
 * of concurrent uploads are independent messages, so 16 of them fit in the lanes of one set of
 * 512-bit vectors (or two or four narrower ones) for the cost of one: the same technique as
 * Intel's ISA-L multi-buffer hashes and MinIO's md5-simd, neither of which has a Python
 * binding. storage/md5.py feeds it from every upload of the process and falls back to
 * hashlib where this library is not built.
 *
 * Built by storage/native/build.py into libmd5lanes.so; called through ctypes (which releases
 * the GIL for the call). GCC's target_clones picks the AVX-512, AVX2 or baseline build of the
 * lane kernel when the library is loaded.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define LANES 16

#define F(b, c, d) ((d) ^ ((b) & ((c) ^ (d))))
#define G(b, c, d) ((c) ^ ((d) & ((b) ^ (c))))
#define H(b, c, d) ((b) ^ (c) ^ (d))
#define I(b, c, d) ((c) ^ ((b) | ~(d)))
#define ROTL(x, s) (((x) << (s)) | ((x) >> (32 - (s))))
/* (a + k + w) does not wait for b, c and d: only f, one add, the rotate and one add do. */
#define STEP(f, a, b, c, d, k, s, w) (a) = (b) + ROTL(f((b), (c), (d)) + ((a) + (k) + (w)), (s))

/* The 64 steps over state words a, b, c, d and message words m[0..15], of any type. */
#define ROUNDS \
    STEP(F, a, b, c, d, 0xd76aa478u,  7, m[ 0]); \
    STEP(F, d, a, b, c, 0xe8c7b756u, 12, m[ 1]); \
    STEP(F, c, d, a, b, 0x242070dbu, 17, m[ 2]); \
    STEP(F, b, c, d, a, 0xc1bdceeeu, 22, m[ 3]); \
    STEP(F, a, b, c, d, 0xf57c0fafu,  7, m[ 4]); \
    STEP(F, d, a, b, c, 0x4787c62au, 12, m[ 5]); \
    STEP(F, c, d, a, b, 0xa8304613u, 17, m[ 6]); \
    STEP(F, b, c, d, a, 0xfd469501u, 22, m[ 7]); \
    STEP(F, a, b, c, d, 0x698098d8u,  7, m[ 8]); \
    STEP(F, d, a, b, c, 0x8b44f7afu, 12, m[ 9]); \
    STEP(F, c, d, a, b, 0xffff5bb1u, 17, m[10]); \
    STEP(F, b, c, d, a, 0x895cd7beu, 22, m[11]); \
    STEP(F, a, b, c, d, 0x6b901122u,  7, m[12]); \
    STEP(F, d, a, b, c, 0xfd987193u, 12, m[13]); \
    STEP(F, c, d, a, b, 0xa679438eu, 17, m[14]); \
    STEP(F, b, c, d, a, 0x49b40821u, 22, m[15]); \
    STEP(G, a, b, c, d, 0xf61e2562u,  5, m[ 1]); \
    STEP(G, d, a, b, c, 0xc040b340u,  9, m[ 6]); \
    STEP(G, c, d, a, b, 0x265e5a51u, 14, m[11]); \
    STEP(G, b, c, d, a, 0xe9b6c7aau, 20, m[ 0]); \
    STEP(G, a, b, c, d, 0xd62f105du,  5, m[ 5]); \
    STEP(G, d, a, b, c, 0x02441453u,  9, m[10]); \
    STEP(G, c, d, a, b, 0xd8a1e681u, 14, m[15]); \
    STEP(G, b, c, d, a, 0xe7d3fbc8u, 20, m[ 4]); \
    STEP(G, a, b, c, d, 0x21e1cde6u,  5, m[ 9]); \
    STEP(G, d, a, b, c, 0xc33707d6u,  9, m[14]); \
    STEP(G, c, d, a, b, 0xf4d50d87u, 14, m[ 3]); \
    STEP(G, b, c, d, a, 0x455a14edu, 20, m[ 8]); \
    STEP(G, a, b, c, d, 0xa9e3e905u,  5, m[13]); \
    STEP(G, d, a, b, c, 0xfcefa3f8u,  9, m[ 2]); \
    STEP(G, c, d, a, b, 0x676f02d9u, 14, m[ 7]); \
    STEP(G, b, c, d, a, 0x8d2a4c8au, 20, m[12]); \
    STEP(H, a, b, c, d, 0xfffa3942u,  4, m[ 5]); \
    STEP(H, d, a, b, c, 0x8771f681u, 11, m[ 8]); \
    STEP(H, c, d, a, b, 0x6d9d6122u, 16, m[11]); \
    STEP(H, b, c, d, a, 0xfde5380cu, 23, m[14]); \
    STEP(H, a, b, c, d, 0xa4beea44u,  4, m[ 1]); \
    STEP(H, d, a, b, c, 0x4bdecfa9u, 11, m[ 4]); \
    STEP(H, c, d, a, b, 0xf6bb4b60u, 16, m[ 7]); \
    STEP(H, b, c, d, a, 0xbebfbc70u, 23, m[10]); \
    STEP(H, a, b, c, d, 0x289b7ec6u,  4, m[13]); \
    STEP(H, d, a, b, c, 0xeaa127fau, 11, m[ 0]); \
    STEP(H, c, d, a, b, 0xd4ef3085u, 16, m[ 3]); \
    STEP(H, b, c, d, a, 0x04881d05u, 23, m[ 6]); \
    STEP(H, a, b, c, d, 0xd9d4d039u,  4, m[ 9]); \
    STEP(H, d, a, b, c, 0xe6db99e5u, 11, m[12]); \
    STEP(H, c, d, a, b, 0x1fa27cf8u, 16, m[15]); \
    STEP(H, b, c, d, a, 0xc4ac5665u, 23, m[ 2]); \
    STEP(I, a, b, c, d, 0xf4292244u,  6, m[ 0]); \
    STEP(I, d, a, b, c, 0x432aff97u, 10, m[ 7]); \
    STEP(I, c, d, a, b, 0xab9423a7u, 15, m[14]); \
    STEP(I, b, c, d, a, 0xfc93a039u, 21, m[ 5]); \
    STEP(I, a, b, c, d, 0x655b59c3u,  6, m[12]); \
    STEP(I, d, a, b, c, 0x8f0ccc92u, 10, m[ 3]); \
    STEP(I, c, d, a, b, 0xffeff47du, 15, m[10]); \
    STEP(I, b, c, d, a, 0x85845dd1u, 21, m[ 1]); \
    STEP(I, a, b, c, d, 0x6fa87e4fu,  6, m[ 8]); \
    STEP(I, d, a, b, c, 0xfe2ce6e0u, 10, m[15]); \
    STEP(I, c, d, a, b, 0xa3014314u, 15, m[ 6]); \
    STEP(I, b, c, d, a, 0x4e0811a1u, 21, m[13]); \
    STEP(I, a, b, c, d, 0xf7537e82u,  6, m[ 4]); \
    STEP(I, d, a, b, c, 0xbd3af235u, 10, m[11]); \
    STEP(I, c, d, a, b, 0x2ad7d2bbu, 15, m[ 2]); \
    STEP(I, b, c, d, a, 0xeb86d391u, 21, m[ 9]);

typedef uint32_t lanes_t __attribute__((vector_size(4 * LANES)));

static inline uint32_t load_le32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* `blocks` 64-byte blocks of one message from `data` into state[0..3]. */
static void md5_one(uint32_t *state, const uint8_t *data, size_t blocks) {
    uint32_t a0 = state[0], b0 = state[1], c0 = state[2], d0 = state[3];
    for (size_t n = 0; n < blocks; n++, data += 64) {
        uint32_t m[16];
        for (int w = 0; w < 16; w++) m[w] = load_le32(data + 4 * w);
        uint32_t a = a0, b = b0, c = c0, d = d0;
        ROUNDS;
        a0 += a, b0 += b, c0 += c, d0 += d;
    }
    state[0] = a0, state[1] = b0, state[2] = c0, state[3] = d0;
}

/* Lane l's state is state[4l..4l+3]. These three are inlined into each build of each kernel. */
__attribute__((always_inline)) static inline void lanes_load(const uint32_t *state, lanes_t *a, lanes_t *b,
                                                             lanes_t *c, lanes_t *d) {
    for (int l = 0; l < LANES; l++)
        (*a)[l] = state[4 * l], (*b)[l] = state[4 * l + 1], (*c)[l] = state[4 * l + 2], (*d)[l] = state[4 * l + 3];
}

__attribute__((always_inline)) static inline void lanes_store(uint32_t *state, const lanes_t *a, const lanes_t *b,
                                                              const lanes_t *c, const lanes_t *d) {
    for (int l = 0; l < LANES; l++)
        state[4 * l] = (*a)[l], state[4 * l + 1] = (*b)[l], state[4 * l + 2] = (*c)[l], state[4 * l + 3] = (*d)[l];
}

/* One block of every lane; the 64 bytes at `words` + 64w hold message word w of each lane. */
__attribute__((always_inline)) static inline void lanes_rounds(const void *words, lanes_t *a0, lanes_t *b0,
                                                               lanes_t *c0, lanes_t *d0) {
    lanes_t m[16];
    memcpy(m, words, sizeof m);
    lanes_t a = *a0, b = *b0, c = *c0, d = *d0;
    ROUNDS;
    *a0 += a, *b0 += b, *c0 += c, *d0 += d;
}

/* `blocks` blocks of each of LANES messages; lane l reads ptrs[l] and keeps state[4l..4l+3]. */
#if defined(__x86_64__)
__attribute__((target_clones("avx512f", "avx2", "default")))  /* x86 only; elsewhere one build */
#endif
static void md5_sixteen(uint32_t *state, const uint8_t *const *ptrs, size_t blocks) {
    lanes_t a0, b0, c0, d0;
    lanes_load(state, &a0, &b0, &c0, &d0);
    uint32_t words[16][LANES] __attribute__((aligned(64)));
    for (size_t n = 0; n < blocks; n++) {
        /* Word w of every lane's block side by side: the transpose goes through memory. */
        for (int l = 0; l < LANES; l++) {
            const uint8_t *block = ptrs[l] + 64 * n;
            for (int w = 0; w < 16; w++) words[w][l] = load_le32(block + 4 * w);
        }
        lanes_rounds(words, &a0, &b0, &c0, &d0);
    }
    lanes_store(state, &a0, &b0, &c0, &d0);
}

#if defined(__x86_64__)
#include <immintrin.h>

/* md5_sixteen for AVX-512: each lane's block is one load, and the 16 x 16 words are turned
 * into 16 vectors of one word each in registers (four rounds of shuffles), not through memory;
 * a 16-lane block then costs about what one block of scalar MD5 does. */
__attribute__((target("avx512f")))
static void transpose(__m512i m[16], const uint8_t *const *ptrs, size_t offset) {
    __m512i r[16], t[16], u[16];
    for (int l = 0; l < 16; l++) r[l] = _mm512_loadu_si512((const void *)(ptrs[l] + offset));
    for (int i = 0; i < 8; i++) {  /* 32-bit pairs of lanes 2i, 2i+1 */
        t[2 * i] = _mm512_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
    }
    for (int i = 0; i < 4; i++) {  /* u[4i+j]: word 4k+j of lanes 4i..4i+3 in 128-bit lane k */
        u[4 * i] = _mm512_unpacklo_epi64(t[4 * i], t[4 * i + 2]);
        u[4 * i + 1] = _mm512_unpackhi_epi64(t[4 * i], t[4 * i + 2]);
        u[4 * i + 2] = _mm512_unpacklo_epi64(t[4 * i + 1], t[4 * i + 3]);
        u[4 * i + 3] = _mm512_unpackhi_epi64(t[4 * i + 1], t[4 * i + 3]);
    }
    for (int j = 0; j < 4; j++) {  /* a 4 x 4 transpose of 128-bit lanes */
        __m512i v0 = _mm512_shuffle_i32x4(u[j], u[4 + j], 0x44);
        __m512i v1 = _mm512_shuffle_i32x4(u[j], u[4 + j], 0xEE);
        __m512i v2 = _mm512_shuffle_i32x4(u[8 + j], u[12 + j], 0x44);
        __m512i v3 = _mm512_shuffle_i32x4(u[8 + j], u[12 + j], 0xEE);
        m[j] = _mm512_shuffle_i32x4(v0, v2, 0x88);
        m[4 + j] = _mm512_shuffle_i32x4(v0, v2, 0xDD);
        m[8 + j] = _mm512_shuffle_i32x4(v1, v3, 0x88);
        m[12 + j] = _mm512_shuffle_i32x4(v1, v3, 0xDD);
    }
}

__attribute__((target("avx512f")))
static void md5_sixteen_avx512(uint32_t *state, const uint8_t *const *ptrs, size_t blocks) {
    lanes_t a0, b0, c0, d0;
    lanes_load(state, &a0, &b0, &c0, &d0);
    for (size_t n = 0; n < blocks; n++) {
        __m512i words[16];
        transpose(words, ptrs, 64 * n);
        lanes_rounds(words, &a0, &b0, &c0, &d0);
    }
    lanes_store(state, &a0, &b0, &c0, &d0);
}
#endif

/* How many messages md5_lanes takes at once. */
size_t md5_lanes_width(void) { return LANES; }

static int run_lanes(uint32_t *state, const uint8_t *const *ptrs, size_t lanes, size_t blocks, int avx512) {
    if (lanes == 0 || lanes > LANES) return -1;
    if (lanes == 1) {
        md5_one(state, ptrs[0], blocks);
        return 0;
    }
    uint32_t all[4 * LANES];
    const uint8_t *sources[LANES];
    for (size_t l = 0; l < LANES; l++) {
        size_t from = l < lanes ? l : 0;
        memcpy(&all[4 * l], &state[4 * from], 16);
        sources[l] = ptrs[from];
    }
#if defined(__x86_64__)
    if (avx512)
        md5_sixteen_avx512(all, sources, blocks);
    else
#endif
        md5_sixteen(all, sources, blocks);
    (void)avx512;
    memcpy(state, all, 16 * lanes);
    return 0;
}

/* `blocks` 64-byte blocks of each of `lanes` messages (1..LANES): message i starts at ptrs[i]
 * (which must hold 64 * blocks readable bytes) and its MD5 state is state[4i..4i+3]. One
 * message runs the scalar code; more share the lanes, idle lanes re-reading message 0.
 * Returns -1 (and does nothing) for a lane count out of range. */
int md5_lanes(uint32_t *state, const uint8_t *const *ptrs, size_t lanes, size_t blocks) {
#if defined(__x86_64__)
    return run_lanes(state, ptrs, lanes, blocks, __builtin_cpu_supports("avx512f"));
#else
    return run_lanes(state, ptrs, lanes, blocks, 0);
#endif
}

/* md5_lanes without the AVX-512 path: what CPUs without AVX-512 run, for the tests. */
int md5_lanes_portable(uint32_t *state, const uint8_t *const *ptrs, size_t lanes, size_t blocks) {
    return run_lanes(state, ptrs, lanes, blocks, 0);
}
