// Saru native packet I/O: one AF_PACKET socket bound to one interface.
//
// Owns the socket, its receive memory (a TPACKET_V3 mmap ring or a buffer of
// fixed recvmmsg slots) and the counters of what it delivered, skipped and
// sent. It must not contain policy: which frames matter is decided by the
// socket filter JavaScript attaches and by the engine that reads the batch.
//
// Kernel sources of behaviour: packet(7); Documentation/networking/
// packet_mmap.rst (TPACKET_V3 blocks, block retire timeout, PACKET_STATISTICS);
// Documentation/networking/filter.rst (classic BPF, SO_ATTACH_FILTER).
#pragma once

#include <napi.h>

#include <linux/if_packet.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace saru {

// Receive memory shared between the socket and the external ArrayBuffer that
// exposes it to JavaScript. Freed (munmap or free) when both have let go, so a
// view JavaScript still holds never points at unmapped memory.
class Region {
 public:
  Region(uint8_t* base, size_t size, bool mapped) : base_(base), size_(size), mapped_(mapped) {}
  void Retain() { refs_.fetch_add(1); }
  void Release();
  uint8_t* base() const { return base_; }
  size_t size() const { return size_; }

 private:
  ~Region();
  uint8_t* base_;
  size_t size_;
  bool mapped_;
  std::atomic<int> refs_{1};
};

// Counters; all since open. Monotonic, never reset.
struct Counters {
  uint64_t rxFrames = 0, rxBytes = 0;
  uint64_t txFrames = 0, txBytes = 0, txErrors = 0, txInvalid = 0;
  uint64_t skippedNotHost = 0, truncated = 0, rxErrors = 0;
  uint64_t kernelDrops = 0, kernelFreezes = 0;
};

class PacketSocket : public Napi::ObjectWrap<PacketSocket> {
 public:
  static Napi::Function Define(Napi::Env env);
  explicit PacketSocket(const Napi::CallbackInfo& info);
  ~PacketSocket() override;

 private:
  enum class Mode { Ring, Mmsg };

  // JS methods.
  Napi::Value Info(const Napi::CallbackInfo& info);
  Napi::Value Receive(const Napi::CallbackInfo& info);
  Napi::Value Transmit(const Napi::CallbackInfo& info);
  Napi::Value Send(const Napi::CallbackInfo& info);
  Napi::Value SetFilter(const Napi::CallbackInfo& info);
  Napi::Value Stats(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);
  Napi::Value TakeError(const Napi::CallbackInfo& info);

  void Open(Napi::Env env, const std::string& ifname, const Napi::Object& opts);
  void SetupRing(Napi::Env env);
  void SetupMmsg(Napi::Env env);
  void AttachFilter(Napi::Env env, const void* insns, size_t count);
  void CheckOpen(Napi::Env env) const;
  void ReleaseResources();

  // One pass over what is ready; returns frames delivered into off_/len_.
  uint32_t DrainRing();
  uint32_t DrainMmsg();
  void ReleaseRingBlocks();
  void ReadSocketError();

  Mode mode_ = Mode::Ring;
  int fd_ = -1;
  bool closed_ = false;
  int ifindex_ = 0;
  uint8_t mac_[6] = {0};
  int mtu_ = 0;
  uint32_t batch_ = 64;
  uint32_t frameSize_ = 2048;

  // Receive memory and the JS view of it.
  Region* region_ = nullptr;
  Napi::Reference<Napi::ArrayBuffer> bufferRef_;
  // The RxBatch off/len arrays (given once; kept alive by the references).
  uint32_t* off_ = nullptr;
  uint32_t* len_ = nullptr;
  Napi::Reference<Napi::Uint32Array> offRef_, lenRef_;

  // TPACKET_V3 ring state.
  uint32_t blockSize_ = 0, blockCount_ = 0, blockTimeoutMs_ = 1;
  uint32_t curBlock_ = 0;      // block being read (or next to read)
  bool inBlock_ = false;       // curBlock_ is user-owned and partly read
  uint32_t pktLeft_ = 0;       // frames of curBlock_ not yet looked at
  uint8_t* pktPtr_ = nullptr;  // next tpacket3_hdr in curBlock_
  std::vector<uint32_t> toRelease_;  // blocks read to the end, given back at the next receive

  // recvmmsg state: one slot of frameSize_ bytes per message.
  std::vector<mmsghdr> rxMsgs_;
  std::vector<iovec> rxIov_;
  std::vector<sockaddr_ll> rxAddr_;
  static constexpr size_t kCtlSpace = CMSG_SPACE(sizeof(tpacket_auxdata));
  std::vector<uint8_t> rxCtl_;  // PACKET_AUXDATA control message per slot

  // sendmmsg state, grown to the largest batch seen.
  std::vector<mmsghdr> txMsgs_;
  std::vector<iovec> txIov_;

  Counters c_;
  // Error of the packet path, handed over by takeError() (see Receive).
  int pendErrno_ = 0;
  const char* pendSyscall_ = "";
};

}  // namespace saru
