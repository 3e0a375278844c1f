// Registration of shared mappings with the SIGBUS guard (busguard.cc).
#pragma once
#include <cstddef>

namespace qbipc {

struct GuardSlot;

// Registers [base, base + length): a SIGBUS inside it replaces it with zero
// pages instead of killing the process. nullptr when it cannot be registered
// (no memory for the registry, or the test limit reached): the caller must
// unmap and refuse it, never hand it out unguarded.
// The mapping is part of the reserved range [groupBase, groupBase + groupLength),
// and releasing any mapping of that range releases all of it (ReleaseMapping).
GuardSlot* GuardMapping(void* base, size_t length, void* groupBase, size_t groupLength);

// Replaces the pages of the registered mapping that contains `address` (of its
// whole group) with private zero pages now, so its memory (and
// the file behind it) goes back to the system while JS views may still exist:
// they read zeros from then on.
// 0, -ENOENT (not a registered mapping, or already released) or -errno of mmap.
int ReleaseMapping(void* address);

// Forgets the mapping (released or not): before its munmap, exactly once.
void UnguardMapping(GuardSlot* slot);

}  // namespace qbipc
