// Sends a run of datagrams to one address in one system call: sendmmsg(2), and where the kernel
// allows, UDP generic segmentation offload (UDP_SEGMENT, Linux 4.18+): consecutive packets of one
// size (and a shorter last one) leave as one message that the kernel cuts up. Under fan-out the
// per-packet sendmsg was the gateway's largest cost (docs/performance.md); a frame's packets to one
// viewer now cost one call.
//
// sendBatch(fd, ip, port, data, offsets, lengths, count, segmentation) → packets the kernel took
// (in order, from the first), or -errno when it took none and said why. EAGAIN gives 0: the caller
// queues the rest through Node. Written against Node-API only (node_api.h), so any Node ≥ 18 loads it.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <node_api.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>

#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif
#ifndef SOL_UDP
#define SOL_UDP 17
#endif

// The kernel's limit on segments per message (UDP_MAX_SEGMENTS is 64 before Linux 5.x, 128 after).
#define MAX_SEGMENTS 64
// A UDP datagram's payload limit, less room for IPv6 headers.
#define MAX_MESSAGE_BYTES 65000
#define MAX_MESSAGES 128
#define MAX_PACKETS 1024

static struct mmsghdr messages[MAX_MESSAGES];
static struct iovec iovecs[MAX_PACKETS];
static int packetsIn[MAX_MESSAGES];
static union {
  struct cmsghdr align;
  char bytes[CMSG_SPACE(sizeof(uint16_t))];
} controls[MAX_MESSAGES];

static napi_value number(napi_env env, double value) {
  napi_value out;
  napi_create_double(env, value, &out);
  return out;
}

static napi_value fail(napi_env env, const char* message) {
  napi_throw_type_error(env, NULL, message);
  return NULL;
}

static int typedArray(napi_env env, napi_value value, napi_typedarray_type want, void** data, size_t* length) {
  bool is;
  if (napi_is_typedarray(env, value, &is) != napi_ok || !is) return 0;
  napi_typedarray_type type;
  if (napi_get_typedarray_info(env, value, &type, length, data, NULL, NULL) != napi_ok) return 0;
  return want == napi_uint8_array ? (type == napi_uint8_array || type == napi_uint8_clamped_array) : type == want;
}

static napi_value sendBatch(napi_env env, napi_callback_info info) {
  size_t argc = 8;
  napi_value argv[8];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 8) return fail(env, "sendBatch: 8 arguments");
  int32_t fd, port, count;
  bool segmentation;
  if (napi_get_value_int32(env, argv[0], &fd) != napi_ok) return fail(env, "sendBatch: fd");
  char ip[64];
  size_t ipLength;
  if (napi_get_value_string_latin1(env, argv[1], ip, sizeof ip, &ipLength) != napi_ok) return fail(env, "sendBatch: ip");
  if (ipLength >= sizeof ip - 1) return number(env, -EINVAL);
  if (napi_get_value_int32(env, argv[2], &port) != napi_ok) return fail(env, "sendBatch: port");
  uint8_t* data;
  size_t dataLength, offsetCount, lengthCount;
  uint32_t *offsets, *lengths;
  if (!typedArray(env, argv[3], napi_uint8_array, (void**)&data, &dataLength)) return fail(env, "sendBatch: data");
  if (!typedArray(env, argv[4], napi_uint32_array, (void**)&offsets, &offsetCount)) return fail(env, "sendBatch: offsets");
  if (!typedArray(env, argv[5], napi_uint32_array, (void**)&lengths, &lengthCount)) return fail(env, "sendBatch: lengths");
  if (napi_get_value_int32(env, argv[6], &count) != napi_ok || count < 0) return fail(env, "sendBatch: count");
  if (napi_get_value_bool(env, argv[7], &segmentation) != napi_ok) return fail(env, "sendBatch: segmentation");
  if ((size_t)count > offsetCount || (size_t)count > lengthCount) return fail(env, "sendBatch: count");
  for (int i = 0; i < count; i++) {
    if ((size_t)offsets[i] + lengths[i] > dataLength || lengths[i] == 0 || lengths[i] > MAX_MESSAGE_BYTES)
      return fail(env, "sendBatch: a packet lies outside data");
  }

  // No destination: what the kernel would say, not an exception in the caller's send loop.
  if (port <= 0 || port > 65535) return number(env, -EINVAL);
  struct sockaddr_storage address;
  socklen_t addressLength;
  memset(&address, 0, sizeof address);
  if (memchr(ip, ':', ipLength)) {
    struct sockaddr_in6* a = (struct sockaddr_in6*)&address;
    a->sin6_family = AF_INET6;
    a->sin6_port = htons((uint16_t)port);
    if (inet_pton(AF_INET6, ip, &a->sin6_addr) != 1) return number(env, -EINVAL);
    addressLength = sizeof *a;
  } else {
    struct sockaddr_in* a = (struct sockaddr_in*)&address;
    a->sin_family = AF_INET;
    a->sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, ip, &a->sin_addr) != 1) return number(env, -EINVAL);
    addressLength = sizeof *a;
  }

  int sent = 0;
  while (sent < count) {
    // Group the packets into messages: a run of one size plus a shorter last one, when segmenting.
    int messageCount = 0, packet = sent, iovec = 0;
    while (packet < count && messageCount < MAX_MESSAGES && iovec < MAX_PACKETS) {
      uint32_t size = lengths[packet];
      int first = packet;
      uint32_t bytes = 0;
      do {
        iovecs[iovec].iov_base = data + offsets[packet];
        iovecs[iovec].iov_len = lengths[packet];
        bytes += lengths[packet];
        iovec++;
        packet++;
        if (!segmentation || lengths[packet - 1] != size) break;
      } while (packet < count && iovec < MAX_PACKETS && packet - first < MAX_SEGMENTS &&
               lengths[packet] <= size && bytes + lengths[packet] <= MAX_MESSAGE_BYTES);
      struct msghdr* m = &messages[messageCount].msg_hdr;
      memset(m, 0, sizeof *m);
      m->msg_name = &address;
      m->msg_namelen = addressLength;
      m->msg_iov = &iovecs[iovec - (packet - first)];
      m->msg_iovlen = packet - first;
      if (packet - first > 1) {
        m->msg_control = controls[messageCount].bytes;
        m->msg_controllen = sizeof controls[messageCount].bytes;
        struct cmsghdr* c = CMSG_FIRSTHDR(m);
        c->cmsg_level = SOL_UDP;
        c->cmsg_type = UDP_SEGMENT;
        c->cmsg_len = CMSG_LEN(sizeof(uint16_t));
        uint16_t segmentSize = (uint16_t)size;
        memcpy(CMSG_DATA(c), &segmentSize, sizeof segmentSize);
      }
      packetsIn[messageCount] = packet - first;
      messageCount++;
    }
    int done;
    do {
      done = sendmmsg(fd, messages, messageCount, MSG_DONTWAIT);
    } while (done < 0 && errno == EINTR);
    if (done < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK || sent > 0) return number(env, sent);
      return number(env, -errno);
    }
    for (int i = 0; i < done; i++) sent += packetsIn[i];
    if (done < messageCount) break;
  }
  return number(env, sent);
}

NAPI_MODULE_INIT() {
  napi_value fn;
  napi_create_function(env, "sendBatch", NAPI_AUTO_LENGTH, sendBatch, NULL, &fn);
  napi_set_named_property(env, exports, "sendBatch", fn);
  return exports;
}
