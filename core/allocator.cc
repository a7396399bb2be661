// mimalloc is the allocator of the shipped binaries: linking libmimalloc replaces malloc, and
// this header replaces operator new and delete. Per-thread heaps suit one reactor per core.
#include <mimalloc-new-delete.h>
