#include "core/listener.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace ringmail {
namespace {

constexpr int kBacklog = 4096;

int make_socket(const sockaddr_storage& ss, socklen_t len, bool reuseport, std::string* error) {
  int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    *error = std::string("socket: ") + strerror(errno);
    return -1;
  }
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (reuseport) setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (ss.ss_family == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  if (bind(fd, reinterpret_cast<const sockaddr*>(&ss), len) < 0) {
    *error = errno == EADDRINUSE ? "address already in use (is another server running?)"
                                 : std::string("bind: ") + strerror(errno);
    close(fd);
    return -1;
  }
  return fd;
}

uint16_t port_of(const sockaddr_storage& ss) {
  return ntohs(ss.ss_family == AF_INET6 ? reinterpret_cast<const sockaddr_in6&>(ss).sin6_port
                                        : reinterpret_cast<const sockaddr_in&>(ss).sin_port);
}

}  // namespace

bool open_listeners(const ListenAddress& addr, size_t count, std::vector<int>* fds,
                    std::string* bound, std::string* error) {
  sockaddr_storage ss = addr.addr;
  std::string why;
  if (port_of(ss) != 0) {
    // SO_REUSEPORT would let a second server (same user) share the port silently: a socket
    // bound without it first proves that nobody else holds the port.
    int probe = make_socket(ss, addr.len, false, &why);
    if (probe < 0) {
      *error = "cannot listen on " + addr.text + ": " + why;
      return false;
    }
    close(probe);
  }
  for (size_t i = 0; i < count; i++) {
    int fd = make_socket(ss, addr.len, true, &why);
    if (fd < 0 || listen(fd, kBacklog) < 0) {
      if (fd >= 0) {
        why = std::string("listen: ") + strerror(errno);
        close(fd);
      }
      for (int f : *fds) close(f);
      fds->clear();
      *error = "cannot listen on " + addr.text + ": " + why;
      return false;
    }
    if (i == 0 && port_of(ss) == 0) {
      socklen_t len = sizeof ss;
      getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
    }
    fds->push_back(fd);
  }
  char host[INET6_ADDRSTRLEN];
  char text[INET6_ADDRSTRLEN + 16];
  if (ss.ss_family == AF_INET6) {
    inet_ntop(AF_INET6, &reinterpret_cast<sockaddr_in6&>(ss).sin6_addr, host, sizeof host);
    snprintf(text, sizeof text, "[%s]:%u", host, port_of(ss));
  } else {
    inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in&>(ss).sin_addr, host, sizeof host);
    snprintf(text, sizeof text, "%s:%u", host, port_of(ss));
  }
  *bound = text;
  return true;
}

}  // namespace ringmail
