// Two C++ allocating functions for `hakprof sites`' test: shapes::make<double> makes 50
// arrays of 8 doubles with new[] and deletes them; shapes::build makes 20 nodes of 64 bytes
// with new, one left live on purpose, one through the nothrow form; then new and the
// nothrow form out of memory. Built with -O0 -g.
#include <cstdio>
#include <new>

namespace shapes {
struct Node {
    char bytes[64];
};

template <class T> __attribute__((noinline)) T *make(int n) {
    return new T[n];
}

__attribute__((noinline)) Node *build() {
    return new Node();
}

__attribute__((noinline)) Node *build_quietly() {
    return new (std::nothrow) Node();
}
} // namespace shapes

int main() {
    for (int i = 0; i < 50; i++)
        delete[] shapes::make<double>(8);
    shapes::Node *kept = nullptr;
    for (int i = 0; i < 20; i++) {
        shapes::Node *n = shapes::build();
        if (i == 0)
            kept = n;
        else
            delete n;
    }
    delete shapes::build_quietly();
    // Out of memory: new throws std::bad_alloc, the nothrow form returns null.
    volatile size_t huge = size_t(1) << 62;
    try {
        char *p = new char[huge];
        std::printf("no bad_alloc %p\n", (void *)p);
    } catch (const std::bad_alloc &) {
        std::printf("bad_alloc\n");
    }
    std::printf("nothrow %d\n", new (std::nothrow) char[huge] == nullptr);
    std::printf("kept %d\n", kept != nullptr);
    return 0;
}
