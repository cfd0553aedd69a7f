// emu_check.h: the emulated GPU's checker, between the scheduler (emu_runtime.cpp) and the
// shared-memory tracker and error report (emu_check.cpp).
#pragma once

#include <stddef.h>
#include <stdint.h>

// Real-GPU limits the emulated GPU enforces (H100 / H200, sm_90).
constexpr size_t kStaticSharedLimit = 48 * 1024;    // static __shared__ per block
constexpr size_t kSharedPerBlockLimit = 227 * 1024; // static + dynamic, with the opt-in
constexpr size_t kSharedArenaBytes = kSharedPerBlockLimit + kStaticSharedLimit;

// Starts a launch of `kernel` with `dynamic_bytes` of dynamic shared memory: forgets the
// previous launch's error and static shared-memory layout.
void emu_check_launch_begin(const char* kernel, size_t dynamic_bytes);
// The launch's first error (empty when none): at most one is kept.
const char* emu_check_error();
bool emu_check_failed();
// Records an error of the running launch (printf-style); only the first is kept.
void emu_check_fail(const char* fmt, ...) __attribute__((format(printf, 1, 2)));

// Per OS thread: the block about to run (its fibers' shared memory is NaN-filled and its
// shadow state forgotten), the fiber about to run, and barrier releases.
bool emu_check_block_begin(const unsigned block[3], const unsigned bdim[3]);
void emu_check_block_end();
void emu_check_set_thread(unsigned linear_thread);
void emu_check_block_barrier();
void emu_check_warp_barrier(unsigned warp);
// "(x, y, z)" of the linear thread index in the current block, in a static per-thread buffer.
const char* emu_check_thread_name(unsigned linear_thread);
// Whether [p, p + n) lies in the running block's shared memory.
bool emu_check_in_shared(const void* p, size_t n);
// Records a write of [p, p + n) of shared memory by the running thread (a cp.async landing).
void emu_check_shared_write(void* p, size_t n);
