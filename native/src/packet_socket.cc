// Saru native packet I/O: AF_PACKET socket, TPACKET_V3 rx ring or recvmmsg
// slots, sendmmsg transmit, classic BPF socket filter, counters.
// See packet_socket.h for what this file owns; native/packet-port.ts is the
// only caller and converts the errors thrown here (errno, syscall) into
// SaruError.
#include "packet_socket.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

namespace saru {

namespace {

// A JS Error carrying errno and the failed system call; native/packet-port.ts
// maps errno to a SaruError code. Message: "<syscall>: <strerror> (errno N)".
[[noreturn]] void ThrowSys(Napi::Env env, const std::string& syscall, int err) {
  std::string msg = syscall + ": " + strerror(err) + " (errno " + std::to_string(err) + ")";
  Napi::Error e = Napi::Error::New(env, msg);
  e.Value().Set("errno", Napi::Number::New(env, err));
  e.Value().Set("syscall", Napi::String::New(env, syscall));
  if (const char* name = strerrorname_np(err)) e.Value().Set("code", Napi::String::New(env, name));
  throw e;
}

// Programming errors (bad argument shapes): RangeError, mapped to INVALID_ARGUMENT.
[[noreturn]] void ThrowRange(Napi::Env env, const std::string& msg) { throw Napi::RangeError::New(env, msg); }

uint32_t OptU32(const Napi::Object& o, const char* key, uint32_t dflt) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined() || v.IsNull()) return dflt;
  if (!v.IsNumber()) ThrowRange(o.Env(), std::string(key) + " must be a number");
  double d = v.As<Napi::Number>().DoubleValue();
  if (!(d >= 0 && d <= 4294967295.0) || d != static_cast<double>(static_cast<uint32_t>(d)))
    ThrowRange(o.Env(), std::string(key) + " must be an integer in 0..2^32-1");
  return static_cast<uint32_t>(d);
}

double MonotonicMs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) * 1e3 + static_cast<double>(ts.tv_nsec) / 1e6;
}

// Classic BPF programs used around open and for setFilter(null).
const sock_filter kDropAll[] = {{BPF_RET | BPF_K, 0, 0, 0}};
const sock_filter kAcceptAll[] = {{BPF_RET | BPF_K, 0, 0, 0xffffffffu}};

constexpr size_t kMaxInsns = 4096;  // BPF_MAXINSNS, include/uapi/linux/bpf_common.h

// Enters a network namespace for the duration of open() and returns the
// calling thread to its own one afterwards. setns(CLONE_NEWNET) changes only
// the calling thread; a socket keeps the namespace it was created in.
class NetnsGuard {
 public:
  NetnsGuard(Napi::Env env, const std::string& path) {
    if (path.empty()) return;
    int target = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (target < 0) ThrowSys(env, "open(" + path + ")", errno);
    orig_ = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    if (orig_ < 0) {
      int err = errno;
      close(target);
      ThrowSys(env, "open(/proc/thread-self/ns/net)", err);
    }
    if (setns(target, CLONE_NEWNET) < 0) {
      int err = errno;
      close(target);
      close(orig_);
      orig_ = -1;
      ThrowSys(env, "setns(" + path + ")", err);
    }
    close(target);
  }
  ~NetnsGuard() {
    if (orig_ < 0) return;
    if (setns(orig_, CLONE_NEWNET) < 0) {
      // Carrying on in the wrong namespace would open later sockets there.
      perror("saru native: cannot return to the original network namespace");
      abort();
    }
    close(orig_);
  }
  NetnsGuard(const NetnsGuard&) = delete;
  NetnsGuard& operator=(const NetnsGuard&) = delete;

 private:
  int orig_ = -1;
};

}  // namespace

// ---- Region ---------------------------------------------------------------

Region::~Region() {
  if (mapped_)
    munmap(base_, size_);
  else
    free(base_);
}

void Region::Release() {
  if (refs_.fetch_sub(1) == 1) delete this;
}

// ---- PacketSocket: construction -------------------------------------------

Napi::Function PacketSocket::Define(Napi::Env env) {
  return DefineClass(env, "PacketSocket",
                     {
                         InstanceMethod<&PacketSocket::Info>("info"),
                         InstanceMethod<&PacketSocket::Receive>("receive"),
                         InstanceMethod<&PacketSocket::Transmit>("transmit"),
                         InstanceMethod<&PacketSocket::Send>("send"),
                         InstanceMethod<&PacketSocket::SetFilter>("setFilter"),
                         InstanceMethod<&PacketSocket::Stats>("stats"),
                         InstanceMethod<&PacketSocket::Close>("close"),
                         InstanceMethod<&PacketSocket::TakeError>("takeError"),
                     });
}

// new PacketSocket(ifname, opts, off, len)
//   opts: { mode: 'ring'|'mmsg', batchSize, frameSize, ringBlocks, ringBlockSize,
//           ringTimeoutMs, rcvbuf, sndbuf, netns?: string, filter?: Uint8Array }
//   off, len: the RxBatch arrays (batchSize entries each), filled by receive().
PacketSocket::PacketSocket(const Napi::CallbackInfo& info) : Napi::ObjectWrap<PacketSocket>(info) {
  Napi::Env env = info.Env();
  if (info.Length() < 4 || !info[0].IsString() || !info[1].IsObject() || !info[2].IsTypedArray() ||
      !info[3].IsTypedArray())
    ThrowRange(env, "PacketSocket(ifname, opts, off, len)");
  try {
    Open(env, info[0].As<Napi::String>().Utf8Value(), info[1].As<Napi::Object>());
    auto off = info[2].As<Napi::Uint32Array>();
    auto len = info[3].As<Napi::Uint32Array>();
    if (off.TypedArrayType() != napi_uint32_array || len.TypedArrayType() != napi_uint32_array ||
        off.ElementLength() < batch_ || len.ElementLength() < batch_)
      ThrowRange(env, "off and len must be Uint32Arrays of batchSize entries");
    off_ = off.Data();
    len_ = len.Data();
    offRef_ = Napi::Persistent(off);
    lenRef_ = Napi::Persistent(len);
  } catch (...) {
    ReleaseResources();
    closed_ = true;
    throw;
  }
}

PacketSocket::~PacketSocket() {
  // Garbage-collected without close(): the JS view (if still alive) keeps the
  // memory through its own reference on the region.
  if (fd_ >= 0) close(fd_);
  fd_ = -1;
  if (region_) region_->Release();
  region_ = nullptr;
}

void PacketSocket::Open(Napi::Env env, const std::string& ifname, const Napi::Object& opts) {
  std::string mode = opts.Get("mode").IsString() ? opts.Get("mode").As<Napi::String>().Utf8Value() : "ring";
  if (mode == "ring")
    mode_ = Mode::Ring;
  else if (mode == "mmsg")
    mode_ = Mode::Mmsg;
  else
    ThrowRange(env, "mode must be 'ring' or 'mmsg'");
  batch_ = OptU32(opts, "batchSize", 64);
  frameSize_ = OptU32(opts, "frameSize", 2048);
  blockCount_ = OptU32(opts, "ringBlocks", 16);
  blockSize_ = OptU32(opts, "ringBlockSize", 1u << 20);
  blockTimeoutMs_ = OptU32(opts, "ringTimeoutMs", 1);
  uint32_t rcvbuf = OptU32(opts, "rcvbuf", 4u << 20);
  uint32_t sndbuf = OptU32(opts, "sndbuf", 4u << 20);
  if (batch_ < 1 || batch_ > 65536) ThrowRange(env, "batchSize must be 1..65536");
  if (frameSize_ < 64 || frameSize_ > 65536) ThrowRange(env, "frameSize must be 64..65536");
  if (ifname.empty() || ifname.size() >= IFNAMSIZ) ThrowRange(env, "interface name must be 1..15 bytes");
  std::string netns;
  if (opts.Get("netns").IsString()) netns = opts.Get("netns").As<Napi::String>().Utf8Value();

  NetnsGuard ns(env, netns);

  // packet(7): "if_nametoindex" fails with ENODEV for an unknown name.
  unsigned idx = if_nametoindex(ifname.c_str());
  if (idx == 0) ThrowSys(env, "if_nametoindex(" + ifname + ")", errno);
  ifindex_ = static_cast<int>(idx);

  // Protocol 0: the socket receives nothing until bind() names a protocol.
  fd_ = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
  if (fd_ < 0) ThrowSys(env, "socket(AF_PACKET)", errno);

  // Drop everything until the real filter is attached after bind().
  AttachFilter(env, kDropAll, 1);

  ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  memcpy(ifr.ifr_name, ifname.data(), ifname.size());
  if (ioctl(fd_, SIOCGIFHWADDR, &ifr) < 0) ThrowSys(env, "ioctl(SIOCGIFHWADDR)", errno);
  if (ifr.ifr_hwaddr.sa_family != ARPHRD_ETHER)
    ThrowRange(env, "interface \"" + ifname + "\" is not Ethernet (ARPHRD " +
                        std::to_string(ifr.ifr_hwaddr.sa_family) + ")");
  memcpy(mac_, ifr.ifr_hwaddr.sa_data, 6);
  memset(&ifr, 0, sizeof ifr);
  memcpy(ifr.ifr_name, ifname.data(), ifname.size());
  if (ioctl(fd_, SIOCGIFMTU, &ifr) < 0) ThrowSys(env, "ioctl(SIOCGIFMTU)", errno);
  mtu_ = ifr.ifr_mtu;
  if (static_cast<uint64_t>(mtu_) + 18 > frameSize_)
    ThrowRange(env, "frameSize " + std::to_string(frameSize_) + " cannot hold MTU " + std::to_string(mtu_) +
                        " + 18 (Ethernet header and one VLAN tag)");

  // Never see our own transmissions (packet(7), Linux 4.20).
  int one = 1;
  if (setsockopt(fd_, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof one) < 0)
    ThrowSys(env, "setsockopt(PACKET_IGNORE_OUTGOING)", errno);

  // Socket buffers: the FORCE variants (CAP_NET_ADMIN) pass net.core.*mem_max.
  int v = static_cast<int>(rcvbuf);
  if (setsockopt(fd_, SOL_SOCKET, SO_RCVBUFFORCE, &v, sizeof v) < 0 &&
      setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &v, sizeof v) < 0)
    ThrowSys(env, "setsockopt(SO_RCVBUF)", errno);
  v = static_cast<int>(sndbuf);
  if (setsockopt(fd_, SOL_SOCKET, SO_SNDBUFFORCE, &v, sizeof v) < 0 &&
      setsockopt(fd_, SOL_SOCKET, SO_SNDBUF, &v, sizeof v) < 0)
    ThrowSys(env, "setsockopt(SO_SNDBUF)", errno);

  if (mode_ == Mode::Ring)
    SetupRing(env);
  else
    SetupMmsg(env);

  sockaddr_ll sll;
  memset(&sll, 0, sizeof sll);
  sll.sll_family = AF_PACKET;
  sll.sll_protocol = htons(ETH_P_ALL);
  sll.sll_ifindex = ifindex_;
  if (bind(fd_, reinterpret_cast<sockaddr*>(&sll), sizeof sll) < 0) ThrowSys(env, "bind(AF_PACKET)", errno);

  // The caller's first program (or accept-all) replaces drop-all atomically.
  Napi::Value f = opts.Get("filter");
  if (f.IsTypedArray()) {
    auto prog = f.As<Napi::Uint8Array>();
    size_t bytes = prog.ByteLength();
    if (bytes == 0 || bytes % 8 != 0 || bytes / 8 > kMaxInsns)
      ThrowRange(env, "filter program must be 1..4096 instructions of 8 bytes");
    AttachFilter(env, prog.Data(), bytes / 8);
  } else {
    AttachFilter(env, kAcceptAll, 1);
  }
}

// TPACKET_V3 (packet_mmap.rst): blocks of blockSize_ bytes, each holding a
// variable number of frames; the kernel hands a block to user space when it
// is full or when it has frames and ringTimeoutMs has passed.
void PacketSocket::SetupRing(Napi::Env env) {
  long page = sysconf(_SC_PAGESIZE);
  if (blockSize_ < static_cast<uint32_t>(page) || blockSize_ % page != 0)
    ThrowRange(env, "ringBlockSize must be a multiple of the page size");
  if (blockCount_ < 2) ThrowRange(env, "ringBlocks must be at least 2");
  uint64_t total = static_cast<uint64_t>(blockSize_) * blockCount_;
  if (total > 0xffffffffull) ThrowRange(env, "ring must be smaller than 4 GiB");
  if (blockTimeoutMs_ < 1) blockTimeoutMs_ = 1;

  int ver = TPACKET_V3;
  if (setsockopt(fd_, SOL_PACKET, PACKET_VERSION, &ver, sizeof ver) < 0)
    ThrowSys(env, "setsockopt(PACKET_VERSION)", errno);
  // tp_frame_size/nr only pass the kernel's sanity checks for V3; frames are
  // packed in blocks at their real size.
  uint32_t frame = TPACKET_ALIGN(frameSize_ + TPACKET3_HDRLEN);
  if (frame > blockSize_) ThrowRange(env, "ringBlockSize must hold at least one frame");
  tpacket_req3 req;
  memset(&req, 0, sizeof req);
  req.tp_block_size = blockSize_;
  req.tp_block_nr = blockCount_;
  req.tp_frame_size = frame;
  req.tp_frame_nr = (blockSize_ / frame) * blockCount_;
  req.tp_retire_blk_tov = blockTimeoutMs_;
  if (setsockopt(fd_, SOL_PACKET, PACKET_RX_RING, &req, sizeof req) < 0)
    ThrowSys(env, "setsockopt(PACKET_RX_RING)", errno);
  void* p = mmap(nullptr, total, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd_, 0);
  if (p == MAP_FAILED) ThrowSys(env, "mmap(PACKET_RX_RING)", errno);
  region_ = new Region(static_cast<uint8_t*>(p), total, true);
  toRelease_.reserve(blockCount_);
}

// recvmmsg: batch_ slots of frameSize_ bytes; message i always lands in slot i.
void PacketSocket::SetupMmsg(Napi::Env env) {
  uint64_t total = static_cast<uint64_t>(batch_) * frameSize_;
  if (total > 0xffffffffull) ThrowRange(env, "batchSize * frameSize must be smaller than 4 GiB");
  size_t rounded = (total + 4095) & ~static_cast<size_t>(4095);
  void* p = aligned_alloc(4096, rounded);
  if (!p) ThrowSys(env, "aligned_alloc", ENOMEM);
  memset(p, 0, rounded);
  region_ = new Region(static_cast<uint8_t*>(p), total, false);
  rxMsgs_.assign(batch_, mmsghdr{});
  rxIov_.assign(batch_, iovec{});
  rxAddr_.assign(batch_, sockaddr_ll{});
  rxCtl_.assign(static_cast<size_t>(batch_) * kCtlSpace, 0);
  for (uint32_t i = 0; i < batch_; i++) {
    rxIov_[i].iov_base = region_->base() + static_cast<size_t>(i) * frameSize_;
    rxIov_[i].iov_len = frameSize_;
    rxMsgs_[i].msg_hdr.msg_iov = &rxIov_[i];
    rxMsgs_[i].msg_hdr.msg_iovlen = 1;
    rxMsgs_[i].msg_hdr.msg_name = &rxAddr_[i];
    rxMsgs_[i].msg_hdr.msg_control = rxCtl_.data() + static_cast<size_t>(i) * kCtlSpace;
  }
  // PACKET_AUXDATA carries the frame's original length (tp_len): a frame the
  // filter cut short (its return value below the length) arrives without
  // MSG_TRUNC, and is recognised only by that.
  int one = 1;
  if (setsockopt(fd_, SOL_PACKET, PACKET_AUXDATA, &one, sizeof one) < 0)
    ThrowSys(env, "setsockopt(PACKET_AUXDATA)", errno);
}

void PacketSocket::AttachFilter(Napi::Env env, const void* insns, size_t count) {
  sock_fprog prog;
  prog.len = static_cast<unsigned short>(count);
  prog.filter = const_cast<sock_filter*>(static_cast<const sock_filter*>(insns));
  if (setsockopt(fd_, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof prog) < 0)
    ThrowSys(env, "setsockopt(SO_ATTACH_FILTER)", errno);
}

void PacketSocket::CheckOpen(Napi::Env env) const {
  if (closed_) ThrowSys(env, "packet socket is closed", EBADF);
}

void PacketSocket::ReleaseResources() {
  if (!bufferRef_.IsEmpty()) {
    Napi::ArrayBuffer ab = bufferRef_.Value();
    if (!ab.IsEmpty() && !ab.IsDetached()) ab.Detach();
    bufferRef_.Reset();
  }
  if (fd_ >= 0) close(fd_);
  fd_ = -1;
  if (region_) region_->Release();
  region_ = nullptr;
  off_ = len_ = nullptr;
  offRef_.Reset();
  lenRef_.Reset();
}

// ---- JS methods ------------------------------------------------------------

// info() -> { ifindex, mac: Uint8Array(6), mtu, mode, buffer: ArrayBuffer,
//             ringBlockSize, ringBlocks }. The ArrayBuffer is created once.
Napi::Value PacketSocket::Info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CheckOpen(env);
  if (bufferRef_.IsEmpty()) {
    region_->Retain();  // the ArrayBuffer's reference, dropped by its finalizer
    Napi::ArrayBuffer ab = Napi::ArrayBuffer::New(
        env, region_->base(), region_->size(), [](Napi::Env, void*, Region* r) { r->Release(); }, region_);
    bufferRef_ = Napi::Persistent(ab);
  }
  Napi::Object o = Napi::Object::New(env);
  o.Set("ifindex", Napi::Number::New(env, ifindex_));
  Napi::Uint8Array mac = Napi::Uint8Array::New(env, 6);
  memcpy(mac.Data(), mac_, 6);
  o.Set("mac", mac);
  o.Set("mtu", Napi::Number::New(env, mtu_));
  o.Set("mode", Napi::String::New(env, mode_ == Mode::Ring ? "ring" : "mmsg"));
  o.Set("buffer", bufferRef_.Value());
  o.Set("ringBlockSize", Napi::Number::New(env, mode_ == Mode::Ring ? blockSize_ : 0));
  o.Set("ringBlocks", Napi::Number::New(env, mode_ == Mode::Ring ? blockCount_ : 0));
  return o;
}

static inline tpacket_block_desc* BlockAt(uint8_t* base, uint32_t size, uint32_t i) {
  return reinterpret_cast<tpacket_block_desc*>(base + static_cast<size_t>(i) * size);
}

// Blocks read to their end by the previous receive() go back to the kernel.
void PacketSocket::ReleaseRingBlocks() {
  for (uint32_t b : toRelease_) {
    tpacket_block_desc* bd = BlockAt(region_->base(), blockSize_, b);
    __atomic_store_n(&bd->hdr.bh1.block_status, TP_STATUS_KERNEL, __ATOMIC_RELEASE);
  }
  toRelease_.clear();
}

uint32_t PacketSocket::DrainRing() {
  uint8_t* base = region_->base();
  uint32_t n = 0;
  uint64_t bytes = 0;
  while (n < batch_) {
    if (!inBlock_) {
      // Every block is held by this batch: stop before wrapping onto them.
      if (toRelease_.size() >= blockCount_) break;
      tpacket_block_desc* bd = BlockAt(base, blockSize_, curBlock_);
      uint32_t status = __atomic_load_n(&bd->hdr.bh1.block_status, __ATOMIC_ACQUIRE);
      if (!(status & TP_STATUS_USER)) break;
      pktLeft_ = bd->hdr.bh1.num_pkts;
      pktPtr_ = reinterpret_cast<uint8_t*>(bd) + bd->hdr.bh1.offset_to_first_pkt;
      inBlock_ = true;
    }
    while (pktLeft_ > 0 && n < batch_) {
      const tpacket3_hdr* h = reinterpret_cast<const tpacket3_hdr*>(pktPtr_);
      const sockaddr_ll* sll =
          reinterpret_cast<const sockaddr_ll*>(pktPtr_ + TPACKET_ALIGN(sizeof(tpacket3_hdr)));
      if (sll->sll_pkttype != PACKET_HOST) {
        c_.skippedNotHost++;
      } else if (h->tp_snaplen != h->tp_len || h->tp_len > frameSize_) {
        c_.truncated++;
      } else {
        off_[n] = static_cast<uint32_t>((pktPtr_ + h->tp_mac) - base);
        len_[n] = h->tp_snaplen;
        bytes += h->tp_snaplen;
        n++;
      }
      pktLeft_--;
      pktPtr_ += h->tp_next_offset;
    }
    if (pktLeft_ == 0) {
      toRelease_.push_back(curBlock_);
      curBlock_ = (curBlock_ + 1) % blockCount_;
      inBlock_ = false;
    }
  }
  c_.rxFrames += n;
  c_.rxBytes += bytes;
  return n;
}

// The frame's length before the filter's snap (PACKET_AUXDATA tp_len); the
// received length when the kernel sent no auxdata.
static inline uint32_t OriginalLength(const msghdr& h, uint32_t received) {
  for (cmsghdr* c = CMSG_FIRSTHDR(&h); c; c = CMSG_NXTHDR(const_cast<msghdr*>(&h), c)) {
    if (c->cmsg_level == SOL_PACKET && c->cmsg_type == PACKET_AUXDATA &&
        c->cmsg_len >= CMSG_LEN(sizeof(tpacket_auxdata))) {
      tpacket_auxdata aux;
      memcpy(&aux, CMSG_DATA(c), sizeof aux);
      return aux.tp_len;
    }
  }
  return received;
}

uint32_t PacketSocket::DrainMmsg() {
  for (uint32_t i = 0; i < batch_; i++) {
    rxMsgs_[i].msg_hdr.msg_namelen = sizeof(sockaddr_ll);
    rxMsgs_[i].msg_hdr.msg_flags = 0;
    rxMsgs_[i].msg_hdr.msg_controllen = kCtlSpace;
  }
  int r = recvmmsg(fd_, rxMsgs_.data(), batch_, MSG_DONTWAIT, nullptr);
  if (r < 0) {
    int err = errno;
    if (err == EAGAIN || err == EWOULDBLOCK || err == EINTR) return 0;
    if (err == ENETDOWN) {  // link went down: reported once through sk_err
      c_.rxErrors++;
      return 0;
    }
    pendErrno_ = err;  // reported by receive() returning -1, thrown by takeError()
    pendSyscall_ = "recvmmsg";
    return 0;
  }
  uint32_t n = 0;
  uint64_t bytes = 0;
  for (int i = 0; i < r; i++) {
    const mmsghdr& m = rxMsgs_[i];
    if (rxAddr_[i].sll_pkttype != PACKET_HOST) {
      c_.skippedNotHost++;
    } else if ((m.msg_hdr.msg_flags & MSG_TRUNC) || OriginalLength(m.msg_hdr, m.msg_len) != m.msg_len) {
      c_.truncated++;
    } else {
      off_[n] = static_cast<uint32_t>(i) * frameSize_;
      len_[n] = m.msg_len;
      bytes += m.msg_len;
      n++;
    }
  }
  c_.rxFrames += n;
  c_.rxBytes += bytes;
  return n;
}

// takeError(): throws the error behind the last -1 from receive().
Napi::Value PacketSocket::TakeError(const Napi::CallbackInfo& info) {
  int err = pendErrno_;
  pendErrno_ = 0;
  if (err != 0) ThrowSys(info.Env(), pendSyscall_, err);
  return info.Env().Undefined();
}

// A pending socket error (ENETDOWN on link down) makes poll() report POLLERR
// until it is read; count it and clear it.
void PacketSocket::ReadSocketError() {
  int err = 0;
  socklen_t l = sizeof err;
  getsockopt(fd_, SOL_SOCKET, SO_ERROR, &err, &l);
  c_.rxErrors++;
}

// receive(timeoutMs) -> frames delivered into off/len (0 when nothing came),
// or -1 when a system call failed unexpectedly: takeError() then throws it.
// The packet path itself never throws.
Napi::Value PacketSocket::Receive(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CheckOpen(env);
  double timeout = info[0].IsNumber() ? info[0].As<Napi::Number>().DoubleValue() : 0;
  if (!(timeout >= 0)) timeout = 0;
  if (mode_ == Mode::Ring) ReleaseRingBlocks();
  double deadline = timeout > 0 ? MonotonicMs() + timeout : 0;
  uint32_t n = 0;
  for (;;) {
    n = mode_ == Mode::Ring ? DrainRing() : DrainMmsg();
    if (pendErrno_ != 0) return Napi::Number::New(env, -1);
    if (n > 0 || timeout <= 0) break;
    double left = deadline - MonotonicMs();
    if (left <= 0) break;
    // Nothing delivered, so nothing in this batch points into the blocks read
    // so far (all skipped or truncated): give them back before sleeping, or
    // poll() would keep seeing a user-owned block and return at once.
    if (mode_ == Mode::Ring) ReleaseRingBlocks();
    pollfd pfd = {fd_, POLLIN, 0};
    timespec ts;
    ts.tv_sec = static_cast<time_t>(left / 1000);
    ts.tv_nsec = static_cast<long>((left - static_cast<double>(ts.tv_sec) * 1000) * 1e6);
    int r = ppoll(&pfd, 1, &ts, nullptr);
    if (r < 0) {
      if (errno == EINTR) continue;
      pendErrno_ = errno;
      pendSyscall_ = "ppoll";
      return Napi::Number::New(env, -1);
    }
    if (r > 0 && (pfd.revents & POLLERR)) ReadSocketError();
  }
  return Napi::Number::New(env, n);
}

// transmit(rxBuf, scratch, off, len, inScratch, count) -> frames sent.
// Frame i is (inScratch[i] ? scratch : rxBuf)[off[i] .. off[i] + len[i]);
// the iovecs point straight at it. Frames outside their buffer or shorter
// than an Ethernet header count in txInvalid; frames the kernel refused
// (including EAGAIN/ENOBUFS when the queue is full) count in txErrors.
Napi::Value PacketSocket::Transmit(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CheckOpen(env);
  auto rxBuf = info[0].As<Napi::Uint8Array>();
  auto scratch = info[1].As<Napi::Uint8Array>();
  auto off = info[2].As<Napi::Uint32Array>();
  auto len = info[3].As<Napi::Uint32Array>();
  auto inScratch = info[4].As<Napi::Uint8Array>();
  double countD = info[5].As<Napi::Number>().DoubleValue();
  size_t cap = off.ElementLength();
  if (len.ElementLength() < cap) cap = len.ElementLength();
  if (inScratch.ElementLength() < cap) cap = inScratch.ElementLength();
  if (!(countD >= 0) || countD > static_cast<double>(cap)) ThrowRange(env, "transmit: count exceeds the batch capacity");
  uint32_t count = static_cast<uint32_t>(countD);
  if (count == 0) return Napi::Number::New(env, 0);
  if (txMsgs_.size() < count) {
    txMsgs_.assign(count, mmsghdr{});
    txIov_.assign(count, iovec{});
  }
  uint8_t* bufs[2] = {rxBuf.Data(), scratch.Data()};
  size_t sizes[2] = {rxBuf.ByteLength(), scratch.ByteLength()};
  const uint32_t* o = off.Data();
  const uint32_t* l = len.Data();
  const uint8_t* s = inScratch.Data();
  uint32_t k = 0;
  for (uint32_t i = 0; i < count; i++) {
    int which = s[i] ? 1 : 0;
    uint64_t end = static_cast<uint64_t>(o[i]) + l[i];
    if (l[i] < ETH_HLEN || end > sizes[which]) {
      c_.txInvalid++;
      continue;
    }
    txIov_[k].iov_base = bufs[which] + o[i];
    txIov_[k].iov_len = l[i];
    mmsghdr& m = txMsgs_[k];
    memset(&m, 0, sizeof m);
    m.msg_hdr.msg_iov = &txIov_[k];
    m.msg_hdr.msg_iovlen = 1;
    k++;
  }
  uint32_t i = 0, sent = 0;
  uint64_t bytes = 0;
  while (i < k) {
    int r = sendmmsg(fd_, txMsgs_.data() + i, k - i, MSG_DONTWAIT);
    if (r > 0) {
      for (int j = 0; j < r; j++) bytes += txIov_[i + j].iov_len;
      i += r;
      sent += r;
      continue;
    }
    int err = errno;
    if (r < 0 && err == EINTR) continue;
    if (r == 0 || err == EAGAIN || err == EWOULDBLOCK || err == ENOBUFS || err == ENETDOWN || err == ENXIO ||
        err == ENODEV) {
      c_.txErrors += k - i;  // queue full or link gone: the rest of the batch fails the same way
      break;
    }
    c_.txErrors++;  // this frame was refused (EMSGSIZE, EINVAL): skip it
    i++;
  }
  c_.txFrames += sent;
  c_.txBytes += bytes;
  return Napi::Number::New(env, sent);
}

// send(frame: Uint8Array) -> boolean.
Napi::Value PacketSocket::Send(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CheckOpen(env);
  if (!info[0].IsTypedArray()) ThrowRange(env, "send(frame): frame must be a Uint8Array");
  auto f = info[0].As<Napi::Uint8Array>();
  ssize_t r;
  do {
    r = send(fd_, f.Data(), f.ByteLength(), MSG_DONTWAIT);
  } while (r < 0 && errno == EINTR);
  if (r < 0 || static_cast<size_t>(r) != f.ByteLength()) {
    c_.txErrors++;
    return Napi::Boolean::New(env, false);
  }
  c_.txFrames++;
  c_.txBytes += f.ByteLength();
  return Napi::Boolean::New(env, true);
}

// setFilter(program: Uint8Array | null): SO_ATTACH_FILTER replaces the
// current program atomically; null attaches accept-all.
Napi::Value PacketSocket::SetFilter(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CheckOpen(env);
  if (info[0].IsNull() || info[0].IsUndefined()) {
    AttachFilter(env, kAcceptAll, 1);
    return env.Undefined();
  }
  if (!info[0].IsTypedArray()) ThrowRange(env, "setFilter(program): program must be a Uint8Array or null");
  auto prog = info[0].As<Napi::Uint8Array>();
  size_t bytes = prog.ByteLength();
  if (bytes == 0 || bytes % 8 != 0 || bytes / 8 > kMaxInsns)
    ThrowRange(env, "filter program must be 1..4096 instructions of 8 bytes");
  AttachFilter(env, prog.Data(), bytes / 8);
  return env.Undefined();
}

// stats() -> counters; PACKET_STATISTICS resets the kernel's counters on
// every read, so drops are accumulated here.
Napi::Value PacketSocket::Stats(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CheckOpen(env);
  if (mode_ == Mode::Ring) {
    tpacket_stats_v3 st;
    socklen_t l = sizeof st;
    if (getsockopt(fd_, SOL_PACKET, PACKET_STATISTICS, &st, &l) < 0)
      ThrowSys(env, "getsockopt(PACKET_STATISTICS)", errno);
    c_.kernelDrops += st.tp_drops;
    c_.kernelFreezes += st.tp_freeze_q_cnt;
  } else {
    tpacket_stats st;
    socklen_t l = sizeof st;
    if (getsockopt(fd_, SOL_PACKET, PACKET_STATISTICS, &st, &l) < 0)
      ThrowSys(env, "getsockopt(PACKET_STATISTICS)", errno);
    c_.kernelDrops += st.tp_drops;
  }
  Napi::Object o = Napi::Object::New(env);
  auto put = [&](const char* k, uint64_t v) { o.Set(k, Napi::Number::New(env, static_cast<double>(v))); };
  put("rxFrames", c_.rxFrames);
  put("rxBytes", c_.rxBytes);
  put("txFrames", c_.txFrames);
  put("txBytes", c_.txBytes);
  put("txErrors", c_.txErrors);
  put("txInvalid", c_.txInvalid);
  put("skippedNotHost", c_.skippedNotHost);
  put("truncated", c_.truncated);
  put("rxErrors", c_.rxErrors);
  put("kernelDrops", c_.kernelDrops);
  put("kernelFreezes", c_.kernelFreezes);
  return o;
}

// close(): releases the socket and the receive memory (the JS view is
// detached first); idempotent.
Napi::Value PacketSocket::Close(const Napi::CallbackInfo& info) {
  if (!closed_) {
    ReleaseResources();
    closed_ = true;
  }
  return info.Env().Undefined();
}

}  // namespace saru

// ---- module ----------------------------------------------------------------

// Node-API modules are context-aware: no global state, so the addon loads in
// worker_threads too. `layout` lets a test check sock_filter's binary layout
// against native/bpf.ts.
static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("PacketSocket", saru::PacketSocket::Define(env));
  Napi::Object layout = Napi::Object::New(env);
  layout.Set("sockFilterSize", Napi::Number::New(env, sizeof(sock_filter)));
  layout.Set("code", Napi::Number::New(env, offsetof(sock_filter, code)));
  layout.Set("jt", Napi::Number::New(env, offsetof(sock_filter, jt)));
  layout.Set("jf", Napi::Number::New(env, offsetof(sock_filter, jf)));
  layout.Set("k", Napi::Number::New(env, offsetof(sock_filter, k)));
  layout.Set("littleEndian", Napi::Boolean::New(env, __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__));
  layout.Set("maxInsns", Napi::Number::New(env, 4096));
  exports.Set("layout", layout);
  return exports;
}

NODE_API_MODULE(saru_packet, Init)
