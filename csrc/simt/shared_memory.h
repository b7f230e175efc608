// __shared__ memory. A static __shared__ variable must be one object per block in flight:
//  - default build: `static thread_local`. All fibers of a block run on one OS thread and each OS
//    thread runs its blocks one after another, so per OS thread is per block.
//  - SIMT_SHARED_PROCESS_WIDE builds (config.h; OS-thread mode, ThreadSanitizer): a plain `static`,
//    and the launcher runs one block at a time.
// Like on a GPU, a static __shared__ variable starts a block holding whatever the previous block on
// that OS thread left in it. Dynamic shared memory is filled with 0xff bytes (NaN for floats) at the
// start of each block, so reading it before writing it shows.
#pragma once

#include "config.h"
#include "thread_context.h"

#undef __shared__
#if defined(SIMT_SHARED_PROCESS_WIDE)
#define __shared__ static
#else
#define __shared__ static thread_local
#endif

// `extern __shared__ T name[]` written portably: declares `T* const name` pointing at the block's
// dynamic shared memory (the launch's shared_bytes, 128-byte aligned).
#define SIMT_DYNAMIC_SHARED(T, name) \
  T* const name = reinterpret_cast<T*>(::simt::detail::this_thread().dynamic_shared)
