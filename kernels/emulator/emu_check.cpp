// emu_check.cpp: the emulated GPU's shared memory and its checker (kernels/README.md).
//
// Every OS thread that runs blocks owns a shared-memory arena. `extern __shared__` arrays start
// at its beginning; each static `__shared__` declaration (rewritten by build.rs into an
// `emu_shared_site`) gets an offset after the dynamic bytes on first use in a launch. At the
// start of every block the used bytes are filled with 0xFF (NaN as f32 and f64, -1 as integers).
//
// Kernel sources are compiled with GCC's -fsanitize=thread instrumentation, which calls
// __tsan_readN / __tsan_writeN before every memory access; the definitions below (no TSan
// runtime is linked) ignore addresses outside the arena and keep, per 4-byte shared word, the
// last writer and last reader with their barrier interval. They report a read of a word no
// thread of the block has written, and a word written by one thread and read or written by
// another in the same barrier interval (for two lanes of one warp: with no __syncwarp() between).
#include "emu_check.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <atomic>
#include <mutex>
#include <vector>

namespace {

constexpr uint16_t kNobody = 0xffff;
constexpr size_t kWords = kSharedArenaBytes / 4;

struct Site {
    const char* name;
    size_t offset;
    size_t bytes;
};

// The running launch (launches are serialised by emu_runtime.cpp).
struct Launch {
    std::mutex lock;
    const char* kernel = "";
    std::atomic<uint32_t> epoch{0};
    size_t dynamic_bytes = 0;
    size_t static_end = 0;  // end of the static region (it starts at align16(dynamic_bytes))
    std::vector<Site> sites;
    std::atomic<bool> failed{false};
    char error[1024] = {0};
};
Launch g_launch;

// One shared word's history in the current block.
struct Shadow {
    uint32_t write_interval;
    uint32_t read_interval;
    uint32_t write_warp_epoch;
    uint32_t read_warp_epoch;
    uint16_t writer;
    uint16_t reader;
};

struct ThreadState {
    char* arena = nullptr;
    Shadow* shadow = nullptr;
    size_t filled = 0;          // bytes of the arena NaN-filled for this block
    uint32_t interval = 0;      // barrier intervals run by this OS thread, all blocks together
    uint32_t block_start = 0;   // the first interval of the current block
    uint32_t warp_epoch[32] = {0};
    unsigned thread = 0;
    unsigned block[3] = {0, 0, 0};
    unsigned bdim[3] = {1, 1, 1};
    char name_buf[3][48];
    unsigned name_next = 0;
};

thread_local ThreadState tl;
// The arena of the block this OS thread runs, and its length (0 outside blocks: no checks).
__attribute__((tls_model("initial-exec"))) thread_local uintptr_t tl_lo = 0;
__attribute__((tls_model("initial-exec"))) thread_local uintptr_t tl_len = 0;

size_t align_up(size_t v, size_t a) { return (v + a - 1) / a * a; }

void fill_to(size_t end) {
    if (end > tl.filled) {
        memset(tl.arena + tl.filled, 0xff, end - tl.filled);
        tl.filled = end;
    }
}

// "`name` (byte offset o)" for a shared byte offset, in a per-thread buffer.
void describe(size_t offset, char* out, size_t n) {
    if (offset < g_launch.dynamic_bytes) {
        snprintf(out, n, "dynamic shared memory (byte %zu)", offset);
        return;
    }
    std::lock_guard<std::mutex> guard(g_launch.lock);
    for (const Site& s : g_launch.sites) {
        if (offset >= s.offset && offset < s.offset + s.bytes) {
            snprintf(out, n, "`%s` (byte %zu of it)", s.name, offset - s.offset);
            return;
        }
    }
    snprintf(out, n, "shared byte offset %zu", offset);
}

bool ordered(uint16_t other, uint32_t other_warp_epoch) {
    return other / 32 == tl.thread / 32 && other_warp_epoch < tl.warp_epoch[tl.thread / 32];
}

void report(const char* what, size_t offset, uint16_t other, const char* other_did) {
    char where[160];
    describe(offset, where, sizeof where);
    const char* me = emu_check_thread_name(tl.thread);
    if (other == kNobody) {
        emu_check_fail("block (%u, %u, %u): thread %s %s %s", tl.block[0], tl.block[1],
                       tl.block[2], me, what, where);
    } else {
        emu_check_fail(
            "block (%u, %u, %u): shared-memory race on %s: thread %s %s it and thread %s %s it "
            "in the same barrier interval (a __syncthreads() or __syncwarp() is missing)",
            tl.block[0], tl.block[1], tl.block[2], where, emu_check_thread_name(other), other_did,
            me, what);
    }
    tl_len = 0;  // one report per launch is enough: stop checking on this OS thread
}

__attribute__((noinline)) void access_slow(uintptr_t offset, size_t n, bool write) {
    const uint16_t me = (uint16_t)tl.thread;
    const uint32_t iv = tl.interval;
    const uint32_t wep = tl.warp_epoch[me / 32];
    const size_t last = (offset + (n == 0 ? 1 : n) - 1) / 4;
    for (size_t w = offset / 4; w <= last && w < kWords; ++w) {
        Shadow& s = tl.shadow[w];
        const bool written_now = s.write_interval == iv && s.writer != me;
        if (write) {
            if (written_now && !ordered(s.writer, s.write_warp_epoch)) {
                return report("wrote", w * 4, s.writer, "wrote");
            }
            if (s.read_interval == iv && s.reader != me && !ordered(s.reader, s.read_warp_epoch)) {
                return report("wrote", w * 4, s.reader, "read");
            }
            s.write_interval = iv;
            s.writer = me;
            s.write_warp_epoch = wep;
        } else {
            if (s.write_interval < tl.block_start) {
                return report("read never-written shared memory:", w * 4, kNobody, "");
            }
            if (written_now && !ordered(s.writer, s.write_warp_epoch)) {
                return report("read", w * 4, s.writer, "wrote");
            }
            s.read_interval = iv;
            s.reader = me;
            s.read_warp_epoch = wep;
        }
    }
}

inline void access(const void* p, size_t n, bool write) {
    const uintptr_t offset = (uintptr_t)p - tl_lo;
    if (__builtin_expect(offset < tl_len, 0)) {
        access_slow(offset, n, write);
    }
}

}  // namespace

void emu_check_launch_begin(const char* kernel, size_t dynamic_bytes) {
    std::lock_guard<std::mutex> guard(g_launch.lock);
    g_launch.kernel = kernel;
    g_launch.epoch.fetch_add(1);
    g_launch.dynamic_bytes = dynamic_bytes;
    g_launch.static_end = align_up(dynamic_bytes, 16);
    g_launch.sites.clear();
    g_launch.failed.store(false);
    g_launch.error[0] = 0;
}

const char* emu_check_error() { return g_launch.error; }

bool emu_check_failed() { return g_launch.failed.load(); }

void emu_check_fail(const char* fmt, ...) {
    std::lock_guard<std::mutex> guard(g_launch.lock);
    if (g_launch.failed.exchange(true)) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g_launch.error, sizeof g_launch.error, fmt, ap);
    va_end(ap);
}

bool emu_check_block_begin(const unsigned block[3], const unsigned bdim[3]) {
    if (tl.arena == nullptr) {
        tl.arena = static_cast<char*>(malloc(kSharedArenaBytes));
        tl.shadow = static_cast<Shadow*>(calloc(kWords, sizeof(Shadow)));
        if (tl.arena == nullptr || tl.shadow == nullptr) {
            free(tl.arena);
            free(tl.shadow);
            tl.arena = nullptr;
            tl.shadow = nullptr;
            return false;
        }
    }
    memcpy(tl.block, block, sizeof tl.block);
    memcpy(tl.bdim, bdim, sizeof tl.bdim);
    tl.block_start = ++tl.interval;
    tl.filled = 0;
    size_t used = 0;
    {
        std::lock_guard<std::mutex> guard(g_launch.lock);
        used = g_launch.static_end;
    }
    fill_to(used);
    tl_lo = (uintptr_t)tl.arena;
    tl_len = emu_check_failed() ? 0 : kSharedArenaBytes;
    return true;
}

void emu_check_block_end() { tl_len = 0; }

bool emu_check_in_shared(const void* p, size_t n) {
    const uintptr_t lo = (uintptr_t)tl.arena;
    const uintptr_t a = (uintptr_t)p;
    return tl.arena != nullptr && a >= lo && a - lo <= kSharedArenaBytes &&
           n <= kSharedArenaBytes - (a - lo);
}

void emu_check_shared_write(void* p, size_t n) { access(p, n, true); }

void emu_check_set_thread(unsigned linear_thread) { tl.thread = linear_thread; }

void emu_check_block_barrier() { ++tl.interval; }

void emu_check_warp_barrier(unsigned warp) { ++tl.warp_epoch[warp % 32]; }

const char* emu_check_thread_name(unsigned t) {
    char* buf = tl.name_buf[tl.name_next++ % 3];
    const unsigned bx = tl.bdim[0], by = tl.bdim[1];
    snprintf(buf, sizeof tl.name_buf[0], "(%u, %u, %u)", t % bx, (t / bx) % by, t / (bx * by));
    return buf;
}

// The address of a static `__shared__` declaration in the running block: its offset is chosen
// on the launch's first use; the bytes up to its end are NaN-filled for this block.
extern "C" char* emu_shared_place(emu_shared_site* site, size_t bytes, size_t align) {
    const uint32_t epoch = g_launch.epoch.load();
    size_t offset;
    if (__atomic_load_n(&site->epoch, __ATOMIC_ACQUIRE) == epoch) {
        offset = site->offset;
    } else {
        std::unique_lock<std::mutex> guard(g_launch.lock);
        if (site->epoch != epoch) {
            size_t start = align_up(g_launch.static_end, align < 16 ? 16 : align);
            const size_t static_bytes = start + bytes - align_up(g_launch.dynamic_bytes, 16);
            if (static_bytes > kStaticSharedLimit ||
                start + bytes > kSharedPerBlockLimit) {
                guard.unlock();
                emu_check_fail(
                    "static __shared__ `%s` (%zu bytes) brings the block's shared memory to %zu "
                    "static + %zu dynamic bytes; the limits are %zu static and %zu in all",
                    site->name, bytes, static_bytes, g_launch.dynamic_bytes, kStaticSharedLimit,
                    kSharedPerBlockLimit);
                // Alias the start of the arena: the results are wrong but memory stays valid.
                fill_to(bytes < kSharedArenaBytes ? bytes : kSharedArenaBytes);
                return tl.arena;
            }
            g_launch.sites.push_back(Site{site->name, start, bytes});
            g_launch.static_end = start + bytes;
            site->offset = (uint32_t)start;
            __atomic_store_n(&site->epoch, epoch, __ATOMIC_RELEASE);
        }
        offset = site->offset;
    }
    fill_to(offset + bytes);
    return tl.arena + offset;
}

// The `extern __shared__` array: the arena's start (its bytes were NaN-filled at block start).
extern "C" char* emu_shared_dynamic(void) {
    fill_to(g_launch.dynamic_bytes);
    return tl.arena;
}

// The memory-access hooks of GCC's -fsanitize=thread instrumentation.
#define EMU_HOOK __attribute__((visibility("hidden"))) void
extern "C" {
EMU_HOOK __tsan_init(void) {}
EMU_HOOK __tsan_func_entry(void*) {}
EMU_HOOK __tsan_func_exit(void) {}
EMU_HOOK __tsan_vptr_update(void*, void*) {}
EMU_HOOK __tsan_vptr_read(void*) {}
EMU_HOOK __tsan_read_range(void* p, size_t n) { access(p, n, false); }
EMU_HOOK __tsan_write_range(void* p, size_t n) { access(p, n, true); }
#define EMU_SIZED_HOOKS(n)                                                           \
    EMU_HOOK __tsan_read##n(void* p) { access(p, n, false); }                        \
    EMU_HOOK __tsan_write##n(void* p) { access(p, n, true); }                        \
    EMU_HOOK __tsan_unaligned_read##n(void* p) { access(p, n, false); }              \
    EMU_HOOK __tsan_unaligned_write##n(void* p) { access(p, n, true); }              \
    EMU_HOOK __tsan_volatile_read##n(void* p) { access(p, n, false); }               \
    EMU_HOOK __tsan_volatile_write##n(void* p) { access(p, n, true); }               \
    EMU_HOOK __tsan_unaligned_volatile_read##n(void* p) { access(p, n, false); }     \
    EMU_HOOK __tsan_unaligned_volatile_write##n(void* p) { access(p, n, true); }
EMU_SIZED_HOOKS(1)
EMU_SIZED_HOOKS(2)
EMU_SIZED_HOOKS(4)
EMU_SIZED_HOOKS(8)
EMU_SIZED_HOOKS(16)
}
