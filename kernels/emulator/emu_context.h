// emu_context.h: the emulator's fiber context switch.
//
// On x86-64 a hand-written switch saves only the callee-saved registers, MXCSR and the x87
// control word (no signal-mask system call, unlike swapcontext), which makes barrier-heavy
// kernels ~50× cheaper to emulate. Elsewhere it falls back to POSIX ucontext.
#pragma once

#include <stddef.h>
#include <stdint.h>

#if defined(__x86_64__) && !defined(CURVATURE_EMU_UCONTEXT)

struct EmuContext {
    void* sp;
};

// emu_switch_x86_64(save, to): pushes the callee-saved state on the current stack, stores the
// stack pointer in *save, switches to stack `to` and pops the state saved there.
extern "C" void emu_switch_x86_64(void** save, void* to);

asm(R"(
    .text
    .globl emu_switch_x86_64
    .hidden emu_switch_x86_64
    .type emu_switch_x86_64, @function
emu_switch_x86_64:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    subq $8, %rsp
    stmxcsr (%rsp)
    fnstcw 4(%rsp)
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    ldmxcsr (%rsp)
    fldcw 4(%rsp)
    addq $8, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size emu_switch_x86_64, .-emu_switch_x86_64
)");

// Prepares `c` to start `entry` (which must never return) on the given stack.
inline void emu_context_init(EmuContext* c, char* stack, size_t size, void (*entry)()) {
    uintptr_t top = ((uintptr_t)(stack + size)) & ~(uintptr_t)15;
    uint64_t* sp = (uint64_t*)top;
    *--sp = 0;                  // fake return address: `entry` starts as if called (rsp ≡ 8 mod 16)
    *--sp = (uint64_t)entry;    // popped by `ret`
    for (int i = 0; i < 6; ++i) {
        *--sp = 0;              // rbp, rbx, r12–r15
    }
    uint32_t mxcsr;
    uint16_t fpucw;
    asm volatile("stmxcsr %0" : "=m"(mxcsr));
    asm volatile("fnstcw %0" : "=m"(fpucw));
    --sp;
    uint32_t* fp = (uint32_t*)sp;
    fp[0] = mxcsr;
    fp[1] = fpucw;
    c->sp = sp;
}

inline void emu_context_switch(EmuContext* from, EmuContext* to) {
    emu_switch_x86_64(&from->sp, to->sp);
}

#else

#include <ucontext.h>

struct EmuContext {
    ucontext_t uc;
};

inline void emu_context_init(EmuContext* c, char* stack, size_t size, void (*entry)()) {
    getcontext(&c->uc);
    c->uc.uc_stack.ss_sp = stack;
    c->uc.uc_stack.ss_size = size;
    c->uc.uc_link = nullptr;
    makecontext(&c->uc, entry, 0);
}

inline void emu_context_switch(EmuContext* from, EmuContext* to) {
    swapcontext(&from->uc, &to->uc);
}

#endif
