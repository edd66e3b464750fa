/* Sharing the tiles 0..n-1 of a pass among T threads, owner first, then stealing.
 *
 * Thread t owns the tiles [n t / T, n (t + 1) / T) and takes them in order; when they are
 * done it takes the tiles still untaken in the other threads' shares. Every tile is
 * computed once, by one thread, from its index alone, so results never depend on which
 * thread computed it. Owning a fixed share keeps each thread on the same part of the state
 * from pass to pass and step to step (in its own L2), which schedule(dynamic) loses;
 * stealing keeps a thread that the OS has descheduled (another process on its core) from
 * holding up the pass for its whole share, which schedule(static) does. */
#ifndef CSDE_CORE_TILES_H
#define CSDE_CORE_TILES_H

#include <stdatomic.h>

typedef struct {
  _Alignas(64) atomic_long next; /* a cache line each: no false sharing */
  long end;
} csde_tile_slot;

/* Before the parallel region: the shares of n tiles among T threads. */
static inline void csde_tiles_reset(csde_tile_slot *s, int T, long n)
{
  for (int t = 0; t < T; t++) {
    atomic_store_explicit(&s[t].next, n * t / T, memory_order_relaxed);
    s[t].end = n * (t + 1) / T;
  }
}

/* Inside it, by thread t: the next tile to compute, or -1 when none is left. */
static inline long csde_tiles_take(csde_tile_slot *s, int T, int t)
{
  for (int q = 0; q < T; q++) {
    csde_tile_slot *o = &s[(t + q) % T];
    if (atomic_load_explicit(&o->next, memory_order_relaxed) >= o->end) continue;
    long k = atomic_fetch_add_explicit(&o->next, 1, memory_order_relaxed);
    if (k < o->end) return k;
  }
  return -1;
}

#endif
