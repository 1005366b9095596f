// `new (std::nothrow)` calls the installed new-handler in a loop, as the throwing form
// does, and gives null only when there is none (or it throws std::bad_alloc). Under an
// address-space limit that a 300 MiB reserve fills, a 350 MiB request fails until the
// handler frees the reserve. Prints one line per case; "ok" at the end.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <sys/resource.h>
#include <unistd.h>

static char *reserve;
static int calls;

static void free_reserve() {
    calls++;
    if (reserve) {
        delete[] reserve;
        reserve = nullptr;
    } else {
        std::set_new_handler(nullptr); // nothing left to give: fail from now on
    }
}

static void throw_it() {
    calls++;
    throw std::bad_alloc();
}

static long vm_bytes() {
    long pages = 0, rss = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f || fscanf(f, "%ld %ld", &pages, &rss) != 2)
        return -1;
    fclose(f);
    return pages * sysconf(_SC_PAGESIZE);
}

static const size_t MiB = 1 << 20;

static void arm(void (*handler)()) {
    reserve = new char[300 * MiB];
    std::memset(reserve, 1, 4096);
    calls = 0;
    std::set_new_handler(handler);
}

int main() {
    // Room for what is mapped now, the reserve and 250 MiB: 350 MiB fits only without it.
    rlimit lim;
    lim.rlim_cur = lim.rlim_max = vm_bytes() + 550 * MiB;
    if (setrlimit(RLIMIT_AS, &lim) != 0) {
        std::perror("setrlimit");
        return 2;
    }
    int bad = 0;

    arm(free_reserve);
    char *p = new (std::nothrow) char[350 * MiB];
    std::printf("nothrow new[] with a handler that frees: %s, %d handler call(s)\n",
                p ? "served" : "null", calls);
    bad += !p || calls != 1;
    delete[] p;

    arm(free_reserve);
    p = static_cast<char *>(::operator new(350 * MiB, std::nothrow));
    std::printf("nothrow new with a handler that frees: %s, %d handler call(s)\n",
                p ? "served" : "null", calls);
    bad += !p || calls != 1;
    ::operator delete(p);

    arm(throw_it);
    p = new (std::nothrow) char[350 * MiB];
    std::printf("nothrow new[] with a handler that throws: %s, %d handler call(s)\n",
                p ? "served" : "null", calls);
    bad += p != nullptr || calls != 1;
    delete[] reserve;
    reserve = nullptr;

    std::set_new_handler(nullptr);
    p = new (std::nothrow) char[1024 * 1024 * MiB]; // 1 TiB: never
    std::printf("nothrow new[] without a handler: %s\n", p ? "served" : "null");
    bad += p != nullptr;

    arm(free_reserve);
    try {
        p = new char[350 * MiB];
        std::printf("new[] with a handler that frees: served, %d handler call(s)\n", calls);
        bad += calls != 1;
        delete[] p;
    } catch (const std::bad_alloc &) {
        std::printf("new[] with a handler that frees: bad_alloc\n");
        bad++;
    }
    std::printf(bad ? "FAILED %d\n" : "ok\n", bad);
    return bad ? 1 : 0;
}
