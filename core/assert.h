// Assertions that stay on in release builds: a failed one is a bug, and the answer to a bug is to
// stop before it harms stored mail.
#pragma once

namespace ringmail {
[[noreturn]] void assert_fail(const char* expr, const char* file, int line, const char* msg);
}  // namespace ringmail

#define RM_ASSERT(expr)                                                                            \
  do {                                                                                             \
    if (__builtin_expect(!(expr), 0)) ::ringmail::assert_fail(#expr, __FILE__, __LINE__, nullptr); \
  } while (0)

#define RM_ASSERT_MSG(expr, msg)                                                                 \
  do {                                                                                           \
    if (__builtin_expect(!(expr), 0)) ::ringmail::assert_fail(#expr, __FILE__, __LINE__, (msg)); \
  } while (0)
