// emu_memory.cpp: device memory of the emulated GPU, with guard pages.
//
// Every buffer ends (rounded up to 16 bytes) right before an inaccessible page, so a kernel
// that reads or writes past the end of a buffer faults at once instead of silently corrupting
// host memory. A SIGSEGV handler names the kernel that was running before the process dies.
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
            "fiber stack): check the sizes and offsets passed to it\n";
        ssize_t ignored = write(2, head, sizeof head - 1);
        ignored = write(2, kernel, strlen(kernel));
        ignored = write(2, tail, sizeof tail - 1);
        (void)ignored;
    }
    // Hand the fault to whoever handled it before (Rust's stack-overflow handler or the default
    // action): restore it and return, so the faulting access runs again under it.
    (void)sig;
    (void)info;
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

// Allocates `bytes` zeroed bytes, 16-byte aligned, followed by a guard page. Null on failure.
extern "C" void* emu_alloc(size_t bytes) {
    const Layout l = layout_of(bytes);
    void* base = mmap(nullptr, l.data_pages + page_size(), PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (base == MAP_FAILED) {
        return nullptr;
    }
    char* guard = static_cast<char*>(base) + l.data_pages;
    if (mprotect(guard, page_size(), PROT_NONE) != 0) {
        munmap(base, l.data_pages + page_size());
        return nullptr;
    }
    return guard - l.body;
}

// Frees a pointer returned by emu_alloc(bytes) with the same `bytes`.
extern "C" void emu_free(void* p, size_t bytes) {
    const Layout l = layout_of(bytes);
    char* base = static_cast<char*>(p) + l.body - l.data_pages;
    munmap(base, l.data_pages + page_size());
}
