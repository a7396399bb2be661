// Fixed-width integers in the on-disk formats: little-endian, as FORMAT.md says, and unaligned
// accesses done with memcpy (the compiler turns them into plain loads and stores on x86-64).
#pragma once

#include <bit>
#include <cstring>
#include <string>

namespace ringmail {

static_assert(std::endian::native == std::endian::little, "the formats are little-endian");

template <typename T>
T load(const char* p) {
  T v;
  memcpy(&v, p, sizeof v);
  return v;
}

template <typename T>
void store(char* p, T v) {
  memcpy(p, &v, sizeof v);
}

template <typename T>
void put(std::string* s, T v) {
  s->append(reinterpret_cast<const char*>(&v), sizeof v);
}

}  // namespace ringmail
