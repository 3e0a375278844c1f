// Waking several futex words in one system call: an io_uring of the calling
// thread, one IORING_OP_FUTEX_WAKE entry per word (Linux 6.7).
//
// Why one call: each FUTEX_WAKE that wakes a client on this CPU lets the client
// preempt us when the syscall returns, so a thread that answers four clients
// pays four preemptions and four returns. Submitted together, every client is
// woken before the first runs; they then run one after another, and the thread
// comes back to four new requests (docs/threading.md, "Waking the client").
// Where io_uring or the op is missing (an older kernel, a seccomp filter), each
// word gets its own FUTEX_WAKE, as before.
#include <linux/futex.h>
#include <linux/io_uring.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdint>
#include <cstring>

#include "args.h"
#include "exports.h"

namespace qbipc {
namespace {

// Not in older uapi headers; the values are the kernel's ABI.
constexpr uint8_t kOpFutexWake = 52;       // IORING_OP_FUTEX_WAKE
constexpr uint32_t kFutex2SizeU32 = 0x02;  // FUTEX2_SIZE_U32; no FUTEX2_PRIVATE: the words are shared
constexpr uint64_t kMatchAny = 0xffffffffu;
constexpr uint8_t kSkipSuccess = 1u << 6;  // IOSQE_CQE_SKIP_SUCCESS: only failures post a completion
constexpr unsigned kEntries = 64;
constexpr unsigned kRegisterProbe = 8;  // IORING_REGISTER_PROBE

// The calling thread's ring. Owned by the thread: created at its first batch,
// unmapped and closed when the thread's Node environment is torn down.
class WakeRing {
 public:
  ~WakeRing() { Close(); }

  // Ready to submit, setting up once; false when this thread must use FUTEX_WAKE.
  bool Ready(napi_env env) {
    if (!tried_) {
      tried_ = true;
      if (Open()) napi_add_env_cleanup_hook(env, OnEnvCleanup, this);
    }
    return fd_ >= 0;
  }

  // Submits one wake per word; returns how many the kernel took (the rest: FUTEX_WAKE).
  unsigned Submit(const double* addresses, const int32_t* counts, unsigned n) {
    unsigned tail = *sq_tail_;
    const unsigned mask = *sq_mask_;
    for (unsigned i = 0; i < n; i++) {
      const unsigned slot = (tail + i) & mask;
      io_uring_sqe* sqe = &sqes_[slot];
      std::memset(sqe, 0, sizeof(*sqe));
      sqe->opcode = kOpFutexWake;
      sqe->flags = kSkipSuccess;
      sqe->fd = static_cast<int32_t>(kFutex2SizeU32);
      sqe->addr = static_cast<uint64_t>(addresses[i]);
      sqe->addr2 = static_cast<uint64_t>(counts[i]);
      sqe->addr3 = kMatchAny;
      sq_array_[slot] = slot;
    }
    __atomic_store_n(sq_tail_, tail + n, __ATOMIC_RELEASE);
    long taken = syscall(SYS_io_uring_enter, fd_, n, 0, 0, nullptr, 0);
    // Failures (a word unmapped by now: EFAULT) post completions; nothing to do with them but make room.
    __atomic_store_n(cq_head_, __atomic_load_n(cq_tail_, __ATOMIC_ACQUIRE), __ATOMIC_RELEASE);
    // Entries the kernel did not consume are taken back (the caller wakes them itself), so
    // the next batch starts where the kernel's head is.
    const unsigned consumed = taken < 0 ? 0 : static_cast<unsigned>(taken);
    if (consumed < n) __atomic_store_n(sq_tail_, tail + consumed, __ATOMIC_RELEASE);
    return consumed;
  }

 private:
  static void OnEnvCleanup(void* self) { static_cast<WakeRing*>(self)->Close(); }

  bool Open() {
    io_uring_params params;
    std::memset(&params, 0, sizeof(params));
    int fd = static_cast<int>(syscall(SYS_io_uring_setup, kEntries, &params));
    if (fd < 0) return false;
    fd_ = fd;
    if (!Supported() || !Map(params)) {
      Close();
      return false;
    }
    return true;
  }

  // Whether this kernel knows IORING_OP_FUTEX_WAKE.
  bool Supported() {
    constexpr unsigned kOps = 256;
    const size_t size = sizeof(io_uring_probe) + kOps * sizeof(io_uring_probe_op);
    alignas(io_uring_probe) unsigned char buffer[sizeof(io_uring_probe) + kOps * sizeof(io_uring_probe_op)];
    std::memset(buffer, 0, size);
    auto* probe = reinterpret_cast<io_uring_probe*>(buffer);
    if (syscall(SYS_io_uring_register, fd_, kRegisterProbe, probe, kOps) < 0) return false;
    return probe->last_op >= kOpFutexWake && (probe->ops[kOpFutexWake].flags & IO_URING_OP_SUPPORTED) != 0;
  }

  bool Map(const io_uring_params& p) {
    sq_size_ = p.sq_off.array + p.sq_entries * sizeof(unsigned);
    cq_size_ = p.cq_off.cqes + p.cq_entries * sizeof(io_uring_cqe);
    const bool single = (p.features & IORING_FEAT_SINGLE_MMAP) != 0;
    if (single) sq_size_ = cq_size_ = sq_size_ > cq_size_ ? sq_size_ : cq_size_;
    sq_ = Mapping(sq_size_, IORING_OFF_SQ_RING);
    if (sq_ == nullptr) return false;
    cq_ = single ? sq_ : Mapping(cq_size_, IORING_OFF_CQ_RING);
    if (cq_ == nullptr) return false;
    sqes_size_ = p.sq_entries * sizeof(io_uring_sqe);
    sqes_ = static_cast<io_uring_sqe*>(Mapping(sqes_size_, IORING_OFF_SQES));
    if (sqes_ == nullptr) return false;
    auto* sq = static_cast<unsigned char*>(sq_);
    auto* cq = static_cast<unsigned char*>(cq_);
    sq_tail_ = reinterpret_cast<unsigned*>(sq + p.sq_off.tail);
    sq_mask_ = reinterpret_cast<unsigned*>(sq + p.sq_off.ring_mask);
    sq_array_ = reinterpret_cast<unsigned*>(sq + p.sq_off.array);
    cq_head_ = reinterpret_cast<unsigned*>(cq + p.cq_off.head);
    cq_tail_ = reinterpret_cast<unsigned*>(cq + p.cq_off.tail);
    return true;
  }

  void* Mapping(size_t size, off_t offset) {
    void* at = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd_, offset);
    return at == MAP_FAILED ? nullptr : at;
  }

  void Close() {
    if (sqes_ != nullptr) munmap(sqes_, sqes_size_);
    if (cq_ != nullptr && cq_ != sq_) munmap(cq_, cq_size_);
    if (sq_ != nullptr) munmap(sq_, sq_size_);
    sqes_ = nullptr;
    cq_ = sq_ = nullptr;
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
  }

  bool tried_ = false;
  int fd_ = -1;
  void* sq_ = nullptr;
  void* cq_ = nullptr;
  size_t sq_size_ = 0;
  size_t cq_size_ = 0;
  size_t sqes_size_ = 0;
  io_uring_sqe* sqes_ = nullptr;
  unsigned* sq_tail_ = nullptr;
  unsigned* sq_mask_ = nullptr;
  unsigned* sq_array_ = nullptr;
  unsigned* cq_head_ = nullptr;
  unsigned* cq_tail_ = nullptr;
};

thread_local WakeRing wake_ring;

// futexWakeMany(addresses: Float64Array, counts: Int32Array, n) -> how many of
// the n words went through io_uring (the others had a FUTEX_WAKE each). As with
// futexWakeAt, an address is only ever woken, never written: a stale one is a
// failed or spurious wake, not a memory write.
Napi::Value FutexWakeMany(const Napi::CallbackInfo& info) {
  Args args(info, "futexWakeMany(addresses, counts, n)");
  double* addresses;
  int32_t* counts;
  size_t addressCount;
  size_t countCount;
  uint32_t n;
  if (!args.Float64s(0, "addresses", 0, &addresses, &addressCount) || !args.Int32s(1, "counts", 0, &counts, &countCount) ||
      !args.Uint32(2, "n", UINT32_MAX, &n)) {
    return args.Thrown();
  }
  if (n > addressCount || n > countCount) {
    args.RangeError(args.At(2), "n", "at most the length of addresses and counts");
    return args.Thrown();
  }
  unsigned viaRing = 0;
  if (n > 1 && wake_ring.Ready(info.Env())) {
    for (unsigned done = 0; done < n;) {
      const unsigned chunk = n - done < kEntries ? n - done : kEntries;
      const unsigned taken = wake_ring.Submit(addresses + done, counts + done, chunk);
      viaRing += taken;
      if (taken < chunk) break;
      done += chunk;
    }
  }
  for (unsigned i = viaRing; i < n; i++) {
    auto* word = reinterpret_cast<int32_t*>(static_cast<uintptr_t>(addresses[i]));
    syscall(SYS_futex, word, FUTEX_WAKE, counts[i] < 0 ? 0 : counts[i], nullptr, nullptr, 0);
  }
  return Napi::Number::New(info.Env(), viaRing);
}

// futexWakeManyBatches() -> whether futexWakeMany wakes in one system call on
// this thread (sets the thread's ring up if it was not yet). Where it does not,
// holding wakes back to wake them together gains nothing.
Napi::Value FutexWakeManyBatches(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), wake_ring.Ready(info.Env()));
}

}  // namespace

void InitWakeBatch(Napi::Env env, Napi::Object exports) {
  exports.Set("futexWakeMany", Napi::Function::New(env, FutexWakeMany));
  exports.Set("futexWakeManyBatches", Napi::Function::New(env, FutexWakeManyBatches));
}

}  // namespace qbipc
