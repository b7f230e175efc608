// Fibers: a stack and a saved stack pointer, switched by hand on x86-64 (swapcontext would make a
// sigprocmask system call on every switch, and a block switches at every barrier of every thread).
// Other architectures, or a build with -DSIMT_FIBER_UCONTEXT, use makecontext/swapcontext.
//
// A fiber never migrates between OS threads: the compiler may keep thread-local addresses in
// registers across a switch, and the block scheduler relies on it.
#pragma once

#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>

#include "error.h"

#if defined(__x86_64__) && !defined(SIMT_FIBER_UCONTEXT)
#define SIMT_FIBER_X86_64 1
#else
#include <ucontext.h>
#endif

#if defined(SIMT_FIBER_X86_64)
extern "C" {
// Saves the callee-saved registers on the current stack, stores the stack pointer in *save_sp,
// then loads load_sp and restores the registers saved there. The x87 control word and MXCSR are
// not switched: every fiber of a block shares the floating-point environment of its OS thread.
// Not compatible with CET shadow stacks (nor is any user-space stack switch that skips the kernel).
void simt_switch_stack(void** save_sp, void* load_sp);
// Where a new fiber first "returns" to: calls r13(r12) and never comes back. Its undefined return
// address ends backtraces and exception unwinding at the fiber's root.
void simt_fiber_start();
}
// Emitted in a COMDAT group, like an inline function, so every translation unit may include it.
asm(R"(
  .pushsection .text.simt_switch_stack,"axG",@progbits,simt_switch_stack,comdat
  .globl simt_switch_stack
  .hidden simt_switch_stack
  .type simt_switch_stack,@function
simt_switch_stack:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size simt_switch_stack, .-simt_switch_stack
  .globl simt_fiber_start
  .hidden simt_fiber_start
  .type simt_fiber_start,@function
simt_fiber_start:
  .cfi_startproc
  .cfi_undefined rip
  movq %r12, %rdi
  callq *%r13
  ud2
  .cfi_endproc
  .size simt_fiber_start, .-simt_fiber_start
  .popsection
)");
#endif

namespace simt::detail {

// An mmap'ed stack with an inaccessible guard page below it, so an overflow faults at once instead
// of corrupting the neighbouring fiber's stack.
class FiberStack {
 public:
  explicit FiberStack(std::size_t bytes) : guard_(static_cast<std::size_t>(sysconf(_SC_PAGESIZE))) {
    size_ = (bytes + guard_ - 1) / guard_ * guard_ + guard_;
    void* p = mmap(nullptr, size_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) throw Error("simt: cannot map a fiber stack");
    base_ = static_cast<char*>(p);
    mprotect(base_, guard_, PROT_NONE);
  }
  FiberStack(const FiberStack&) = delete;
  FiberStack& operator=(const FiberStack&) = delete;
  ~FiberStack() { munmap(base_, size_); }

  char* bottom() const { return base_ + guard_; }
  char* top() const { return base_ + size_; }  // page aligned
  std::size_t usable_bytes() const { return size_ - guard_; }

 private:
  std::size_t guard_;
  std::size_t size_;
  char* base_;
};

class Fiber {
 public:
  using Entry = void (*)(void*);

  explicit Fiber(std::size_t stack_bytes) : stack_(stack_bytes) {}
  Fiber(const Fiber&) = delete;
  Fiber& operator=(const Fiber&) = delete;

  std::size_t stack_bytes() const { return stack_.usable_bytes(); }

  // Makes the next resume() run entry(arg) from the top of the stack, abandoning whatever the fiber
  // was doing. `entry` must never return: it ends by suspending for good.
  void reset(Entry entry, void* arg) {
#if defined(SIMT_FIBER_X86_64)
    // The frame simt_switch_stack pops: r15 r14 r13 r12 rbx rbp, then the return address. Two
    // padding words keep rsp 16-byte aligned at simt_fiber_start's call, as the ABI requires.
    auto* frame = reinterpret_cast<uintptr_t*>(stack_.top()) - 9;
    frame[0] = frame[1] = frame[4] = frame[5] = frame[7] = frame[8] = 0;
    frame[2] = reinterpret_cast<uintptr_t>(entry);
    frame[3] = reinterpret_cast<uintptr_t>(arg);
    frame[6] = reinterpret_cast<uintptr_t>(&simt_fiber_start);
    sp_ = frame;
#else
    entry_ = entry;
    arg_ = arg;
    getcontext(&context_);
    context_.uc_stack.ss_sp = stack_.bottom();
    context_.uc_stack.ss_size = stack_.usable_bytes();
    context_.uc_link = nullptr;
    // makecontext passes int arguments only, so the pointer travels in two halves.
    const auto self = reinterpret_cast<uintptr_t>(this);
    makecontext(&context_, reinterpret_cast<void (*)()>(&start), 2,
                static_cast<unsigned>(self >> 32), static_cast<unsigned>(self));
#endif
  }

  // Runs the fiber until it calls suspend(). Called by the scheduler.
  void resume() {
#if defined(SIMT_FIBER_X86_64)
    simt_switch_stack(&caller_sp_, sp_);
#else
    swapcontext(&caller_, &context_);
#endif
  }

  // Returns to the resume() that ran this fiber. Called on the fiber itself.
  void suspend() {
#if defined(SIMT_FIBER_X86_64)
    simt_switch_stack(&sp_, caller_sp_);
#else
    swapcontext(&context_, &caller_);
#endif
  }

 private:
  FiberStack stack_;
#if defined(SIMT_FIBER_X86_64)
  void* sp_ = nullptr;
  void* caller_sp_ = nullptr;
#else
  static void start(unsigned high, unsigned low) {
    auto* self = reinterpret_cast<Fiber*>((static_cast<uintptr_t>(high) << 32) | low);
    self->entry_(self->arg_);
  }
  Entry entry_ = nullptr;
  void* arg_ = nullptr;
  ucontext_t context_;
  ucontext_t caller_;
#endif
};

}  // namespace simt::detail
