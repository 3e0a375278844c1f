// Registration of shared mappings with the SIGBUS guard (busguard.cc).
#pragma once
#include <cstddef>

namespace qbipc {
// Registers [base, base + length): a SIGBUS inside it replaces it with zero
// pages instead of killing the process. False when the registry is full.
bool GuardMapping(void* base, size_t length);
// Before munmap.
void UnguardMapping(void* base);
}  // namespace qbipc
