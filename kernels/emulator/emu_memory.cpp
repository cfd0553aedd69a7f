// emu_memory.cpp: device memory of the emulated GPU, with guard pages.
//
// Every buffer lies between two inaccessible pages: it ends (rounded up to 16 bytes) right
// before one, so a kernel that reads or writes past its end faults at once, and one page lies
// before its first page, so an access before its start (past the page's slack) faults too. A
// SIGSEGV handler names the kernel that was running and the faulting address before the process
// dies.
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>

namespace {

size_t page_size() {
    static const size_t size = (size_t)sysconf(_SC_PAGESIZE);
    return size;
}

size_t round_up(size_t v, size_t to) { return (v + to - 1) / to * to; }

struct Layout {
    size_t body;        // usable bytes: max(bytes, 16) rounded up to 16
    size_t data_pages;  // bytes of the readable / writable mapping
};

Layout layout_of(size_t bytes) {
    const size_t body = round_up(bytes < 16 ? 16 : bytes, 16);
    return Layout{body, round_up(body, page_size())};
}

std::atomic<const char*> g_running_kernel{nullptr};
struct sigaction g_previous;
std::atomic<bool> g_handler_installed{false};

void on_segv(int sig, siginfo_t* info, void* ctx) {
    const char* kernel = g_running_kernel.load();
    if (kernel != nullptr) {
        const char head[] = "\nemulated GPU: kernel `";
        const char tail[] =
            "` accessed memory outside its buffers (guard page hit; or overflowed its 64 KiB "
            "fiber stack): check the sizes and offsets passed to it; faulting address 0x";
        ssize_t ignored = write(2, head, sizeof head - 1);
        ignored = write(2, kernel, strlen(kernel));
        ignored = write(2, tail, sizeof tail - 1);
        // Hex digits by hand: snprintf is not async-signal-safe.
        char hex[17];
        uintptr_t a = (uintptr_t)(info != nullptr ? info->si_addr : nullptr);
        for (int i = 15; i >= 0; --i, a >>= 4) {
            hex[i] = "0123456789abcdef"[a & 15];
        }
        hex[16] = '\n';
        ignored = write(2, hex, sizeof hex);
        (void)ignored;
    }
    // Hand the fault to whoever handled it before (Rust's stack-overflow handler or the default
    // action): restore it and return, so the faulting access runs again under it.
    (void)sig;
    (void)ctx;
    sigaction(SIGSEGV, &g_previous, nullptr);
}

}  // namespace

// Installs the SIGSEGV reporter once; the scheduler records the running kernel's name.
extern "C" void emu_set_running_kernel(const char* name) {
    if (name != nullptr && !g_handler_installed.exchange(true)) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_sigaction = on_segv;
        sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGSEGV, &sa, &g_previous);
    }
    g_running_kernel.store(name);
}

// emu_runtime.cpp: runs the launches still queued (asynchronous mode) before memory is freed.
extern "C" void emu_drain_before_free(void);

// Allocates `bytes` zeroed bytes, 16-byte aligned, between two guard pages. Null on failure.
extern "C" void* emu_alloc(size_t bytes) {
    const Layout l = layout_of(bytes);
    const size_t total = page_size() + l.data_pages + page_size();
    void* base = mmap(nullptr, total, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (base == MAP_FAILED) {
        return nullptr;
    }
    char* data = static_cast<char*>(base) + page_size();
    if (mprotect(data, l.data_pages, PROT_READ | PROT_WRITE) != 0) {
        munmap(base, total);
        return nullptr;
    }
    return data + l.data_pages - l.body;
}

// Frees a pointer returned by emu_alloc(bytes) with the same `bytes`, after the queued launches
// (which may use it) have run, like a stream-ordered free.
extern "C" void emu_free(void* p, size_t bytes) {
    emu_drain_before_free();
    const Layout l = layout_of(bytes);
    char* base = static_cast<char*>(p) + l.body - l.data_pages - page_size();
    munmap(base, page_size() + l.data_pages + page_size());
}
